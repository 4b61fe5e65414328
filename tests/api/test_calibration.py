"""Calibration and confidence sections through the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from tests.api.conftest import batch_body
from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate

pytestmark = pytest.mark.anyio


def overconfident(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities; the model's scores push them towards 0 and 1."""
    rng = np.random.default_rng(seed)
    true_p = rng.uniform(0.05, 0.95, n)
    label = (rng.random(n) < true_p).astype(int)
    logit = np.log(true_p / (1 - true_p))
    score = 1 / (1 + np.exp(-3 * logit))
    return label, score.round(9)


def columns(label: np.ndarray, score: np.ndarray) -> dict[str, list[Any]]:
    return {
        "sample_id": [str(i) for i in range(label.size)],
        "label": label.tolist(),
        "score": score.tolist(),
    }


async def test_reliability_brier_and_miscalibration_finding(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    label, score = overconfident()
    batch = (await client.post("/v1/batches", json=batch_body(columns(label, score)))).json()
    request = {
        "batch_id": batch["id"],
        "metrics": ["accuracy"],
        "calibration": {"bins": 10, "strategy": "uniform", "recalibrate": ["platt", "isotonic"]},
    }
    result = await evaluate(client, run_jobs, request)
    cal = result["calibration"]
    prob_true, prob_pred = calibration_curve(label, score, n_bins=10, strategy="uniform")
    bins = [b for b in cal["reliability"]["bins"] if b["count"] > 0]
    assert [b["observed"] for b in bins] == pytest.approx(prob_true.tolist(), abs=1e-12)
    assert [b["mean_predicted"] for b in bins] == pytest.approx(prob_pred.tolist(), abs=1e-12)
    assert cal["brier"]["brier"] == pytest.approx(brier_score_loss(label, score), abs=1e-12)
    counts = np.array([b["count"] for b in bins])
    ece = float(np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred)))
    assert cal["ece"] == pytest.approx(ece, abs=1e-12)
    assert [f["kind"] for f in result["findings"]] == ["miscalibrated"]
    methods = {r["method"]: r for r in cal["recalibration"]}
    assert methods["isotonic"]["after"]["ece"] <= methods["isotonic"]["before"]["ece"] / 2
    assert methods["platt"]["parameters"]["a"] == pytest.approx(1 / 3, abs=0.05)


