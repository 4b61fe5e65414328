"""Job progress never goes backwards and names its stage: the store keeps the highest value (SQLite
and PostgreSQL), the lease never reports a lower one, and an evaluation reports its stages in order."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.evaluations import EvaluationCreate
from schemas.jobs import STAGES, stage_of, stage_progress
from service.ingest import ingest_body
from service.jobs.evaluate import run_evaluation
from service.jobs.lease import Lease
from service.jobs.submit import submit_evaluation
from service.settings import Settings
from service.store import SqlStore, Store
from tests.store.test_store_contract import batch, job

ORDER = [name for name, _ in STAGES]


@pytest.fixture
def sql(database_url: str) -> Iterator[SqlStore]:
    s = SqlStore.from_url(database_url)
    s.create_schema()
    yield s
    s.dispose()


def progress_of(store: SqlStore, job_id: str) -> float:
    return store.get_job(job_id, project=None).progress


def test_a_lower_progress_never_lowers_the_stored_one(sql: SqlStore) -> None:
    sql.insert_batch(batch(0))
    sql.insert_job(job(1))
    assert sql.claim_job("w1", lease_seconds=30) is not None
    seen = []
    for reported in (0.3, 0.95, 0.6, 0.2, 0.97):
        assert sql.heartbeat("j_0001", "w1", lease_seconds=30, progress=reported)
        seen.append(progress_of(sql, "j_0001"))
    assert seen == pytest.approx([0.3, 0.95, 0.95, 0.95, 0.97])
    # a heartbeat without progress, or with a lower one, still extends the lease
    before = sql.get_job("j_0001", project=None).lease_expires_at
    assert before is not None
    assert sql.heartbeat("j_0001", "w1", lease_seconds=60, progress=0.1)
    after = sql.get_job("j_0001", project=None).lease_expires_at
    assert after is not None and after > before
    assert progress_of(sql, "j_0001") == pytest.approx(0.97)


def test_a_retry_starting_over_keeps_the_progress_reached(sql: SqlStore) -> None:
    sql.insert_batch(batch(0))
    sql.insert_job(job(1))
    sql.claim_job("dead", lease_seconds=30)
    assert sql.heartbeat("j_0001", "dead", lease_seconds=-1, progress=0.7)  # then the worker "died"
    retried = sql.claim_job("alive", lease_seconds=30)
    assert retried is not None and retried.attempts == 2 and retried.progress == pytest.approx(0.7)
    assert sql.heartbeat("j_0001", "alive", lease_seconds=30, progress=0.05)
    wire = sql.get_job("j_0001", project=None).to_wire()
    assert wire.progress == pytest.approx(0.7) and wire.stage == "robustness"


def test_stage_is_the_band_of_the_progress_while_running(sql: SqlStore) -> None:
    sql.insert_batch(batch(0))
    sql.insert_job(job(1))
    assert sql.get_job("j_0001", project=None).to_wire().stage is None  # queued
    sql.claim_job("w1", lease_seconds=30)
    stages = []
    for name in ORDER:
        for fraction in (0.0, 0.5, 1.0):
            sql.heartbeat("j_0001", "w1", lease_seconds=30, progress=stage_progress(name, fraction))
            stages.append(sql.get_job("j_0001", project=None).to_wire().stage)
    assert stages == [name for name in ORDER for _ in range(3)]
    assert sql.complete_job("j_0001", "w1", {})
    done = sql.get_job("j_0001", project=None).to_wire()
    assert (done.progress, done.stage) == (1.0, None)


class _FastLease(Lease):
    PROGRESS_INTERVAL = 0.02


def test_the_lease_never_writes_a_lower_progress(sql: SqlStore) -> None:
    sql.insert_batch(batch(0))
    sql.insert_job(job(1))
    sql.claim_job("w1", lease_seconds=30)
    written: list[float | None] = []
    real = sql.heartbeat

    def recording(job_id: str, worker_id: str, *, lease_seconds: float, progress: float | None) -> bool:
        written.append(progress)
        return real(job_id, worker_id, lease_seconds=lease_seconds, progress=progress)

    def wait_for(predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline, written
            time.sleep(0.01)

    sql.heartbeat = recording  # type: ignore[method-assign]
    # every beat writes (heartbeat_seconds is short), so what the lease holds is what is written
    lease = _FastLease(sql, "j_0001", "w1", lease_seconds=30, heartbeat_seconds=0.04)
    with lease:
        lease.report(0.4)
        wait_for(lambda: 0.4 in written)
        lease.report(0.95)
        wait_for(lambda: 0.95 in written)
        lease.report(0.6)
        count = len(written)
        wait_for(lambda: len(written) >= count + 3)
    values = [w for w in written if w is not None]
    assert values == sorted(values) and 0.6 not in values and values[-1] == 0.95
    assert progress_of(sql, "j_0001") == pytest.approx(0.95)


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def evaluation(settings: Settings) -> Iterator[Callable[[dict[str, object]], list[float]]]:
    store = Store.open(settings)
    rng = np.random.default_rng(0)
    n = 3000
    label = rng.integers(0, 2, n)
    table = pa.table(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "label": label,
            "score": np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1),
            "country": rng.choice(["BR", "US", "DE"], n),
        }
    )
    spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    batch_id = store.save_batch(ingest_body(_parquet(table), "application/vnd.apache.parquet", spec)).id

    def run(sections: dict[str, object]) -> list[float]:
        request = EvaluationCreate.model_validate({"batch_id": batch_id, **sections})
        record = submit_evaluation(store, settings, request)
        reported: list[float] = []
        run_evaluation(store, record, progress=reported.append, settings=settings)
        return reported

    yield run
    store.close()


def test_an_evaluation_reports_its_stages_in_order(
    evaluation: Callable[[dict[str, object]], list[float]],
) -> None:
    # The bootstrap used to run up to 0.95, then the sections after it reported 0.6 again.
    reported = evaluation(
        {
            "metrics": ["accuracy", "roc_auc"],
            "bootstrap": {"samples": 200, "seed": 0},
            "calibration": {"bins": 10},
            "confidence": {"target_accuracy": 0.8},
            "slices": {"columns": ["country"]},
        }
    )
    assert reported == sorted(reported) and reported[-1] < 1.0
    stages = list(dict.fromkeys(stage_of(p) for p in reported))
    assert stages == ["metrics", "bootstrap", "calibration", "slices", "finishing"]
    # a section that is not requested is skipped, not shown
    plain = evaluation({"metrics": ["accuracy"], "slices": {"columns": ["country"]}})
    assert plain == sorted(plain)
    assert list(dict.fromkeys(stage_of(p) for p in plain)) == ["metrics", "slices", "finishing"]


def test_stage_bands_are_ordered_and_sub_progress_stays_inside_its_stage() -> None:
    starts = [start for _, start in STAGES]
    assert starts == sorted(starts) and starts[0] == 0.0
    for name in ORDER:
        assert [stage_of(stage_progress(name, f)) for f in (0.0, 0.3, 1.0, 2.0)] == [name] * 4
    assert stage_of(1.0) == "finishing"
