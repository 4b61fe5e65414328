"""``GET /v1/models/{name}/history``: every evaluation's value of a metric (with its interval) by
version and time, and each critical slice's, compared with the jobs' own results."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.api.test_batches import assert_problem
from tests.api.test_models import CRITICAL, post_evaluation, result_of

pytestmark = pytest.mark.anyio


async def test_history_follows_every_evaluation_and_critical_slice(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    jobs = [await post_evaluation(client, "fraud/gbm", str(v), seed=v) for v in (1, 2, 3)]
    await post_evaluation(client, "other", "1")
    assert run_jobs() == 4
    results = [await result_of(client, j) for j in jobs]

    history = (await client.get("/v1/models/fraud/gbm/history", params={"metric": "f1"})).json()
    assert history["model"] == "fraud/gbm" and history["metric"] == "f1" and not history["capped"]
    assert [p["job_id"] for p in history["points"]] == jobs  # oldest first
    for point, result in zip(history["points"], results, strict=True):
        assert point["version"] == result["model"]["version"]
        assert point["value"] == result["metrics"]["f1"]
        assert point["interval"] == result["intervals"]["f1"]
        assert point["verdict"] == result["verdict"]["status"]
    assert [c["name"] for c in history["critical"]] == [c["name"] for c in CRITICAL]
    for entry in history["critical"]:
        for point, result in zip(entry["points"], results, strict=True):
            stored = next(c for c in result["slices"]["critical"] if c["name"] == entry["name"])
            assert point["value"] == stored["metrics"]["f1"]["value"]
            assert point["n"] == stored["n"]

    primary = (await client.get("/v1/models/fraud/gbm/history")).json()
    assert primary["metric"] is None
    for point, result in zip(primary["points"], results, strict=True):
        assert point["metric"] == result["verdict"]["primary_metric"]["name"]
        assert point["value"] == result["verdict"]["primary_metric"]["value"]


async def test_history_of_an_unknown_model_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/models/nope/history"), 404)
