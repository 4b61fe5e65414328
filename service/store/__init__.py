"""Storage: metadata in SQL (``SqlStore``), batch rows in Parquet files (``BatchFiles``)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from service.ingest.canonical import (
    DERIVED_ROWS_KEY,
    DERIVED_THRESHOLD_KEY,
    LABEL,
    LOWER,
    PREDICTION,
    SAMPLE_ID,
    SCORE,
    SCORE_PREFIX,
    UPPER,
    CanonicalBatch,
)
from service.settings import Settings
from service.store.base import MetadataStore
from service.store.batch_files import BatchFiles
from service.store.records import BatchRecord, JobRecord
from service.store.sql import SqlStore, utcnow

__all__ = ["BatchFiles", "BatchRecord", "JobRecord", "MetadataStore", "SqlStore", "Store", "new_id"]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def describe_columns(table: pa.Schema) -> list[dict[str, Any]]:
    """Column name, Arrow type and role, as shown in a Batch."""
    roles = {SAMPLE_ID: "sample_id", LABEL: "label", PREDICTION: "prediction", SCORE: "score"}
    out = []
    for fld in table:
        role = roles.get(fld.name)
        if role is None:
            if fld.name.startswith(SCORE_PREFIX):
                role = "score"
            elif fld.name in (LOWER, UPPER):
                role = "interval"
            else:
                role = "feature"
        column: dict[str, Any] = {"name": fld.name, "type": str(fld.type), "role": role}
        metadata = fld.metadata or {}
        if role == "prediction" and DERIVED_THRESHOLD_KEY in metadata:
            column["derived"] = {
                "source": "score",
                "threshold": float(metadata[DERIVED_THRESHOLD_KEY]),
                "rows": int(metadata.get(DERIVED_ROWS_KEY, b"0")),
            }
        out.append(column)
    return out


@dataclass
class Store:
    meta: MetadataStore
    files: BatchFiles

    @classmethod
    def open(cls, settings: Settings) -> Store:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        meta = SqlStore.from_url(settings.resolved_database_url)
        meta.create_schema()
        return cls(meta=meta, files=BatchFiles(settings.batches_dir))

    def save_batch(self, batch: CanonicalBatch) -> BatchRecord:
        """Write the rows, then make the batch visible: never a half batch in the listing."""
        batch_id = new_id("b")
        path = self.files.write(batch_id, batch.table, version=1)
        record = BatchRecord(
            id=batch_id,
            model_name=batch.spec.model_name,
            model_version=batch.spec.model_version,
            task=batch.spec.task,
            classes=batch.spec.classes,
            positive_class=batch.spec.positive_class,
            rows=batch.rows,
            labeled_rows=batch.labeled_rows,
            columns=describe_columns(batch.table.schema),
            data_path=path,
            data_version=1,
            created_at=utcnow(),
        )
        try:
            self.meta.insert_batch(record)
        except BaseException:
            self.files.remove_batch(batch_id)
            raise
        return record

    def delete_batch(self, batch_id: str) -> None:
        self.meta.delete_batch(batch_id)
        self.files.remove_batch(batch_id)

    def sweep_orphan_files(self, *, older_than_seconds: float = 3600.0) -> int:
        """Remove batch directories with no metadata row (left by a crash between write and insert)."""
        known = self.meta.batch_ids()
        removed = 0
        cutoff = time.time() - older_than_seconds
        for batch_id in self.files.batch_ids_on_disk():
            directory = self.files.root / batch_id
            if batch_id not in known and directory.stat().st_mtime < cutoff:
                self.files.remove_batch(batch_id)
                removed += 1
        return removed

    def close(self) -> None:
        self.meta.dispose()
