"""Evaluation jobs through the API, run by the inline runner, checked against scikit-learn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn import metrics as skm

from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import assert_problem

pytestmark = pytest.mark.anyio


async def evaluate(
    client: httpx.AsyncClient, run_jobs: Callable[[], int], request: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/v1/evaluations", json=request)
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["attempts"] == 0
    assert run_jobs() == 1
    status = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert status["status"] == "succeeded", status
    assert status["progress"] == 1.0 and status["started_at"] and status["finished_at"]
    result = await client.get(f"/v1/jobs/{job['id']}/result")
    assert result.status_code == 200, result.text
    body: dict[str, Any] = result.json()
    return body


async def test_binary_metrics_equal_sklearn(client: httpx.AsyncClient, run_jobs: Callable[[], int]) -> None:
    cols = binary_columns(500, seed=3)
    batch = (await client.post("/v1/batches", json=batch_body(cols))).json()
    default = await evaluate(client, run_jobs, {"batch_id": batch["id"]})
    assert "f1_macro" not in default["metrics"] and "roc_auc" in default["metrics"]
    y, p = np.array(cols["label"]), np.array(cols["score"])
    pred = (p >= 0.5).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "f1_macro": skm.f1_score(y, pred, average="macro"),
        "roc_auc": skm.roc_auc_score(y, p),
        "average_precision": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, p),
        "brier_score": skm.brier_score_loss(y, p),
        "mcc": skm.matthews_corrcoef(y, pred),
    }
    result = await evaluate(client, run_jobs, {"batch_id": batch["id"], "metrics": list(expected)})
    assert list(result["metrics"]) == list(expected)
    for name, value in expected.items():
        assert result["metrics"][name] == pytest.approx(value, abs=1e-9, rel=1e-9), name
    assert result["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert (result["rows"], result["evaluated_rows"], result["task"]) == (500, 500, "binary")
    assert result["model"] == {"name": "fraud-gbm", "version": "7"}
    assert result["gates"] == {"passed": True, "results": []}


async def test_string_labels_multiclass_equal_sklearn(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(5)
    classes = ["cat", "dog", "fox"]
    n = 300
    raw = rng.dirichlet([1, 1, 1], n)
    labels = rng.choice(classes, n)
    columns: dict[str, list[Any]] = {"sample_id": [str(i) for i in range(n)], "label": labels.tolist()}
    for k, c in enumerate(classes):
        columns[f"score__{c}"] = raw[:, k].tolist()
    body = {"model": {"name": "pets", "version": "1"}, "task": "multiclass", "columns": columns}
    batch = (await client.post("/v1/batches", json=body)).json()
    result = await evaluate(
        client,
        run_jobs,
        {"batch_id": batch["id"], "metrics": ["accuracy", "f1_macro", "roc_auc", "log_loss"]},
    )
    pred = np.array(classes)[raw.argmax(axis=1)]
    assert set(result["metrics"]) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert result["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred), abs=1e-12)
    assert result["metrics"]["f1_macro"] == pytest.approx(
        skm.f1_score(labels, pred, average="macro"), abs=1e-9
    )
    assert result["metrics"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(labels, raw, multi_class="ovr", labels=classes), abs=1e-9
    )
    assert result["metrics"]["log_loss"] == pytest.approx(skm.log_loss(labels, raw, labels=classes), abs=1e-9)
    assert set(result["per_class"]) == set(classes)


async def test_regression_metrics_equal_sklearn(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    rng = np.random.default_rng(9)
    y = rng.normal(10, 3, 400)
    pred = y + rng.normal(0, 1, 400)
    body = {
        "model": {"name": "price", "version": "2"},
        "task": "regression",
        "columns": {
            "sample_id": [str(i) for i in range(400)],
            "label": y.tolist(),
            "prediction": pred.tolist(),
        },
    }
    batch = (await client.post("/v1/batches", json=body)).json()
    result = await evaluate(client, run_jobs, {"batch_id": batch["id"]})
    expected = {
        "mae": skm.mean_absolute_error(y, pred),
        "rmse": skm.root_mean_squared_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
        "median_ae": skm.median_absolute_error(y, pred),
        "max_error": skm.max_error(y, pred),
    }
    for name, value in expected.items():
        assert result["metrics"][name] == pytest.approx(value, abs=1e-9, rel=1e-9), name


async def test_one_class_present_reports_undefined_not_an_error(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = {"sample_id": ["a", "b", "c"], "label": [0, 0, 0], "score": [0.1, 0.7, 0.2]}
    batch = (await client.post("/v1/batches", json=batch_body(cols))).json()
    result = await evaluate(client, run_jobs, {"batch_id": batch["id"]})
    assert result["metrics"]["roc_auc"] is None
    assert result["undefined"]["roc_auc"]
    assert result["metrics"]["accuracy"] == pytest.approx(2 / 3)


async def test_bootstrap_intervals_are_seeded(client: httpx.AsyncClient, run_jobs: Callable[[], int]) -> None:
    batch = (await client.post("/v1/batches", json=batch_body(binary_columns(300)))).json()
    request = {
        "batch_id": batch["id"],
        "metrics": ["accuracy", "roc_auc"],
        "bootstrap": {"samples": 200, "seed": 1},
    }
    first = await evaluate(client, run_jobs, request)
    second = await evaluate(client, run_jobs, request)
    assert first["intervals"] == second["intervals"]
    for name in ("accuracy", "roc_auc"):
        low, high = first["intervals"][name]["low"], first["intervals"][name]["high"]
        assert low <= first["metrics"][name] <= high and low < high
    other = await evaluate(client, run_jobs, request | {"bootstrap": {"samples": 200, "seed": 2}})
    assert other["intervals"] != first["intervals"]


async def test_gates_pass_and_fail_with_reasons(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch = (await client.post("/v1/batches", json=batch_body(binary_columns(300)))).json()
    request = {
        "batch_id": batch["id"],
        "gates": [{"metric": "accuracy", "min": 0.0}, {"metric": "roc_auc", "min": 0.999}],
    }
    result = await evaluate(client, run_jobs, request)
    gates = result["gates"]
    assert gates["passed"] is False
    assert [g["passed"] for g in gates["results"]] == [True, False]
    assert "below the minimum" in gates["results"][1]["reason"]


async def test_unlabeled_batch_then_late_labels(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    cols = binary_columns(10)
    labels = cols.pop("label")
    batch = (await client.post("/v1/batches", json=batch_body(cols))).json()
    empty = await evaluate(client, run_jobs, {"batch_id": batch["id"], "metrics": ["accuracy"]})
    assert empty["metrics"] == {"accuracy": None}
    assert [f["kind"] for f in empty["findings"]] == ["no_labeled_rows"]
    update = {"columns": {"sample_id": cols["sample_id"][:6], "label": labels[:6]}}
    assert (await client.put(f"/v1/batches/{batch['id']}/labels", json=update)).status_code == 200
    later = await evaluate(client, run_jobs, {"batch_id": batch["id"], "metrics": ["accuracy"]})
    pred = (np.array(cols["score"][:6]) >= 0.5).astype(int)
    assert later["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(labels[:6], pred))
    assert later["evaluated_rows"] == 6
    assert [f["kind"] for f in later["findings"]] == ["unlabeled_rows"]


async def test_result_is_409_until_finished_and_cancel(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch = (await client.post("/v1/batches", json=batch_body())).json()
    job = (await client.post("/v1/evaluations", json={"batch_id": batch["id"]})).json()
    problem = assert_problem(await client.get(f"/v1/jobs/{job['id']}/result"), 409)
    assert "queued" in problem["detail"]
    cancelled = (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert run_jobs() == 0
    assert_problem(await client.post(f"/v1/jobs/{job['id']}/cancel"), 409)
    assert_problem(await client.get(f"/v1/jobs/{job['id']}/result"), 409)
    assert_problem(await client.get("/v1/jobs/nope"), 404)


async def test_jobs_list_pages_and_filters(client: httpx.AsyncClient, run_jobs: Callable[[], int]) -> None:
    batch = (await client.post("/v1/batches", json=batch_body())).json()
    ids = [
        (await client.post("/v1/evaluations", json={"batch_id": batch["id"]})).json()["id"] for _ in range(3)
    ]
    await client.post(f"/v1/jobs/{ids[0]}/cancel")
    page = (await client.get("/v1/jobs", params={"page_size": 2})).json()
    rest = (
        await client.get("/v1/jobs", params={"page_size": 2, "page_token": page["next_page_token"]})
    ).json()
    assert [j["id"] for j in page["data"] + rest["data"]] == ids[::-1]
    queued = (await client.get("/v1/jobs", params={"status": "queued", "model": "fraud-gbm"})).json()
    assert [j["id"] for j in queued["data"]] == ids[:0:-1]
    assert_problem(await client.get("/v1/jobs", params={"status": "sleeping"}), 422)


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"batch_id": "nope"}, "batch_id"),
        ({"metrics": ["accuracy", "bogus"]}, "metrics"),
        ({"metrics": []}, "metrics"),
        ({"metrics": ["mae"]}, "metrics"),
        ({"callback_url": "ftp://ci.example/hook"}, "callback_url"),
        ({"callback_url": "http://169.254.169.254/latest"}, "callback_url"),
        ({"gates": [{"metric": "r2", "min": 0.5}]}, "gates[0].metric"),
        ({"gates": [{"metric": "accuracy"}]}, "gates"),
        ({"surprise": 1}, "surprise"),
        ({"bootstrap": {"samples": 1}}, "bootstrap.samples"),
    ],
)
async def test_bad_evaluation_requests_are_422(
    client: httpx.AsyncClient, request_body: dict[str, Any], field: str
) -> None:
    batch = (await client.post("/v1/batches", json=batch_body())).json()
    body = {"batch_id": batch["id"]} | request_body
    problem = assert_problem(await client.post("/v1/evaluations", json=body), 422)
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_a_deleted_batch_fails_its_queued_job_clearly(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    batch = (await client.post("/v1/batches", json=batch_body())).json()
    job = (await client.post("/v1/evaluations", json={"batch_id": batch["id"]})).json()
    await client.delete(f"/v1/batches/{batch['id']}")
    run_jobs()
    status = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert status["status"] == "failed" and "does not exist" in status["error"]
