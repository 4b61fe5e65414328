"""SQLAlchemy Core tables: portable types only, so SQLite and PostgreSQL share one schema.

This is the schema of the newest migration (``service/store/migrations/versions``): a change
here needs a new revision, and ``tests/store/test_migrations.py`` fails until the migrated
schema and these tables agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect

from service.settings import DEFAULT_PROJECT


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones; storing naive UTC and re-attaching UTC on the way
    out keeps comparisons (lease expiry) and JSON output identical across backends.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

PROJECT_LENGTH = 100  # the longest project name (service.settings.PROJECT_NAME)

batches = Table(
    "batches",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(PROJECT_LENGTH), nullable=False, server_default=DEFAULT_PROJECT),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("task", String(16), nullable=False),
    Column("classes", JSON, nullable=True),
    Column("positive_class", JSON, nullable=True),
    Column("rows", Integer, nullable=False),
    Column("labeled_rows", Integer, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("data_path", Text, nullable=False),
    # Bumped on every rewrite of the data file (late labels): optimistic concurrency.
    Column("data_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    # Every query of batches names its project: the project leads each index.
    Index("ix_batches_project_model_created", "project", "model_name", "model_version", "created_at"),
    Index("ix_batches_project_created", "project", "created_at", "id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("batch_id", String(64), ForeignKey("batches.id", ondelete="SET NULL"), nullable=True),
    Column("batch_ref", String(64), nullable=False),  # kept when the batch is deleted
    Column("project", String(PROJECT_LENGTH), nullable=False, server_default=DEFAULT_PROJECT),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("request", JSON, nullable=False),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_jobs_status_created", "status", "created_at"),  # workers claim across projects
    Index("ix_jobs_project_status_created", "project", "status", "created_at"),
    Index("ix_jobs_project_model_created", "project", "model_name", "created_at"),
    Index("ix_jobs_project_created", "project", "created_at", "id"),
)

# The first answer to a create request sent with an Idempotency-Key, per project and key.
# ``state`` is "pending" while the first request runs (``owner`` holds it until ``locked_until``),
# then "done" with the answer; rows past ``expires_at`` are swept.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("project", String(PROJECT_LENGTH), nullable=False),
    Column("key", String(255), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("locked_until", UTCDateTime, nullable=False),
    Column("response_status", Integer, nullable=True),
    Column("response_body", JSON, nullable=True),
    Column("response_location", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("project", "key", name="pk_idempotency_keys"),
    Index("ix_idempotency_keys_expires", "expires_at"),
)

# Per-deployment values every process must agree on (the page-token signing key).
service_state = Table(
    "service_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The callback outbox: one row per finished job whose request has a ``callback_url``, written in the
# transaction that ends the job (succeeded, failed, cancelled, or failed by the reaper). Worker
# processes deliver due rows (``next_attempt_at``) with retries; ``state`` is "pending", then
# "delivered" or "failed" (given up), with ``attempts`` and the ``last_error``.
callbacks = Table(
    "callbacks",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False),  # the job's final status, as notified
    Column("gates_passed", Boolean, nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_callbacks_state_next", "state", "next_attempt_at"),
)

# -- tracking runs (issue: experiment tracking) -----------------------------------------------

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project", String(PROJECT_LENGTH), nullable=False),
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(200), nullable=False),
    Column("name", String(250), nullable=True),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    Column("source_commit", String(100), nullable=True),
    Column("dataset", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_runs_project_created", "project", "created_at", "id"),
    Index("ix_runs_project_model_created", "project", "model_name", "created_at"),
)

# Tags and flattened params (``optimizer.lr``) as text, for the list filters: one row per key.
run_labels = Table(
    "run_labels",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # "tag" or "param"
    Column("key", String(250), nullable=False),
    Column("value", String(500), nullable=False),
    PrimaryKeyConstraint("run_id", "kind", "key", name="pk_run_labels"),
    Index("ix_run_labels_kind_key_value", "kind", "key", "value"),
)

# A run's metric points, columnar: one row per series (name, worker; "" = the run itself) and
# logging call, its steps, values, times and staleness packed as arrays (service/store/runs.py).
# Reading a 100k-point series is a few rows, not 100k.
run_points = Table(
    "run_points",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("worker", String(100), nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("run_id", "name", "worker", "first_step", name="pk_run_points"),
)

# Params that change during a run (a learning-rate schedule): the value from ``step`` on.
run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", JSON, nullable=False),
    PrimaryKeyConstraint("run_id", "name", "step", name="pk_run_params"),
)
