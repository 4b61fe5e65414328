"""Release gates through the API: refused bounds, small batches, interval ends, baselines, slices,
and the gate report as JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate

pytestmark = pytest.mark.anyio


def ten_rows() -> dict[str, Any]:
    """10 rows with ROC AUC 0.84 (21 of 25 pairs ranked right): `roc_auc >= 0.7` passes on the point
    estimate only."""
    label = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    score = [0.1, 0.2, 0.3, 0.65, 0.7, 0.4, 0.6, 0.8, 0.85, 0.9]
    return {"sample_id": [f"s{i}" for i in range(10)], "label": label, "score": score}


async def post_batch(client: httpx.AsyncClient, columns: dict[str, Any], **overrides: Any) -> str:
    response = await client.post("/v1/batches", json=batch_body(columns, **overrides))
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    return batch_id


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ('{"metric": "roc_auc", "min": NaN}', "finite"),
        ('{"metric": "roc_auc", "max": Infinity}', "finite"),
        ('{"metric": "roc_auc", "min": -Infinity}', "finite"),
        ('{"metric": "roc_auc", "min": 1e999}', "finite"),
        ('{"metric": "roc_auc", "min": 0.9, "max": 0.7}', "greater than `max`"),
        ('{"metric": "roc_auc", "vs": "champion", "max_drop": NaN}', "finite"),
        ('{"metric": "roc_auc", "min": 0.7, "min_rows": 0}', "greater than or equal to 1"),
        ('{"metric": "roc_auc", "min": 0.7, "use": "median"}', "lower_bound"),
    ],
)
async def test_nan_infinite_and_inverted_bounds_are_422(
    client: httpx.AsyncClient, gate: str, message: str
) -> None:
    batch_id = await post_batch(client, binary_columns(50))
    body = f'{{"batch_id": {json.dumps(batch_id)}, "gates": [{gate}]}}'
    response = await client.post(
        "/v1/evaluations", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 422)
    assert any(e["field"].startswith("gates[0]") and message in e["message"] for e in problem["errors"]), (
        problem
    )
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_a_ten_row_batch_fails_min_rows_and_lower_bound_gates(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post_batch(client, ten_rows())
    request = {
        "batch_id": batch_id,
        "bootstrap": {"samples": 200, "seed": 0},
        "gates": [
            {"metric": "roc_auc", "min": 0.7},
            {"metric": "roc_auc", "min": 0.7, "min_rows": 100},
            {"metric": "roc_auc", "min": 0.7, "use": "lower_bound"},
        ],
    }
    result = await evaluate(client, run_jobs, request)
    point, rows, lower = result["gates"]["results"]
    assert result["gates"]["passed"] is False
    assert result["metrics"]["roc_auc"] == pytest.approx(0.84)
    # the point estimate alone passes, as before
    assert point["passed"] is True and point["value"] == pytest.approx(0.84) and point["reason"] is None
    assert rows["passed"] is False and rows["rows"] == 10 and rows["min_rows"] == 100
    assert rows["reason"] == "the evaluation has 10 labeled rows; the gate needs at least 100 (`min_rows`)"
    low = result["intervals"]["roc_auc"]["low"]
    assert low < 0.7
    assert lower["passed"] is False and lower["value"] == low and lower["observed"] == pytest.approx(0.84)
    assert lower["interval"] == result["intervals"]["roc_auc"]
    assert "lower bound" in lower["reason"] and "is below the minimum 0.7" in lower["reason"]


async def test_lower_bound_without_bootstrap_fails_saying_what_to_add(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post_batch(client, ten_rows())
    gates = [{"metric": "roc_auc", "min": 0.7, "use": "lower_bound"}]
    result = await evaluate(client, run_jobs, {"batch_id": batch_id, "gates": gates})
    (gate,) = result["gates"]["results"]
    assert gate["passed"] is False and gate["value"] is None
    assert gate["reason"] == "no interval for roc_auc: add a `bootstrap` section"


async def test_gates_against_a_champion_and_in_a_slice(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = binary_columns(300, seed=1)
    model_id = await post_batch(client, cols)
    label = np.array(cols["label"])
    champion = dict(cols)
    champion["score"] = np.clip(0.1 + 0.8 * label, 0, 1).round(6).tolist()  # perfect ranking
    champion_id = await post_batch(client, champion, model={"name": "champion", "version": "1"})
    request = {
        "batch_id": model_id,
        "metrics": ["roc_auc", "log_loss"],
        "baselines": {"existing": [{"name": "champion", "batch_id": champion_id}]},
        "slices": {"columns": ["country"], "min_support": 10},
        "gates": [
            {"metric": "roc_auc", "vs": "champion"},
            {"metric": "roc_auc", "vs": "champion", "max_drop": 0.5},
            {"metric": "roc_auc", "min": 0.5, "slice": {"conditions": {"country": "BR"}}},
        ],
    }
    # a baseline the request does not produce is refused before any job exists
    unknown_gate = {"metric": "roc_auc", "vs": "champion-v2"}
    refused = await client.post("/v1/evaluations", json=request | {"gates": [unknown_gate]})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "gates[0].vs"
    assert "['champion']" in refused.json()["errors"][0]["message"]
    result = await evaluate(client, run_jobs, request)
    strict, loose, in_slice = result["gates"]["results"]
    assert result["baselines"][0]["metrics"]["roc_auc"] == 1.0
    drop = 1.0 - result["metrics"]["roc_auc"]
    assert strict["passed"] is False and strict["baseline_value"] == 1.0
    assert strict["drop"] == pytest.approx(drop) and strict["max_drop"] == 0.0
    assert "worse than 'champion'" in strict["reason"]
    assert loose["passed"] is True and loose["max_drop"] == 0.5
    br = next(
        s for g in result["slices"]["groups"] for s in g["slices"] if s["conditions"] == {"country": "BR"}
    )
    assert in_slice["observed"] == br["metrics"]["roc_auc"]["value"] and in_slice["rows"] == br["n"]
    assert in_slice["passed"] is (br["metrics"]["roc_auc"]["value"] >= 0.5)


async def test_the_gate_report_as_junit_xml(client: httpx.AsyncClient, run_jobs: Callable[[], int]) -> None:
    batch_id = await post_batch(client, ten_rows())
    request = {
        "batch_id": batch_id,
        "bootstrap": {"samples": 200},
        "gates": [
            {"metric": "roc_auc", "min": 0.7},
            {"metric": "roc_auc", "min": 0.7, "use": "lower_bound"},
            {"metric": "log_loss", "max": 0.1},
        ],
    }
    result = await evaluate(client, run_jobs, request)
    job_id = result["job_id"]
    response = await client.get(f"/v1/jobs/{job_id}/result", params={"format": "junit"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    suite = ET.fromstring(response.content)
    assert suite.tag == "testsuite"
    assert suite.get("name") == f"yardstick gates: fraud-gbm 7 (job {job_id})"
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "roc_auc >= 0.7",
        "roc_auc >= 0.7 (lower_bound)",
        "log_loss <= 0.1",
    ]
    assert [c.find("failure") is not None for c in cases] == [False, True, True]
    messages = [c.find("failure").get("message") for c in cases[1:]]  # type: ignore[union-attr]
    assert messages == [g["reason"] for g in result["gates"]["results"][1:]]
    # json stays the default
    assert (await client.get(f"/v1/jobs/{job_id}/result", params={"format": "json"})).json() == result


async def test_junit_without_gates_and_unknown_formats(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post_batch(client, ten_rows())
    result = await evaluate(client, run_jobs, {"batch_id": batch_id})
    url = f"/v1/jobs/{result['job_id']}/result"
    suite = ET.fromstring((await client.get(url, params={"format": "junit"})).content)
    assert (suite.get("tests"), suite.get("failures"), list(suite)) == ("0", "0", [])
    problem = assert_problem(await client.get(url, params={"format": "yaml"}), 422)
    assert [e["field"] for e in problem["errors"]] == ["format"]
    assert_problem(await client.get("/v1/jobs/nope/result", params={"format": "junit"}), 404)
