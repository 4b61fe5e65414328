"""CSV, Parquet and Arrow IPC bodies: decoded by pyarrow's readers, straight into Arrow.

A body is bytes or a :class:`pyarrow.Buffer` (the API hands in a memory-mapped upload file), read
in place. Every reader checks :class:`~service.ingest.limits.IngestLimits` before it decodes what
the format lets it see first (Parquet's footer, Arrow IPC message headers, the CSV header and its
line ends), then again batch by batch while it decodes, so a small file that would decode to a
huge table is refused with 413 without being decoded.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Iterator
from typing import TypeAlias

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from service.errors import FieldIssue, MalformedBody, UnsupportedMediaType
from service.ingest import ipc_headers, parquet_footer
from service.ingest.limits import (
    MAX_COLUMN_NAME_CHARS,
    IngestLimits,
    check_column_names,
    decoded_nbytes,
    too_large,
)

#: what the ingest functions read: bytes, or a pyarrow buffer (a memory-mapped file)
Body: TypeAlias = bytes | bytearray | memoryview | pa.Buffer

_ARROW_FILE_MAGIC = b"ARROW1"
_GZIP_MAGIC = b"\x1f\x8b"
# Decoder failures: pyarrow raises ArrowInvalid (a ValueError), ArrowIOError (an OSError)
# and, for transcoding, UnicodeError/LookupError.
_DECODE_ERRORS = (pa.ArrowException, ValueError, OSError, LookupError)
#: Parquet is decoded in batches of about this many bytes (the step of the decoded-size check)
_BATCH_BYTES = 64 << 20
_MIN_BATCH_ROWS = 4 * 1024
_MAX_BATCH_ROWS = 1 << 20
#: CSV blocks: pyarrow needs the header line within the first block
_CSV_BLOCK_BYTES = 1 << 20
#: bytes per character in the worst encoding (UTF-32), for the CSV header bound
_MAX_BYTES_PER_CHAR = 4
#: bytes counted for line ends per slice of a CSV body (the count never copies the whole body)
_COUNT_SLICE_BYTES = 16 << 20

#: Parquet physical types -> the fewest Arrow bytes a value decodes to (a lower bound)
_PARQUET_MIN_WIDTH = {
    "BOOLEAN": 0.125,
    "INT32": 1.0,  # int8 is stored as INT32
    "INT64": 8.0,
    "INT96": 8.0,
    "FLOAT": 4.0,
    "DOUBLE": 8.0,
    "BYTE_ARRAY": 4.0,  # offsets; the bytes themselves are in the uncompressed size
    "FIXED_LEN_BYTE_ARRAY": 1.0,
}


def as_buffer(body: Body) -> pa.Buffer:
    """The body as a pyarrow buffer, without a copy."""
    return body if isinstance(body, pa.Buffer) else pa.py_buffer(body)


def _head(buffer: pa.Buffer, size: int) -> bytes:
    """The first ``size`` bytes (fewer if the body is shorter)."""
    data: bytes = buffer.slice(0, min(size, buffer.size)).to_pybytes()
    return data


def read_csv(
    body: Body,
    *,
    text_columns: Iterable[str],
    charset: str | None = None,
    limits: IngestLimits | None = None,
) -> pa.Table:
    """Parse CSV with a header row; ``text_columns`` are read as strings whatever they look like.

    Only an empty cell is null: "NA" is a country code as often as it is a missing value.
    Quoted cells may contain newlines (free-text features do); that costs ~0.1 s per 1M rows.
    Cells must be text in the charset (UTF-8 by default): invalid bytes are a 400 naming the
    column and row, never a binary column.
    """
    limits = limits or IngestLimits()
    buffer = as_buffer(body)
    if _head(buffer, len(_GZIP_MAGIC)) == _GZIP_MAGIC:
        message = "body is gzip-compressed; send the raw CSV (content encodings are not accepted)"
        raise MalformedBody(detail=message, issues=[FieldIssue("body", message)])
    encoding = "utf8"
    if charset is not None:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError as exc:
            raise UnsupportedMediaType(detail=f"unknown charset {charset!r}") from exc
    header_bytes = limits.max_columns * (MAX_COLUMN_NAME_CHARS + 3) * _MAX_BYTES_PER_CHAR + 4096
    names = _csv_header(buffer, encoding, header_bytes)
    if names is not None:
        limits.check_columns(len(names))
        check_column_names(names)
    read_options = pacsv.ReadOptions(encoding=encoding, block_size=max(_CSV_BLOCK_BYTES, header_bytes))
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    # A row takes at least two bytes (a cell and a line end; empty lines are skipped), so only a
    # body over twice max_rows bytes needs its line ends counted, and only a body with more line
    # ends than max_rows (some may be inside quoted cells) needs its rows counted.
    if (buffer.size + 1) // 2 > limits.max_rows and _line_ends(buffer) > limits.max_rows:
        _count_csv_rows(buffer, names[0] if names else None, read_options, parse_options, limits)
    text = list(text_columns)
    convert_options = pacsv.ConvertOptions(
        # Read as bytes, so an invalid cell is found and named below instead of failing the read.
        column_types={name: pa.binary() for name in text},
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(buffer),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except _DECODE_ERRORS as exc:
        raise _malformed("CSV", exc) from exc
    limits.check_schema(table.schema)
    limits.check_rows(table.num_rows)
    limits.check_decoded(table.nbytes)
    return _as_text(table)


def read_parquet(body: Body, *, limits: IngestLimits | None = None) -> pa.Table:
    """Read a Parquet file after checking its footer: rows, columns, names and decoded size."""
    limits = limits or IngestLimits()
    buffer = as_buffer(body)
    # Columns and rows from the footer's first fields, before pyarrow parses all of it.
    parquet_footer.check_footer(buffer, limits)
    # ParquetFile, not read_table: the dataset layer refuses duplicate column names
    # before we can name them in a 422.
    try:
        parquet = pq.ParquetFile(pa.BufferReader(buffer))
        metadata = parquet.metadata
        schema = parquet.schema_arrow
    except _DECODE_ERRORS as exc:
        raise _malformed("Parquet", exc) from exc
    limits.check_rows(metadata.num_rows)
    limits.check_columns(metadata.num_columns)
    check_column_names(schema.names)
    estimate = _parquet_decoded_estimate(metadata)
    limits.check_decoded(estimate, estimate=True)
    # Batches of about _BATCH_BYTES: few chunks for narrow tables, a bounded step for wide ones.
    row_bytes = estimate / max(1, metadata.num_rows)
    batch_rows = int(min(_MAX_BATCH_ROWS, max(_MIN_BATCH_ROWS, _BATCH_BYTES / max(row_bytes, 1.0))))
    try:
        return _collect(parquet.iter_batches(batch_size=batch_rows), schema, limits)
    except _DECODE_ERRORS as exc:
        raise _malformed("Parquet", exc) from exc


def read_arrow(body: Body, *, limits: IngestLimits | None = None) -> pa.Table:
    """Read an Arrow IPC stream or file (told apart by the file magic, whatever the media type said).

    Every record batch's row count and decoded size are read from its message header (no body is
    decompressed) and checked before the first batch is decoded.
    """
    limits = limits or IngestLimits()
    buffer = as_buffer(body)
    is_file = _head(buffer, len(_ARROW_FILE_MAGIC)) == _ARROW_FILE_MAGIC
    try:
        schema = pa.ipc.open_file(buffer).schema if is_file else pa.ipc.open_stream(buffer).schema
        limits.check_schema(schema)
        totals = ipc_headers.file_totals(buffer) if is_file else ipc_headers.stream_totals(buffer)
        limits.check_rows(totals.rows)
        limits.check_decoded(totals.decoded_bytes, estimate=True)
        if is_file:
            reader = pa.ipc.open_file(buffer)
            batches: Iterator[pa.RecordBatch] = (
                reader.get_batch(i) for i in range(reader.num_record_batches)
            )
        else:
            batches = iter(pa.ipc.open_stream(buffer))
        return _collect(batches, schema, limits)
    except _DECODE_ERRORS as exc:
        raise _malformed("Arrow IPC", exc) from exc


def _collect(batches: Iterator[pa.RecordBatch], schema: pa.Schema, limits: IngestLimits) -> pa.Table:
    """Decoded batches into one table, refused as soon as they pass the row or decoded-size limit."""
    kept: list[pa.RecordBatch] = []
    rows = decoded = 0
    for batch in batches:
        rows += batch.num_rows
        decoded += decoded_nbytes(batch)
        limits.check_rows(rows, at_least=True)
        limits.check_decoded(decoded)
        kept.append(batch)
    return pa.Table.from_batches(kept, schema=kept[0].schema if kept else schema)


def _parquet_decoded_estimate(metadata: pq.FileMetaData) -> int:
    """A lower bound of the Arrow bytes a Parquet file decodes to, from its footer alone.

    Per row group: the uncompressed size of its pages, or its rows times the narrowest Arrow
    width of each column, whichever is larger (run-length encoding makes a constant column's
    pages tiny, not its values).
    """
    schema = metadata.schema
    width = sum(
        max(
            _PARQUET_MIN_WIDTH.get(schema.column(i).physical_type, 1.0),
            float(schema.column(i).length or 0),
        )
        for i in range(metadata.num_columns)
    )
    total = 0
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        total += max(int(group.total_byte_size), int(group.num_rows * width))
    return total


# --- CSV --------------------------------------------------------------------------------------


def _csv_header(buffer: pa.Buffer, encoding: str, limit: int) -> list[str] | None:
    """The header's column names, parsed from at most ``limit`` bytes; ``None`` for an empty body.

    A header that does not end within ``limit`` bytes has more columns than allowed or names
    longer than allowed, and is refused without reading further.
    """
    head = _head(buffer, limit)
    truncated = buffer.size > limit
    python_encoding = "utf-8-sig" if encoding in ("utf8", "utf-8") else encoding
    try:
        text = io.TextIOWrapper(io.BytesIO(head), encoding=python_encoding, errors="replace", newline="")
        lines = _LineTracker(text)
        for record in csv.reader(lines, strict=False):
            if not record or record == [""]:
                continue  # pyarrow skips empty lines
            if truncated and not lines.last_ended:
                break
            return record
    except (csv.Error, UnicodeError, LookupError):
        return None  # pyarrow's reader names the problem
    if truncated:
        raise too_large(
            f"the CSV header does not end within its first {limit:,} bytes: more columns than the limit "
            f"(YARDSTICK_MAX_COLUMNS) or column names over {MAX_COLUMN_NAME_CHARS} characters"
        )
    return None


class _LineTracker:
    """Lines of a text stream for :mod:`csv`, remembering whether the last one was complete."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text
        self.last_ended = True

    def __iter__(self) -> Iterator[str]:
        for line in self._text:
            self.last_ended = line.endswith(("\n", "\r"))
            yield line


