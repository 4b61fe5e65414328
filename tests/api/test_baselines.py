"""The baseline panel through the API (issue: baseline panel and model comparison)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from service.jobs.worker import JobWorker
from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import assert_problem
from tests.api.test_evaluations import evaluate

pytestmark = pytest.mark.anyio


def ninety_ten() -> dict[str, list[Any]]:
    """90 negatives and 10 positives; the model finds 8 positives with 4 false alarms."""
    label = [0] * 90 + [1] * 10
    pred = [0] * 86 + [1] * 4 + [1] * 8 + [0] * 2
    rng = np.random.default_rng(0)
    amount = np.where(np.array(label) == 1, rng.normal(2000, 300, 100), rng.normal(300, 200, 100)).round(2)
    return {
        "sample_id": [f"s{i}" for i in range(100)],
        "label": label,
        "prediction": pred,
        "amount": amount.tolist(),
        "country": (["BR", "US"] * 50),
    }


def by_kind(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in result["baselines"]}


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    return batch_id


async def test_random_and_zero_rule_baselines_on_the_90_10_batch(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch_id = await post(client, batch_body(ninety_ten()))
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy", "f1", "precision"],
        "baselines": {"random_uniform": True, "random_prior": True, "zero_rule": True},
    }
    result = await evaluate(client, run_jobs, request)
    panel = by_kind(result)
    assert {b["kind"] for b in result["baselines"]} == {"random_uniform", "random_prior", "zero_rule"}
    uniform, prior, zero = panel["random_uniform"], panel["random_prior"], panel["zero_rule"]
    assert uniform["metrics"]["accuracy"] == pytest.approx(0.5)
    assert uniform["metrics"]["f1"] == pytest.approx(1 / 6)
    assert prior["metrics"]["accuracy"] == pytest.approx(0.82)
    assert prior["metrics"]["f1"] == pytest.approx(0.10)
    assert zero["metrics"]["accuracy"] == pytest.approx(0.9)
    assert zero["metrics"]["precision"] is None and zero["undefined"]["precision"]
    model_acc = result["metrics"]["accuracy"]
    assert model_acc == pytest.approx(0.94)
    for baseline in (uniform, prior, zero):
        assert baseline["lift"]["accuracy"] == pytest.approx(model_acc - baseline["metrics"]["accuracy"])
        assert baseline["pairing"]["mode"] in ("expected", "paired")
    assert zero["pairing"]["mode"] == "paired"
    # McNemar on the discordant pairs against always-0: model right/zero wrong = 8, the reverse = 4.
    assert zero["significance"]["accuracy"]["test"] == "mcnemar_exact"
    assert zero["significance"]["accuracy"]["p_value"] == pytest.approx(stats.binomtest(4, 12, 0.5).pvalue)
    assert zero["beats"] is False
    kinds = [(f["kind"], f["details"].get("baseline")) for f in result["findings"]]
    assert ("worse_than_baseline", "zero_rule") in kinds


async def test_heuristic_rules_are_evaluated_and_compared_paired(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = ninety_ten()
    batch_id = await post(client, batch_body(cols))
    heuristic = {
        "name": "big-amount",
        "rules": [{"when": "amount > 1000 and country in ('BR', 'US')", "then": 1}],
        "otherwise": 0,
    }
    request = {"batch_id": batch_id, "metrics": ["accuracy", "f1"], "baselines": {"heuristics": [heuristic]}}
    result = await evaluate(client, run_jobs, request)
    rule = by_kind(result)["big-amount"]
    assert rule["kind"] == "heuristic"
    expected_pred = (np.array(cols["amount"]) > 1000).astype(int)
    assert rule["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(cols["label"], expected_pred))
    assert rule["metrics"]["f1"] == pytest.approx(skm.f1_score(cols["label"], expected_pred))
    assert rule["pairing"] == {
        "mode": "paired",
        "shared_rows": 100,
        "model_only_rows": 0,
        "baseline_only_rows": 0,
        "note": None,
    }


async def test_rules_may_use_score_and_label_columns_too(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = ninety_ten()
    batch_id = await post(client, batch_body(cols))
    heuristic = {"name": "copy", "rules": [{"when": "prediction == 1", "then": 1}], "otherwise": 0}
    request = {"batch_id": batch_id, "metrics": ["accuracy"], "baselines": {"heuristics": [heuristic]}}
    result = await evaluate(client, run_jobs, request)
    copy = by_kind(result)["copy"]
    assert copy["metrics"]["accuracy"] == result["metrics"]["accuracy"]
    assert copy["significance"]["accuracy"]["verdict"] == "no_significant_difference"
    assert copy["significance"]["accuracy"]["p_value"] == 1.0


async def test_regression_zero_rule_reports_mean_and_median(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(4)
    y = rng.exponential(10, 500)
    pred = y + rng.normal(0, 1, 500)
    body = {
        "model": {"name": "price", "version": "1"},
        "task": "regression",
        "columns": {
            "sample_id": [str(i) for i in range(500)],
            "label": y.tolist(),
            "prediction": pred.tolist(),
        },
    }
    batch_id = await post(client, body)
    request = {"batch_id": batch_id, "metrics": ["mae", "r2"], "baselines": {"zero_rule": True}}
    result = await evaluate(client, run_jobs, request)
    mean, median = by_kind(result)["zero_rule"], by_kind(result)["zero_rule (median)"]
    assert mean["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(y, np.full(500, y.mean())))
    assert median["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(y, np.full(500, np.median(y))))
    assert mean["beats"] is True and mean["significance"]["mae"]["verdict"] == "better"
    assert mean["lift"]["mae"] < 0  # a loss: the model's is lower
    response = await client.post(
        "/v1/evaluations", json={"batch_id": batch_id, "baselines": {"random_uniform": True}}
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "baselines.random_uniform"


async def test_human_baseline_joins_by_sample_id_and_counts_the_unjoined(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = ninety_ten()
    model_id = await post(client, batch_body(cols))
    # Humans answered 80 of the model's samples (s10..s89) plus 5 the model never saw.
    ids = [f"s{i}" for i in range(10, 90)] + [f"x{i}" for i in range(5)]
    answers = [1 if i % 7 == 0 else 0 for i in range(85)]
    human = {
        "model": {"name": "humans", "version": "2026-11"},
        "task": "binary",
        "positive_class": 1,
        "columns": {"sample_id": ids, "prediction": answers},
    }
    human_id = await post(client, human)
    request = {
        "batch_id": model_id,
        "metrics": ["accuracy", "roc_auc"],
        "baselines": {"human": {"batch_id": human_id}},
    }
    body = batch_body(cols)
    body["columns"]["score"] = [0.9 if p else 0.1 for p in cols["prediction"]]
    model_id = await post(client, body)
    request["batch_id"] = model_id
    result = await evaluate(client, run_jobs, request)
    entry = by_kind(result)["human"]
    assert entry["metrics"]["roc_auc"] is None and "without probabilities" in entry["undefined"]["roc_auc"]
    assert entry["significance"]["roc_auc"]["verdict"] == "undefined"
    assert entry["kind"] == "human"
    pairing = entry["pairing"]
    assert (
        pairing["mode"],
        pairing["shared_rows"],
        pairing["model_only_rows"],
        pairing["baseline_only_rows"],
    ) == ("paired", 80, 20, 5)
    shared = slice(10, 90)
    y = np.array(cols["label"])[shared]
    assert entry["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, answers[:80]))
    # Paired: the model's side of the comparison is computed on the same 80 rows.
    model_on_shared = skm.accuracy_score(y, np.array(cols["prediction"])[shared])
    assert entry["significance"]["accuracy"]["model"] == pytest.approx(model_on_shared)


async def test_existing_model_on_disjoint_rows_is_compared_unpaired(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(1)
    model_id = await post(client, batch_body(ninety_ten()))
    label = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.6, label, 1 - label)
    champion = {
        "model": {"name": "champion", "version": "q3"},
        "task": "binary",
        "positive_class": 1,
        "columns": {
            "sample_id": [f"old{i}" for i in range(300)],
            "label": label.tolist(),
            "prediction": pred.tolist(),
        },
    }
    champion_id = await post(client, champion)
    request = {
        "batch_id": model_id,
        "metrics": ["accuracy", "f1"],
        "baselines": {"existing": [{"name": "champion", "batch_id": champion_id}]},
    }
    result = await evaluate(client, run_jobs, request)
    entry = by_kind(result)["champion"]
    assert entry["kind"] == "existing"
    assert entry["pairing"]["mode"] == "unpaired" and entry["pairing"]["note"]
    assert entry["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(label, pred))
    assert entry["significance"]["accuracy"]["test"] == "two_proportion_z"
    assert entry["significance"]["f1"]["difference_interval"] is not None


@pytest.mark.parametrize(
    ("rule", "position"),
    [
        ("__import__('os').system('true')", 10),
        ("amount > 1 or exec('x')", 18),
        ("amount >", 8),
        ("amount.__class__ == 1", 6),
    ],
)
async def test_bad_or_malicious_rules_are_422_with_the_position(
    client: httpx.AsyncClient, rule: str, position: int
) -> None:
    batch_id = await post(client, batch_body(ninety_ten()))
    heuristic = {"name": "evil", "rules": [{"when": rule, "then": 1}], "otherwise": 0}
    response = await client.post(
        "/v1/evaluations", json={"batch_id": batch_id, "baselines": {"heuristics": [heuristic]}}
    )
    problem = assert_problem(response, 422)
    issue = problem["errors"][0]
    assert issue["field"] == "baselines.heuristics[0].rules[0].when"
    assert "position" in issue["message"]
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_unknown_column_and_bad_then_value_are_422(client: httpx.AsyncClient) -> None:
    batch_id = await post(client, batch_body(ninety_ten()))
    for heuristic, field in [
        ({"name": "h", "rules": [{"when": "amout > 1", "then": 1}], "otherwise": 0}, "rules[0].when"),
        ({"name": "h", "rules": [{"when": "amount > 1", "then": 7}], "otherwise": 0}, "rules[0].then"),
        ({"name": "h", "rules": [{"when": "amount > 1", "then": 1}], "otherwise": "x"}, "otherwise"),
    ]:
        response = await client.post(
            "/v1/evaluations", json={"batch_id": batch_id, "baselines": {"heuristics": [heuristic]}}
        )
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == f"baselines.heuristics[0].{field}", problem


async def test_baseline_batches_must_exist_and_match_the_task(client: httpx.AsyncClient) -> None:
    batch_id = await post(client, batch_body(ninety_ten()))
    regression = await post(
        client,
        {
            "model": {"name": "r", "version": "1"},
            "task": "regression",
            "columns": {"sample_id": ["s0"], "prediction": [1.0]},
        },
    )
    for baselines, field in [
        ({"human": {"batch_id": "nope"}}, "baselines.human.batch_id"),
        ({"existing": [{"name": "c", "batch_id": regression}]}, "baselines.existing[0].batch_id"),
    ]:
        response = await client.post("/v1/evaluations", json={"batch_id": batch_id, "baselines": baselines})
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["field"] == field, problem


async def _full_panel(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    """A scored model, a human batch and a champion on the same ids, and every baseline kind."""
    cols = binary_columns(600, seed=11)
    rng = np.random.default_rng(12)
    label = np.array(cols["label"])
    model_id = await post(client, batch_body(cols))
    champion = batch_body(cols)
    champion["model"] = {"name": "champion", "version": "q3"}
    champion["columns"]["score"] = np.clip(0.2 * label + 0.8 * rng.random(label.size), 0, 1).round(6).tolist()
    champion_id = await post(client, champion)
    human_id = await post(
        client,
        {
            "model": {"name": "humans", "version": "1"},
            "task": "binary",
            "positive_class": 1,
            "columns": {
                "sample_id": cols["sample_id"][50:],
                "prediction": np.where(rng.random(550) < 0.8, label[50:], 1 - label[50:]).tolist(),
            },
        },
    )
    request = {
        "batch_id": model_id,
        "metrics": ["accuracy", "f1", "roc_auc", "average_precision", "log_loss"],
        "baselines": {
            "random_uniform": True,
            "random_prior": True,
            "zero_rule": True,
            "heuristics": [{"name": "big", "rules": [{"when": "amount > 110", "then": 1}], "otherwise": 0}],
            "human": {"batch_id": human_id},
            "existing": [{"name": "champion", "batch_id": champion_id}],
        },
    }
    return request, champion_id


async def test_the_panel_is_the_same_with_one_thread_or_several(client: httpx.AsyncClient, app: Any) -> None:
    """Sides prepared in parallel threads give exactly the sequential result, in request order."""
    request, _ = await _full_panel(client)
    panels = []
    for threads in (1, 2, 3):
        settings = app.state.settings.model_copy(update={"job_threads": threads})
        job = (await client.post("/v1/evaluations", json=request)).json()
        assert JobWorker(app.state.store, settings, worker_id=f"w{threads}").run_once() is not None
        result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
        panels.append((result["metrics"], result["baselines"], result["findings"]))
    assert panels[0] == panels[1] == panels[2]
    names = [b["name"] for b in panels[0][1]]
    assert names == ["random_uniform", "random_prior", "zero_rule", "big", "human", "champion"]
    assert by_kind({"baselines": panels[0][1]})["human"]["pairing"]["model_only_rows"] == 50


async def test_a_baseline_batch_deleted_before_the_job_runs_fails_only_the_baselines(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    request, champion_id = await _full_panel(client)
    job = (await client.post("/v1/evaluations", json=request)).json()
    assert (await client.delete(f"/v1/batches/{champion_id}")).status_code == 204
    assert run_jobs() == 1
    status = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert status["status"] == "succeeded", status
    result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    # the section's error names the missing batch; the metrics are all there
    assert set(result["errors"]) == {"baselines"}
    assert champion_id in result["errors"]["baselines"]["error"]
    assert result["baselines"] == []
    assert all(result["metrics"][m] is not None for m in request["metrics"])
    assert result["verdict"]["status"] == "warn"
    assert result["verdict"]["missing_sections"] == ["baselines"]
    assert any("baselines section could not finish" in r for r in result["verdict"]["reasons"])


async def test_interval_method_chooses_bootstrap_or_delong_for_score_metrics(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    request, _ = await _full_panel(client)
    tests = {}
    for method in ("auto", "bootstrap", "delta_method"):
        body = request | {"baselines": request["baselines"] | {"interval_method": method}}
        result = await evaluate(client, run_jobs, body)
        panel = by_kind(result)
        tests[method] = (
            panel["champion"]["significance"]["roc_auc"]["test"],
            panel["champion"]["significance"]["log_loss"]["test"],
            panel["random_prior"]["significance"]["average_precision"]["test"],
            panel["champion"]["significance"]["f1"]["test"],
        )
        for entry in result["baselines"]:
            for name, comparison in entry["significance"].items():
                defined = comparison["model"] is not None and comparison["baseline"] is not None
                assert (comparison["difference_interval"] is not None) == defined, (entry["name"], name)
    # 600 rows x 1000 samples: auto resamples
    assert (
        tests["auto"]
        == tests["bootstrap"]
        == (
            "paired_bootstrap",
            "paired_bootstrap",
            "bootstrap",
            "paired_bootstrap",
        )
    )
    assert tests["delta_method"] == (
        "paired_delong",
        "paired_delta_method",
        "delta_method",
        "paired_bootstrap",
    )
    bad = request | {"baselines": request["baselines"] | {"interval_method": "jackknife"}}
    problem = assert_problem(await client.post("/v1/evaluations", json=bad), 422)
    assert any("interval_method" in e["field"] for e in problem["errors"])


async def test_a_human_batch_with_duplicate_ids_is_refused_so_joins_stay_one_to_one(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    """A join by sample_id is one-to-one: duplicate ids are a 422 naming the row, never joined."""
    model_id = await post(client, batch_body(ninety_ten()))
    ids = [f"s{i}" for i in range(10)] + ["s3"]
    human = {
        "model": {"name": "humans", "version": "1"},
        "task": "binary",
        "positive_class": 1,
        "columns": {"sample_id": ids, "prediction": [0] * 11},
    }
    problem = assert_problem(await client.post("/v1/batches", json=human), 422)
    assert any(e["field"] == "columns.sample_id" and e.get("row") == 10 for e in problem["errors"]), problem
    # without the duplicate the same answers join on their 10 ids; the other 90 are model-only
    human["columns"] = {"sample_id": ids[:10], "prediction": [0] * 10}
    request = {
        "batch_id": model_id,
        "metrics": ["accuracy"],
        "baselines": {"human": {"batch_id": await post(client, human)}},
    }
    pairing = by_kind(await evaluate(client, run_jobs, request))["human"]["pairing"]
    assert (pairing["shared_rows"], pairing["model_only_rows"], pairing["baseline_only_rows"]) == (10, 90, 0)


async def test_the_first_matching_rule_wins(client: httpx.AsyncClient, run_jobs: Callable[[], int]) -> None:
    cols = ninety_ten()
    batch_id = await post(client, batch_body(cols))
    heuristic = {
        "name": "tiers",
        "rules": [
            {"when": "amount > 1000", "then": 1},
            {"when": "amount > 200", "then": 0},  # overlaps the first rule, which wins
            {"when": "country == 'BR'", "then": 0},
        ],
        "otherwise": 1,
    }
    request = {"batch_id": batch_id, "metrics": ["accuracy", "f1"], "baselines": {"heuristics": [heuristic]}}
    rule = by_kind(await evaluate(client, run_jobs, request))["tiers"]
    amount, country = np.array(cols["amount"]), np.array(cols["country"])
    expected = np.where(amount > 1000, 1, np.where(amount > 200, 0, np.where(country == "BR", 0, 1)))
    assert rule["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(cols["label"], expected))
    assert rule["metrics"]["f1"] == pytest.approx(skm.f1_score(cols["label"], expected))


async def test_the_panel_refuses_to_run_before_it_has_started(client: httpx.AsyncClient, app: Any) -> None:
    from schemas.evaluations import EvaluationCreate
    from service.jobs.baselines import BaselineRunner

    request, _ = await _full_panel(client)
    store = app.state.store
    batch = store.meta.get_batch(request["batch_id"])
    with (
        BaselineRunner(store, batch, EvaluationCreate.model_validate(request), threads=2) as runner,
        pytest.raises(RuntimeError, match="start"),
    ):
        runner.run(
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            metrics=["accuracy"],
            primary="accuracy",
            label_primary="accuracy",
            progress=lambda _f: None,
        )
