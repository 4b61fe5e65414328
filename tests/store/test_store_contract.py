"""One contract for the metadata store, run against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from schemas.batches import Column
from service.errors import Conflict, NotFound, YardstickError
from service.store import BatchRecord, JobRecord, SqlStore, new_id, paging
from service.store.records import IdempotencyClaim, IdempotencyEntry, StoredAnswer


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    s = SqlStore.from_url(database_url)
    s.create_schema()
    yield s
    s.dispose()


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batch(i: int = 0, *, model: str = "m", version: str = "1") -> BatchRecord:
    return BatchRecord(
        id=f"b_{i:04d}",
        model_name=model,
        model_version=version,
        task="binary",
        classes=[0, 1],
        positive_class=1,
        rows=10,
        labeled_rows=8,
        columns=[Column(name="sample_id", type="string", role="sample_id")],
        data_path=f"b_{i:04d}/v1.parquet",
        data_version=1,
        created_at=T0 + timedelta(seconds=i),
    )


def job(i: int, batch_id: str = "b_0000", *, max_attempts: int = 3) -> JobRecord:
    return JobRecord(
        id=f"j_{i:04d}",
        batch_id=batch_id,
        model_name="m",
        model_version="1",
        status="queued",
        progress=0.0,
        request={"batch_id": batch_id},
        error=None,
        attempts=0,
        max_attempts=max_attempts,
        lease_owner=None,
        lease_expires_at=None,
        created_at=T0 + timedelta(seconds=i),
        started_at=None,
        finished_at=None,
    )


def test_batch_round_trip_keeps_types_and_utc(store: SqlStore) -> None:
    store.insert_batch(batch(1))
    got = store.get_batch("b_0001")
    assert got == batch(1)
    assert got.created_at.tzinfo is not None


def test_missing_batch_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound):
        store.get_batch("nope")
    with pytest.raises(NotFound):
        store.delete_batch("nope")


def test_batches_page_newest_first_with_filters(store: SqlStore) -> None:
    for i in range(7):
        store.insert_batch(batch(i, model="a" if i % 2 else "b"))
    seen: list[str] = []
    token = None
    while True:
        page, token = store.list_batches(model=None, version=None, page_size=3, page_token=token)
        seen += [b.id for b in page]
        if token is None:
            break
    assert seen == [f"b_{i:04d}" for i in reversed(range(7))]
    only_a, _ = store.list_batches(model="a", version=None, page_size=10, page_token=None)
    assert [b.id for b in only_a] == ["b_0005", "b_0003", "b_0001"]


def test_replace_batch_data_is_optimistic(store: SqlStore) -> None:
    store.insert_batch(batch(1))
    assert store.replace_batch_data("b_0001", expected_version=1, data_path="x", labeled_rows=10)
    assert not store.replace_batch_data("b_0001", expected_version=1, data_path="y", labeled_rows=9)
    got = store.get_batch("b_0001")
    assert (got.data_path, got.labeled_rows, got.data_version) == ("x", 10, 2)


def test_claim_takes_oldest_queued_once(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(2))
    store.insert_job(job(1))
    first = store.claim_job("w1", lease_seconds=30)
    second = store.claim_job("w2", lease_seconds=30)
    assert first is not None and second is not None
    assert (first.id, first.status, first.attempts, first.lease_owner) == ("j_0001", "running", 1, "w1")
    assert second.id == "j_0002"
    assert store.claim_job("w3", lease_seconds=30) is None


def test_only_the_lease_holder_completes_and_only_once(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    store.claim_job("w1", lease_seconds=30)
    assert not store.complete_job("j_0001", "intruder", {"x": 1})
    assert store.complete_job("j_0001", "w1", {"x": 1})
    assert not store.complete_job("j_0001", "w1", {"x": 2})
    assert store.get_result("j_0001") == {"x": 1}
    done = store.get_job("j_0001")
    assert (done.status, done.progress, done.lease_owner) == ("succeeded", 1.0, None)


def test_stalled_job_is_retried_and_the_stale_worker_cannot_finish(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    store.claim_job("dead", lease_seconds=-1)  # lease already expired: the worker "died"
    retried = store.claim_job("alive", lease_seconds=30)
    assert retried is not None and (retried.attempts, retried.lease_owner) == (2, "alive")
    assert not store.heartbeat("j_0001", "dead", lease_seconds=30, progress=0.5)
    assert not store.complete_job("j_0001", "dead", {"from": "dead"})
    assert store.complete_job("j_0001", "alive", {"from": "alive"})
    assert store.get_result("j_0001") == {"from": "alive"}


def test_job_that_keeps_crashing_ends_failed(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1, max_attempts=2))
    assert store.claim_job("w1", lease_seconds=-1) is not None
    assert store.claim_job("w2", lease_seconds=-1) is not None
    assert store.claim_job("w3", lease_seconds=30) is None
    failed = store.get_job("j_0001")
    assert failed.status == "failed"
    assert failed.error is not None and "2 times" in failed.error
    with pytest.raises(Conflict, match="failed"):
        store.get_result("j_0001")


def test_heartbeat_records_progress(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    store.claim_job("w1", lease_seconds=30)
    assert store.heartbeat("j_0001", "w1", lease_seconds=30, progress=0.4)
    assert store.get_job("j_0001").progress == pytest.approx(0.4)


def test_cancel_queued_and_running_but_not_finished(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    store.insert_job(job(2))
    assert store.cancel_job("j_0001").status == "cancelled"
    store.claim_job("w1", lease_seconds=30)
    assert store.cancel_job("j_0002").status == "cancelled"
    assert not store.heartbeat("j_0002", "w1", lease_seconds=30, progress=0.9)
    assert not store.complete_job("j_0002", "w1", {})
    with pytest.raises(Conflict, match="already cancelled"):
        store.cancel_job("j_0002")
    with pytest.raises(NotFound):
        store.cancel_job("nope")


def test_result_is_conflict_until_finished(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    with pytest.raises(Conflict, match="queued"):
        store.get_result("j_0001")
    with pytest.raises(NotFound):
        store.get_result("nope")


def test_concurrent_claims_hand_out_each_job_exactly_once(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    for i in range(20):
        store.insert_job(job(i))
    claimed: list[str] = []
    lock = threading.Lock()

    def claim_all(worker: str) -> None:
        while (got := store.claim_job(worker, lease_seconds=30)) is not None:
            with lock:
                claimed.append(got.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert Counter(claimed) == Counter(f"j_{i:04d}" for i in range(20))


def test_jobs_list_filters_by_status_and_model(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    for i in range(4):
        store.insert_job(job(i))
    store.cancel_job("j_0002")
    cancelled, _ = store.list_jobs(status="cancelled", model=None, page_size=10, page_token=None)
    assert [j.id for j in cancelled] == ["j_0002"]
    queued, token = store.list_jobs(status="queued", model="m", page_size=2, page_token=None)
    rest, end = store.list_jobs(status="queued", model="m", page_size=2, page_token=token)
    assert [j.id for j in queued + rest] == ["j_0003", "j_0001", "j_0000"] and end is None
    assert store.counts_by_status() == {"queued": 3, "cancelled": 1}


def test_deleting_a_batch_keeps_its_jobs_readable(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    store.delete_batch("b_0000")
    assert store.get_job("j_0001").batch_id == "b_0000"


def test_new_ids_are_unique() -> None:
    assert len({new_id("j") for _ in range(1000)}) == 1000


def test_earlier_results_of_a_model_oldest_first(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    for i in range(4):
        store.insert_job(job(i))
        store.claim_job("w", lease_seconds=30)
        if i != 2:
            assert store.complete_job(f"j_{i:04d}", "w", {"i": i})
        else:
            store.fail_job(f"j_{i:04d}", "w", "boom")
    store.insert_job(job(9))  # queued: not a result
    got = store.earlier_results("m", before=T0 + timedelta(seconds=3), limit=10)
    assert [(r[0], r[3]) for r in got] == [("j_0000", {"i": 0}), ("j_0001", {"i": 1})]
    assert [r[0] for r in store.earlier_results("m", before=T0 + timedelta(days=1), limit=2)] == [
        "j_0001",
        "j_0003",
    ]
    assert store.earlier_results("other", before=T0 + timedelta(days=1)) == []


# -- projects ------------------------------------------------------------------------------------


def test_every_read_and_write_stays_within_its_project(store: SqlStore) -> None:
    store.insert_batch(replace(batch(1), project="alpha"))
    store.insert_batch(replace(batch(2), project="beta"))
    store.insert_job(replace(job(1, "b_0001"), project="alpha"))
    store.claim_job("w", lease_seconds=30)  # workers claim any project's job
    assert store.complete_job("j_0001", "w", {"x": 1})
    for lookup in (
        lambda: store.get_batch("b_0001", project="beta"),
        lambda: store.delete_batch("b_0001", project="beta"),
        lambda: store.get_job("j_0001", project="beta"),
        lambda: store.get_result("j_0001", project="beta"),
        lambda: store.cancel_job("j_0001", project="beta"),
    ):
        with pytest.raises(NotFound):
            lookup()
    assert not store.replace_batch_data(
        "b_0001", project="beta", expected_version=1, data_path="x", labeled_rows=1
    )
    alpha, _ = store.list_batches(project="alpha", model=None, version=None, page_size=10, page_token=None)
    assert [b.id for b in alpha] == ["b_0001"]
    beta_jobs, _ = store.list_jobs(project="beta", status=None, model=None, page_size=10, page_token=None)
    assert beta_jobs == []
    assert store.earlier_results("m", project="beta", before=T0 + timedelta(days=1)) == []
    assert [r[0] for r in store.earlier_results("m", project="alpha", before=T0 + timedelta(days=1))] == [
        "j_0001"
    ]
    assert store.get_batch("b_0001", project="alpha").project == "alpha"
    assert store.get_job("j_0001", project="alpha").project == "alpha"
    assert store.get_result("j_0001", project="alpha") == {"x": 1}
    store.delete_batch("b_0001", project="alpha")
    assert store.get_batch("b_0002", project="beta").data_path == "b_0002/v1.parquet"


def test_a_project_view_sees_only_its_project_and_files_new_rows_there(store: SqlStore) -> None:
    alpha, beta = store.for_project("alpha"), store.for_project("beta")
    alpha.insert_batch(batch(1))  # the record says "default": the view files it under alpha
    assert store.get_batch("b_0001").project == "alpha"
    with pytest.raises(NotFound):
        beta.get_batch("b_0001")
    alpha.insert_job(job(1, "b_0001"))
    assert store.get_job("j_0001").project == "alpha"
    with pytest.raises(NotFound):
        beta.cancel_job("j_0001")
    assert beta.counts_by_status() == {} and alpha.counts_by_status() == {"queued": 1}


def test_a_page_token_works_only_for_the_list_and_project_that_issued_it(store: SqlStore) -> None:
    for i in range(3):
        store.insert_batch(replace(batch(i), project="alpha"))
        store.insert_job(replace(job(i, f"b_{i:04d}"), project="alpha"))
    _, token = store.list_batches(project="alpha", model=None, version=None, page_size=1, page_token=None)
    _, job_token = store.list_jobs(project="alpha", status=None, model=None, page_size=1, page_token=None)
    assert token is not None and job_token is not None
    page, _ = store.list_batches(project="alpha", model=None, version=None, page_size=1, page_token=token)
    assert [b.id for b in page] == ["b_0001"]
    naive = paging.sign({"t": "2026-01-01T00:00:00", "i": "b_0002"}, scope="batches:alpha")
    mac = token.partition(".")[2]
    tampered = paging._b64(b'["2026-01-01T00:00:00","b_0009"]') + "." + mac
    for bad in (job_token, naive, tampered, "garbage", token + "x", "a" * 5000):
        with pytest.raises(YardstickError) as caught:
            store.list_batches(project="alpha", model=None, version=None, page_size=1, page_token=bad)
        assert caught.value.status == 400 and caught.value.issues[0].field == "page_token"
    with pytest.raises(YardstickError):
        store.list_batches(project="beta", model=None, version=None, page_size=1, page_token=token)


def test_another_process_on_the_same_database_accepts_the_tokens(database_url: str, store: SqlStore) -> None:
    for i in range(2):
        store.insert_batch(batch(i))
    _, token = store.list_batches(model=None, version=None, page_size=1, page_token=None)
    assert token is not None
    paging._keys[:] = [b"another process starts with another key"]
    other = SqlStore.from_url(database_url)
    try:
        with pytest.raises(YardstickError):
            other.list_batches(model=None, version=None, page_size=1, page_token=token)
        other.migrate()  # what every process does at start-up: it loads the database's key
        page, _ = other.list_batches(model=None, version=None, page_size=1, page_token=token)
        assert [b.id for b in page] == ["b_0000"]
    finally:
        other.dispose()


# -- cancel ----------------------------------------------------------------------------------------


def test_a_cancel_that_loses_to_the_result_says_so(store: SqlStore) -> None:
    """The worker stores the result between the moment a cancel request arrives and its write:
    the cancel is a 409 naming the outcome, never a 200 with a job that actually succeeded."""
    store.insert_batch(batch(0))
    store.insert_job(job(1))
    store.claim_job("w", lease_seconds=30)
    completed: list[bool] = []

    def before_execute(_conn: Any, _cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
        if (
            not completed
            and statement.lstrip().upper().startswith("UPDATE JOBS")
            and "cancelled" in str(params)
        ):
            completed.append(store.complete_job("j_0001", "w", {"done": True}))

    event.listen(store.engine, "before_cursor_execute", before_execute)
    try:
        with pytest.raises(Conflict, match="already succeeded"):
            store.cancel_job("j_0001")
    finally:
        event.remove(store.engine, "before_cursor_execute", before_execute)
    assert completed == [True]
    assert store.get_result("j_0001") == {"done": True}


def race_cancel_and_completion(store: SqlStore, job_id: str) -> tuple[str, bool]:
    """Cancel and complete one running job at the same moment: (cancel's status or "conflict",
    whether the completion stored its result)."""
    barrier = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def cancel() -> None:
        barrier.wait()
        try:
            outcome["cancel"] = store.cancel_job(job_id).status
        except Conflict:
            outcome["cancel"] = "conflict"

    def complete() -> None:
        barrier.wait()
        outcome["complete"] = store.complete_job(job_id, "w", {"job": job_id})

    threads = [threading.Thread(target=cancel), threading.Thread(target=complete)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return outcome["cancel"], outcome["complete"]


def test_cancel_and_completion_racing_agree(store: SqlStore) -> None:
    store.insert_batch(batch(0))
    for i in range(12):
        store.insert_job(job(i))
        claimed = store.claim_job("w", lease_seconds=30)
        assert claimed is not None
        cancelled, completed = race_cancel_and_completion(store, claimed.id)
        final = store.get_job(claimed.id).status
        if cancelled == "cancelled":
            assert not completed and final == "cancelled"
        else:
            assert (cancelled, completed, final) == ("conflict", True, "succeeded")


# -- idempotency keys ------------------------------------------------------------------------------


def answer(record: BatchRecord | JobRecord) -> StoredAnswer:
    return StoredAnswer(201, {"id": record.id}, f"/v1/batches/{record.id}")


def test_an_idempotency_key_is_claimed_once_and_then_answers(store: SqlStore) -> None:
    first = store.claim_idempotency_key("k", "f1", ttl_seconds=60, lock_seconds=60, project="alpha")
    assert isinstance(first, IdempotencyClaim)
    pending = store.claim_idempotency_key("k", "f1", ttl_seconds=60, lock_seconds=60, project="alpha")
    assert pending == IdempotencyEntry(fingerprint="f1", answer=None)
    other = store.claim_idempotency_key("k", "f2", ttl_seconds=60, lock_seconds=60, project="alpha")
    assert isinstance(other, IdempotencyEntry) and other.fingerprint == "f1"
    # keys are per project
    assert isinstance(
        store.claim_idempotency_key("k", "f1", ttl_seconds=60, lock_seconds=60, project="beta"),
        IdempotencyClaim,
    )
    store.remembering(first, answer).insert_batch(batch(1))
    done = store.idempotency_entry("k", project="alpha")
    assert done == IdempotencyEntry("f1", StoredAnswer(201, {"id": "b_0001"}, "/v1/batches/b_0001"))
    assert store.claim_idempotency_key("k", "f1", ttl_seconds=60, lock_seconds=60, project="alpha") == done
    assert store.get_batch("b_0001").project == "alpha"


def test_concurrent_first_requests_claim_a_key_exactly_once(store: SqlStore) -> None:
    barrier = threading.Barrier(6)
    got: list[object] = []

    def claim() -> None:
        barrier.wait()
        got.append(store.claim_idempotency_key("k", "f", ttl_seconds=60, lock_seconds=60, project="p"))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(isinstance(g, IdempotencyClaim) for g in got) == 1
    assert [g for g in got if not isinstance(g, IdempotencyClaim)] == [IdempotencyEntry("f", None)] * 5


def test_a_released_or_expired_key_is_free_again(store: SqlStore) -> None:
    claim = store.claim_idempotency_key("k", "f", ttl_seconds=60, lock_seconds=60, project="p")
    assert isinstance(claim, IdempotencyClaim)
    store.release_idempotency_key(claim)
    assert store.idempotency_entry("k", project="p") is None
    short = store.claim_idempotency_key("k", "f", ttl_seconds=0.001, lock_seconds=60, project="p")
    assert isinstance(short, IdempotencyClaim)
    store.remembering(short, answer).insert_batch(batch(1))
    deadline = time.monotonic() + 5
    while store.idempotency_entry("k", project="p") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    again = store.claim_idempotency_key("k", "another body", ttl_seconds=60, lock_seconds=60, project="p")
    assert isinstance(again, IdempotencyClaim)
    assert store.sweep_idempotency_keys() == 0


def test_a_stalled_first_request_is_taken_over_and_then_stores_nothing(store: SqlStore) -> None:
    stalled = store.claim_idempotency_key("k", "f", ttl_seconds=60, lock_seconds=0, project="p")
    assert isinstance(stalled, IdempotencyClaim)
    retry = store.claim_idempotency_key("k", "f", ttl_seconds=60, lock_seconds=60, project="p")
    assert isinstance(retry, IdempotencyClaim) and retry.owner != stalled.owner
    with pytest.raises(Conflict) as caught:
        store.remembering(stalled, answer).insert_batch(batch(1))  # it woke up: too late
    assert caught.value.issues[0].field == "Idempotency-Key"
    with pytest.raises(NotFound):
        store.get_batch("b_0001")  # nothing half-stored: the row went with the key
    store.remembering(retry, answer).insert_batch(batch(2))
    entry = store.idempotency_entry("k", project="p")
    assert entry is not None and entry.answer is not None and entry.answer.body == {"id": "b_0002"}
