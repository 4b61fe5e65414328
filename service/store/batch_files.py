"""Batch rows as Parquet files under ``<data dir>/batches/<batch id>/``.

Files are written to a temporary name in the same directory, flushed to disk and
renamed into place, so a crash mid-upload never leaves a visible half file; the
metadata row that makes a batch visible is inserted only after the rename.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


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

    def remove_file(self, relative_path: str) -> None:
        (self.root / relative_path).unlink(missing_ok=True)

    def remove_batch(self, batch_id: str) -> None:
        shutil.rmtree(self.root / batch_id, ignore_errors=True)

    def batch_ids_on_disk(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir()]
