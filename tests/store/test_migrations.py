"""Schema migrations: the previous release's database is adopted and upgraded with its rows; a
fresh one gets exactly ``tables.py``; concurrent start-ups migrate once; ``yardstick migrate``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    inspect,
    text,
)

from service.cli import main
from service.errors import NotFound
from service.settings import Settings
from service.store import SqlStore, Store, tables
from service.store.migrations import RELEASE_REVISION, head_revision, upgrade
from service.store.tables import UTCDateTime

# The tables exactly as the release before migrations defined them (tables.py at that release),
# created the way it created them: metadata.create_all, no alembic_version.
OLD = MetaData()
Table(
    "batches",
    OLD,
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
    Column("data_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_batches_model_created", "model_name", "model_version", "created_at"),
    Index("ix_batches_created", "created_at", "id"),
)
Table(
    "jobs",
    OLD,
    Column("id", String(64), primary_key=True),
    Column("batch_id", String(64), ForeignKey("batches.id", ondelete="SET NULL"), nullable=True),
    Column("batch_ref", String(64), nullable=False),
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
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def release_database(url: str) -> None:
    """A database as the previous release left it: its tables, a batch, a finished job."""
    engine = create_engine(url)
    OLD.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            OLD.tables["batches"]
            .insert()
            .values(
                id="b_old",
                model_name="m",
                model_version="1",
                task="binary",
                classes=[0, 1],
                positive_class=1,
                rows=10,
                labeled_rows=8,
                columns=[{"name": "sample_id", "type": "string", "role": "sample_id"}],
                data_path="b_old/v1.parquet",
                data_version=1,
                created_at=T0,
            )
        )
        conn.execute(
            OLD.tables["jobs"]
            .insert()
            .values(
                id="j_old",
                batch_id="b_old",
                batch_ref="b_old",
                model_name="m",
                model_version="1",
                status="succeeded",
                progress=1.0,
                request={"batch_id": "b_old"},
                result={"verdict": {"status": "pass"}},
                attempts=1,
                max_attempts=3,
                cancel_requested=False,
                created_at=T0,
                started_at=T0,
                finished_at=T0,
            )
        )
    engine.dispose()


@pytest.fixture
def sql(database_url: str) -> Iterator[SqlStore]:
    store = SqlStore.from_url(database_url)
    yield store
    store.dispose()


def columns_of(store: SqlStore, table: str) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table)}


def test_a_database_of_the_previous_release_is_stamped_and_upgraded_with_its_rows(
    database_url: str, sql: SqlStore
) -> None:
    release_database(database_url)
    assert "alembic_version" not in inspect(sql.engine).get_table_names()

    report = sql.migrate()

    assert (report.before, report.after, report.stamped_release) == (None, head_revision(), True)
    assert f"stamped {RELEASE_REVISION}" in report.describe()
    batch = sql.get_batch("b_old", project="default")
    assert (batch.model_name, batch.rows, batch.labeled_rows, batch.classes) == ("m", 10, 8, [0, 1])
    assert batch.created_at == T0 and batch.project == "default"
    job = sql.get_job("j_old", project="default")
    assert (job.status, job.batch_id, job.project, job.created_at) == ("succeeded", "b_old", "default", T0)
    assert sql.get_result("j_old", project="default") == {"verdict": {"status": "pass"}}
    # the old rows belong to the default project only
    with pytest.raises(NotFound):
        sql.get_batch("b_old", project="other")
    assert "cancel_requested" not in columns_of(sql, "jobs")
    assert "project" in columns_of(sql, "batches")
    # and they still work as rows of the new schema: listed, cancelled-or-not, deleted
    listed, _ = sql.list_batches(project="default", model=None, version=None, page_size=5, page_token=None)
    assert [b.id for b in listed] == ["b_old"]
    sql.delete_batch("b_old", project="default")
    assert sql.get_job("j_old", project="default").batch_id == "b_old"
    # a second start-up finds it current and changes nothing
    again = sql.migrate()
    assert (again.before, again.after, again.stamped_release) == (head_revision(), head_revision(), False)


def test_a_fresh_database_gets_exactly_the_schema_of_tables_py(database_url: str, sql: SqlStore) -> None:
    report = sql.migrate()
    assert (report.before, report.after, report.stamped_release) == (None, head_revision(), False)
    with sql.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diffs == []


def test_migrating_the_release_database_gives_the_same_schema_as_a_fresh_one(
    database_url: str, sql: SqlStore
) -> None:
    release_database(database_url)
    sql.migrate()
    with sql.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diffs == []
    with sql.engine.connect() as conn:
        key = conn.execute(text("SELECT value FROM service_state WHERE name = 'page_token_key'")).scalar()
    assert key is not None and len(key) >= 32


def test_processes_starting_at_once_migrate_once(database_url: str) -> None:
    """Each thread has its own engine and connection, as separate processes would."""
    release_database(database_url)
    barrier = threading.Barrier(4)
    reports, errors = [], []

    def start() -> None:
        barrier.wait()
        try:
            reports.append(upgrade(database_url))
        except Exception as exc:  # pragma: no cover - the failure this test is about
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    assert len(reports) == 4
    assert sum(r.stamped_release for r in reports) == 1  # one migrated, the others found it done
    assert {r.after for r in reports} == {head_revision()}
    sql = SqlStore.from_url(database_url)
    try:
        assert sql.get_batch("b_old", project="default").rows == 10
    finally:
        sql.dispose()


def test_a_database_of_a_newer_version_is_refused_clearly(database_url: str, sql: SqlStore) -> None:
    sql.migrate()
    with sql.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RuntimeError, match="9999.*newer version"):
        upgrade(database_url)


def test_store_open_migrates(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, workers=0)
    tmp_path.mkdir(exist_ok=True)
    release_database(settings.resolved_database_url)
    store = Store.open(settings)
    try:
        assert store.meta.get_batch("b_old").project == "default"
        assert store.for_project("default").meta.get_job("j_old").status == "succeeded"
    finally:
        store.close()


def test_yardstick_migrate_prints_the_revision_before_and_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YARDSTICK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("YARDSTICK_DATABASE_URL", raising=False)
    release_database(Settings().resolved_database_url)
    assert main(["migrate"]) == 0
    first = capsys.readouterr().out
    assert f"stamped {RELEASE_REVISION}" in first and f"after: {head_revision()}" in first
    assert main(["migrate"]) == 0
    assert f"before: {head_revision()}; after: {head_revision()}" in capsys.readouterr().out