def _line_ends(buffer: pa.Buffer) -> int:
    """Line ends in the body (\\n, \\r\\n or \\r): an upper bound of its data rows."""
    ends = 0
    previous_cr = False
    for start in range(0, buffer.size, _COUNT_SLICE_BYTES):
        piece = buffer.slice(start, min(_COUNT_SLICE_BYTES, buffer.size - start)).to_pybytes()
        ends += piece.count(b"\n") + piece.count(b"\r") - piece.count(b"\r\n")
        if previous_cr and piece.startswith(b"\n"):
            ends -= 1
        previous_cr = piece.endswith(b"\r")
    return ends


def _count_csv_rows(
    buffer: pa.Buffer,
    first: str | None,
    read_options: pacsv.ReadOptions,
    parse_options: pacsv.ParseOptions,
    limits: IngestLimits,
) -> None:
    """Count rows block by block (one column converted, as bytes; none kept), stopping past ``max_rows``.

    Only for bodies with more line ends than ``max_rows``: quoted newlines make some of those
    line ends part of a cell rather than the end of a row.
    """
    convert_options = (
        pacsv.ConvertOptions(include_columns=[first], column_types={first: pa.binary()})
        if first is not None
        else pacsv.ConvertOptions()
    )
    rows = 0
    try:
        reader = pacsv.open_csv(
            pa.BufferReader(buffer),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
        for batch in reader:
            rows += batch.num_rows
            limits.check_rows(rows, at_least=True)
    except _DECODE_ERRORS as exc:
        raise _malformed("CSV", exc) from exc


def _as_text(table: pa.Table) -> pa.Table:
    """Binary columns (invalid UTF-8 somewhere, or read as bytes on purpose) become strings.

    The first invalid cell is a 400 naming its column and row.
    """
    for index, field in enumerate(table.schema):
        if not (pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type)):
            continue
        column = table.column(index)
        target = pa.large_string() if pa.types.is_large_binary(field.type) else pa.string()
        chunks = []
        offset = 0
        for chunk in column.chunks:
            try:
                chunks.append(chunk.cast(target))
            except pa.ArrowInvalid:
                raise _invalid_utf8(field.name, chunk, offset) from None
            offset += len(chunk)
        table = table.set_column(index, pa.field(field.name, target), pa.chunked_array(chunks, target))
    return table


def _invalid_utf8(name: str, chunk: pa.Array, offset: int) -> MalformedBody:
    for i, value in enumerate(chunk.to_pylist()):
        if value is None:
            continue
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            row = offset + i
            message = (
                f"row {row}: the cell is not valid UTF-8 (byte 0x{value[exc.start]:02x} at offset "
                f"{exc.start} of the cell); send UTF-8 or name the charset (text/csv; charset=latin-1)"
            )
            return MalformedBody(detail=f"{name}: {message}", issues=[FieldIssue(name, message, row)])
    message = "a cell is not valid UTF-8"
    return MalformedBody(detail=f"{name}: {message}", issues=[FieldIssue(name, message)])


def _malformed(form: str, exc: Exception) -> MalformedBody:
    message = f"body is not valid {form}: {exc}"
    return MalformedBody(detail=message, issues=[FieldIssue("body", message)])
