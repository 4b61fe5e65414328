"""Robustness against a real HTTP model server on loopback (allowed by configuration)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.integrations.outbound import OutboundPolicy
from service.integrations.webhooks import CallbackDispatcher
from service.jobs.worker import JobWorker
from service.settings import Settings
from service.store.sql import SqlStore
from tests.integration.model_server import ModelServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
N = 200


def make_app(tmp_path: Path, allow: list[str]) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path / "data", workers=0, outbound_allow=allow))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(tmp_path, ["127.0.0.1"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    app.state.store.close()


def amounts() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1000, N).round(2)


def credit_body(n: int = N, *, name: str = "credit") -> dict[str, Any]:
    """A binary batch whose score is amount / 1000 and label amount > 450, with a gender column."""
    amount = np.random.default_rng(0).uniform(0, 1000, n).round(2)
    return {
        "model": {"name": name, "version": "1"},
        "task": "binary",
        "positive_class": 1,
        "columns": {
            "sample_id": [f"s{i}" for i in range(n)],
            "label": (amount > 450).astype(int).tolist(),
            "score": (amount / 1000).tolist(),
            "amount": amount.tolist(),
            "gender": ["F" if i % 2 else "M" for i in range(n)],
        },
    }


async def post_batch(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/batches", json=credit_body())
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def submit(client: httpx.AsyncClient, robustness: dict[str, Any]) -> httpx.Response:
    batch_id = await post_batch(client)
    return await client.post(
        "/v1/evaluations", json={"batch_id": batch_id, "metrics": ["accuracy"], "robustness": robustness}
    )


async def run(client: httpx.AsyncClient, robustness: dict[str, Any]) -> dict[str, Any]:
    response = await submit(client, robustness)
    assert response.status_code == 202, response.text
    app: FastAPI = client.app  # type: ignore[attr-defined]
    # In a thread, as in a worker process: the job runs its own event loop for the endpoint calls.
    await asyncio.to_thread(JobWorker(app.state.store, app.state.settings).run_once)
    job: dict[str, Any] = (await client.get(f"/v1/jobs/{response.json()['id']}")).json()
    return job


async def result_of(client: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    assert job["status"] == "succeeded", job
    body: dict[str, Any] = (await client.get(f"/v1/jobs/{job['id']}/result")).json()
    return body


async def test_invariance_and_directional_rates_are_exact(
    client: httpx.AsyncClient, model_server: ModelServer
) -> None:
    spec = {
        "endpoint": {"url": model_server.endpoint("biased"), "batch_size": 32},
        "sample_size": 500,  # more than the batch: every row
        "invariance": [{"column": "gender", "swap": ["F", "M"]}],
        "directional": [{"column": "amount", "add": 100, "expect": "increase"}],
    }
    result = await result_of(client, await run(client, spec))
    robustness = result["robustness"]
    assert robustness["sampled_rows"] == N
    invariance = robustness["invariance"][0]
    assert (invariance["rows"], invariance["violations"], invariance["violation_rate"]) == (N, N, 1.0)
    assert invariance["examples"] and {e["original"] for e in invariance["examples"]} <= {"F", "M"}
    # The biased model ignores amount: +100 never moves its score.
    assert robustness["directional"][0]["violations"] == 0
    kinds = {f["kind"] for f in result["findings"]}
    assert "invariance_violation" in kinds and "directional_violation" not in kinds


async def test_fair_model_directional_violations_counted_exactly(
    client: httpx.AsyncClient, model_server: ModelServer
) -> None:
    spec = {
        "endpoint": {"url": model_server.endpoint("fair")},
        "sample_size": N,
        "score_tolerance": 0.01,
        "invariance": [{"column": "gender", "swap": ["F", "M"]}],
        "directional": [
            {"column": "amount", "add": 100, "expect": "increase"},
            {"column": "amount", "add": -100, "expect": "increase"},
        ],
        "perturbation": [{"column": "amount", "noise": "gaussian", "scale": 0.5}],
    }
    result = await result_of(client, await run(client, spec))
    robustness = result["robustness"]
    assert robustness["invariance"][0]["violations"] == 0
    up, down = robustness["directional"]
    assert up["violations"] == 0
    amount = amounts()
    decrease = np.minimum(amount, 100) / 1000  # score drop of the fair model when amount falls by 100
    assert down["violations"] == int(np.sum(decrease > 0.01))
    assert down["violation_rate"] == pytest.approx(np.mean(decrease > 0.01))
    perturbation = robustness["perturbation"][0]
    assert perturbation["rows"] == N and 0 < perturbation["flip_rate"] < 1
    assert perturbation["mean_abs_score_change"] > 0
    assert "accuracy" in perturbation["metric_drop"]
    assert robustness["calls"] >= 4
    fragile = [f for f in result["findings"] if f["kind"] == "fragile_to_perturbation"]
    assert len(fragile) == (1 if perturbation["flip_rate"] > 0.05 else 0)
    assert fragile and fragile[0]["details"]["flip_rate"] == perturbation["flip_rate"]


@pytest.mark.parametrize("model", ["flaky", "busy"])  # 503, and 429 with a Retry-After, every other call
async def test_retries_on_5xx_and_429(
    client: httpx.AsyncClient, model_server: ModelServer, model: str
) -> None:
    spec = {
        "endpoint": {
            "url": model_server.endpoint(model),
            "batch_size": 100,
            "concurrency": 1,
            "retries": 2,
        },
        "sample_size": N,
        "invariance": [{"column": "gender", "swap": ["F", "M"]}],
    }
    result = await result_of(client, await run(client, spec))
    assert result["robustness"]["invariance"][0]["violations"] == 0


@pytest.mark.parametrize(
    ("model", "endpoint_options", "message"),
    [
        ("garbage", {}, "not JSON"),
        ("short", {}, "predictions for"),
        ("slow", {"timeout_seconds": 0.3, "retries": 0}, "did not answer within"),
        ("redirect", {}, "redirects are not followed"),
    ],
)
async def test_bad_endpoints_fail_only_the_robustness_section_clearly(
    client: httpx.AsyncClient,
    model_server: ModelServer,
    model: str,
    endpoint_options: dict[str, Any],
    message: str,
) -> None:
    spec = {
        "endpoint": {"url": model_server.endpoint(model), **endpoint_options},
        "sample_size": 20,
        "invariance": [{"column": "gender", "swap": ["F", "M"]}],
    }
    result = await result_of(client, await run(client, spec))
    error = result["errors"]["robustness"]["error"]
    assert message in error, error
    assert "definitely not json" not in error  # the body is never echoed
    # the job's other sections stand: its metrics, and a verdict that says what is missing
    assert result["robustness"] is None and result["metrics"]["accuracy"] is not None
    assert result["verdict"]["status"] == "warn" and result["verdict"]["missing_sections"] == ["robustness"]


async def test_loopback_is_refused_at_submission_unless_allowed(
    tmp_path: Path, model_server: ModelServer
) -> None:
    app = make_app(tmp_path, [])
    before = model_server.calls["fair"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        spec = {
            "endpoint": {"url": model_server.endpoint("fair")},
            "invariance": [{"column": "gender", "swap": ["F", "M"]}],
        }
        response = await submit(c, spec)
    app.state.store.close()
    assert response.status_code == 422
    problem = response.json()
    assert problem["errors"][0]["field"] == "robustness.endpoint.url"
    assert "YARDSTICK_OUTBOUND_ALLOW" in problem["errors"][0]["message"]
    assert model_server.calls["fair"] == before


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/v1/models/m:predict",
        "http://100.64.0.1/predict",
        "http://[::1]:9/predict",
        "http://[::ffff:127.0.0.1]:9/predict",
        "http://2130706433/predict",
    ],
)
async def test_private_and_odd_addresses_are_refused_at_submission(tmp_path: Path, url: str) -> None:
    # Nothing allowed: literal addresses are refused before any job exists, so nothing is ever sent.
    app = make_app(tmp_path, [])
    spec = {"endpoint": {"url": url, "retries": 0}, "invariance": [{"column": "gender", "swap": ["F", "M"]}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await submit(c, spec)
        jobs = (await c.get("/v1/jobs")).json()["data"]
    app.state.store.close()
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "robustness.endpoint.url"
    assert "refused" in response.json()["errors"][0]["message"]
    assert jobs == []


async def test_progress_is_reported_as_calls_complete(model_server: ModelServer) -> None:
    from schemas.robustness import Endpoint
    from service.integrations.model_endpoint import predict_async
    from service.integrations.outbound import OutboundPolicy

    seen: list[float] = []
    endpoint = Endpoint(url=model_server.endpoint("fair"), batch_size=10, concurrency=2)
    instances = [{"amount": float(i)} for i in range(45)]
    predictions, calls = await predict_async(
        endpoint, instances, policy=OutboundPolicy.from_settings(["127.0.0.1"]), progress=seen.append
    )
    assert calls == 5 and len(predictions) == 45
    assert predictions == [i / 1000 for i in range(45)]
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 5


def deliver_callbacks(app: FastAPI) -> None:
    """What a worker process's callback thread does, once: send every due callback."""
    outbox = SqlStore.from_url(app.state.settings.resolved_database_url)
    try:
        CallbackDispatcher(outbox, OutboundPolicy.from_settings(["127.0.0.1"])).deliver_due()
    finally:
        outbox.dispose()


