"""Slice-based evaluation through the API: slice metrics, critical slices with history,
Simpson's paradox and the slice finder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate

pytestmark = pytest.mark.anyio


def body(columns: dict[str, Any], *, name: str = "fraud", version: str = "1") -> dict[str, Any]:
    return {
        "model": {"name": name, "version": version},
        "task": "binary",
        "positive_class": 1,
        "columns": columns,
    }


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> str:
    response = await client.post("/v1/batches", json=payload)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def planted(n: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Errors 5% everywhere except country=BR & device=ios (25%)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "country": rng.choice(["BR", "US", "DE", "IN"], n),
            "device": rng.choice(["ios", "android", "web"], n),
            "plan": rng.choice(["free", "pro"], n),
            "tenure_days": rng.integers(0, 400, n),
        }
    )
    label = rng.integers(0, 2, n)
    hard = (frame.country == "BR") & (frame.device == "ios")
    wrong = rng.random(n) < np.where(hard, 0.25, 0.05)
    frame["label"] = label
    frame["prediction"] = np.where(wrong, 1 - label, label)
    frame["score"] = np.clip(np.where(frame.prediction == 1, 0.7, 0.3) + rng.normal(0, 0.1, n), 0, 1).round(6)
    frame["sample_id"] = [f"s{i}" for i in range(n)]
    return frame


def columns_of(frame: pd.DataFrame) -> dict[str, Any]:
    return {c: frame[c].tolist() for c in frame.columns}


async def test_slice_metrics_equal_pandas_groupby_and_sklearn(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    frame = planted()
    batch_id = await post(client, body(columns_of(frame)))
    metrics = ["accuracy", "f1", "roc_auc", "log_loss"]
    request = {
        "batch_id": batch_id,
        "metrics": metrics,
        "slices": {"columns": ["country"], "crosses": [["country", "device"]], "min_support": 30},
    }
    result = await evaluate(client, run_jobs, request)
    by_country, by_cross = result["slices"]["groups"]
    assert by_country["columns"] == ["country"] and by_cross["columns"] == ["country", "device"]
    for value, part in frame.groupby("country"):
        got = next(s for s in by_country["slices"] if s["conditions"] == {"country": value})
        assert got["n"] == len(part) and got["share"] == pytest.approx(len(part) / len(frame))
        assert got["metrics"]["accuracy"]["value"] == pytest.approx(
            skm.accuracy_score(part.label, part.prediction), abs=1e-9
        )
        assert got["metrics"]["f1"]["value"] == pytest.approx(
            skm.f1_score(part.label, part.prediction), abs=1e-9
        )
        assert got["metrics"]["roc_auc"]["value"] == pytest.approx(
            skm.roc_auc_score(part.label, part.score), abs=1e-9
        )
        assert got["metrics"]["log_loss"]["value"] == pytest.approx(
            skm.log_loss(part.label, part.score), abs=1e-9
        )
    assert len(by_cross["slices"]) == 12
    hard = next(s for s in by_cross["slices"] if s["conditions"] == {"country": "BR", "device": "ios"})
    assert hard["metrics"]["accuracy"]["difference"] < 0
    under = [f for f in result["findings"] if f["kind"] == "underperforming_slice"]
    assert any(f["details"]["conditions"] == {"country": "BR", "device": "ios"} for f in under)
    # One finding per slice, with every metric it fails on inside.
    keys = [repr(sorted(f["details"]["conditions"].items())) for f in under]
    assert len(keys) == len(set(keys))
    hard_finding = next(f for f in under if f["details"]["conditions"] == {"country": "BR", "device": "ios"})
    assert "accuracy" in {m["metric"] for m in hard_finding["details"]["metrics"]}


async def test_minority_slices_are_flagged_not_hidden(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    frame = planted(2000)
    frame.loc[:9, "plan"] = "enterprise"  # 10 rows: a minority
    batch_id = await post(client, body(columns_of(frame)))
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy"],
        "slices": {"columns": ["plan"], "min_support": 30},
    }
    result = await evaluate(client, run_jobs, request)
    slices = {s["conditions"]["plan"]: s for s in result["slices"]["groups"][0]["slices"]}
    assert slices["enterprise"]["n"] == 10 and slices["enterprise"]["minority"] is True
    assert slices["free"]["minority"] is False


async def test_critical_slice_with_history_oldest_first(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    critical = {"critical": [{"name": "new-users", "where": "tenure_days < 30"}]}
    values = []
    for version, seed in (("1", 1), ("2", 2), ("3", 3)):
        frame = planted(1500, seed=seed)
        batch_id = await post(client, body(columns_of(frame), version=version))
        result = await evaluate(
            client, run_jobs, {"batch_id": batch_id, "metrics": ["accuracy"], "slices": critical}
        )
        entry = result["slices"]["critical"][0]
        new = frame[frame.tenure_days < 30]
        assert entry["n"] == len(new)
        assert entry["metrics"]["accuracy"]["value"] == pytest.approx(
            skm.accuracy_score(new.label, new.prediction)
        )
        values.append(entry["metrics"]["accuracy"]["value"])
    history = entry["history"]
    assert [h["version"] for h in history] == ["1", "2"]
    assert [h["metrics"]["accuracy"] for h in history] == pytest.approx(values[:2])


def kidney_rows(small: tuple[int, int], large: tuple[int, int], prefix: str) -> dict[str, Any]:
    """Rows whose correctness reproduces (successes, total) for small and large stones."""
    label, prediction, size = [], [], []
    for stone, (ok, total) in (("small", small), ("large", large)):
        for i in range(total):
            label.append(1)
            prediction.append(1 if i < ok else 0)
            size.append(stone)
    ids = [f"{prefix}{i}" for i in range(len(label))]
    return {"sample_id": ids, "label": label, "prediction": prediction, "stone_size": size}


async def test_kidney_stone_paradox_against_an_existing_model(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    # Charig et al. (1986): A is better for small (81/87 vs 234/270) and large (192/263 vs 55/80)
    # stones, yet worse overall (273/350 vs 289/350): A got the hard cases.
    model = await post(client, body(kidney_rows((81, 87), (192, 263), "a"), name="treatment-a"))
    other = await post(client, body(kidney_rows((234, 270), (55, 80), "b"), name="treatment-b"))
    request = {
        "batch_id": model,
        "metrics": ["accuracy"],
        "baselines": {"existing": [{"name": "treatment-b", "batch_id": other}]},
        "slices": {"columns": ["stone_size"], "min_support": 30},
    }
    result = await evaluate(client, run_jobs, request)
    paradox = [f for f in result["findings"] if f["kind"] == "simpsons_paradox"]
    assert len(paradox) == 1
    details = paradox[0]["details"]
    assert details["column"] == "stone_size" and details["baseline"] == "treatment-b"
    aggregate = details["aggregate"]
    assert aggregate["model"]["accuracy"] == pytest.approx(273 / 350)
    assert aggregate["baseline"]["accuracy"] == pytest.approx(289 / 350)
    per_slice = {s["value"]: s for s in details["per_slice"]}
    assert per_slice["small"]["model"]["accuracy"] == pytest.approx(81 / 87)
    assert per_slice["large"]["baseline"]["accuracy"] == pytest.approx(55 / 80)


async def test_slice_finder_finds_the_planted_slice(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    frame = planted(20_000, seed=5)
    batch_id = await post(client, body(columns_of(frame)))
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy"],
        "slices": {
            "finder": {
                "max_conditions": 2,
                "top_k": 5,
                "alpha": 0.05,
                "columns": ["country", "device", "plan"],
            }
        },
    }
    result = await evaluate(client, run_jobs, request)
    top = result["slices"]["finder"]["slices"][0]
    assert top["conditions"] == {"country": "BR", "device": "ios"}
    assert top["significant"] is True and top["error"] > 0.15
    hard = frame[(frame.country == "BR") & (frame.device == "ios")]
    assert top["n"] == len(hard)
    assert result["slices"]["tree"] is not None


async def test_bad_slice_requests_are_422(client: httpx.AsyncClient) -> None:
    batch_id = await post(client, body(columns_of(planted(100))))
    cases = [
        ({"columns": ["nope"]}, "slices.columns[0]"),
        ({"crosses": [["country"]]}, "slices.crosses[0]"),
        ({"critical": [{"name": "x", "where": "tenure_days <"}]}, "slices.critical[0].where"),
        ({"finder": {"columns": ["country", "ghost"]}}, "slices.finder.columns[1]"),
    ]
    for slices, field in cases:
        response = await client.post("/v1/evaluations", json={"batch_id": batch_id, "slices": slices})
        assert assert_problem(response, 422)["errors"][0]["field"] == field
