"""Batch rows on disk: atomic writes, no half batch after a crash, SQLite settings."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import text

from service.ingest.canonical import BatchSpec, CanonicalBatch
from service.settings import Settings
from service.store import Store
from service.store.batch_files import BatchFiles


def canonical(n: int = 5) -> CanonicalBatch:
    table = pa.table(
        {
            "sample_id": [str(i) for i in range(n)],
            "label": pa.array([0, 1] * (n // 2) + [0] * (n % 2), pa.int64()),
            "prediction": pa.array([0] * n, pa.int64()),
        }
    )
    return CanonicalBatch(BatchSpec("m", "1", "binary", positive_class=1, classes=[0, 1]), table)


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(settings: Settings) -> None:
    store = Store.open(settings)
    with store.meta.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    store.close()


def test_a_crash_before_the_metadata_row_leaves_no_visible_batch(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store.open(settings)

    def crash(_record: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(store.meta, "insert_batch", crash)
    with pytest.raises(RuntimeError):
        store.save_batch(canonical())
    assert store.meta.list_batches(model=None, version=None, page_size=10, page_token=None) == ([], None)
    assert list(settings.batches_dir.iterdir()) == []
    store.close()


def test_a_killed_upload_leaves_only_an_orphan_that_is_swept(settings: Settings) -> None:
    store = Store.open(settings)
    # What a kill -9 between the file rename and the metadata insert leaves behind.
    store.files.write("b_orphan", canonical().table, version=1)
    assert store.sweep_orphan_files(older_than_seconds=3600) == 0  # might be an upload in flight
    assert store.sweep_orphan_files(older_than_seconds=-1) == 1
    assert not (settings.batches_dir / "b_orphan").exists()
    store.close()


def test_writes_are_renamed_into_place_and_leave_no_temporaries(tmp_path: Path) -> None:
    files = BatchFiles(tmp_path)
    first = files.write("b1", canonical().table, version=1)
    second = files.write("b1", canonical(7).table, version=2)
    assert first != second
    assert sorted(p.name for p in (tmp_path / "b1").iterdir()) == sorted(
        Path(first).name for first in (first, second)
    )
    assert files.read(second).num_rows == 7


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    files = BatchFiles(tmp_path)
    with pytest.raises(Exception):  # noqa: B017 - any writer error will do
        files.write("b1", "not a table", version=1)  # type: ignore[arg-type]
    assert list((tmp_path / "b1").iterdir()) == []
