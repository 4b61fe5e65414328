"""Batch rows on disk: atomic writes, no half batch after a crash, SQLite settings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import text

from schemas.evaluations import EvaluationCreate
from service.canonical import BatchSpec, CanonicalBatch
from service.ingest import ingest_body
from service.jobs import baselines as baselines_job
from service.jobs.decoding import class_codes, evaluation_data, metric_columns, range_codes
from service.jobs.evaluate import run_evaluation
from service.jobs.submit import submit_evaluation
from service.settings import Settings
from service.store import Store
from service.store.batch_files import BatchFiles, sample_id_digest


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


def test_the_sample_id_digest_identifies_ids_and_their_order(tmp_path: Path) -> None:
    files = BatchFiles(tmp_path)
    ids = [f"id-{i}" for i in range(1000)]
    first = files.write("a", pa.table({"sample_id": ids, "x": list(range(1000))}), version=1)
    again = files.write("b", pa.table({"sample_id": pa.chunked_array([ids[:300], ids[300:]])}), version=1)
    shuffled = files.write("c", pa.table({"sample_id": ids[::-1]}), version=1)
    fewer = files.write("d", pa.table({"sample_id": ids[:-1]}), version=1)
    sliced = files.write("e", pa.table({"sample_id": pa.array(["pad", *ids])[1:]}), version=1)
    no_ids = files.write("f", pa.table({"x": [1, 2]}), version=1)
    n, digest = files.footer(first)
    assert n == 1000 and digest is not None
    assert files.footer(again) == (1000, digest)
    assert files.footer(sliced) == (1000, digest)
    assert files.footer(shuffled)[1] != digest
    assert files.footer(fewer)[1] != digest
    assert files.footer(no_ids) == (2, None)
    # a rewrite (labels merged) recomputes the digest instead of keeping a stale one
    stale = files.read(shuffled)
    rewritten = files.write(
        "c", stale.select(["sample_id"]).set_column(0, "sample_id", pa.array(ids)), version=2
    )
    assert files.footer(rewritten)[1] == digest
    assert sample_id_digest(pa.array([1, 2, 3])) != sample_id_digest(pa.array(["1", "2", "3"]))
    assert sample_id_digest(pa.array(["a", None])) is None


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize("order", ["same", "shuffled"])
def test_the_baseline_panel_is_the_same_with_or_without_id_digests(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    store = Store.open(settings)
    rng = np.random.default_rng(3)
    n = 400
    ids = pa.array([f"s{i}" for i in range(n)])
    label = rng.integers(0, 2, n)
    model = pa.table(
        {"sample_id": ids, "label": label, "score": np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1)}
    )
    perm = np.arange(n) if order == "same" else rng.permutation(n)
    champion = pa.table({"sample_id": ids.take(perm), "label": label[perm], "score": rng.random(n)})
    human = pa.table(
        {"sample_id": ids.take(perm), "prediction": np.where(rng.random(n) < 0.8, label, 1 - label)[perm]}
    )
    spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    batch_ids = [
        store.save_batch(ingest_body(_parquet(t), "application/vnd.apache.parquet", spec)).id
        for t in (model, champion, human)
    ]
    request = EvaluationCreate.model_validate(
        {
            "batch_id": batch_ids[0],
            "baselines": {
                "human": {"batch_id": batch_ids[2]},
                "existing": [{"name": "c", "batch_id": batch_ids[1]}],
            },
        }
    )
    job = submit_evaluation(store, settings, request)

    def panel() -> list[dict[str, object]]:
        result = run_evaluation(store, job, progress=lambda _f: None)
        return [entry.model_dump() for entry in result.baselines]

    seen: list[bool] = []
    same_ids = baselines_job._same_ids_as_model
    monkeypatch.setattr(baselines_job, "_same_ids_as_model", lambda *a: seen.append(same_ids(*a)) or seen[-1])
    read = store.files.read
    columns_read: list[tuple[str, list[str]]] = []

    def spy(path: str, columns: list[str] | None = None) -> pa.Table:
        columns_read.append((path, list(columns or [])))
        return read(path, columns=columns)

    monkeypatch.setattr(store.files, "read", spy)
    with_digests = panel()
    assert seen == [order == "same"] * 2  # the human and the champion skip reading ids only when they match
    # nobody reads a million ids when the digests show they are the same, in the same order
    assert any(c == "sample_id" for _path, cs in columns_read for c in cs) == (order == "shuffled")
    footer = store.files.footer
    monkeypatch.setattr(store.files, "footer", lambda path: (footer(path)[0], None))
    assert panel() == with_digests
    kinds = {entry["kind"]: entry for entry in with_digests}
    assert kinds["human"]["pairing"]["shared_rows"] == n  # type: ignore[index]
    store.close()


def test_ids_skipped_at_the_start_are_read_when_the_labeled_rows_no_longer_match(settings: Settings) -> None:
    """The digest check runs when the job starts; if the model's labeled rows are not the other
    file's rows after all, the ids skipped then are read and joined."""
    store = Store.open(settings)
    n = 60
    rng = np.random.default_rng(5)
    ids = pa.array([f"s{i}" for i in range(n)])
    label = pa.array([None] * 10 + rng.integers(0, 2, n - 10).tolist(), pa.int64())
    model = pa.table({"sample_id": ids, "label": label, "score": rng.random(n)})
    champion = pa.table({"sample_id": ids, "score": rng.random(n)})
    spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    model_id, champion_id = (
        store.save_batch(ingest_body(_parquet(t), "application/vnd.apache.parquet", spec)).id
        for t in (model, champion)
    )
    batch, other = store.meta.get_batch(model_id), store.meta.get_batch(champion_id)
    assert store.files.footer(batch.data_path)[1] == store.files.footer(other.data_path)[1]
    table = store.files.read(batch.data_path, columns=metric_columns(batch))  # no ids
    rows = baselines_job.labeled_rows(table, evaluation_data(table, batch))
    assert rows.sample_id is None and rows.n == 50
    loaded = baselines_job._load_other(store, batch, other, same_ids=True)  # as if checked earlier
    setup = baselines_job.ComparisonSetup(
        batch=batch,
        metrics=["accuracy", "roc_auc"],
        primary="accuracy",
        label_primary="accuracy",
        samples=50,
        confidence=0.95,
        seed=0,
    )
    prepared = baselines_job._other_batch(store, setup, rows, loaded)
    pairing = prepared.pairing
    assert (pairing.mode, pairing.shared_rows, pairing.model_only_rows, pairing.baseline_only_rows) == (
        "paired",
        50,
        0,
        10,
    )
    scores = champion.column("score").to_numpy()[10:]
    assert prepared.side.values["roc_auc"] == pytest.approx(
        roc_auc_score(label.to_numpy(zero_copy_only=False)[10:].astype(int), scores)
    )
    store.close()


@pytest.mark.parametrize(
    ("values", "classes"),
    [
        ([0, 1, 1, 0], [0, 1]),
        ([2, 0, 1], [0, 1, 2]),
        ([1, 2], [1, 2]),
        ([0, 1], [1, 0]),
        ([0, 1], ["0", "1"]),
    ],
)
def test_integer_predictions_shortcut_the_class_lookup(values: list[int], classes: list[object]) -> None:
    column = pa.chunked_array([pa.array(values, pa.int64())])
    codes = range_codes(column, classes)
    if classes == list(range(len(classes))):
        assert codes is not None
        np.testing.assert_array_equal(codes, class_codes(column, pa.array(classes).cast(pa.int64())))
    else:
        assert codes is None
    assert range_codes(pa.chunked_array([pa.array([0, 2])]), [0, 1]) is None
