"""Batch file versions: label updates in the store, pins that keep a job's versions, start-up sweeps."""

from __future__ import annotations

import errno
import functools
import io
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from schemas.evaluations import EvaluationCreate
from service.canonical import BatchSpec, CanonicalBatch, LabelMerge
from service.errors import NotFound
from service.ingest import ingest_body, merge_stored_labels, parse_label_update
from service.jobs.evaluate import job_batches, run_evaluation
from service.jobs.submit import submit_evaluation
from service.settings import Settings
from service.store import Store

REPO = Path(__file__).resolve().parents[2]


def unlabeled(n: int = 4) -> CanonicalBatch:
    table = pa.table(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "label": pa.array([None] * n, pa.int64()),
            "prediction": pa.array([1] * n, pa.int64()),
        }
    )
    return CanonicalBatch(BatchSpec("m", "1", "binary", positive_class=1, classes=[0, 1]), table)


def labels(pairs: dict[str, int]) -> Callable[[pa.Table, BatchSpec], LabelMerge]:
    """The merge a label update of ``pairs`` asks the store to apply, as the API builds it."""
    body = "".join(f'{{"sample_id": "{s}", "label": {y}}},' for s, y in pairs.items())
    update = parse_label_update(f'{{"labels": [{body[:-1]}]}}'.encode(), "application/json")
    return functools.partial(merge_stored_labels, update=update)


@pytest.fixture
def any_store(database_url: str, tmp_path: Path) -> Iterator[Store]:
    """A store on each backend (SQLite, PostgreSQL), files under tmp_path."""
    store = Store.open(Settings(data_dir=tmp_path / "data", database_url=database_url, workers=0))
    yield store
    store.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store.open(settings)
    yield s
    s.close()


