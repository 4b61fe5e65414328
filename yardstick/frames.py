"""Frames in and out: what a pipeline holds (pandas, polars, pyarrow) to the bytes of an upload,
and the result's slice tables back to pandas.

An upload is written by row groups (Parquet) or record batches (Arrow IPC) into a generator, so
the encoded file is never held whole in memory: each chunk goes on the wire as it is written.
A retry calls :func:`encode` again (a generator runs once), and gets the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from schemas.results import EvaluationResult

Format = Literal["parquet", "arrow"]
MEDIA_TYPES: dict[Format, str] = {
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
#: rows per Parquet row group / Arrow record batch: big enough to compress well, small enough
#: that a chunk on the wire is a few MB, not the whole file
CHUNK_ROWS = 256 * 1024
#: a pandas DataFrame (pandas ships no type information that mypy reads)
DataFrame = Any


def to_arrow(frame: Any) -> pa.Table:
    """A pandas or polars DataFrame, or a pyarrow Table or RecordBatch, as a pyarrow Table."""
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pa.RecordBatch):
        return pa.Table.from_batches([frame])
    module = type(frame).__module__.split(".")[0]
    if module == "polars":
        table: pa.Table = frame.to_arrow()
        return table
    if module == "pandas":
        # the index is not a column of the batch: sample ids go in a `sample_id` column
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise TypeError(f"expected a pandas or polars DataFrame or a pyarrow Table, not {type(frame).__name__}")


class _Chunks:
    """A write-only file for pyarrow's writers that hands over what was written so far."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        self._size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return self._size

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def encode(table: pa.Table, fmt: Format = "parquet", *, chunk_rows: int = CHUNK_ROWS) -> Iterator[bytes]:
    """The table as a Parquet file or an Arrow IPC stream, in chunks of about ``chunk_rows`` rows."""
    sink = _Chunks()
    writer: Any
    if fmt == "parquet":
        writer = pq.ParquetWriter(sink, table.schema)
    elif fmt == "arrow":
        writer = pa.ipc.new_stream(sink, table.schema)
    else:
        raise ValueError(f"format must be 'parquet' or 'arrow', not {fmt!r}")
    for offset in range(0, max(table.num_rows, 1), chunk_rows):
        piece = table.slice(offset, chunk_rows)
        if fmt == "parquet":
            writer.write_table(piece, row_group_size=chunk_rows)
        else:
            writer.write_table(piece, max_chunksize=chunk_rows)
        if chunk := sink.take():
            yield chunk
    writer.close()
    if chunk := sink.take():
        yield chunk


def slice_frames(result: EvaluationResult) -> dict[str, DataFrame]:
    """The result's slice tables, one DataFrame per column or cross (keyed ``"a"`` or ``"a x b"``).

    A row per slice: its condition columns, ``n``, ``share``, ``minority``, then per metric
    ``<metric>``, ``<metric>_low``, ``<metric>_high`` (the interval, when bootstrapped),
    ``<metric>_difference`` (slice minus overall) and ``<metric>_p_value`` (slice against the rest).
    """
    frames: dict[str, DataFrame] = {}
    if result.slices is None:
        return frames
    for group in result.slices.groups:
        rows = []
        for piece in group.slices:
            row: dict[str, Any] = {column: piece.conditions.get(column) for column in group.columns}
            row |= {"n": piece.n, "share": piece.share, "minority": piece.minority}
            for name, metric in piece.metrics.items():
                row[name] = metric.value
                row[f"{name}_low"] = metric.interval.low if metric.interval else None
                row[f"{name}_high"] = metric.interval.high if metric.interval else None
                row[f"{name}_difference"] = metric.difference
                row[f"{name}_p_value"] = metric.p_value
            rows.append(row)
        # through Arrow: one type per column, as the other frames of this module
        frames[" x ".join(group.columns)] = pa.Table.from_pylist(rows).to_pandas()
    return frames
