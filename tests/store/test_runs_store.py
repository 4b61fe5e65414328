"""The run store on SQLite and PostgreSQL: runs, filters, columnar metric points, retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas.runs import MetricLog, RunCreate, RunUpdate
from service.errors import Conflict, InvalidInput, NotFound
from service.store import SqlStore
from service.store.runs import RunStore, pack, unpack

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def runs(database_url: str) -> Iterator[RunStore]:
    s = SqlStore.from_url(database_url)
    s.create_schema()
    yield RunStore(s.engine, "default")
    s.dispose()


def _log(points: list[tuple[str, int, float]], worker: str | None = None) -> MetricLog:
    return MetricLog.model_validate(
        {
            "points": [
                {"name": n, "step": s, "value": v, "timestamp": T0 + timedelta(seconds=s), "worker": worker}
                for n, s, v in points
            ]
        }
    )


def test_packed_points_round_trip_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, 2**40, 1000))
    values, seconds = rng.normal(size=1000), rng.random(1000) * 1e9
    staleness = rng.integers(-1, 50, 1000)
    back = unpack(pack(steps, values, seconds, staleness), 1000)
    for original, restored in zip((steps, values, seconds, staleness), back, strict=True):
        assert np.array_equal(original, restored)


def test_runs_points_and_filters(runs: RunStore) -> None:
    body = RunCreate.model_validate(
        {"model": {"name": "m", "version": "1"}, "params": {"opt": {"lr": 0.1}}, "tags": {"sync": "true"}}
    )
    run = runs.create("r_" + "1" * 32, body, T0)
    other = runs.create("r_" + "2" * 32, body.model_copy(update={"tags": {"sync": "false"}}), T0)
    assert [
        r.id
        for r in runs.list_runs(model="m", tags={"sync": "false"}, params={}, page_size=10, page_token=None)[
            0
        ]
    ] == [other.id]
    assert (
        len(runs.list_runs(model=None, tags={}, params={"opt.lr": "0.1"}, page_size=10, page_token=None)[0])
        == 2
    )

    assert runs.log(run.id, _log([("loss", s, 1 / (s + 1)) for s in range(100)]), T0) == (100, 0)
    assert runs.log(run.id, _log([("loss", s, 1 / (s + 1)) for s in range(90, 120)]), T0) == (20, 10)
    assert runs.log(run.id, _log([("loss", s, float(s)) for s in range(3)], worker="7"), T0) == (3, 0)
    series = runs.series(run.id, "loss", None)
    assert series.steps.tolist() == list(range(120))
    assert series.values.tolist() == [1 / (s + 1) for s in range(120)]  # bit for bit
    assert series.seconds[5] == (T0 + timedelta(seconds=5)).timestamp()
    assert runs.workers(run.id, "loss") == ["", "7"]
    assert runs.log(run.id, _log([("loss", 200, 0.01)]), T0) == (1, 0)
    with pytest.raises(InvalidInput, match="goes forward"):
        runs.log(run.id, _log([("loss", 150, 0.5), ("loss", 250, 0.1)]), T0)
    with pytest.raises(Conflict, match="not overwritten"):
        runs.log(run.id, _log([("loss", 50, 0.5)]), T0)
    assert len(runs.series(run.id, "loss", None)) == 121  # the refused calls stored nothing

    ended = runs.update(run.id, RunUpdate(status="finished"), T0 + timedelta(hours=1))
    assert ended.status == "finished" and ended.ended_at == T0 + timedelta(hours=1)
    assert ended.metrics == ["loss"]
    assert (
        RunStore(runs.engine, "other").list_runs(
            model=None, tags={}, params={}, page_size=5, page_token=None
        )[0]
        == []
    )
    with pytest.raises(NotFound):
        RunStore(runs.engine, "other").get(run.id)