def test_an_update_that_loses_the_race_redoes_its_merge_and_both_updates_land(
    any_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = any_store
    batch = store.save_batch(unlabeled())
    swap = store.meta.replace_batch_data
    expected_versions: list[int] = []

    def racing(batch_id: str, **kwargs: int | str) -> bool:
        expected_versions.append(int(kwargs["expected_version"]))
        if len(expected_versions) == 1:
            # another request's update lands between this one's write and its compare-and-swap
            assert store.update_labels(batch_id, labels({"s3": 0})).labeled_rows == 1
        return swap(batch_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.meta, "replace_batch_data", racing)
    result = store.update_labels(batch.id, labels({"s0": 1}))
    # ours (v1 -> v2) lost to the other (v1 -> v2), then was merged again on its version (v2 -> v3)
    assert expected_versions == [1, 1, 2]
    assert (result.updated, result.labeled_rows, result.unmatched_sample_ids) == (1, 2, [])
    record = store.meta.get_batch(batch.id)
    assert (record.data_version, record.labeled_rows) == (3, 2)
    assert store.files.read(record.data_path).column("label").to_pylist() == [1, None, None, 0]
    # the losing write and every replaced version are gone; no temporary is left
    assert [p.name for p in (store.files.root / batch.id).iterdir()] == [Path(record.data_path).name]


def test_a_bad_label_stores_nothing_and_a_deleted_batch_is_a_404(store: Store) -> None:
    batch = store.save_batch(unlabeled())
    with pytest.raises(Exception, match="label"):
        store.update_labels(batch.id, labels({"s0": 7}))
    assert store.meta.get_batch(batch.id) == batch
    assert [p.name for p in (store.files.root / batch.id).iterdir()] == [Path(batch.data_path).name]
    store.delete_batch(batch.id)
    with pytest.raises(NotFound, match=batch.id):
        store.update_labels(batch.id, labels({"s0": 1}))


def test_a_replaced_file_is_not_found_by_its_batch_id_never_by_its_path(store: Store) -> None:
    batch = store.save_batch(unlabeled())
    store.update_labels(batch.id, labels({"s1": 0}))
    # a reader still holding the old record, as a job did before pins
    for read in (
        lambda: store.files.read(batch.data_path),
        lambda: store.files.footer(batch.data_path),
        lambda: store.files.read_rows(batch.data_path, offset=0, limit=2, columns=["label"]),
    ):
        with pytest.raises(NotFound) as caught:
            read()
        message = str(caught.value)
        assert batch.id in message and "relabelled" in message
        assert str(store.files.root) not in message and ".parquet" not in message


def test_a_pinned_version_outlives_a_relabel_and_a_delete_by_a_hard_link(store: Store) -> None:
    batch = store.save_batch(unlabeled())
    gone = store.save_batch(unlabeled())
    store.delete_batch(gone.id)
    original = store.files.root / batch.data_path
    with store.pinned("j_test", 1, [batch.id, gone.id]) as view:
        pinned = view.batch(batch.id)
        assert pinned.data_version == 1 and pinned.data_path != batch.data_path
        # the same inode, not a copy: pinning costs nothing whatever the batch's size
        assert (store.files.root / pinned.data_path).stat().st_ino == original.stat().st_ino
        store.update_labels(batch.id, labels({"s0": 1, "s1": 0}))
        assert not original.exists()
        store.delete_batch(batch.id)
        # the job's view still reads the version it pinned; the store itself has moved on
        assert view.batch(batch.id) is pinned
        assert view.files.read(pinned.data_path).column("label").to_pylist() == [None] * 4
        assert view.files.footer(pinned.data_path)[0] == 4
        with pytest.raises(NotFound, match=batch.id):
            store.batch(batch.id)
        with pytest.raises(NotFound, match=f"{gone.id}.*does not exist"):
            view.batch(gone.id)
    assert not (store.files.pins_root / "j_test.1").exists()


def test_pins_fall_back_to_a_copy_where_the_filesystem_has_no_hard_links(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    batch = store.save_batch(unlabeled())

    def no_links(_src: object, _dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    with store.pinned("j_copy", 1, [batch.id]) as view:
        pinned = view.batch(batch.id)
        copy = store.files.root / pinned.data_path
        assert copy.stat().st_ino != (store.files.root / batch.data_path).stat().st_ino
        store.update_labels(batch.id, labels({"s0": 0}))
        assert view.files.read(pinned.data_path).column("label").to_pylist() == [None] * 4
    assert "copying" in caplog.text
    assert not copy.exists()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_a_job_pinned_before_a_relabel_computes_on_the_labels_it_started_with(
    store: Store, settings: Settings
) -> None:
    n = 500
    rng = np.random.default_rng(7)
    label = rng.integers(0, 2, n)
    score = np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1)
    ids = [f"s{i}" for i in range(n)]
    spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    model_id, champion_id = (
        store.save_batch(ingest_body(_parquet(t), "application/vnd.apache.parquet", spec)).id
        for t in (
            pa.table({"sample_id": ids, "label": label, "score": score}),
            pa.table({"sample_id": ids, "score": rng.random(n)}),
        )
    )
    request = EvaluationCreate.model_validate(
        {
            "batch_id": model_id,
            "metrics": ["accuracy", "roc_auc"],
            "baselines": {"existing": [{"name": "champion", "batch_id": champion_id}]},
        }
    )
    submit_evaluation(store, settings, request)
    job = store.meta.claim_job("w", lease_seconds=30)
    assert job is not None
    with store.pinned(job.id, job.attempts, job_batches(job)) as view:
        # between the worker's claim and its first read: every label flips, the champion goes
        flipped = {s: int(1 - y) for s, y in zip(ids, label, strict=True)}
        store.update_labels(model_id, labels(flipped))
        store.delete_batch(champion_id)
        result = run_evaluation(view, job, progress=lambda _f: None, settings=settings)
    assert result.errors == {}
    assert result.metrics["accuracy"] == pytest.approx(accuracy_score(label, (score >= 0.5).astype(int)))
    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(label, score))
    assert [b.name for b in result.baselines if b.kind == "existing"] == ["champion"]
    assert list(store.files.pins_root.iterdir()) == []


def test_the_start_up_sweep_removes_the_pins_of_jobs_no_longer_running(
    store: Store, settings: Settings
) -> None:
    batch = store.save_batch(unlabeled())
    request = EvaluationCreate.model_validate({"batch_id": batch.id})
    for _ in range(3):
        submit_evaluation(store, settings, request)
    running = store.meta.claim_job("w1", lease_seconds=30)
    failed = store.meta.claim_job("w2", lease_seconds=30)
    stalled = store.meta.claim_job("w3", lease_seconds=-1)  # its worker died: the lease ran out
    assert running and failed and stalled
    assert store.meta.fail_job(failed.id, "w2", "boom")
    retried = store.meta.claim_job("w4", lease_seconds=30)
    assert retried is not None and (retried.id, retried.attempts) == (stalled.id, 2)
    left = [f"{running.id}.1", f"{failed.id}.1", f"{stalled.id}.1", f"{stalled.id}.2", "j_unknown.1"]
    for name in left:
        (store.files.pins_root / name).mkdir(parents=True)
        (store.files.pins_root / name / f"{batch.id}.parquet").write_bytes(b"pinned")
    store.sweep_orphan_files()
    kept = sorted(p.name for p in store.files.pins_root.iterdir())
    assert kept == sorted([f"{running.id}.1", f"{stalled.id}.2"])
    # the pins dir is not a batch: the batch sweep leaves it alone
    assert ".pins" not in store.files.batch_ids_on_disk()


_WRITER = """
import os, sys, time
from pathlib import Path
import pyarrow as pa
from service.store.batch_files import BatchFiles

def stall(_fd):
    print("writing", flush=True)
    time.sleep(120)

os.fsync = stall  # the write stops between the temporary file and its rename
BatchFiles(Path(sys.argv[1])).write(sys.argv[2], pa.table({"sample_id": ["a", "b"]}), version=1)
"""


def _start_writer(root: Path, batch_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root), batch_id],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while not select.select([proc.stdout], [], [], 0.1)[0]:
        assert proc.poll() is None, f"writer exited with {proc.returncode}"
        assert time.monotonic() < deadline, "the writer did not start writing"
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_a_killed_writer_s_temporary_is_swept_at_start_up_at_once(settings: Settings) -> None:
    root = settings.batches_dir
    root.mkdir(parents=True)
    killed = _start_writer(root, "b_killed")
    live = _start_writer(root, "b_live")
    try:
        killed.kill()
        killed.wait(10)
        (tmp,) = (root / "b_killed").iterdir()
        assert tmp.name.startswith(".tmp.") and f".{killed.pid}." in tmp.name
        store = Store.open(settings)
        # the dead writer's upload is gone at once (not after an hour); the live one is untouched
        assert store.sweep_orphan_files() == 1
        assert not (root / "b_killed").exists()
        assert [p.name.startswith(".tmp.") for p in (root / "b_live").iterdir()] == [True]
        store.close()
    finally:
        for proc in (killed, live):
            proc.kill()
            proc.wait(10)
            assert proc.stdout is not None
            proc.stdout.close()


def test_temporaries_of_writers_that_cannot_be_checked_go_after_the_grace(store: Store) -> None:
    batch = store.save_batch(unlabeled())
    directory = store.files.root / batch.id
    names = {
        "old_legacy": ".tmp-0123456789abcdef.parquet",
        "new_legacy": ".tmp-fedcba9876543210.parquet",
        "old_elsewhere": ".tmp.other-machine.4026531836.123.abcdef123456.parquet",
        "new_elsewhere": ".tmp.other-machine.4026531836.124.abcdef123456.parquet",
    }
    for key, name in names.items():
        (directory / name).write_bytes(b"partial")
        if key.startswith("old"):
            stale = time.time() - 61
            os.utime(directory / name, (stale, stale))
    store.sweep_orphan_files()
    left = sorted(p.name for p in directory.iterdir())
    assert left == sorted([Path(batch.data_path).name, names["new_legacy"], names["new_elsewhere"]])
    assert store.meta.get_batch(batch.id) == batch
