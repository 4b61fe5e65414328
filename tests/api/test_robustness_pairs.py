"""Robustness without network: paired batches posted by the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate

pytestmark = pytest.mark.anyio


def scored(ids: list[str], score: np.ndarray, label: list[int] | None = None) -> dict[str, Any]:
    columns: dict[str, Any] = {
        "sample_id": ids,
        "score": score.round(6).tolist(),
        "income": list(range(len(ids))),
    }
    if label is not None:
        columns["label"] = label
    return {
        "model": {"name": "credit", "version": "3"},
        "task": "binary",
        "positive_class": 1,
        "columns": columns,
    }


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_pairs_joined_by_sample_id_with_exact_violation_counts(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(100)]
    base = rng.uniform(0.1, 0.9, 100)
    original = await post(client, scored(ids, base, label=[int(b > 0.5) for b in base]))
    # The pipeline raised income for every applicant; 7 scores went down by 0.05 (violations),
    # 3 by 0.005 (within the 0.01 tolerance), the rest went up. Rows s90..s99 are missing.
    change = np.full(100, 0.03)
    change[:7] = -0.05
    change[7:10] = -0.005
    raised = await post(client, scored(ids[:90], (base + change)[:90]))
    request = {
        "batch_id": original,
        "metrics": ["accuracy"],
        "robustness": {
            "score_tolerance": 0.01,
            "pairs": [
                {
                    "name": "income +10k",
                    "original_batch_id": original,
                    "perturbed_batch_id": raised,
                    "expect": "increase",
                },
                {
                    "name": "identity",
                    "original_batch_id": original,
                    "perturbed_batch_id": original,
                    "expect": "same",
                },
            ],
        },
    }
    result = await evaluate(client, run_jobs, request)
    raised_pair, same_pair = result["robustness"]["pairs"]
    assert (raised_pair["rows"], raised_pair["violations"]) == (90, 7)
    assert raised_pair["violation_rate"] == pytest.approx(7 / 90)
    assert raised_pair["details"]["original_only_rows"] == 10
    assert {e["sample_id"] for e in raised_pair["examples"]} <= {f"s{i}" for i in range(7)}
    assert (same_pair["rows"], same_pair["violations"]) == (100, 0)
    kinds = [(f["kind"], f["details"]["test"]) for f in result["findings"]]
    assert kinds == [("directional_violation", "income +10k")]


async def test_robustness_requests_are_validated(client: httpx.AsyncClient) -> None:
    ids = ["a", "b"]
    batch = await post(client, scored(ids, np.array([0.2, 0.8]), label=[0, 1]))
    cases = [
        ({"invariance": [{"column": "gender", "swap": ["F", "M"]}]}, "robustness"),
        (
            {
                "endpoint": {"url": "http://127.0.0.1:9/x"},
                "invariance": [{"column": "gender", "swap": ["F", "M"]}],
            },
            "robustness.invariance[0].column",
        ),
        (
            {
                "endpoint": {"url": "ftp://models/x"},
                "directional": [{"column": "income", "add": 1, "expect": "increase"}],
            },
            "robustness.endpoint.url",
        ),
        (
            {"pairs": [{"name": "p", "original_batch_id": batch, "perturbed_batch_id": "nope"}]},
            "robustness.pairs[0].perturbed_batch_id",
        ),
        (
            {
                "endpoint": {"url": "http://x/"},
                "directional": [{"column": "income", "add": 1, "multiply": 2, "expect": "increase"}],
            },
            "robustness.directional",
        ),
    ]
    for robustness, field in cases:
        response = await client.post("/v1/evaluations", json={"batch_id": batch, "robustness": robustness})
        problem = assert_problem(response, 422)
        assert any(e["field"].startswith(field) for e in problem["errors"]), problem