async def test_callback_url_is_notified_once_when_the_job_ends(
    client: httpx.AsyncClient, model_server: ModelServer
) -> None:
    batch_id = await post_batch(client)
    hook = f"{model_server.url}/hooks/jobs"
    before = len(model_server.hooks)
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy"],
        "gates": [{"metric": "accuracy", "min": 0.99}],
        "callback_url": hook,
    }
    job = (await client.post("/v1/evaluations", json=request)).json()
    app: FastAPI = client.app  # type: ignore[attr-defined]
    await asyncio.to_thread(JobWorker(app.state.store, app.state.settings).run_once)
    await asyncio.to_thread(deliver_callbacks, app)
    received = model_server.hooks[before:]
    assert received == [
        {
            "job_id": job["id"],
            "status": "succeeded",
            "batch_id": batch_id,
            "model": {"name": "credit", "version": "1"},
            "gates_passed": False,
            "error": None,
            "job_url": f"/v1/jobs/{job['id']}",
            "result_url": f"/v1/jobs/{job['id']}/result",
        }
    ]
    # A failing job is reported too: its batch is deleted before it runs.
    doomed = await post_batch(client)
    failed = (await client.post("/v1/evaluations", json={"batch_id": doomed, "callback_url": hook})).json()
    assert (await client.delete(f"/v1/batches/{doomed}")).status_code == 204
    await asyncio.to_thread(JobWorker(app.state.store, app.state.settings).run_once)
    await asyncio.to_thread(deliver_callbacks, app)
    last = model_server.hooks[-1]
    assert (last["job_id"], last["status"], last["result_url"]) == (failed["id"], "failed", None)
    assert doomed in last["error"] and "does not exist" in last["error"]


async def test_callback_to_a_refused_address_is_a_422(tmp_path: Path, model_server: ModelServer) -> None:
    app = make_app(tmp_path, [])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        batch_id = await post_batch(c)
        response = await c.post(
            "/v1/evaluations", json={"batch_id": batch_id, "callback_url": f"{model_server.url}/hooks/jobs"}
        )
    app.state.store.close()
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "callback_url"
