"""The metadata store: one SQLAlchemy Core implementation for SQLite and PostgreSQL.

All SQL lives here. Job claiming is a compare-and-swap ``UPDATE ... WHERE`` on the
row's current state, which is portable (no ``SKIP LOCKED``, no SQLite-only syntax)
and safe with any number of worker processes or machines.

Every read and write of batches, jobs and results names a project (``project=None`` only for
the workers' and health checks' view of every project): a batch or job of another project is
"does not exist", exactly like one that never existed. :class:`ProjectMetadata` is the store
as one project sees it, with the methods of :class:`service.store.base.MetadataStore`.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.elements import ColumnElement

from schemas.batches import Column
from schemas.jobs import TERMINAL_STATUSES
from service.errors import Conflict, FieldIssue, NotFound
from service.store import migrations
from service.store import paging as tokens
from service.store import tables as t
from service.store.records import (
    BatchRecord,
    EvaluationRecord,
    IdempotencyClaim,
    IdempotencyEntry,
    JobRecord,
    ModelRecord,
    StoredAnswer,
)

#: What a create request stores with its row when it came with an Idempotency-Key.
Finish = tuple[IdempotencyClaim, StoredAnswer]
#: How the answer of a create request is made from the record it stored.
AnswerFor = Callable[[BatchRecord | JobRecord], StoredAnswer]
PAGE_TOKEN_KEY = "page_token_key"
SWEEP_SECONDS = 60.0
log = logging.getLogger("yardstick.store")


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
    """Batches and jobs metadata. Every method is one short transaction.

    Each method takes ``project``; None (the default) is every project. Used directly, a
    ``SqlStore`` is the view of every project; :meth:`for_project` gives one project's.
    """

    project: str | None = None

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._last_sweep = float("-inf")

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        return cls(make_engine(url))

    def for_project(self, project: str) -> ProjectMetadata:
        return ProjectMetadata(self, project)

    def remembering(self, claim: IdempotencyClaim, answer: AnswerFor) -> ProjectMetadata:
        return ProjectMetadata(self, claim.project).remembering(claim, answer)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def migrate(self) -> migrations.MigrationReport:
        """Bring the schema to the newest revision (see ``service/store/migrations``), then load
        the deployment's page-token key."""
        report = migrations.upgrade(self.url)
        self.load_page_token_key()
        return report

    def create_schema(self) -> None:
        self.migrate()

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def load_page_token_key(self) -> None:
        """Sign page tokens with the key in ``service_state`` (made by the migration, or here)."""
        state = t.service_state
        query = select(state.c.value).where(state.c.name == PAGE_TOKEN_KEY)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        if value is None:
            with self._tx() as conn:
                conn.execute(
                    self._insert_ignore(t.service_state, ["name"]).values(
                        name=PAGE_TOKEN_KEY, value=uuid.uuid4().hex + uuid.uuid4().hex
                    )
                )
                value = conn.execute(query).scalar_one()
        tokens.install_key(hashlib.sha256(value.encode()).digest())

    def _insert_ignore(self, table: Any, keys: list[str]) -> Any:
        """INSERT that does nothing when a row with the same ``keys`` exists."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)

    # -- batches -------------------------------------------------------------------------------

    def insert_batch(self, record: BatchRecord, *, finish: Finish | None = None) -> None:
        """Store the row; with ``finish``, store the request's answer under its Idempotency-Key in
        the same transaction (both or neither)."""
        with self._tx() as conn:
            conn.execute(
                insert(t.batches).values(
                    id=record.id,
                    project=record.project,
                    model_name=record.model_name,
                    model_version=record.model_version,
                    task=record.task,
                    classes=record.classes,
                    positive_class=record.positive_class,
                    rows=record.rows,
                    labeled_rows=record.labeled_rows,
                    columns=[c.model_dump(mode="json", exclude_none=True) for c in record.columns],
                    data_path=record.data_path,
                    data_version=record.data_version,
                    created_at=record.created_at,
                )
            )
            if finish is not None:
                self._finish_idempotency_key(conn, *finish)

    def get_batch(self, batch_id: str, *, project: str | None = None) -> BatchRecord:
        query = select(t.batches).where(t.batches.c.id == batch_id, *_in_project(t.batches, project))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"batch {batch_id!r} does not exist (it may have been deleted)")
        return _batch(row)

    def list_batches(
        self,
        *,
        model: str | None,
        version: str | None,
        page_size: int,
        page_token: str | None,
        project: str | None = None,
    ) -> tuple[list[BatchRecord], str | None]:
        query = select(t.batches).where(*_in_project(t.batches, project))
        if model is not None:
            query = query.where(t.batches.c.model_name == model)
        if version is not None:
            query = query.where(t.batches.c.model_version == version)
        scope = _scope("batches", project)
        rows = self._page(query, t.batches, scope, page_size, page_token)
        records = [_batch(r) for r in rows[:page_size]]
        return records, _next_token(records, rows, page_size, scope)

    def replace_batch_data(
        self,
        batch_id: str,
        *,
        expected_version: int,
        data_path: str,
        labeled_rows: int,
        project: str | None = None,
    ) -> bool:
        """Point the batch at a rewritten data file, unless someone else rewrote it first."""
        with self._tx() as conn:
            result = conn.execute(
                update(t.batches)
                .where(
                    t.batches.c.id == batch_id,
                    t.batches.c.data_version == expected_version,
                    *_in_project(t.batches, project),
                )
                .values(data_path=data_path, labeled_rows=labeled_rows, data_version=expected_version + 1)
            )
        return result.rowcount == 1

    def delete_batch(self, batch_id: str, *, project: str | None = None) -> BatchRecord:
        mine = [t.batches.c.id == batch_id, *_in_project(t.batches, project)]
        with self._tx() as conn:
            row = conn.execute(select(t.batches).where(*mine)).first()
            if row is None:
                raise NotFound(f"batch {batch_id!r} does not exist")
            conn.execute(update(t.jobs).where(t.jobs.c.batch_id == batch_id).values(batch_id=None))
            if conn.execute(delete(t.batches).where(*mine)).rowcount != 1:
                raise NotFound(f"batch {batch_id!r} does not exist")  # deleted meanwhile
        return _batch(row)

    def batch_ids(self) -> set[str]:
        """Every project's batch ids (the orphan-file sweep compares them with the disk)."""
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(t.batches.c.id))}

    # -- jobs: creation and reading --------------------------------------------------------------

    def insert_job(self, record: JobRecord, *, finish: Finish | None = None) -> None:
        """Store the job; with ``finish``, its request's answer under its Idempotency-Key too."""
        with self._tx() as conn:
            conn.execute(
                insert(t.jobs).values(
                    id=record.id,
                    project=record.project,
                    batch_id=record.batch_id,
                    batch_ref=record.batch_id,
                    model_name=record.model_name,
                    model_version=record.model_version,
                    status=record.status,
                    progress=record.progress,
                    request=record.request,
                    attempts=record.attempts,
                    max_attempts=record.max_attempts,
                    created_at=record.created_at,
                )
            )
            if finish is not None:
                self._finish_idempotency_key(conn, *finish)

    def get_job(self, job_id: str, *, project: str | None = None) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.jobs).where(t.jobs.c.id == job_id, *_in_project(t.jobs, project))
            ).first()
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return _job(row)

    def list_jobs(
        self,
        *,
        status: str | None,
        model: str | None,
        page_size: int,
        page_token: str | None,
        project: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        query = select(t.jobs).where(*_in_project(t.jobs, project))
        if status is not None:
            query = query.where(t.jobs.c.status == status)
        if model is not None:
            query = query.where(t.jobs.c.model_name == model)
        scope = _scope("jobs", project)
        rows = self._page(query, t.jobs, scope, page_size, page_token)
        records = [_job(r) for r in rows[:page_size]]
        return records, _next_token(records, rows, page_size, scope)

    def get_result(self, job_id: str, *, project: str | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.jobs.c.status, t.jobs.c.result, t.jobs.c.error).where(
                    t.jobs.c.id == job_id, *_in_project(t.jobs, project)
                )
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
        self, model_name: str, *, before: datetime, limit: int = 50, project: str | None = None
    ) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        """The newest ``limit`` succeeded results of ``model_name`` in ``project`` created before
        ``before``, returned oldest first as (job id, model version, finished_at, result)."""
        jobs = t.jobs
        query = (
            select(jobs.c.id, jobs.c.model_version, jobs.c.finished_at, jobs.c.result)
            .where(
                jobs.c.model_name == model_name,
                jobs.c.status == "succeeded",
                jobs.c.created_at < before,
                *_in_project(jobs, project),
            )
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [(r.id, r.model_version, r.finished_at, r.result) for r in reversed(rows)]

    def list_models(
        self, *, page_size: int, page_token: str | None, project: str | None = None
    ) -> tuple[list[ModelRecord], str | None]:
        """The model names with evaluation jobs, the most recently evaluated first, each with its
        newest succeeded evaluation.

        Two queries whatever the page size: one groups the jobs by model name (the
        ``(project, model_name, created_at)`` index serves it), one picks the newest succeeded job
        of each model on the page and reads only its ``verdict`` out of the result document.
        """
        jobs = t.jobs
        models = (
            select(
                jobs.c.model_name.label("name"),
                func.max(jobs.c.created_at).label("last_created_at"),
                func.count().label("evaluations"),
                func.sum(case((jobs.c.status == "succeeded", 1), else_=0)).label("succeeded"),
            )
            .where(*_in_project(jobs, project))
            .group_by(jobs.c.model_name)
            .subquery()
        )
        query = select(models)
        scope = _scope("models", project)
        if page_token:
            created, name = tokens.decode_token(page_token, scope=scope)
            query = query.where(
                or_(
                    models.c.last_created_at < created,
                    and_(models.c.last_created_at == created, models.c.name < name),
                )
            )
        query = query.order_by(models.c.last_created_at.desc(), models.c.name.desc()).limit(page_size + 1)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).all())
            names = [r.name for r in rows[:page_size]]
            latest = self._latest_succeeded(conn, names, project) if names else {}
        records = [
            ModelRecord(
                name=r.name,
                evaluations=r.evaluations,
                succeeded=int(r.succeeded or 0),
                last_created_at=r.last_created_at,
                latest=latest.get(r.name),
            )
            for r in rows[:page_size]
        ]
        token = None
        if len(rows) > page_size and records:
            token = tokens.encode_token(records[-1].last_created_at, records[-1].name, scope=scope)
        return records, token

    @staticmethod
    def _latest_succeeded(
        conn: Connection, names: list[str], project: str | None
    ) -> dict[str, EvaluationRecord]:
        jobs = t.jobs
        newest_first = (jobs.c.created_at.desc(), jobs.c.id.desc())
        ranked = (
            select(
                jobs.c.id,
                func.row_number().over(partition_by=jobs.c.model_name, order_by=newest_first).label("rank"),
            )
            .where(jobs.c.model_name.in_(names), jobs.c.status == "succeeded", *_in_project(jobs, project))
            .subquery()
        )
        query = select(*_EVALUATION_COLUMNS, jobs.c.model_name).join(ranked, ranked.c.id == jobs.c.id)
        rows = conn.execute(query.where(ranked.c.rank == 1)).all()
        return {r.model_name: _evaluation(r) for r in rows}

    def model_evaluations(
        self, model_name: str, *, limit: int, project: str | None = None, metric: str | None = None
    ) -> list[EvaluationRecord]:
        """The newest ``limit`` evaluation jobs of ``model_name`` (any status), newest first, with
        their result's verdict and critical slices, and with ``metric`` its value and interval; a
        404 when the model has none."""
        jobs = t.jobs
        columns = [*_EVALUATION_COLUMNS, jobs.c.result[("slices", "critical")].label("critical")]
        if metric is not None:
            # the objects, not the scalar: SQLite's json_extract of a number goes through a double
            # printed with 15 digits, an object keeps its numbers' text
            columns += [
                jobs.c.result["metrics"].label("metrics"),
                jobs.c.result["intervals"].label("intervals"),
            ]
        query = (
            select(*columns)
            .where(jobs.c.model_name == model_name, *_in_project(jobs, project))
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise NotFound(f"model {model_name!r} has no evaluation in this project")
        records = [replace(_evaluation(r), critical=list(r.critical or [])) for r in rows]
        if metric is None:
            return records
        out = []
        for record, row in zip(records, rows, strict=True):
            value = (row.metrics or {}).get(metric) if isinstance(row.metrics, dict) else None
            interval = (row.intervals or {}).get(metric) if isinstance(row.intervals, dict) else None
            out.append(
                replace(
                    record,
                    metric_value=float(value) if isinstance(value, int | float) else None,
                    metric_interval=interval if isinstance(interval, dict) else None,
                )
            )
        return out

    def counts_by_status(self, *, project: str | None = None) -> dict[str, int]:
        query = select(t.jobs.c.status, func.count()).where(*_in_project(t.jobs, project))
        with self.engine.connect() as conn:
            rows = conn.execute(query.group_by(t.jobs.c.status))
            return {status: count for status, count in rows}

    def cancel_job(self, job_id: str, *, project: str | None = None) -> JobRecord:
        """Cancel a queued or running job; a running job's worker notices at its next heartbeat.

        One conditional UPDATE: a worker storing the result at the same moment either comes
        first (then this is a 409 saying the job succeeded) or finds the job no longer its own.
        """
        with self._tx() as conn:
            cancelled = conn.execute(
                update(t.jobs)
                .where(
                    t.jobs.c.id == job_id,
                    t.jobs.c.status.not_in(sorted(TERMINAL_STATUSES)),
                    *_in_project(t.jobs, project),
                )
                .values(status="cancelled", finished_at=utcnow(), lease_owner=None)
            )
            if cancelled.rowcount == 1:
                _queue_callback(conn, job_id, "cancelled")
        job = self.get_job(job_id, project=project)  # NotFound when it is not this project's
        if cancelled.rowcount != 1:
            raise Conflict(f"job {job_id!r} is already {job.status}; only queued or running jobs cancel")
        return job

    # -- idempotency keys ------------------------------------------------------------------------

    def claim_idempotency_key(
        self,
        key: str,
        fingerprint: str,
        *,
        ttl_seconds: float,
        lock_seconds: float,
        project: str | None = None,
    ) -> IdempotencyClaim | IdempotencyEntry:
        """Take ``key`` for a first request, or say what the request that took it did.

        The (project, key) primary key decides between concurrent first requests: exactly one
        inserts. Keys past their ``expires_at`` are swept first (every project's), so an expired
        key is free again. A pending key whose holder stopped (``locked_until`` passed: a crash
        mid-request) is taken over; its old holder can then no longer store its answer.
        """
        project = _named(project)
        keys = t.idempotency_keys
        now = utcnow()
        owner = uuid.uuid4().hex
        claim = IdempotencyClaim(project=project, key=key, fingerprint=fingerprint, owner=owner)
        mine = [keys.c.project == project, keys.c.key == key]
        self._sweep_now_and_then()
        with self._tx() as conn:
            conn.execute(delete(keys).where(*mine, keys.c.expires_at <= now))  # expired: free again
            inserted = conn.execute(
                self._insert_ignore(keys, ["project", "key"])
                .values(
                    project=project,
                    key=key,
                    fingerprint=fingerprint,
                    state="pending",
                    owner=owner,
                    locked_until=now + timedelta(seconds=min(lock_seconds, ttl_seconds)),
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl_seconds),
                )
                .returning(keys.c.owner)  # the rowcount of an INSERT is not reported everywhere
            ).first()
            if inserted is not None:
                return claim
            row = conn.execute(select(keys).where(*mine)).first()
            if row is None:  # released by its holder just now: the caller asks again
                return IdempotencyEntry(fingerprint=fingerprint, answer=None)
            if row.fingerprint == fingerprint and row.state == "pending" and row.locked_until <= now:
                taken = conn.execute(
                    update(keys)
                    .where(*mine, keys.c.owner == row.owner, keys.c.state == "pending")
                    .values(owner=owner, locked_until=now + timedelta(seconds=lock_seconds))
                )
                if taken.rowcount == 1:
                    return claim
        return _entry(row)

    def idempotency_entry(self, key: str, *, project: str | None = None) -> IdempotencyEntry | None:
        """The key's current state, or None when nobody holds it (released or expired)."""
        project = _named(project)
        keys = t.idempotency_keys
        with self.engine.connect() as conn:
            row = conn.execute(
                select(keys).where(keys.c.project == project, keys.c.key == key, keys.c.expires_at > utcnow())
            ).first()
        return None if row is None else _entry(row)

    def release_idempotency_key(self, claim: IdempotencyClaim) -> None:
        """Give the key up after a request that stored nothing (it failed): a retry runs anew."""
        keys = t.idempotency_keys
        with self._tx() as conn:
            conn.execute(
                delete(keys).where(
                    keys.c.project == claim.project,
                    keys.c.key == claim.key,
                    keys.c.owner == claim.owner,
                    keys.c.state == "pending",
                )
            )

    def sweep_idempotency_keys(self) -> int:
        """Forget every key past its ``expires_at``; return how many."""
        keys = t.idempotency_keys
        self._last_sweep = time.monotonic()
        with self._tx() as conn:
            return int(conn.execute(delete(keys).where(keys.c.expires_at <= utcnow())).rowcount)

    def _sweep_now_and_then(self) -> None:
        """Sweep expired keys at most once a minute per process, in a transaction of its own
        (a key's own expiry is checked by its claim): claims never contend on the sweep."""
        if time.monotonic() - self._last_sweep < SWEEP_SECONDS:
            return
        try:
            self.sweep_idempotency_keys()
        except Exception:  # best effort: the next claim tries again
            log.warning("could not sweep expired idempotency keys", exc_info=True)

    @staticmethod
    def _finish_idempotency_key(conn: Connection, claim: IdempotencyClaim, answer: StoredAnswer) -> None:
        keys = t.idempotency_keys
        stored = conn.execute(
            update(keys)
            .where(
                keys.c.project == claim.project,
                keys.c.key == claim.key,
                keys.c.owner == claim.owner,
                keys.c.state == "pending",
            )
            .values(
                state="done",
                response_status=answer.status,
                response_body=answer.body,
                response_location=answer.location,
            )
        )
        if stored.rowcount != 1:
            # Raised inside the transaction: the row this request was storing is rolled back.
            raise Conflict(
                "the Idempotency-Key of this request expired or was taken over by a retry while it "
                "ran; nothing was stored: send the request again",
                [FieldIssue("Idempotency-Key", "the key was taken over by a retry of this request")],
            )

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
                    reaped = conn.execute(
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
                    if reaped.rowcount == 1:  # nobody else will tell the callback_url
                        _queue_callback(conn, cand.id, "failed")
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
                return self.get_job(cand.id, project=None)
        return None

    def heartbeat(self, job_id: str, worker_id: str, *, lease_seconds: float, progress: float | None) -> bool:
        """Extend the lease; False means the job is no longer ours (cancelled or taken over).

        Progress never decreases: a lower value (a retry starting over, a section reporting from
        its own start) leaves the stored one as it is."""
        values: dict[str, Any] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
        if progress is not None:
            p = min(max(progress, 0.0), 1.0)
            values["progress"] = case((t.jobs.c.progress < p, p), else_=t.jobs.c.progress)
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
            if updated.rowcount == 1:
                _queue_callback(
                    conn, job_id, "succeeded", gates_passed=(result.get("gates") or {}).get("passed")
                )
        return updated.rowcount == 1

    def fail_job(self, job_id: str, worker_id: str, error: str) -> bool:
        with self._tx() as conn:
            updated = conn.execute(
                update(t.jobs)
                .where(*self._owned(job_id, worker_id))
                .values(status="failed", error=error, finished_at=utcnow(), lease_owner=None)
            )
            if updated.rowcount == 1:
                _queue_callback(conn, job_id, "failed")
        return updated.rowcount == 1

    # -- the callback outbox (service.integrations.webhooks delivers it) -------------------------

    def claim_callbacks(self, *, limit: int, hold_seconds: float) -> list[CallbackRecord]:
        """Take up to ``limit`` due callbacks for one delivery attempt each: ``attempts`` goes up and
        the row is not due again for ``hold_seconds`` (a deliverer that dies is thus retried), so
        several deliverers never send the same attempt twice."""
        now = utcnow()
        cb = t.callbacks
        with self.engine.connect() as conn:
            due = conn.execute(
                select(cb.c.job_id, cb.c.attempts)
                .where(cb.c.state == "pending", cb.c.next_attempt_at <= now)
                .order_by(cb.c.next_attempt_at)
                .limit(limit)
            ).all()
        taken = []
        for row in due:
            with self._tx() as conn:
                claimed = conn.execute(
                    update(cb)
                    .where(cb.c.job_id == row.job_id, cb.c.state == "pending", cb.c.attempts == row.attempts)
                    .values(attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=hold_seconds))
                )
            if claimed.rowcount == 1:
                taken.append(row.job_id)
        return self._callbacks(cb.c.job_id.in_(taken)) if taken else []

    def finish_callback(
        self, job_id: str, attempt: int, *, error: str | None, retry_at: datetime | None
    ) -> bool:
        """Record delivery attempt ``attempt``: delivered (``error`` None), due again at ``retry_at``,
        or given up (neither). False when the attempt is no longer the row's latest."""
        cb = t.callbacks
        now = utcnow()
        values: dict[str, Any] = {"last_error": error, "next_attempt_at": retry_at}
        if error is None or retry_at is None:
            values |= {"state": "delivered" if error is None else "failed", "finished_at": now}
        with self._tx() as conn:
            done = conn.execute(
                update(cb)
                .where(cb.c.job_id == job_id, cb.c.state == "pending", cb.c.attempts == attempt)
                .values(**values)
            )
        return done.rowcount == 1

    def get_callback(self, job_id: str) -> CallbackRecord | None:
        found = self._callbacks(t.callbacks.c.job_id == job_id)
        return found[0] if found else None

    def _callbacks(self, where: ColumnElement[bool]) -> list[CallbackRecord]:
        cb, jobs = t.callbacks, t.jobs
        query = (
            select(cb, jobs.c.batch_ref, jobs.c.model_name, jobs.c.model_version, jobs.c.error)
            .join(jobs, jobs.c.id == cb.c.job_id)
            .where(where)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [CallbackRecord(**r._mapping) for r in rows]

    @staticmethod
    def _owned(job_id: str, worker_id: str) -> list[Any]:
        return [t.jobs.c.id == job_id, t.jobs.c.status == "running", t.jobs.c.lease_owner == worker_id]

    # -- helpers ---------------------------------------------------------------------------------

    def _page(
        self, query: Any, table: Any, scope: str, page_size: int, page_token: str | None
    ) -> list[Row[Any]]:
        if page_token:
            created, row_id = tokens.decode_token(page_token, scope=scope)
            query = query.where(
                or_(table.c.created_at < created, and_(table.c.created_at == created, table.c.id < row_id))
            )
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(page_size + 1)
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())


