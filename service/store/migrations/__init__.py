"""Schema migrations of the metadata store (Alembic), run at start-up and by ``yardstick migrate``.

Revisions live in ``versions/``: ``0001`` is the schema of the last release made without
migrations, ``0002`` adds projects and idempotency keys. A database that release created (its
tables, no ``alembic_version``) is stamped ``0001`` and upgraded from there, keeping its rows.

Two processes starting at once never both migrate: the whole upgrade (the revision check, the
stamp, every step) is one transaction that first takes the migration lock, a transaction-level
advisory lock on PostgreSQL (``pg_advisory_xact_lock``) and ``BEGIN IMMEDIATE`` (the write lock)
on SQLite. The second process waits, then finds the schema current and does nothing. A database
already at the newest revision is recognised without taking the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent
#: The schema of the last release before migrations.
RELEASE_REVISION = "0001"
#: Any 64-bit constant that no other application on the server uses for an advisory lock.
PG_LOCK_ID = 0x59_41_52_44_53_54_49_4B  # "YARDSTIK"


@dataclass(frozen=True)
class MigrationReport:
    before: str | None  # None: an empty database, or one of the release before migrations
    after: str
    stamped_release: bool  # the release's tables were found and stamped RELEASE_REVISION

    def describe(self) -> str:
        if self.stamped_release:
            was = f"none (tables of the release before migrations: stamped {RELEASE_REVISION})"
        else:
            was = self.before or "none (empty database)"
        return f"schema revision before: {was}; after: {self.after}"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def migration_engine(url: str) -> Engine:
    """An engine whose transactions can lock out other migrating processes (see the module doc)."""
    if not url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own BEGIN is deferred and skips DDL: emit ours (SQLAlchemy's pysqlite recipe).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock now, not at the first write

    return engine


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _has_release_tables(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    return {"batches", "jobs"} <= tables and "alembic_version" not in tables


def upgrade(url: str, *, revision: str = "heads") -> MigrationReport:
    """Bring the database at ``url`` to ``revision`` (the newest by default)."""
    head = head_revision()
    engine = migration_engine(url)
    try:
        if revision == "heads":
            with engine.connect() as conn:
                versioned = conn.dialect.has_table(conn, "alembic_version")
                seen = current_revision(conn) if versioned else None
            if seen == head:
                return MigrationReport(before=head, after=head, stamped_release=False)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PG_LOCK_ID})
            before = current_revision(conn)
            known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
            if before is not None and before not in known:
                raise RuntimeError(
                    f"the database schema is at revision {before}, which this version of yardstick does "
                    f"not know (its newest is {head}): the database was migrated by a newer version"
                )
            stamped = before is None and _has_release_tables(conn)
            if stamped:
                command.stamp(_config(conn), RELEASE_REVISION)
            command.upgrade(_config(conn), revision)
            after = current_revision(conn)
        assert after is not None
        return MigrationReport(before=before, after=after, stamped_release=stamped)
    finally:
        engine.dispose()
