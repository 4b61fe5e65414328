"""Storage: metadata in SQL (``SqlStore``), batch rows in Parquet files (``BatchFiles``)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import pyarrow as pa

from schemas.batches import LabelUpdateResult
from service.canonical import BatchSpec, CanonicalBatch, LabelMerge, describe_columns
from service.errors import Conflict, NotFound
from service.settings import DEFAULT_PROJECT, Settings
from service.store.base import MetadataStore
from service.store.batch_files import BatchFiles, JobPins
from service.store.records import BatchRecord, IdempotencyClaim, JobRecord, StoredAnswer
from service.store.runs import RunStore
from service.store.sql import ProjectMetadata, SqlStore, utcnow

__all__ = [
    "BatchFiles",
    "BatchRecord",
    "JobRecord",
    "MetadataStore",
    "ProjectMetadata",
    "SqlStore",
    "Store",
    "new_id",
]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class Store:
    meta: MetadataStore
    files: BatchFiles
    #: Set on a job's view of the store (:meth:`pinned`): the batch versions the job reads.
    pins: JobPins | None = None

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """The store of every project (workers, health); routes use :meth:`for_project`.

        Migrates the schema to the newest revision first (service/store/migrations)."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        sql = SqlStore.from_url(settings.resolved_database_url)
        sql.migrate()
        return cls(meta=sql, files=BatchFiles(settings.batches_dir))

    @property
    def project(self) -> str | None:
        """The project this view of the store sees; None: every project."""
        return self.meta.project

    @property
    def runs(self) -> RunStore:
        """The tracking runs of this view's project (the default project for the all-projects view)."""
        return RunStore(self.meta.engine, self.project or DEFAULT_PROJECT)

    def for_project(self, project: str) -> Store:
        """The store as ``project`` sees it: another project's batches and jobs do not exist."""
        return replace(self, meta=self.meta.for_project(project))

    def remembering(
        self, claim: IdempotencyClaim, answer: Callable[[BatchRecord | JobRecord], StoredAnswer]
    ) -> Store:
        """A view that stores ``answer(record)`` under the claimed Idempotency-Key together with
        the first batch or job it inserts (one transaction: both or neither)."""
        return replace(self, meta=self.meta.remembering(claim, answer))

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
            project=self.project or DEFAULT_PROJECT,
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

    def update_labels(
        self, batch_id: str, merge: Callable[[pa.Table, BatchSpec], LabelMerge], *, attempts: int = 5
    ) -> LabelUpdateResult:
        """Merge late labels into a batch as a new version of its file.

        Read the current version, ``merge`` the labels into it (ingest's
        :func:`~service.ingest.merge_stored_labels`, which validates them), write the new file,
        then compare-and-swap the row to it: when another update won meanwhile, redo the merge on
        its version instead of overwriting it. The old file is removed once the row no longer
        names it (jobs that read it hold pins). A bad label raises before anything is written.
        """
        for _ in range(attempts):
            record = self.meta.get_batch(batch_id)
            try:
                table = self.files.read(record.data_path)
            except NotFound:
                continue  # another update replaced that version after we looked it up: look again
            merged = merge(table, record.spec)
            path = self.files.write(batch_id, merged.batch.table, version=record.data_version + 1)
            try:
                swapped = self.meta.replace_batch_data(
                    batch_id,
                    expected_version=record.data_version,
                    data_path=path,
                    labeled_rows=merged.batch.labeled_rows,
                )
            except BaseException:
                self.files.remove_file(path)
                raise
            if swapped:
                self.files.remove_file(record.data_path)
                return LabelUpdateResult(
                    batch_id=batch_id,
                    updated=merged.updated,
                    labeled_rows=merged.batch.labeled_rows,
                    unmatched_sample_ids=merged.unmatched_sample_ids,
                )
            self.files.remove_file(path)
        self.meta.get_batch(batch_id)  # deleted meanwhile: NotFound rather than a conflict
        raise Conflict(f"batch {batch_id!r} is being relabelled concurrently; retry the request")

    def read_rows(
        self, batch_id: str, *, offset: int, limit: int, columns: list[str]
    ) -> tuple[pa.Table, int]:
        """Rows ``[offset, offset + limit)`` of the batch's current version and its row count,
        reading only the row groups they are in."""
        for _ in range(5):
            record = self.meta.get_batch(batch_id)
            try:
                return self.files.read_rows(record.data_path, offset=offset, limit=limit, columns=columns)
            except NotFound:
                continue  # relabelled between the lookup and the read: the new version has the rows
        self.meta.get_batch(batch_id)
        raise Conflict(f"batch {batch_id!r} is being relabelled concurrently; retry the request")

    # -- a job's view: one version of each batch from start to end ------------------------------

    def batch(self, batch_id: str) -> BatchRecord:
        """A batch's record as a job sees it: the pinned snapshot in a job's view, else the current one."""
        return self.meta.get_batch(batch_id) if self.pins is None else self.pins.record(batch_id)

    @contextlib.contextmanager
    def pinned(self, job_id: str, attempt: int, batch_ids: Iterable[str]) -> Iterator[Store]:
        """A view of the store in which ``batch_ids`` stay at the version they have now.

        Each batch is pinned (hard-linked under ``batches/.pins/<job_id>.<attempt>/``) and its
        record snapshotted, so relabelling or deleting it meanwhile changes nothing for the job;
        :meth:`batch` in the view hands out the snapshots. Leaving the block removes the pins,
        also those of earlier attempts of the job, whose workers died or lost the job.
        """
        for stale_job, stale_attempt in self.files.pinned_jobs():
            if stale_job == job_id and stale_attempt < attempt:
                self.files.unpin(stale_job, stale_attempt)
        pins = JobPins(self.files, self.meta.get_batch, job_id, attempt)
        try:
            for batch_id in dict.fromkeys(batch_ids):
                pins.pin(batch_id)
            yield replace(self, pins=pins)
        finally:
            pins.release()

    def sweep_pins(self) -> int:
        """Remove the pins of job attempts no longer running (their worker died or ended); return
        how many. The job is read after its pin directory was listed, so a pin made by a claim
        that happens meanwhile is newer than what the job says and stays."""
        removed = 0
        for job_id, attempt in self.files.pinned_jobs():
            try:
                job = self.meta.get_job(job_id)
            except NotFound:
                job = None
            if job is None or job.status != "running" or attempt < job.attempts:
                self.files.unpin(job_id, attempt)
                removed += 1
        return removed

    def sweep_orphan_files(self, *, older_than_seconds: float = 3600.0) -> int:
        """At start-up: remove batch directories with no metadata row (left by a crash between
        write and insert), temporaries of writes that can no longer finish, and pins of jobs no
        longer running. Returns the number of batch directories removed.

        A directory whose dead writer's temporary was its only file goes at once; one with a
        finished file but no row waits ``older_than_seconds``, since its upload may be in flight.
        """
        touched = self.files.sweep_temporaries()
        known = self.meta.batch_ids()
        removed = 0
        cutoff = time.time() - older_than_seconds
        for batch_id in self.files.batch_ids_on_disk():
            if batch_id in known:
                continue
            directory = self.files.root / batch_id
            if batch_id in touched:
                with contextlib.suppress(OSError):  # not empty: judged by its age below
                    directory.rmdir()
                    removed += 1
                    continue
            if directory.stat().st_mtime < cutoff:
                self.files.remove_batch(batch_id)
                removed += 1
        self.sweep_pins()
        return removed

    def close(self) -> None:
        self.meta.dispose()
