"""CSV, Parquet and Arrow IPC bodies: decoded by pyarrow's readers, straight into Arrow."""

from __future__ import annotations

import codecs
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from service.errors import FieldIssue, MalformedBody, UnsupportedMediaType

_ARROW_FILE_MAGIC = b"ARROW1"
# Decoder failures: pyarrow raises ArrowInvalid (a ValueError), ArrowIOError (an OSError)
# and, for transcoding, UnicodeError/LookupError.
_DECODE_ERRORS = (pa.ArrowException, ValueError, OSError, LookupError)


def read_csv(body: bytes, *, text_columns: Iterable[str], charset: str | None = None) -> pa.Table:
    """Parse CSV with a header row; ``text_columns`` are read as strings whatever they look like.

    Only an empty cell is null: "NA" is a country code as often as it is a missing value.
    Quoted cells may contain newlines (free-text features do); that costs ~0.1 s per 1M rows.
    """
    encoding = "utf8"
    if charset is not None:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError as exc:
            raise UnsupportedMediaType(detail=f"unknown charset {charset!r}") from exc
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in text_columns},
        null_values=[""],
        strings_can_be_null=True,
    )
    try:
        return pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(encoding=encoding),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=convert_options,
        )
    except _DECODE_ERRORS as exc:
        raise _malformed("CSV", exc) from exc


def read_parquet(body: bytes) -> pa.Table:
    # ParquetFile, not read_table: the dataset layer refuses duplicate column names
    # before we can name them in a 422.
    try:
        return pq.ParquetFile(pa.BufferReader(body)).read()
    except _DECODE_ERRORS as exc:
        raise _malformed("Parquet", exc) from exc


def read_arrow(body: bytes) -> pa.Table:
    """Read an Arrow IPC stream or file (told apart by the file magic, whatever the media type said)."""
    buffer = pa.py_buffer(body)
    try:
        if body[: len(_ARROW_FILE_MAGIC)] == _ARROW_FILE_MAGIC:
            return pa.ipc.open_file(buffer).read_all()
        return pa.ipc.open_stream(buffer).read_all()
    except _DECODE_ERRORS as exc:
        raise _malformed("Arrow IPC", exc) from exc


def _malformed(form: str, exc: Exception) -> MalformedBody:
    message = f"body is not valid {form}: {exc}"
    return MalformedBody(detail=message, issues=[FieldIssue("body", message)])
