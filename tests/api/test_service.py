"""Cross-cutting behaviour: problems, auth, health, Prometheus metrics, OpenAPI."""

from __future__ import annotations

import difflib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.cli import DEFAULT_OPENAPI_PATH, render_openapi
from service.settings import Settings
from tests.api.conftest import batch_body
from tests.api.test_batches import assert_problem

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def keyed(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path, workers=0, api_keys=["k-one", "k-two"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    app.state.store.close()


async def test_api_keys_are_required_when_configured(keyed: httpx.AsyncClient) -> None:
    problem = assert_problem(await keyed.get("/v1/batches"), 401)
    assert "Bearer" in problem["detail"]
    assert_problem(await keyed.get("/v1/batches", headers={"Authorization": "Bearer wrong"}), 401)
    assert_problem(await keyed.get("/v1/batches", headers={"Authorization": "Basic k-one"}), 401)
    for key in ("k-one", "k-two"):
        ok = await keyed.get("/v1/batches", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    assert (await keyed.get("/healthz")).status_code == 200


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v2/nothing"), 404)
    assert_problem(await client.patch("/v1/batches"), 405)


async def test_malformed_evaluation_json_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/evaluations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_health_readiness_and_prometheus(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post("/v1/batches", json=batch_body())
    await client.get("/v1/batches/nope")
    text = (await client.get("/metrics")).text
    assert 'yardstick_http_requests_total{method="POST",route="/v1/batches",status="201"} 1' in text
    assert 'yardstick_http_requests_total{method="GET",route="/v1/batches/{batch_id}",status="404"} 1' in text
    assert "yardstick_rows_ingested_total 200" in text
    assert 'yardstick_jobs{status="queued"} 0' in text


def test_committed_openapi_is_current() -> None:
    committed_path = ROOT / DEFAULT_OPENAPI_PATH
    current = render_openapi()
    committed = committed_path.read_text() if committed_path.exists() else ""
    if committed != current:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(True), current.splitlines(True), "committed", "generated", n=1
            )
        )
        pytest.fail(
            "openapi/openapi.json is stale. Regenerate it with:\n\n    yardstick export-openapi\n\n"
            f"{diff[:4000]}"
        )


def test_every_route_declares_its_response_and_problems(app: FastAPI) -> None:
    spec = json.loads(render_openapi())
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            responses = op["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success, f"{method} {path} declares no success response"
            if path.startswith("/v1/"):
                assert "401" in responses, f"{method} {path} does not declare 401"
                problems = [c for c in responses if c.startswith("4")]
                for code in problems:
                    content = responses[code].get("content", {})
                    assert "application/problem+json" in content, f"{method} {path} {code}"
            for code in success:
                if code != "204":
                    assert responses[code].get("content"), f"{method} {path} {code} has no body schema"
