"""The metadata store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

All SQL lives here. Job claiming is a compare-and-swap ``UPDATE ... WHERE`` on the
row's current state, which is portable (no ``SKIP LOCKED``, no SQLite-only syntax)
and safe with any number of worker processes or machines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.pool import NullPool

from schemas.jobs import TERMINAL_STATUSES
from service.errors import Conflict, NotFound
from service.store import tables as t
from service.store.paging import decode_token, encode_token
from service.store.records import BatchRecord, JobRecord


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    """An engine with the per-dialect settings this store relies on."""
    if url.startswith("sqlite"):
        # NullPool: a connection per checkout is cheap for SQLite and safe across fork/spawn.
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA busy_timeout=30000")  # wait for the write lock instead of failing
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class SqlStore:
    """Batches and jobs metadata. Every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        return cls(make_engine(url))

    def create_schema(self) -> None:
        t.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    # -- batches -------------------------------------------------------------------------------

    def insert_batch(self, record: BatchRecord) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(t.batches).values(
                    id=record.id,
                    model_name=record.model_name,
                    model_version=record.model_version,
                    task=record.task,
                    classes=record.classes,
                    positive_class=record.positive_class,
                    rows=record.rows,
                    labeled_rows=record.labeled_rows,
                    columns=record.columns,
                    data_path=record.data_path,
                    data_version=record.data_version,
                    created_at=record.created_at,
                )
            )

    def get_batch(self, batch_id: str) -> BatchRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.batches).where(t.batches.c.id == batch_id)).first()
        if row is None:
            raise NotFound(f"batch {batch_id!r} does not exist (it may have been deleted)")
        return _batch(row)

    def list_batches(
        self, *, model: str | None, version: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[BatchRecord], str | None]:
        query = select(t.batches)
        if model is not None:
            query = query.where(t.batches.c.model_name == model)
        if version is not None:
            query = query.where(t.batches.c.model_version == version)
        rows = self._page(query, t.batches, page_size, page_token)
        records = [_batch(r) for r in rows[:page_size]]
        return records, _next_token(records, rows, page_size)

    def replace_batch_data(
        self, batch_id: str, *, expected_version: int, data_path: str, labeled_rows: int
    ) -> bool:
        """Point the batch at a rewritten data file, unless someone else rewrote it first."""
        with self._tx() as conn:
            result = conn.execute(
                update(t.batches)
                .where(t.batches.c.id == batch_id, t.batches.c.data_version == expected_version)
                .values(data_path=data_path, labeled_rows=labeled_rows, data_version=expected_version + 1)
            )
        return result.rowcount == 1

    def delete_batch(self, batch_id: str) -> BatchRecord:
        with self._tx() as conn:
            row = conn.execute(select(t.batches).where(t.batches.c.id == batch_id)).first()
            if row is None:
                raise NotFound(f"batch {batch_id!r} does not exist")
            conn.execute(update(t.jobs).where(t.jobs.c.batch_id == batch_id).values(batch_id=None))
            conn.execute(delete(t.batches).where(t.batches.c.id == batch_id))
        return _batch(row)

    def batch_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(t.batches.c.id))}

    # -- jobs: creation and reading --------------------------------------------------------------

    def insert_job(self, record: JobRecord) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(t.jobs).values(
                    id=record.id,
                    batch_id=record.batch_id,
                    batch_ref=record.batch_id,
                    model_name=record.model_name,
                    model_version=record.model_version,
                    status=record.status,
                    progress=record.progress,
                    request=record.request,
                    attempts=record.attempts,
                    max_attempts=record.max_attempts,
                    cancel_requested=False,
                    created_at=record.created_at,
                )
            )

    def get_job(self, job_id: str) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return _job(row)

    def list_jobs(
        self, *, status: str | None, model: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[JobRecord], str | None]:
        query = select(t.jobs)
        if status is not None:
            query = query.where(t.jobs.c.status == status)
        if model is not None:
            query = query.where(t.jobs.c.model_name == model)
        rows = self._page(query, t.jobs, page_size, page_token)
        records = [_job(r) for r in rows[:page_size]]
        return records, _next_token(records, rows, page_size)

    def get_result(self, job_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.jobs.c.status, t.jobs.c.result, t.jobs.c.error).where(t.jobs.c.id == job_id)
            ).first()
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist")
        if row.status != "succeeded" or row.result is None:
            hint = {
                "queued": "poll GET /v1/jobs/{id} until its status is succeeded",
                "running": "poll GET /v1/jobs/{id} until its status is succeeded",
                "failed": f"the job failed: {row.error}",
                "cancelled": "the job was cancelled; create a new evaluation",
            }[row.status]
            raise Conflict(f"job {job_id!r} has no result: it is {row.status}; {hint}")
        result: dict[str, Any] = row.result
        return result

    def earlier_results(
        self, model_name: str, *, before: datetime, limit: int = 50
    ) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        """The newest ``limit`` succeeded results of ``model_name`` created before ``before``,
        returned oldest first as (job id, model version, finished_at, result)."""
        jobs = t.jobs
        query = (
            select(jobs.c.id, jobs.c.model_version, jobs.c.finished_at, jobs.c.result)
            .where(jobs.c.model_name == model_name, jobs.c.status == "succeeded", jobs.c.created_at < before)
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(r.id, r.model_version, r.finished_at, r.result) for r in reversed(rows)]

    def counts_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.jobs.c.status, func.count()).group_by(t.jobs.c.status))
            return {status: count for status, count in rows}

    def cancel_job(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job; a running job's worker notices at its next heartbeat."""
        now = utcnow()
        with self._tx() as conn:
            row = conn.execute(select(t.jobs).where(t.jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"job {job_id!r} does not exist")
            if row.status in TERMINAL_STATUSES:
                raise Conflict(f"job {job_id!r} is already {row.status}; only queued or running jobs cancel")
            conn.execute(
                update(t.jobs)
                .where(t.jobs.c.id == job_id, t.jobs.c.status == row.status)
                .values(status="cancelled", cancel_requested=True, finished_at=now, lease_owner=None)
            )
        return self.get_job(job_id)

    # -- jobs: the worker protocol ---------------------------------------------------------------

    def claim_job(self, worker_id: str, *, lease_seconds: float) -> JobRecord | None:
        """Take the oldest queued job, or a running one whose lease ran out (its worker died).

        A stalled job that already used all its attempts is failed instead of retried, so a
        job that crashes its worker every time cannot loop forever.
        """
        now = utcnow()
        jobs = t.jobs
        with self.engine.connect() as conn:
            candidates = conn.execute(
                select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.max_attempts, jobs.c.lease_owner)
                .where(
                    or_(
                        jobs.c.status == "queued",
                        and_(jobs.c.status == "running", jobs.c.lease_expires_at < now),
                    )
                )
                .order_by(jobs.c.created_at, jobs.c.id)
                .limit(8)
            ).all()
        for cand in candidates:
            stalled = cand.status == "running"
            same_state = [jobs.c.id == cand.id, jobs.c.status == cand.status]
            if stalled:
                same_state += [jobs.c.lease_owner == cand.lease_owner, jobs.c.lease_expires_at < now]
            with self._tx() as conn:
                if stalled and cand.attempts >= cand.max_attempts:
                    conn.execute(
                        update(jobs)
                        .where(*same_state)
                        .values(
                            status="failed",
                            finished_at=now,
                            lease_owner=None,
                            error=(
                                f"the worker running this job stopped responding {cand.attempts} times "
                                "(crash, kill or out of memory); giving up after "
                                f"{cand.max_attempts} attempts"
                            ),
                        )
                    )
                    continue
                claimed = conn.execute(
                    update(jobs)
                    .where(*same_state)
                    .values(
                        status="running",
                        lease_owner=worker_id,
                        lease_expires_at=now + timedelta(seconds=lease_seconds),
                        attempts=jobs.c.attempts + 1,
                        started_at=func.coalesce(jobs.c.started_at, now),
                    )
                )
            if claimed.rowcount == 1:
                return self.get_job(cand.id)
        return None

    def heartbeat(self, job_id: str, worker_id: str, *, lease_seconds: float, progress: float | None) -> bool:
        """Extend the lease; False means the job is no longer ours (cancelled or taken over)."""
        values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
        if progress is not None:
            values["progress"] = min(max(progress, 0.0), 1.0)
        with self._tx() as conn:
            result = conn.execute(update(t.jobs).where(*self._owned(job_id, worker_id)).values(**values))
        return result.rowcount == 1

    def complete_job(self, job_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        """Store the result, once: only the current lease holder of a running job can."""
        with self._tx() as conn:
            updated = conn.execute(
                update(t.jobs)
                .where(*self._owned(job_id, worker_id))
                .values(
                    status="succeeded", result=result, progress=1.0, finished_at=utcnow(), lease_owner=None
                )
            )
        return updated.rowcount == 1

    def fail_job(self, job_id: str, worker_id: str, error: str) -> bool:
        with self._tx() as conn:
            updated = conn.execute(
                update(t.jobs)
                .where(*self._owned(job_id, worker_id))
                .values(status="failed", error=error, finished_at=utcnow(), lease_owner=None)
            )
        return updated.rowcount == 1

    @staticmethod
    def _owned(job_id: str, worker_id: str) -> list[Any]:
        return [t.jobs.c.id == job_id, t.jobs.c.status == "running", t.jobs.c.lease_owner == worker_id]

    # -- helpers ---------------------------------------------------------------------------------

    def _page(self, query: Any, table: Any, page_size: int, page_token: str | None) -> list[Row[Any]]:
        if page_token:
            created, row_id = decode_token(page_token)
            query = query.where(
                or_(table.c.created_at < created, and_(table.c.created_at == created, table.c.id < row_id))
            )
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(page_size + 1)
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())


def _next_token(records: list[Any], rows: list[Any], page_size: int) -> str | None:
    if len(rows) <= page_size or not records:
        return None
    last = records[-1]
    return encode_token(last.created_at, last.id)


def _batch(row: Row[Any]) -> BatchRecord:
    m = row._mapping
    return BatchRecord(
        id=m["id"],
        model_name=m["model_name"],
        model_version=m["model_version"],
        task=m["task"],
        classes=m["classes"],
        positive_class=m["positive_class"],
        rows=m["rows"],
        labeled_rows=m["labeled_rows"],
        columns=m["columns"],
        data_path=m["data_path"],
        data_version=m["data_version"],
        created_at=m["created_at"],
    )


def _job(row: Row[Any]) -> JobRecord:
    m = row._mapping
    return JobRecord(
        id=m["id"],
        batch_id=m["batch_ref"],
        model_name=m["model_name"],
        model_version=m["model_version"],
        status=m["status"],
        progress=m["progress"],
        request=m["request"],
        error=m["error"],
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        cancel_requested=m["cancel_requested"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
    )
