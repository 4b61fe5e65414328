"""Idempotency-Key on POST /v1/batches and POST /v1/evaluations: a retry gets the first answer and
stores nothing twice; another request under the same key is a 422; keys expire; concurrent first
requests store once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.api import deps
from service.app import create_app
from service.settings import Settings
from service.store.records import IdempotencyClaim
from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import QUERY, as_table, assert_problem, parquet_bytes

pytestmark = pytest.mark.anyio


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def batch_ids(client: httpx.AsyncClient) -> list[str]:
    return [b["id"] for b in (await client.get("/v1/batches")).json()["data"]]


async def test_a_retried_batch_gets_the_first_answer_and_is_stored_once(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = batch_body()
    first = await client.post("/v1/batches", json=body, headers=key("upload-1"))
    assert first.status_code == 201, first.text
    retry = await client.post("/v1/batches", json=body, headers=key("upload-1"))
    assert retry.status_code == 201
    assert retry.content == first.content
    assert retry.headers["location"] == first.headers["location"] == f"/v1/batches/{first.json()['id']}"
    assert retry.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await batch_ids(client) == [first.json()["id"]]
    assert [p.name for p in settings.batches_dir.iterdir()] == [first.json()["id"]]
    # without a key, the same body is a new batch
    assert (await client.post("/v1/batches", json=body)).status_code == 201
    assert len(await batch_ids(client)) == 2


async def test_a_retried_binary_upload_with_a_query_string_gets_the_first_answer(
    client: httpx.AsyncClient,
) -> None:
    data = parquet_bytes(as_table(binary_columns(50)))
    headers = {"content-type": "application/vnd.apache.parquet", **key("pq-1")}
    first = await client.post("/v1/batches", params=QUERY, content=data, headers=headers)
    retry = await client.post("/v1/batches", params=QUERY, content=data, headers=headers)
    assert (first.status_code, retry.status_code) == (201, 201) and retry.content == first.content
    # the query string is part of the request: another version under the same key is refused
    other = await client.post("/v1/batches", params=QUERY | {"version": "8"}, content=data, headers=headers)
    problem = assert_problem(other, 422)
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert len(await batch_ids(client)) == 1


async def test_a_retried_evaluation_gets_the_first_job(client: httpx.AsyncClient) -> None:
    batch_id = (await client.post("/v1/batches", json=batch_body())).json()["id"]
    request = {"batch_id": batch_id, "metrics": ["accuracy"]}
    first = await client.post("/v1/evaluations", json=request, headers=key("eval-1"))
    retry = await client.post("/v1/evaluations", json=request, headers=key("eval-1"))
    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.content == first.content and retry.headers["location"] == first.headers["location"]
    jobs = (await client.get("/v1/jobs")).json()["data"]
    assert [j["id"] for j in jobs] == [first.json()["id"]]
    # the replay is the first answer as it was: the job has moved on since, the answer has not
    await client.post(f"/v1/jobs/{first.json()['id']}/cancel")
    again = await client.post("/v1/evaluations", json=request, headers=key("eval-1"))
    assert again.json()["status"] == "queued" and again.content == first.content


async def test_the_same_key_with_another_body_is_a_422_naming_the_header(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/batches", json=batch_body(), headers=key("k"))
    assert first.status_code == 201
    other = batch_body(binary_columns(30))
    problem = assert_problem(await client.post("/v1/batches", json=other, headers=key("k")), 422)
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    # another route is another request too
    evaluation = {"batch_id": first.json()["id"]}
    problem = assert_problem(await client.post("/v1/evaluations", json=evaluation, headers=key("k")), 422)
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert len(await batch_ids(client)) == 1
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_a_failed_request_leaves_its_key_free(client: httpx.AsyncClient) -> None:
    bad = batch_body(binary_columns(10) | {"score": [2.0] * 10})
    assert_problem(await client.post("/v1/batches", json=bad, headers=key("k")), 422)
    assert_problem(await client.post("/v1/batches", json=bad, headers=key("k")), 422)  # ran again
    good = await client.post("/v1/batches", json=batch_body(), headers=key("k"))
    assert good.status_code == 201
    assert await batch_ids(client) == [good.json()["id"]]


@pytest.mark.parametrize("value", [b"", b"has space", b"x" * 256, "naïve".encode()])
async def test_a_malformed_key_is_refused_naming_the_header(client: httpx.AsyncClient, value: bytes) -> None:
    response = await client.post("/v1/batches", json=batch_body(), headers={b"Idempotency-Key": value})
    problem = assert_problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert await batch_ids(client) == []


@pytest.fixture
async def short_lived(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path / "d", workers=0, idempotency_seconds=0.3))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    app.state.store.close()


async def test_an_expired_key_can_be_used_again(short_lived: httpx.AsyncClient) -> None:
    body = batch_body()
    first = await short_lived.post("/v1/batches", json=body, headers=key("k"))
    assert first.status_code == 201
    deadline = time.monotonic() + 10
    while True:
        again = await short_lived.post("/v1/batches", json=batch_body(binary_columns(20)), headers=key("k"))
        if again.status_code == 201:
            break
        assert again.status_code == 422, again.text  # still remembered: another body
        assert time.monotonic() < deadline, "the key never expired"
        await asyncio.sleep(0.05)
    assert again.json()["id"] != first.json()["id"]
    assert len(await batch_ids(short_lived)) == 2


async def test_keys_belong_to_a_project(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "d", workers=0, api_keys="ka:alpha,kb:beta"))
    transport = httpx.ASGITransport(app=app)
    answers = []
    for name in ("ka", "kb"):
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"Authorization": f"Bearer {name}"}
        ) as c:
            answers.append(await c.post("/v1/batches", json=batch_body(), headers=key("shared")))
            assert len(await batch_ids(c)) == 1
    app.state.store.close()
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["id"] != answers[1].json()["id"]


@pytest.mark.parametrize("route", ["batches", "evaluations"])
async def test_concurrent_identical_requests_store_once(client: httpx.AsyncClient, route: str) -> None:
    if route == "batches":
        url, body = "/v1/batches", batch_body(binary_columns(3000))
    else:
        batch_id = (await client.post("/v1/batches", json=batch_body())).json()["id"]
        url, body = "/v1/evaluations", {"batch_id": batch_id}
    responses = await asyncio.gather(*(client.post(url, json=body, headers=key("same")) for _ in range(5)))
    assert {r.status_code for r in responses} == {201 if route == "batches" else 202}
    assert len({r.content for r in responses}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in responses) == 1
    listed = (await client.get(f"/v1/{'batches' if route == 'batches' else 'jobs'}")).json()["data"]
    assert len(listed) == 1 and listed[0]["id"] == responses[0].json()["id"]


async def test_a_retry_while_the_first_request_runs_waits_then_gets_409(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request (here: a claim that never answers, as a request still running) holds the
    key; a retry waits for it, then says it is in progress."""
    monkeypatch.setattr(deps, "IDEMPOTENCY_WAIT_SECONDS", 0.3)
    body: dict[str, Any] = batch_body()
    request = client.build_request("POST", "/v1/batches", json=body, headers=key("slow"))
    fingerprint = deps.request_fingerprint(
        request.content,
        method="POST",
        path="/v1/batches",
        content_type=request.headers["content-type"],
        query="",
    )
    store = app.state.store.for_project("default")
    held = store.meta.claim_idempotency_key("slow", fingerprint, ttl_seconds=60, lock_seconds=60)
    assert isinstance(held, IdempotencyClaim)
    started = time.monotonic()
    problem = assert_problem(await client.send(request), 409)
    assert time.monotonic() - started >= 0.3
    assert [e["field"] for e in problem["errors"]] == ["Idempotency-Key"]
    assert "in progress" in problem["detail"]
    assert await batch_ids(client) == []
    # once the first request answers, the retry gets that answer
    store.meta.release_idempotency_key(held)
    first = await client.send(client.build_request("POST", "/v1/batches", json=body, headers=key("slow")))
    assert first.status_code == 201
    assert (await client.send(request)).content == first.content
