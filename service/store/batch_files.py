"""Batch rows as Parquet files under ``<data dir>/batches/<batch id>/``.

Files are written to a temporary name in the same directory, flushed to disk and
renamed into place, so a crash mid-upload never leaves a visible half file; the
metadata row that makes a batch visible is inserted only after the rename.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Schema metadata key of a digest of the file's ``sample_id`` column (ids and their order).
SAMPLE_ID_DIGEST_KEY = b"yardstick.sample_id_digest"
_SAMPLE_ID = "sample_id"


def sample_id_digest(column: pa.Array | pa.ChunkedArray) -> bytes | None:
    """A digest of an id column's type, length, values and order (hex, as bytes).

    Two columns with equal digests hold the same values in the same order, so a reader
    can skip comparing a million ids. None for a type without a stable layout here, or nulls.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        return None
    kind = array.type
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{kind}|{len(array)}|".encode())
    if len(array) == 0:
        return h.hexdigest().encode()
    buffers = array.buffers()
    if (
        pa.types.is_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_string(kind)
        or (pa.types.is_large_binary(kind))
    ):
        width = np.int64 if (pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)) else np.int32
        offsets = np.frombuffer(buffers[1], dtype=width)[array.offset : array.offset + len(array) + 1]
        start, end = int(offsets[0]), int(offsets[-1])
        h.update(memoryview(offsets - offsets[0] if start else offsets))
        h.update(memoryview(buffers[2])[start:end] if buffers[2] is not None else b"")
    elif pa.types.is_integer(kind):
        width = kind.bit_width // 8
        h.update(memoryview(buffers[1])[array.offset * width : (array.offset + len(array)) * width])
    else:
        return None
    return h.hexdigest().encode()


def _with_sample_id_digest(table: pa.Table) -> pa.Table:
    """``table`` with the digest of its sample ids in the schema metadata (a stale one dropped)."""
    metadata = dict(table.schema.metadata or {})
    metadata.pop(SAMPLE_ID_DIGEST_KEY, None)
    if _SAMPLE_ID in table.column_names:
        digest = sample_id_digest(table.column(_SAMPLE_ID))
        if digest is not None:
            metadata[SAMPLE_ID_DIGEST_KEY] = digest
    return table.replace_schema_metadata(metadata or None)


class BatchFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def write(self, batch_id: str, table: pa.Table, *, version: int) -> str:
        """Atomically write ``table`` as version ``version`` of ``batch_id``; return its relative path."""
        directory = self.root / batch_id
        directory.mkdir(parents=True, exist_ok=True)
        # A unique name per write: two concurrent rewrites never clobber each other's file.
        final = directory / f"v{version}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = directory / f".tmp-{uuid.uuid4().hex}.parquet"
        try:
            # The ids' digest lets a comparison with another batch skip reading its ids.
            table = _with_sample_id_digest(table)
            # Uncompressed-ish but fast: snappy is the best speed/size trade for re-reads.
            pq.write_table(table, tmp, compression="snappy", row_group_size=256 * 1024)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return str(final.relative_to(self.root))

    def read(self, relative_path: str, *, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.root / relative_path, columns=columns)

    def footer(self, relative_path: str) -> tuple[int, bytes | None]:
        """A file's row count and sample-id digest (None for files written before digests),
        from the Parquet footer alone."""
        meta = pq.read_metadata(self.root / relative_path)
        return meta.num_rows, (meta.metadata or {}).get(SAMPLE_ID_DIGEST_KEY)

    def remove_file(self, relative_path: str) -> None:
        (self.root / relative_path).unlink(missing_ok=True)

    def remove_batch(self, batch_id: str) -> None:
        shutil.rmtree(self.root / batch_id, ignore_errors=True)

    def batch_ids_on_disk(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir()]
