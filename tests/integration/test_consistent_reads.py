"""A running job reads the version of each batch it started with, whatever happens to them meanwhile.

The job runs in a real JobWorker (in a thread, as in a worker process) and is held mid-way by a real
HTTP model server on loopback that answers only when the test lets it. While it waits, the test
relabels the job's own batch and deletes the batches it reads after the wait (the robustness pair's
perturbed batch, and the champion baseline that the Simpson's paradox check reads again).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from sklearn.metrics import accuracy_score, roc_auc_score
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.app import create_app
from service.jobs.worker import JobWorker
from service.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
N = 300


class GatedModel:
    """A KServe v1 model server (score = amount / 1000) that holds every answer until released."""

    def __init__(self) -> None:
        self.called = threading.Event()
        self.release = threading.Event()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/models/gated:predict"
        app = Starlette(routes=[Route("/v1/models/gated:predict", self._predict, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _predict(self, request: Request) -> Response:
        instances = (await request.json())["instances"]
        self.called.set()
        deadline = time.monotonic() + 60
        while not self.release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return JSONResponse({"predictions": [min(float(r["amount"]) / 1000, 1.0) for r in instances]})

    def __enter__(self) -> GatedModel:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "gated model server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def gated() -> Iterator[GatedModel]:
    with GatedModel() as server:
        yield server


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        data_dir=tmp_path / "data",
        workers=0,
        outbound_allow=["127.0.0.1"],
        lease_seconds=30,
        heartbeat_seconds=0.2,
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    app.state.store.close()


def app_of(client: httpx.AsyncClient) -> FastAPI:
    app: FastAPI = client.app  # type: ignore[attr-defined]
    return app


def data_dir(client: httpx.AsyncClient) -> Path:
    path: Path = app_of(client).state.settings.data_dir
    return path


def pins_dir(client: httpx.AsyncClient) -> Path:
    return data_dir(client) / "batches" / ".pins"


def columns(seed: int, *, ids: list[str] | None = None) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ids = ids or [f"s{i}" for i in range(N)]
    n = len(ids)
    label = rng.integers(0, 2, n)
    return {
        "sample_id": ids,
        "label": label.tolist(),
        "score": np.clip(0.3 * label + 0.7 * rng.random(n), 0, 1).round(6).tolist(),
        "amount": rng.uniform(0, 1000, n).round(2).tolist(),
        "country": rng.choice(["BR", "US", "DE"], n).tolist(),
    }


async def post(client: httpx.AsyncClient, cols: dict[str, Any]) -> str:
    body = {
        "model": {"name": "credit", "version": "1"},
        "task": "binary",
        "positive_class": 1,
        "columns": cols,
    }
    response = await client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.01)


def run_one_job(client: httpx.AsyncClient) -> asyncio.Task[Any]:
    """The worker claims and runs one job in a thread, as a worker process would."""
    app = app_of(client)
    worker = JobWorker(app.state.store, app.state.settings, worker_id="consistent-reads")
    return asyncio.create_task(asyncio.to_thread(worker.run_once))


def assert_no_server_paths(client: httpx.AsyncClient, *documents: Any) -> None:
    for document in documents:
        text = json.dumps(document)
        assert str(data_dir(client).resolve()) not in text and str(data_dir(client)) not in text, text
        assert ".parquet" not in text and ".pins" not in text, text


async def test_a_relabel_and_deletes_mid_job_leave_the_job_on_its_first_version(
    client: httpx.AsyncClient, gated: GatedModel
) -> None:
    model_cols = columns(0)
    batch_id = await post(client, model_cols)
    champion_id = await post(client, columns(1))
    perturbed_cols = columns(2)
    perturbed_cols["score"] = np.clip(np.array(model_cols["score"]) + 0.01, 0, 1).round(6).tolist()
    perturbed_id = await post(client, perturbed_cols)
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy", "roc_auc"],
        "baselines": {"existing": [{"name": "champion", "batch_id": champion_id}]},
        "robustness": {
            "endpoint": {"url": gated.url, "batch_size": 1000, "timeout_seconds": 60, "retries": 0},
            "sample_size": 50,
            "invariance": [{"column": "country", "swap": ["BR", "US"]}],
            "pairs": [{"name": "+0.01", "original_batch_id": batch_id, "perturbed_batch_id": perturbed_id}],
        },
        "slices": {"columns": ["country"]},
    }
    submitted = await client.post("/v1/evaluations", json=request)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    stored = {b: (await client.get(f"/v1/batches/{b}")).json() for b in (batch_id, champion_id, perturbed_id)}
    running = run_one_job(client)
    await wait_for(gated.called.is_set, timeout=30, what="the job to call the model endpoint")

    # The job holds a hard link to each version it reads: the same inode as the batch's file.
    pinned = sorted(p.name for p in (pins_dir(client) / f"{job_id}.1").iterdir())
    assert pinned == sorted(f"{b}.parquet" for b in (batch_id, champion_id, perturbed_id))
    for b in (batch_id, champion_id, perturbed_id):
        (original,) = (data_dir(client) / "batches" / b).glob("v*.parquet")
        assert (pins_dir(client) / f"{job_id}.1" / f"{b}.parquet").stat().st_ino == original.stat().st_ino

    # Meanwhile: every label of the job's batch flips, and two batches it has yet to read are deleted.
    ids, labels = model_cols["sample_id"], model_cols["label"]
    flipped = [{"sample_id": s, "label": 1 - y} for s, y in zip(ids, labels, strict=True)]
    relabel = await client.put(f"/v1/batches/{batch_id}/labels", json={"labels": flipped})
    assert relabel.status_code == 200, relabel.text
    assert (await client.delete(f"/v1/batches/{perturbed_id}")).status_code == 204
    assert (await client.delete(f"/v1/batches/{champion_id}")).status_code == 204
    gated.release.set()
    await asyncio.wait_for(running, timeout=60)

    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "succeeded", job
    result = (await client.get(f"/v1/jobs/{job_id}/result")).json()
    assert result["errors"] == {}
    # The metrics are those of the labels the job started with, not of the flipped ones.
    y, score = np.array(model_cols["label"]), np.array(model_cols["score"])
    assert result["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, (score >= 0.5).astype(int)))
    assert result["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert result["labeled_rows"] == stored[batch_id]["labeled_rows"] == N
    # Every section read its batches after the relabel and the deletes, and got the first versions.
    assert [b["name"] for b in result["baselines"] if b["kind"] == "existing"] == ["champion"]
    (pair,) = result["robustness"]["pairs"]
    assert pair["details"]["joined_rows"] == N and pair["details"]["perturbed_batch_id"] == perturbed_id
    assert result["slices"] is not None and result["robustness"]["sampled_rows"] == 50
    assert_no_server_paths(client, job, result)
    # The update landed for everyone else; the pins are gone with the job.
    rows = (await client.get(f"/v1/batches/{batch_id}/rows", params={"page_size": 5})).json()["data"]
    assert [r["label"] for r in rows] == [1 - y for y in model_cols["label"][:5]]
    assert (await client.get(f"/v1/batches/{champion_id}")).status_code == 404
    assert not (pins_dir(client) / f"{job_id}.1").exists()


async def test_batches_deleted_before_the_job_started_are_named_never_their_paths(
    client: httpx.AsyncClient,
) -> None:
    batch_id = await post(client, columns(0))
    champion_id = await post(client, columns(1))
    # A baseline deleted before the job started: that section fails alone, naming the batch.
    job = (
        await client.post(
            "/v1/evaluations",
            json={"batch_id": batch_id, "baselines": {"existing": [{"name": "c", "batch_id": champion_id}]}},
        )
    ).json()
    assert (await client.delete(f"/v1/batches/{champion_id}")).status_code == 204
    await run_one_job(client)
    result = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    assert champion_id in result["errors"]["baselines"]["error"]
    assert "does not exist" in result["errors"]["baselines"]["error"]
    assert result["metrics"]["accuracy"] is not None
    # The job's own batch deleted before it started: the job fails, naming it.
    doomed = (await client.post("/v1/evaluations", json={"batch_id": batch_id})).json()
    assert (await client.delete(f"/v1/batches/{batch_id}")).status_code == 204
    await run_one_job(client)
    failed = (await client.get(f"/v1/jobs/{doomed['id']}")).json()
    assert (
        failed["status"] == "failed" and batch_id in failed["error"] and "does not exist" in failed["error"]
    )
    # A damaged file: the failure names the batch, and the path stays in the worker's log.
    damaged_id = await post(client, columns(3))
    (stored,) = (data_dir(client) / "batches" / damaged_id).glob("v*.parquet")
    stored.write_bytes(b"not parquet at all")
    damaged = (await client.post("/v1/evaluations", json={"batch_id": damaged_id})).json()
    await run_one_job(client)
    broken = (await client.get(f"/v1/jobs/{damaged['id']}")).json()
    assert broken["status"] == "failed" and damaged_id in broken["error"], broken
    rows = await client.get(f"/v1/batches/{damaged_id}/rows")
    assert rows.status_code == 500 and damaged_id in rows.json()["detail"]
    assert_no_server_paths(client, result, failed, broken, rows.json())
    assert not pins_dir(client).exists() or list(pins_dir(client).iterdir()) == []


async def test_a_job_cancelled_mid_way_leaves_no_pins(client: httpx.AsyncClient, gated: GatedModel) -> None:
    batch_id = await post(client, columns(0))
    request = {
        "batch_id": batch_id,
        "robustness": {
            "endpoint": {"url": gated.url, "batch_size": 1000, "timeout_seconds": 60, "retries": 0},
            "sample_size": 20,
            "invariance": [{"column": "country", "swap": ["BR", "US"]}],
        },
    }
    job = (await client.post("/v1/evaluations", json=request)).json()
    running = run_one_job(client)
    await wait_for(gated.called.is_set, timeout=30, what="the job to call the model endpoint")
    assert (pins_dir(client) / f"{job['id']}.1" / f"{batch_id}.parquet").exists()
    assert (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()["status"] == "cancelled"
    gated.release.set()
    await asyncio.wait_for(running, timeout=60)
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "cancelled"
    assert not (pins_dir(client) / f"{job['id']}.1").exists()
    assert os.listdir(pins_dir(client)) == []
