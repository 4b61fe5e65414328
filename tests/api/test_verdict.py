"""A result leads with what matters: the verdict, ranked findings, an honest primary metric,
the threshold that made the predictions, and checks that never look at the label as a feature."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn import metrics as skm

from service.workers import simpsons
from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate
from tests.api.test_slices import body, post
from tests.unit.test_slice_flagging import COUNTRIES, DEVICES, fraud_like

pytestmark = pytest.mark.anyio

SEVERITY = {"critical": 0, "warning": 1, "info": 2}


def fraud_columns(seed: int, *, planted: bool) -> dict[str, Any]:
    data = fraud_like(seed, planted=planted)
    n = data["y"].size
    return {
        "sample_id": [f"s{i}" for i in range(n)],
        "label": data["y"].tolist(),
        "prediction": data["pred"].tolist(),
        "score": data["score"].round(6).tolist(),
        "country": [COUNTRIES[c] for c in data["country"]],
        "device": [DEVICES[d] for d in data["device"]],
    }


async def test_the_planted_cell_leads_the_findings_and_the_verdict(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post(client, body(fraud_columns(0, planted=True)))
    request = {
        "batch_id": batch_id,
        "bootstrap": {"samples": 200, "seed": 0},
        "slices": {"columns": ["country", "device"], "crosses": [["country", "device"]]},
    }
    result = await evaluate(client, run_jobs, request)
    findings = result["findings"]
    assert [f["rank"] for f in findings] == list(range(1, len(findings) + 1))
    assert findings[0]["kind"] == "underperforming_slice"
    assert findings[0]["details"]["conditions"] == {"country": "AR", "device": "web"}
    assert findings[0]["impact"] > 0
    assert "AR" in findings[0]["message"] and "web" in findings[0]["message"]
    under = [f for f in findings if f["kind"] == "underperforming_slice"]
    assert 1 <= len(under) <= 3
    flagging = result["slices"]["flagging"]
    assert flagging["flagged"] == len(under)
    assert any(e["conditions"] == {"country": "AR"} for e in flagging["explained"])
    verdict = result["verdict"]
    assert verdict["status"] == "warn"
    assert verdict["reasons"][0] == findings[0]["message"]
    assert (verdict["rows"], verdict["labeled_rows"], verdict["label_coverage"]) == (50_000, 50_000, 1.0)
    # 30% positives: balanced enough for accuracy, with its interval beside it
    primary = verdict["primary_metric"]
    assert primary["name"] == "accuracy" and primary["value"] == result["metrics"]["accuracy"]
    assert primary["interval"] == result["intervals"]["accuracy"]
    assert primary["interval"]["low"] <= primary["value"] <= primary["interval"]["high"]


async def test_findings_are_ordered_by_severity_then_impact_and_capped(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = fraud_columns(1, planted=True)
    perfect = {"sample_id": cols["sample_id"], "label": cols["label"], "prediction": cols["label"]}
    champion_id = await post(client, body(perfect, name="champion"))  # a critical finding
    cols["label"] = cols["label"][:-2000] + [None] * 2000  # an info finding: unlabeled rows
    batch_id = await post(client, body(cols))
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy"],
        "baselines": {"random_uniform": True, "existing": [{"name": "champion", "batch_id": champion_id}]},
        "slices": {"columns": ["country", "device"], "crosses": [["country", "device"]], "min_effect": 0},
        "calibration": {"ece_tolerance": 0.001},
    }
    full = await evaluate(client, run_jobs, request)
    findings = full["findings"]
    assert len(findings) >= 4 and full["findings_omitted"] == 0
    assert findings[0]["kind"] == "worse_than_baseline" and findings[0]["severity"] == "critical"
    keys = [(SEVERITY[f["severity"]], -f["impact"]) for f in findings]
    assert keys == sorted(keys)
    assert findings[-1]["kind"] == "unlabeled_rows" and findings[-1]["impact"] == pytest.approx(0.04)
    capped = await evaluate(client, run_jobs, request | {"findings": {"max": 2}})
    assert [f["kind"] for f in capped["findings"]] == [f["kind"] for f in findings[:2]]
    assert capped["findings_omitted"] == len(findings) - 2
    # the verdict weighs every finding, not only the listed ones
    assert capped["verdict"]["status"] == full["verdict"]["status"]


async def test_a_good_model_passes_with_a_plain_reason(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post(client, body(fraud_columns(2, planted=False)))
    request = {
        "batch_id": batch_id,
        "slices": {"columns": ["country", "device"]},
        "gates": [{"metric": "accuracy", "min": 0.8}],
    }
    result = await evaluate(client, run_jobs, request)
    assert result["verdict"]["status"] == "pass", result["verdict"]
    assert result["verdict"]["reasons"] == ["all 1 gates passed and no finding needs attention"]
    failing = await evaluate(client, run_jobs, request | {"gates": [{"metric": "accuracy", "min": 0.9}]})
    assert failing["verdict"]["status"] == "fail"
    assert failing["verdict"]["reasons"][0].startswith("gate failed: accuracy")


def imbalanced(n: int = 4000, seed: int = 3) -> dict[str, Any]:
    """5% positives; the model flags 5% of rows, mostly the wrong ones: high accuracy, useless F1."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.05).astype(int)
    pred = np.zeros(n, dtype=int)
    flagged = rng.choice(n, n // 20, replace=False)
    pred[flagged] = (rng.random(flagged.size) < 0.5).astype(int)  # half the flags land, at random
    pred[flagged[: n // 80]] = y[flagged[: n // 80]]
    score = np.clip(0.1 + 0.6 * pred + rng.normal(0, 0.05, n), 0.001, 0.999)
    return {
        "sample_id": [f"s{i}" for i in range(n)],
        "label": y.tolist(),
        "prediction": pred.tolist(),
        "score": score.round(6).tolist(),
    }


async def test_on_imbalanced_data_the_primary_metric_is_one_zero_rule_cannot_win(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = imbalanced()
    batch_id = await post(client, body(cols))
    request = {"batch_id": batch_id, "baselines": {"random_uniform": True, "zero_rule": True}}
    result = await evaluate(client, run_jobs, request)
    primary = result["verdict"]["primary_metric"]
    assert primary["name"] == "f1"
    assert "positive class holds" in primary["chosen_because"]
    y, pred = np.array(cols["label"]), np.array(cols["prediction"])
    assert primary["value"] == pytest.approx(skm.f1_score(y, pred))
    uniform = next(b for b in result["baselines"] if b["kind"] == "random_uniform")
    # beats follows the primary metric: the model's F1 is below a coin's, so it does not beat it
    assert uniform["primary_metric"] == "f1"
    assert result["metrics"]["f1"] < uniform["metrics"]["f1"]
    assert result["metrics"]["accuracy"] > uniform["metrics"]["accuracy"]
    assert uniform["beats"] is False
    worse = [f for f in result["findings"] if f["kind"] == "worse_than_baseline"]
    assert {f["details"]["baseline"] for f in worse} >= {"random_uniform"}
    assert result["verdict"]["status"] in ("warn", "fail")


async def test_rule_and_human_baselines_are_compared_on_a_label_metric_when_the_primary_needs_scores(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = fraud_columns(4, planted=False)
    batch_id = await post(client, body(cols))
    human = {k: cols[k] for k in ("sample_id", "label")}
    human["prediction"] = list(cols["label"])  # a perfect reviewer
    human_id = await post(client, body(human, name="humans"))
    rule = {"name": "web-is-fraud", "rules": [{"when": 'device = "web"', "then": 1}], "otherwise": 0}
    request = {
        "batch_id": batch_id,
        "metrics": ["roc_auc"],
        "baselines": {"heuristics": [rule], "human": {"batch_id": human_id}},
    }
    result = await evaluate(client, run_jobs, request)
    assert "accuracy" in result["metrics"]  # added: the label metric the baselines are compared on
    for baseline in result["baselines"]:
        assert baseline["primary_metric"] == "accuracy", baseline["name"]
        assert baseline["beats"] is not None, baseline["name"]
        assert "roc_auc needs scores" in baseline["details"]["compared_on"]
    by_name = {b["name"]: b for b in result["baselines"]}
    assert by_name["web-is-fraud"]["beats"] is True  # a useless rule
    assert by_name["human"]["beats"] is False
    assert result["verdict"]["primary_metric"]["name"] == "roc_auc"


async def test_the_threshold_of_derived_predictions_is_chosen_and_reported(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(5)
    n = 500
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1).round(6)
    cols = {"sample_id": [f"s{i}" for i in range(n)], "label": y.tolist(), "score": score.tolist()}
    default_id = await post(client, body(cols))
    tuned = await client.post("/v1/batches", json=body(cols) | {"threshold": 0.3})
    assert tuned.status_code == 201, tuned.text
    prediction = next(c for c in tuned.json()["columns"] if c["role"] == "prediction")
    assert prediction["derived"] == {"source": "score", "threshold": 0.3, "rows": n}

    default = await evaluate(client, run_jobs, {"batch_id": default_id, "metrics": ["accuracy"]})
    assert default["threshold"] == {"value": 0.5, "source": "default", "derived_rows": n}
    assert default["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, score >= 0.5))
    batch = await evaluate(client, run_jobs, {"batch_id": tuned.json()["id"], "metrics": ["accuracy"]})
    assert batch["threshold"] == {"value": 0.3, "source": "batch", "derived_rows": n}
    assert batch["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, score >= 0.3))
    asked = await evaluate(
        client, run_jobs, {"batch_id": default_id, "metrics": ["accuracy"], "threshold": 0.7}
    )
    assert asked["threshold"] == {"value": 0.7, "source": "request", "derived_rows": n}
    assert asked["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, score >= 0.7))


@pytest.mark.parametrize("value", [0, 1, 1.5, -0.1, "high"])
async def test_a_bad_batch_threshold_is_a_422_naming_it(client: httpx.AsyncClient, value: Any) -> None:
    cols = {"sample_id": ["a", "b"], "label": [0, 1], "score": [0.2, 0.9]}
    response = await client.post("/v1/batches", json=body(cols) | {"threshold": value})
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["threshold"]


async def test_a_threshold_without_binary_scores_is_a_422(client: httpx.AsyncClient) -> None:
    cols = {"sample_id": ["a", "b"], "label": [0, 1], "prediction": [0, 1]}
    batch_id = await post(client, body(cols))
    response = await client.post("/v1/evaluations", json={"batch_id": batch_id, "threshold": 0.4})
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["threshold"]


async def test_the_trend_reversal_check_never_treats_the_label_as_a_feature(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    # Within each region, errors are rarer on label 1; overall label 1 rows come mostly from the
    # hard region, so the error rises with the label: a "reversal" that says nothing about data.
    rng = np.random.default_rng(6)
    n = 6000
    region = rng.integers(0, 2, n)
    y = (rng.random(n) < np.where(region == 0, 0.9, 0.1)).astype(int)
    error_rate = np.where(region == 0, np.where(y == 1, 0.3, 0.4), np.where(y == 1, 0.05, 0.1))
    wrong = rng.random(n) < error_rate
    pred = np.where(wrong, 1 - y, y)
    codes = region.astype(np.intp)
    fires = simpsons.trend_reversal(
        y.astype(float),
        wrong.astype(float),
        codes,
        ["hard", "easy"],
        x_name="label",
        strata_name="region",
        min_support=30,
    )
    assert fires is not None  # the check itself would call this a paradox about the label
    cols = {
        "sample_id": [f"s{i}" for i in range(n)],
        "label": y.tolist(),
        "prediction": pred.tolist(),
        "region": ["hard" if r == 0 else "easy" for r in region],
        "amount": rng.normal(0, 1, n).round(4).tolist(),
    }
    batch_id = await post(client, body(cols))
    result = await evaluate(client, run_jobs, {"batch_id": batch_id, "slices": {"columns": ["region"]}})
    about = [f["details"]["x"] for f in result["findings"] if f["kind"] == "simpsons_paradox"]
    assert not any(name in ("label", "prediction", "score") for name in about), about


async def test_a_declared_class_that_never_occurs_is_left_out_of_macro_averages_unless_asked(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(7)
    n = 600
    y = rng.choice(["cat", "dog"], n)
    pred = np.where(rng.random(n) < 0.8, y, rng.choice(["cat", "dog"], n))
    cols = {"sample_id": [f"s{i}" for i in range(n)], "label": y.tolist(), "prediction": pred.tolist()}
    payload = {
        "model": {"name": "pets", "version": "1"},
        "task": "multiclass",
        "classes": ["cat", "dog", "bird"],  # no bird anywhere
        "columns": cols,
    }
    batch_id = await post(client, payload)
    names = ["f1_macro", "precision_macro", "recall_macro", "balanced_accuracy"]
    present = await evaluate(client, run_jobs, {"batch_id": batch_id, "metrics": names})
    declared = await evaluate(
        client, run_jobs, {"batch_id": batch_id, "metrics": names, "labels": "declared"}
    )
    every = ["cat", "dog", "bird"]
    for name, fn in (("f1_macro", skm.f1_score), ("precision_macro", skm.precision_score)):
        assert present["metrics"][name] == pytest.approx(fn(y, pred, average="macro"))
        assert declared["metrics"][name] == pytest.approx(
            fn(y, pred, average="macro", labels=every, zero_division=0)
        )
    assert present["metrics"]["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert declared["metrics"]["f1_macro"] < present["metrics"]["f1_macro"]
    assert "bird" in " ".join(present["notes"].values())
