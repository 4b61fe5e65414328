"""MLflow both ways, against a real ``mlflow server`` (SQLite backend, served artifacts) on
loopback, checked with MLflow's own client (tests/integration/mlflow_server.py).

Skipped locally without MLflow's environment; CI makes it (``.ci/run``) and must not skip.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server, wait_until
from tests.integration.mlflow_server import MlflowServer, mlflow_env

pytestmark = pytest.mark.integration
MODEL = {"name": "fraud", "version": "7"}


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    venv = mlflow_env()
    if venv is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide MLflow (.venv-mlflow, made by .ci/run)")
        pytest.skip("MLflow is not installed (.ci/run makes .venv-mlflow)")
    with MlflowServer(venv, tmp_path_factory.mktemp("mlflow")) as server:
        yield server


@pytest.fixture
def yardstick(servers: Callable[..., Server]) -> Server:
    return servers(extra_env={"YARDSTICK_OUTBOUND_ALLOW": "127.0.0.1"}).start()


LOG_A_TRAINING_RUN = """
experiment = client.create_experiment("training")
run = client.create_run(experiment, run_name="sgd-sync-3", tags={"team": "fraud", "sync": "true"})
rid = run.info.run_id
client.log_param(rid, "lr", "0.1")
client.log_param(rid, "optimizer", "adam")
for step in range(300):
    client.log_metric(rid, "loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step * 1000)
client.log_metric(rid, "loss", 0.5, step=10, timestamp=1_700_000_000_000 + 10 * 1000 + 1)
client.log_metric(rid, "loss", float("nan"), step=300, timestamp=1_700_000_300_000)
for step in range(0, 300, 50):
    client.log_metric(rid, "system/cpu_percent", 40.0 + step / 10, step=step, timestamp=1_700_000_000_000)
client.set_terminated(rid, status="FINISHED")
out = {"run_id": rid}
"""

READ_HISTORY = """
run = client.get_run(run_id)
out = {
    "params": run.data.params,
    "tags": {k: v for k, v in run.data.tags.items()},
    "status": run.info.status,
    "history": {
        key: [[m.step, m.value, m.timestamp] for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    },
}
"""


def test_a_run_is_imported_with_its_full_history(mlflow: MlflowServer, yardstick: Server) -> None:
    source = mlflow.client(LOG_A_TRAINING_RUN)["run_id"]
    truth = mlflow.client(READ_HISTORY, run_id=source)

    answer = httpx.post(
        f"{yardstick.url}/v1/runs/import",
        json={"mlflow": {"tracking_uri": mlflow.url, "run_id": source}, "model": MODEL},
        timeout=60,
    )
    assert answer.status_code == 201, answer.text
    imported = answer.json()
    run = imported["run"]
    assert run["params"] == truth["params"] == {"lr": "0.1", "optimizer": "adam"}
    assert {k: run["tags"][k] for k in ("team", "sync")} == {"team": "fraud", "sync": "true"}
    assert run["tags"]["yardstick.imported_from"] == f"{mlflow.url}#{source}"
    assert run["status"] == "finished" and truth["status"] == "FINISHED"
    assert run["metrics"] == ["loss", "system/cpu_percent"]

    for name, history in truth["history"].items():
        # one point per step, the latest by timestamp, finite values only: built from MLflow's answer
        latest: dict[int, tuple[float, int]] = {}
        for step, value, timestamp in history:
            if math.isfinite(value) and (step not in latest or timestamp >= latest[step][1]):
                latest[step] = (value, timestamp)
        series = httpx.get(f"{yardstick.url}/v1/runs/{run['id']}/metrics", params={"name": name}).json()
        assert series["step"] == sorted(latest)
        assert series["value"] == [latest[s][0] for s in sorted(latest)]
    assert imported["points"] == 300 + 6
    assert imported["skipped"] == 2  # the NaN, and the older value of step 10


def test_an_unknown_mlflow_run_is_a_clear_error(mlflow: MlflowServer, yardstick: Server) -> None:
    answer = httpx.post(
        f"{yardstick.url}/v1/runs/import",
        json={"mlflow": {"tracking_uri": mlflow.url, "run_id": "0" * 32}, "model": MODEL},
        timeout=60,
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "0" * 32 in answer.json()["detail"]
    assert httpx.get(f"{yardstick.url}/v1/runs").json()["data"] == []


def _binary_batch(url: str) -> str:
    rows = 400
    columns: dict[str, Any] = {
        "sample_id": [f"s{i}" for i in range(rows)],
        "label": [i % 2 for i in range(rows)],
        "score": [((i % 2) * 0.4 + (i * 37 % 100) / 170) for i in range(rows)],
    }
    batch = httpx.post(
        f"{url}/v1/batches",
        json={"model": MODEL, "task": "binary", "positive_class": 1, "columns": columns},
    )
    assert batch.status_code == 201, batch.text
    return str(batch.json()["id"])


READ_EXPORT = """
run = client.get_run(run_id)
artifacts = [f.path for f in client.list_artifacts(run_id, "yardstick")]
path = client.download_artifacts(run_id, "yardstick/result.json", dst)
out = {
    "metrics": run.data.metrics,
    "params": run.data.params,
    "tags": run.data.tags,
    "status": run.info.status,
    "experiment": client.get_experiment(run.info.experiment_id).name,
    "artifacts": artifacts,
    "result": json.load(open(path)),
}
"""


def test_an_evaluation_is_exported_to_mlflow(mlflow: MlflowServer, yardstick: Server, tmp_path: Path) -> None:
    batch_id = _binary_batch(yardstick.url)
    job = httpx.post(
        f"{yardstick.url}/v1/evaluations",
        json={
            "batch_id": batch_id,
            "metrics": ["accuracy", "roc_auc"],
            "bootstrap": {"samples": 200, "seed": 0},
            "mlflow": {"tracking_uri": mlflow.url, "experiment": "release-checks"},
        },
    ).json()
    status_url = f"{yardstick.url}/v1/jobs/{job['id']}"
    wait_until(lambda: httpx.get(status_url).json()["status"] == "succeeded", timeout=120, what="the job")
    result = httpx.get(f"{status_url}/result").json()
    assert "mlflow" not in result["errors"], result["errors"]
    exported = result["mlflow"]
    assert exported["tracking_uri"] == mlflow.url

    seen = mlflow.client(READ_EXPORT, run_id=exported["run_id"], dst=str(tmp_path))
    assert seen["experiment"] == "release-checks" and seen["status"] == "FINISHED"
    for name in ("accuracy", "roc_auc"):
        assert seen["metrics"][name] == result["metrics"][name]
        assert seen["metrics"][f"{name}.lower"] == result["intervals"][name]["low"]
        assert seen["metrics"][f"{name}.upper"] == result["intervals"][name]["high"]
    assert seen["params"]["metrics"] == '["accuracy","roc_auc"]'
    assert seen["params"]["bootstrap.samples"] == "200"
    assert seen["tags"]["yardstick.job_id"] == job["id"]
    assert seen["tags"]["yardstick.verdict"] == result["verdict"]["status"]
    assert sorted(seen["artifacts"]) == ["yardstick/report.html", "yardstick/result.json"]
    assert seen["result"]["metrics"] == result["metrics"] and seen["result"]["job_id"] == job["id"]
