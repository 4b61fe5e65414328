"""Speed as a metric: a batch's ``latency_ms`` column, its percentiles, per slice, and gates on
them; and what each evaluation cost (``result.job``). References: pandas' quantile and groupby."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.api.conftest import binary_columns
from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate
from tests.api.test_gates import post_batch

pytestmark = pytest.mark.anyio


def _with_latency(n: int = 2000) -> dict[str, Any]:
    columns = binary_columns(n, seed=3)
    rng = np.random.default_rng(3)
    slow = np.array(columns["country"]) == "BR"
    latency = rng.lognormal(2.0, 0.4, n) * np.where(slow, 3.0, 1.0)
    columns["latency_ms"] = [None if i % 100 == 7 else round(float(v), 3) for i, v in enumerate(latency)]
    return columns


async def test_latency_percentiles_throughput_and_slices_equal_pandas(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    columns = _with_latency()
    batch_id = await post_batch(client, columns)
    batch = (await client.get(f"/v1/batches/{batch_id}")).json()
    assert {c["name"]: c["role"] for c in batch["columns"]}["latency_ms"] == "latency"
    result = await evaluate(
        client,
        run_jobs,
        {
            "batch_id": batch_id,
            "slices": {"columns": ["country"]},
            "gates": [{"metric": "latency.p99", "max": 1000}, {"metric": "latency.p50", "max": 1}],
        },
    )
    frame = pd.DataFrame({"latency": columns["latency_ms"], "country": columns["country"]}).dropna()
    overall = result["latency"]["overall"]
    assert overall["rows"] == len(frame) == 2000 - 20
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert overall[name] == pytest.approx(frame["latency"].quantile(q), rel=1e-12)
    assert overall["max"] == frame["latency"].max()
    assert overall["mean"] == pytest.approx(frame["latency"].mean(), rel=1e-12)
    assert overall["throughput_per_second"] == pytest.approx(1000 / frame["latency"].mean(), rel=1e-12)

    by_country = frame.groupby("country")["latency"]
    slices = result["latency"]["by_slice"]
    assert [s["value"] for s in slices] == list(by_country.quantile(0.99).sort_values(ascending=False).index)
    assert slices[0]["value"] == "BR"  # three times slower by construction
    for entry in slices:
        assert entry["column"] == "country"
        expected = by_country.get_group(entry["value"])
        assert entry["summary"]["rows"] == len(expected)
        assert entry["summary"]["p99"] == pytest.approx(expected.quantile(0.99), rel=1e-12)

    gates = {g["metric"] + str(g.get("max")): g for g in result["gates"]["results"]}
    assert gates["latency.p991000.0"]["passed"] and not gates["latency.p501.0"]["passed"]
    assert result["verdict"]["status"] == "fail"

    job = result["job"]
    assert job["duration_seconds"] > 0 and job["rows_per_second"] == pytest.approx(
        2000 / job["duration_seconds"], rel=1e-3
    )
    assert job["peak_memory_mib"] is None or job["peak_memory_mib"] > 1


async def test_a_latency_gate_without_latencies_says_what_is_missing(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post_batch(client, binary_columns(100))
    result = await evaluate(
        client, run_jobs, {"batch_id": batch_id, "gates": [{"metric": "latency.p99", "max": 50}]}
    )
    assert result["latency"] is None
    gate = result["gates"]["results"][0]
    assert not gate["passed"] and "latency_ms" in gate["reason"]


@pytest.mark.parametrize(("value", "message"), [(-1.5, "negative"), ("fast", "number")])
async def test_bad_latencies_are_422_naming_the_row(
    client: httpx.AsyncClient, value: Any, message: str
) -> None:
    columns = binary_columns(20)
    columns["latency_ms"] = [5.0] * 20
    columns["latency_ms"][13] = value
    body = {"model": {"name": "m", "version": "1"}, "task": "binary", "positive_class": 1, "columns": columns}
    response = await client.post("/v1/batches", json=body)
    problem = assert_problem(response, 422)
    issue = problem["errors"][0]
    assert issue["field"].startswith("columns.latency_ms") and issue.get("row") == 13, problem
    assert message in issue["message"], problem
    assert (await client.get("/v1/batches")).json()["data"] == []