async def test_confidence_threshold_and_risk_coverage(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    label, score = overconfident(seed=2)
    batch = (await client.post("/v1/batches", json=batch_body(columns(label, score)))).json()
    request = {"batch_id": batch["id"], "metrics": ["accuracy"], "confidence": {"target_accuracy": 0.9}}
    result = await evaluate(client, run_jobs, request)
    conf = result["confidence"]
    confidence = np.maximum(score, 1 - score)
    correct = (score >= 0.5).astype(int) == label
    threshold = conf["threshold"]["threshold"]
    kept = confidence >= threshold
    assert correct[kept].mean() >= 0.9
    assert conf["threshold"]["coverage"] == pytest.approx(kept.mean())
    # Lowest such threshold: keeping the next less confident rows too would miss the target.
    lower = confidence[confidence < threshold]
    if lower.size:
        assert correct[confidence >= lower.max()].mean() < 0.9
    coverages = [p["coverage"] for p in conf["risk_coverage"]]
    assert coverages == sorted(coverages) or coverages == sorted(coverages, reverse=True)
    assert conf["aurc"] is not None and 0 <= conf["aurc"] <= 1


async def test_regression_prediction_intervals(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, 1000)
    pred = y + rng.normal(0, 0.5, 1000)
    body = {
        "model": {"name": "r", "version": "1"},
        "task": "regression",
        "columns": {
            "sample_id": [str(i) for i in range(1000)],
            "label": y.tolist(),
            "prediction": pred.tolist(),
            "lower": (pred - 0.98).tolist(),
            "upper": (pred + 0.98).tolist(),
        },
    }
    batch = (await client.post("/v1/batches", json=body)).json()
    result = await evaluate(client, run_jobs, {"batch_id": batch["id"], "metrics": ["mae"], "confidence": {}})
    intervals = result["confidence"]["prediction_intervals"]
    assert intervals["coverage"] == pytest.approx(np.mean((y >= pred - 0.98) & (y <= pred + 0.98)))
    assert intervals["mean_width"] == pytest.approx(1.96)
    assert intervals["rows"] == 1000


async def test_sections_that_cannot_apply_are_422(client: httpx.AsyncClient) -> None:
    no_scores = batch_body({"sample_id": ["a", "b"], "label": [0, 1], "prediction": [0, 1]})
    batch = (await client.post("/v1/batches", json=no_scores)).json()
    reg = {
        "model": {"name": "r", "version": "1"},
        "task": "regression",
        "columns": {"sample_id": ["a"], "label": [1.0], "prediction": [1.0]},
    }
    reg_batch = (await client.post("/v1/batches", json=reg)).json()
    for batch_id, section in [
        (batch["id"], {"calibration": {}}),
        (batch["id"], {"confidence": {"target_accuracy": 0.9}}),
        (reg_batch["id"], {"calibration": {}}),
        (reg_batch["id"], {"confidence": {}}),
    ]:
        response = await client.post("/v1/evaluations", json={"batch_id": batch_id} | section)
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == next(iter(section)), problem
    bad = await client.post(
        "/v1/evaluations", json={"batch_id": batch["id"], "calibration": {"strategy": "magic"}}
    )
    assert assert_problem(bad, 422)["errors"][0]["field"] == "calibration.strategy"


async def test_a_calibrated_model_gets_an_ece_interval_and_no_finding(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(7)
    score = rng.uniform(0, 1, 20_000).round(9)
    label = (rng.random(score.size) < score).astype(int)
    batch = (await client.post("/v1/batches", json=batch_body(columns(label, score)))).json()
    request = {
        "batch_id": batch["id"],
        "metrics": ["accuracy"],
        "bootstrap": {"samples": 500, "seed": 0},
        "calibration": {"bins": 10},
    }
    result = await evaluate(client, run_jobs, request)
    cal = result["calibration"]
    assert cal["ece"] < 0.02
    interval = cal["ece_interval"]
    assert interval["low"] <= cal["ece"] <= interval["high"]
    assert result["findings"] == []
    assert cal["slope"] == pytest.approx(1.0, abs=0.1) and cal["intercept"] == pytest.approx(0.0, abs=0.1)


async def test_multiclass_top_label_and_temperature(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(11)
    n, classes = 3000, ["a", "b", "c"]
    logits = rng.normal(0, 1.5, (n, 3))
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    label = np.array([rng.choice(3, p=p) for p in true_p])
    sharp = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)  # overconfident
    sharp = sharp / sharp.sum(axis=1, keepdims=True)
    cols: dict[str, Any] = {"sample_id": [str(i) for i in range(n)], "label": [classes[k] for k in label]}
    for k, c in enumerate(classes):
        cols[f"score__{c}"] = sharp[:, k].tolist()
    body = {"model": {"name": "m3", "version": "1"}, "task": "multiclass", "columns": cols}
    batch = (await client.post("/v1/batches", json=body)).json()
    assert batch["id"], batch
    request = {
        "batch_id": batch["id"],
        "metrics": ["accuracy"],
        "calibration": {"recalibrate": ["temperature"]},
        "confidence": {"target_accuracy": 0.8},
    }
    result = await evaluate(client, run_jobs, request)
    cal = result["calibration"]
    assert set(cal["per_class"]) == set(classes) and cal["top_label"]["bins"]
    assert cal["top_label_ece"] == pytest.approx(cal["ece"])
    temperature = cal["recalibration"][0]
    assert temperature["method"] == "temperature"
    assert temperature["parameters"]["temperature"] == pytest.approx(2.0, abs=0.3)
    assert temperature["after"]["log_loss"] < temperature["before"]["log_loss"]
    top = sharp.max(axis=1)
    assert result["confidence"]["bins"][0]["low"] == pytest.approx(1 / 3)
    kept = top >= result["confidence"]["threshold"]["threshold"]
    assert (sharp.argmax(axis=1) == label)[kept].mean() >= 0.8


async def test_recalibration_needs_more_rows_than_folds(client: httpx.AsyncClient) -> None:
    batch = (
        await client.post(
            "/v1/batches", json=batch_body(columns(np.array([0, 1, 1]), np.array([0.2, 0.6, 0.9])))
        )
    ).json()
    response = await client.post(
        "/v1/evaluations",
        json={"batch_id": batch["id"], "calibration": {"recalibrate": ["platt"], "folds": 5}},
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "calibration.folds"
