"""``/v1/runs``: runs, metric points, series, params, and bad input.

The series read back is compared with what was logged; downsampling with the indices an
independent reference picks (tests/unit/test_training_curves.py checks those).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from service.workers.training.downsample import lttb, min_max
from tests.api.conftest import batch_body

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = {"name": "fraud-gbm", "version": "7"}


async def _run(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"model": {"name": "fraud-gbm", "version": "7"}, **fields}
    response = await client.post("/v1/runs", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"/v1/runs/{response.json()['id']}"
    return response.json()  # type: ignore[no-any-return]


def _points(name: str, steps: range, value: Any, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "step": s,
            "value": value(s),
            "timestamp": (T0 + timedelta(seconds=s)).isoformat(),
            **extra,
        }
        for s in steps
    ]


async def test_a_run_is_created_read_patched_and_listed_with_filters(client: httpx.AsyncClient) -> None:
    run = await _run(
        client,
        name="sgd-sync-0",
        params={"optimizer": {"name": "sgd", "lr": 0.1}, "batch": 32},
        tags={"sync": "true", "seed": "0"},
        source_commit="3f2c1ab",
        dataset="s3://bucket/train.parquet",
    )
    assert run["status"] == "running" and run["ended_at"] is None
    assert run["params"] == {"optimizer": {"name": "sgd", "lr": 0.1}, "batch": 32}
    other = await _run(client, name="sgd-async-0", params={"optimizer": {"lr": 0.2}}, tags={"sync": "false"})
    await _run(client, model={"name": "other", "version": "1"}, tags={"sync": "true"})

    patch = {"status": "finished", "tags": {"best": "yes"}}
    patched = await client.patch(f"/v1/runs/{run['id']}", json=patch)
    assert patched.status_code == 200
    assert patched.json()["status"] == "finished" and patched.json()["ended_at"] is not None
    assert patched.json()["tags"] == {"sync": "true", "seed": "0", "best": "yes"}
    assert (await client.get(f"/v1/runs/{run['id']}")).json() == patched.json()

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/v1/runs", params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert await ids(model="fraud-gbm") == [other["id"], run["id"]]
    assert await ids(model="fraud-gbm", tag="sync:true") == [run["id"]]
    assert await ids(tag=["sync:true", "best:yes"]) == [run["id"]]
    assert await ids(param="optimizer.lr:0.2") == [other["id"]]
    assert await ids(param="batch:32") == [run["id"]]
    first = await client.get("/v1/runs", params={"page_size": 2})
    token = first.json()["next_page_token"]
    second = await client.get("/v1/runs", params={"page_size": 2, "page_token": token})
    listed = [r["id"] for r in first.json()["data"] + second.json()["data"]]
    assert len(listed) == 3 and set(listed) >= {run["id"], other["id"]}
    bad = await client.get("/v1/runs", params={"tag": "sync"})
    assert bad.status_code == 422 and "key:value" in bad.text


async def test_points_are_idempotent_and_read_back_whole_or_downsampled(client: httpx.AsyncClient) -> None:
    run = await _run(client)
    url = f"/v1/runs/{run['id']}/metrics"
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.05, 20_000)
    loss = _points("loss", range(20_000), lambda s: float(np.exp(-s / 4000) + noise[s]))
    cpu = _points("system/cpu_percent", range(0, 20_000, 100), lambda s: 50.0 + s % 7)
    first = await client.post(url, json={"points": loss[:10_000] + cpu})
    assert first.json() == {"accepted": 10_200, "unchanged": 0}
    # a retried call stores nothing twice; the next call goes on from there
    again = await client.post(url, json={"points": loss[:10_000] + cpu})
    assert again.json() == {"accepted": 0, "unchanged": 10_200}
    rest = await client.post(url, json={"points": loss[9_990:]})
    assert rest.json() == {"accepted": 10_000, "unchanged": 10}

    whole = (await client.get(url, params={"name": "loss"})).json()
    assert whole["total_points"] == 20_000 and whole["method"] == "all"
    assert whole["step"] == list(range(20_000))
    assert whole["value"] == [p["value"] for p in loss]
    assert whole["timestamp"][5] == (T0 + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    assert whole["staleness"] is None

    steps = np.arange(20_000, dtype=np.float64)
    values = np.array(whole["value"])
    shaped = (await client.get(url, params={"name": "loss", "max_points": 500})).json()
    assert shaped["method"] == "lttb" and shaped["step"] == lttb(steps, values, 500).tolist()
    extremes = (await client.get(url, params={"name": "loss", "max_points": 500, "method": "min_max"})).json()
    assert extremes["step"] == min_max(values, 500).tolist()
    assert min(extremes["value"]) == values.min() and max(extremes["value"]) == values.max()

    got = (await client.get(f"/v1/runs/{run['id']}")).json()
    assert got["metrics"] == ["loss", "system/cpu_percent"]
    missing = await client.get(url, params={"name": "accuracy"})
    assert missing.status_code == 404 and "no points of 'accuracy'" in missing.text


async def test_workers_and_staleness_are_kept_per_series(client: httpx.AsyncClient) -> None:
    run = await _run(client)
    url = f"/v1/runs/{run['id']}/metrics"
    points = [
        {"name": "loss", "step": s, "value": 1.0 / (s + 1) + w, "worker": str(w), "staleness": w}
        for s in range(10)
        for w in range(3)
    ]
    assert (await client.post(url, json={"points": points})).json()["accepted"] == 30
    one = (await client.get(url, params={"name": "loss", "worker": "2"})).json()
    assert one["worker"] == "2" and one["step"] == list(range(10)) and one["staleness"] == [2] * 10
    assert one["value"] == [1.0 / (s + 1) + 2 for s in range(10)]


async def test_params_change_during_a_run(client: httpx.AsyncClient) -> None:
    run = await _run(client, params={"lr": 0.1})
    url = f"/v1/runs/{run['id']}"
    schedule = [{"name": "lr", "step": s, "value": 0.1 * 0.5 ** (s // 100)} for s in (0, 100, 200)]
    assert (await client.post(f"{url}/metrics", json={"params": schedule})).json()["accepted"] == 3
    assert (await client.post(f"{url}/metrics", json={"params": schedule})).json()["unchanged"] == 3
    assert (await client.get(f"{url}/params")).json() == {
        "lr": [{"step": 0, "value": 0.1}, {"step": 100, "value": 0.05}, {"step": 200, "value": 0.025}]
    }
    change = {"params": [{"name": "lr", "step": 100, "value": 1.0}]}
    changed = await client.post(f"{url}/metrics", json=change)
    assert changed.status_code == 409 and "params[0].value" in changed.text


@pytest.mark.parametrize(
    ("points", "status", "where"),
    [
        ([{"name": "loss", "step": 1, "value": "NaN"}], 422, "points[1].value"),
        ([{"name": "loss", "step": 1, "value": "Infinity"}], 422, "points[1].value"),
        ([{"name": "loss", "step": 2, "value": 1}, {"name": "loss", "step": 1, "value": 1}], 422, "points"),
        ([{"name": "lo$s<script>", "step": 1, "value": 1.0}], 422, "points[1].name"),
        ([{"name": "loss", "step": -1, "value": 1.0}], 422, "points[1].step"),
    ],
)
async def test_bad_points_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, points: list[dict[str, Any]], status: int, where: str
) -> None:
    run = await _run(client)
    url = f"/v1/runs/{run['id']}/metrics"
    good = {"name": "accuracy", "step": 0, "value": 0.5}
    response = await client.post(url, json={"points": [good, *points]})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in response.json().get("errors", [])]
    assert any(f.startswith(where) for f in fields), fields
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["metrics"] == []


async def test_series_go_forward_and_stored_points_are_not_overwritten(client: httpx.AsyncClient) -> None:
    run = await _run(client)
    url = f"/v1/runs/{run['id']}/metrics"
    await client.post(url, json={"points": _points("loss", range(0, 100, 10), float)})
    backwards = await client.post(url, json={"points": [{"name": "loss", "step": 55, "value": 1.0}]})
    assert backwards.status_code == 422 and "goes forward" in backwards.text
    overwrite = await client.post(url, json={"points": [{"name": "loss", "step": 50, "value": 7.0}]})
    assert overwrite.status_code == 409 and "points[0].value" in overwrite.text
    # a mixed call is refused whole: its new points are not stored either
    mixed = (
        _points("loss", range(100, 110), float)
        + _points("acc", [0], float)
        + [
            {"name": "loss", "step": 110, "value": 1.0},
            {"name": "loss", "step": 109, "value": 1.0},
        ]
    )
    assert (await client.post(url, json={"points": mixed})).status_code == 422
    series = (await client.get(url, params={"name": "loss"})).json()
    assert series["step"] == list(range(0, 100, 10))


async def test_too_many_points_and_other_projects_runs(client: httpx.AsyncClient) -> None:
    run = await _run(client)
    url = f"/v1/runs/{run['id']}/metrics"
    huge = {"points": [{"name": "loss", "step": s, "value": 1.0} for s in range(50_001)]}
    response = await client.post(url, json=huge)
    assert response.status_code == 422 and "50000" in response.text
    assert (await client.get(url, params={"name": "loss"})).status_code == 404
    assert (await client.post("/v1/runs/r_nope/metrics", json={"points": []})).status_code == 404
    assert (await client.patch("/v1/runs/r_nope", json={"status": "failed"})).status_code == 404


async def test_mlflow_addresses_obey_the_outbound_policy(client: httpx.AsyncClient) -> None:
    """Loopback and private tracking URIs are refused unless YARDSTICK_OUTBOUND_ALLOW names them."""
    blocked = await client.post(
        "/v1/runs/import",
        json={"mlflow": {"tracking_uri": "http://127.0.0.1:5000", "run_id": "abc"}, "model": MODEL},
    )
    assert blocked.status_code == 422 and "mlflow.tracking_uri" in blocked.text
    assert (await client.get("/v1/runs")).json()["data"] == []
    batch = await client.post("/v1/batches", json=batch_body())
    evaluation = await client.post(
        "/v1/evaluations",
        json={"batch_id": batch.json()["id"], "mlflow": {"tracking_uri": "http://10.0.0.5:5000"}},
    )
    assert evaluation.status_code == 422 and "mlflow.tracking_uri" in evaluation.text
    unknown_run = await client.post("/v1/evaluations", json={"batch_id": batch.json()["id"], "run_id": "r_x"})
    assert unknown_run.status_code == 422 and "run_id" in unknown_run.text


async def test_a_run_lists_the_evaluations_that_name_it(client: httpx.AsyncClient) -> None:
    run = await _run(client)
    batch = await client.post("/v1/batches", json=batch_body())
    job = await client.post("/v1/evaluations", json={"batch_id": batch.json()["id"], "run_id": run["id"]})
    await client.post("/v1/evaluations", json={"batch_id": batch.json()["id"]})
    assert (await client.get(f"/v1/runs/{run['id']}")).json()["evaluations"] == [job.json()["id"]]