def _named(project: str | None) -> str:
    if project is None:
        raise ValueError("Idempotency-Keys belong to a project: use the store of the caller's project")
    return project


@dataclass(frozen=True)
class CallbackRecord:
    """A row of the callback outbox, with the job fields its notification carries."""

    job_id: str
    url: str
    status: str
    gates_passed: bool | None
    state: str  # pending, delivered or failed (given up)
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    batch_ref: str
    model_name: str
    model_version: str
    error: str | None


def _queue_callback(conn: Connection, job_id: str, status: str, *, gates_passed: bool | None = None) -> None:
    """Put the job's notification in the outbox when its request has a ``callback_url``: in the
    transaction that ends the job, so every ending is notified, whoever ends it."""
    request = conn.execute(select(t.jobs.c.request).where(t.jobs.c.id == job_id)).scalar()
    url = (request or {}).get("callback_url")
    if not url:
        return
    now = utcnow()
    conn.execute(
        insert(t.callbacks).values(
            job_id=job_id,
            url=url,
            status=status,
            gates_passed=gates_passed if isinstance(gates_passed, bool) else None,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _in_project(table: Any, project: str | None) -> list[ColumnElement[bool]]:
    """The condition that keeps a query within ``project`` (none: every project)."""
    return [] if project is None else [table.c.project == project]


def _scope(route: str, project: str | None) -> str:
    """What a page token is valid for: one list route of one project."""
    return f"{route}:{'*' if project is None else project}"


def _next_token(records: list[Any], rows: list[Any], page_size: int, scope: str) -> str | None:
    if len(rows) <= page_size or not records:
        return None
    last = records[-1]
    return tokens.encode_token(last.created_at, last.id, scope=scope)


#: What an :class:`EvaluationRecord` is read from; only the verdict of the result document.
_EVALUATION_COLUMNS = (
    t.jobs.c.id,
    t.jobs.c.model_version,
    t.jobs.c.status,
    t.jobs.c.created_at,
    t.jobs.c.finished_at,
    t.jobs.c.result["verdict"].label("verdict"),
)


def _evaluation(row: Any) -> EvaluationRecord:  # a Row with the _EVALUATION_COLUMNS
    return EvaluationRecord(
        job_id=row.id,
        version=row.model_version,
        status=row.status,
        created_at=row.created_at,
        finished_at=row.finished_at,
        verdict=row.verdict if row.status == "succeeded" and isinstance(row.verdict, dict) else None,
    )


def _entry(row: Row[Any]) -> IdempotencyEntry:
    answer = None
    if row.state == "done":
        answer = StoredAnswer(
            status=row.response_status, body=row.response_body, location=row.response_location
        )
    return IdempotencyEntry(fingerprint=row.fingerprint, answer=answer)


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
        columns=[Column.model_validate(c) for c in m["columns"]],
        data_path=m["data_path"],
        data_version=m["data_version"],
        created_at=m["created_at"],
        project=m["project"],
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
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        project=m["project"],
    )


class ProjectMetadata:
    """The metadata store as one project sees it: :class:`service.store.base.MetadataStore`.

    ``project=None`` is the view of every project, for workers (who claim any project's jobs)
    and health checks; API routes get their caller's project (``service.api.deps``). A view
    :meth:`remembering` an Idempotency-Key stores the request's answer with the first batch or
    job it inserts, in the same transaction.
    """

    def __init__(
        self, sql: SqlStore, project: str | None, remember: tuple[IdempotencyClaim, AnswerFor] | None = None
    ) -> None:
        self.sql = sql
        self.project = project
        self._remember = remember

    def for_project(self, project: str) -> ProjectMetadata:
        return ProjectMetadata(self.sql, project)

    def remembering(self, claim: IdempotencyClaim, answer: AnswerFor) -> ProjectMetadata:
        if claim.project != self.project:
            raise ValueError("an Idempotency-Key belongs to the project of the view storing under it")
        return ProjectMetadata(self.sql, self.project, (claim, answer))

    @property
    def engine(self) -> Engine:
        return self.sql.engine

    def create_schema(self) -> None:
        self.sql.create_schema()

    def dispose(self) -> None:
        self.sql.dispose()

    def ping(self) -> None:
        self.sql.ping()

    def _finish(self, record: BatchRecord | JobRecord) -> Finish | None:
        if self._remember is None:
            return None
        claim, answer = self._remember
        return claim, answer(record)

    def insert_batch(self, record: BatchRecord) -> None:
        if self.project is not None:
            record = replace(record, project=self.project)
        self.sql.insert_batch(record, finish=self._finish(record))
        self._remember = None  # one request, one row

    def get_batch(self, batch_id: str) -> BatchRecord:
        return self.sql.get_batch(batch_id, project=self.project)

    def list_batches(
        self, *, model: str | None, version: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[BatchRecord], str | None]:
        return self.sql.list_batches(
            project=self.project, model=model, version=version, page_size=page_size, page_token=page_token
        )

    def replace_batch_data(
        self, batch_id: str, *, expected_version: int, data_path: str, labeled_rows: int
    ) -> bool:
        return self.sql.replace_batch_data(
            batch_id,
            project=self.project,
            expected_version=expected_version,
            data_path=data_path,
            labeled_rows=labeled_rows,
        )

    def delete_batch(self, batch_id: str) -> BatchRecord:
        return self.sql.delete_batch(batch_id, project=self.project)

    def batch_ids(self) -> set[str]:
        return self.sql.batch_ids()

    def insert_job(self, record: JobRecord) -> None:
        if self.project is not None:
            record = replace(record, project=self.project)
        self.sql.insert_job(record, finish=self._finish(record))
        self._remember = None

    def get_job(self, job_id: str) -> JobRecord:
        return self.sql.get_job(job_id, project=self.project)

    def list_jobs(
        self, *, status: str | None, model: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[JobRecord], str | None]:
        return self.sql.list_jobs(
            project=self.project, status=status, model=model, page_size=page_size, page_token=page_token
        )

    def get_result(self, job_id: str) -> dict[str, Any]:
        return self.sql.get_result(job_id, project=self.project)

    def list_models(self, *, page_size: int, page_token: str | None) -> tuple[list[ModelRecord], str | None]:
        return self.sql.list_models(project=self.project, page_size=page_size, page_token=page_token)

    def model_evaluations(
        self, model_name: str, *, limit: int, metric: str | None = None
    ) -> list[EvaluationRecord]:
        return self.sql.model_evaluations(model_name, limit=limit, project=self.project, metric=metric)

    def counts_by_status(self) -> dict[str, int]:
        return self.sql.counts_by_status(project=self.project)

    def earlier_results(
        self, model_name: str, *, before: datetime, limit: int = 50
    ) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        return self.sql.earlier_results(model_name, project=self.project, before=before, limit=limit)

    def cancel_job(self, job_id: str) -> JobRecord:
        return self.sql.cancel_job(job_id, project=self.project)

    def claim_job(self, worker_id: str, *, lease_seconds: float) -> JobRecord | None:
        return self.sql.claim_job(worker_id, lease_seconds=lease_seconds)

    def heartbeat(self, job_id: str, worker_id: str, *, lease_seconds: float, progress: float | None) -> bool:
        return self.sql.heartbeat(job_id, worker_id, lease_seconds=lease_seconds, progress=progress)

    def complete_job(self, job_id: str, worker_id: str, result: dict[str, Any]) -> bool:
        return self.sql.complete_job(job_id, worker_id, result)

    def fail_job(self, job_id: str, worker_id: str, error: str) -> bool:
        return self.sql.fail_job(job_id, worker_id, error)

    def claim_idempotency_key(
        self, key: str, fingerprint: str, *, ttl_seconds: float, lock_seconds: float
    ) -> IdempotencyClaim | IdempotencyEntry:
        return self.sql.claim_idempotency_key(
            key, fingerprint, ttl_seconds=ttl_seconds, lock_seconds=lock_seconds, project=self.project
        )

    def idempotency_entry(self, key: str) -> IdempotencyEntry | None:
        return self.sql.idempotency_entry(key, project=self.project)

    def release_idempotency_key(self, claim: IdempotencyClaim) -> None:
        self.sql.release_idempotency_key(claim)
