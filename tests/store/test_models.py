"""The model list and a model's evaluations, from the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.batches import Column
from service.errors import NotFound, YardstickError
from service.store import BatchRecord, JobRecord, SqlStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    s = SqlStore.from_url(database_url)
    s.create_schema()
    yield s
    s.dispose()


def add_batch(store: SqlStore, model: str, *, project: str = "default") -> str:
    batch_id = f"b_{model}_{project}"
    store.insert_batch(
        BatchRecord(
            id=batch_id,
            model_name=model,
            model_version="1",
            task="binary",
            classes=[0, 1],
            positive_class=1,
            rows=10,
            labeled_rows=10,
            columns=[Column(name="sample_id", type="string", role="sample_id")],
            data_path=f"{batch_id}/v1.parquet",
            data_version=1,
            created_at=T0,
            project=project,
        )
    )
    return batch_id


def verdict(value: float) -> dict[str, Any]:
    return {"status": "pass", "primary_metric": {"name": "accuracy", "value": value}}


def evaluate(
    store: SqlStore,
    model: str,
    second: int,
    *,
    version: str = "1",
    result: dict[str, Any] | None = None,
    fail: bool = False,
    project: str = "default",
) -> str:
    """A job of ``model`` created ``second`` seconds after T0, run to the end by a worker."""
    batch_id = f"b_{model}_{project}"
    job_id = f"j_{model}_{second:04d}"
    store.insert_job(
        JobRecord(
            id=job_id,
            batch_id=batch_id,
            model_name=model,
            model_version=version,
            status="queued",
            progress=0.0,
            request={"batch_id": batch_id},
            error=None,
            attempts=0,
            max_attempts=1,
            lease_owner=None,
            lease_expires_at=None,
            created_at=T0 + timedelta(seconds=second),
            started_at=None,
            finished_at=None,
            project=project,
        )
    )
    claimed = store.claim_job("w", lease_seconds=30)
    assert claimed is not None and claimed.id == job_id
    if fail:
        assert store.fail_job(job_id, "w", "boom")
    else:
        assert store.complete_job(job_id, "w", result if result is not None else {"verdict": verdict(0.5)})
    return job_id


def test_each_model_once_most_recently_evaluated_first_with_its_newest_success(store: SqlStore) -> None:
    for model in ("a", "b", "c"):
        add_batch(store, model)
    evaluate(store, "a", 1, version="1", result={"verdict": verdict(0.6)})
    a_latest = evaluate(store, "a", 2, version="2", result={"verdict": verdict(0.7)})
    evaluate(store, "a", 5, fail=True)  # newest job of a, but not a result
    b_latest = evaluate(store, "b", 3, version="9", result={"metrics": {}})  # stored before verdicts
    evaluate(store, "c", 4, fail=True)

    models, token = store.list_models(page_size=10, page_token=None)
    assert token is None
    assert [m.name for m in models] == ["a", "c", "b"]  # by newest job: 5, 4, 3
    a, c, b = models
    assert (a.evaluations, a.succeeded, a.last_created_at) == (3, 2, T0 + timedelta(seconds=5))
    assert a.latest is not None
    assert (a.latest.job_id, a.latest.version, a.latest.status) == (a_latest, "2", "succeeded")
    assert a.latest.verdict == verdict(0.7)
    assert a.latest.finished_at is not None
    assert (c.evaluations, c.succeeded, c.latest) == (1, 0, None)
    assert b.latest is not None and b.latest.job_id == b_latest and b.latest.verdict is None


def test_pages_follow_one_another_without_gaps_or_repeats(store: SqlStore) -> None:
    names = [f"m{i:02d}" for i in range(7)]
    for i, name in enumerate(names):
        add_batch(store, name)
        evaluate(store, name, i)
    evaluate(store, "m03", 10)  # m03 becomes the most recently evaluated
    expected = ["m03", "m06", "m05", "m04", "m02", "m01", "m00"]
    seen: list[str] = []
    token = None
    while True:
        page, token = store.list_models(page_size=3, page_token=token)
        seen += [m.name for m in page]
        if token is None:
            break
    assert seen == expected


def test_the_same_second_is_broken_by_name(store: SqlStore) -> None:
    for name in ("x", "y", "z"):
        add_batch(store, name)
        evaluate(store, name, 1)
    first, token = store.list_models(page_size=2, page_token=None)
    rest, last = store.list_models(page_size=2, page_token=token)
    assert [m.name for m in first + rest] == ["z", "y", "x"]
    assert last is None


def test_models_stay_within_their_project_and_tokens_too(store: SqlStore) -> None:
    add_batch(store, "m", project="alpha")
    add_batch(store, "n", project="beta")
    add_batch(store, "o", project="beta")
    evaluate(store, "m", 1, project="alpha")
    evaluate(store, "n", 2, project="beta")
    evaluate(store, "o", 3, project="beta")
    alpha, _ = store.list_models(project="alpha", page_size=10, page_token=None)
    assert [m.name for m in alpha] == ["m"]
    beta, token = store.list_models(project="beta", page_size=1, page_token=None)
    assert [m.name for m in beta] == ["o"] and token is not None
    with pytest.raises(YardstickError, match="page_token"):
        store.list_models(project="alpha", page_size=1, page_token=token)
    with pytest.raises(NotFound):
        store.model_evaluations("m", limit=10, project="beta")
    assert store.list_models(project="gamma", page_size=10, page_token=None) == ([], None)


def test_a_models_evaluations_newest_first_with_their_critical_slices(store: SqlStore) -> None:
    add_batch(store, "m")
    critical = [{"name": "new-users", "where": "tenure < 30", "n": 3, "share": 0.3, "metrics": {}}]
    first = evaluate(
        store, "m", 1, version="1", result={"verdict": verdict(0.6), "slices": {"critical": critical}}
    )
    failed = evaluate(store, "m", 2, version="2", fail=True)
    plain = evaluate(store, "m", 3, version="3", result={"verdict": verdict(0.8), "slices": None})

    got = store.model_evaluations("m", limit=10)
    assert [(e.job_id, e.version, e.status) for e in got] == [
        (plain, "3", "succeeded"),
        (failed, "2", "failed"),
        (first, "1", "succeeded"),
    ]
    assert [e.critical for e in got] == [[], [], critical]
    assert [e.verdict for e in got] == [verdict(0.8), None, verdict(0.6)]
    assert [e.job_id for e in store.model_evaluations("m", limit=2)] == [plain, failed]
    with pytest.raises(NotFound, match="'nobody'"):
        store.model_evaluations("nobody", limit=10)


def test_the_project_view_has_the_same_methods(store: SqlStore) -> None:
    add_batch(store, "m", project="alpha")
    job_id = evaluate(store, "m", 1, project="alpha")
    view = store.for_project("alpha")
    models, _ = view.list_models(page_size=5, page_token=None)
    assert [m.name for m in models] == ["m"]
    assert [e.job_id for e in view.model_evaluations("m", limit=5)] == [job_id]
    assert replace(models[0], name="x").name == "x"  # plain frozen records
