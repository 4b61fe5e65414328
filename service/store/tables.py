"""SQLAlchemy Core tables: portable types only, so SQLite and PostgreSQL share one schema."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect


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

batches = Table(
    "batches",
    metadata,
    Column("id", String(64), primary_key=True),
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
    Index("ix_batches_model_created", "model_name", "model_version", "created_at"),
    Index("ix_batches_created", "created_at", "id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("batch_id", String(64), ForeignKey("batches.id", ondelete="SET NULL"), nullable=True),
    Column("batch_ref", String(64), nullable=False),  # kept when the batch is deleted
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
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Index("ix_jobs_status_created", "status", "created_at"),
    Index("ix_jobs_model_created", "model_name", "created_at"),
    Index("ix_jobs_created", "created_at", "id"),
)
