"""Projects: each API key sees only its project's batches and jobs (another project's are 404s,
worded as for an id never issued), read-only keys cannot write, page tokens are signed."""

from __future__ import annotations

import base64
import hmac
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.jobs.worker import JobWorker
from service.settings import ApiKey, Settings
from service.store import paging
from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import assert_problem

pytestmark = pytest.mark.anyio

KEYS = "key-a:alpha, key-b:beta, key-r:alpha:read, key-d"


@pytest.fixture
def keyed_app(tmp_path: Path) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path / "data", workers=0, api_keys=KEYS))


@pytest.fixture
async def clients(keyed_app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per key: a (alpha), b (beta), r (alpha, read-only), d (default)."""
    transport = httpx.ASGITransport(app=keyed_app)
    made = {
        name: httpx.AsyncClient(
            transport=transport, base_url="http://t", headers={"Authorization": f"Bearer key-{name}"}
        )
        for name in "abrd"
    }
    yield made
    for c in made.values():
        await c.aclose()
    keyed_app.state.store.close()


@pytest.fixture
def run_all(keyed_app: FastAPI) -> Callable[[], int]:
    """The workers' view: every project's queued jobs."""

    def run() -> int:
        worker = JobWorker(keyed_app.state.store, keyed_app.state.settings, worker_id="w")
        count = 0
        while worker.run_once() is not None:
            count += 1
        return count

    return run


async def new_batch(client: httpx.AsyncClient, n: int = 40) -> str:
    response = await client.post("/v1/batches", json=batch_body(binary_columns(n)))
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    return batch_id


async def new_job(client: httpx.AsyncClient, batch_id: str) -> str:
    response = await client.post("/v1/evaluations", json={"batch_id": batch_id})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def same_wording(problem: dict[str, Any], missing: dict[str, Any], real_id: str, fake_id: str) -> None:
    """Another project's id is answered exactly as an id that never existed."""
    assert problem["status"] == missing["status"] and problem["title"] == missing["title"]
    assert problem["detail"].replace(real_id, "ID") == missing["detail"].replace(fake_id, "ID")


async def test_another_project_gets_404_on_every_route_of_a_batch(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    a, b = clients["a"], clients["b"]
    batch_id = await new_batch(a)
    labels = {"labels": [{"sample_id": "s0", "label": 1}]}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/batches/{}", {}),
        ("GET", "/v1/batches/{}/rows", {}),
        ("PUT", "/v1/batches/{}/labels", {"json": labels}),
        ("DELETE", "/v1/batches/{}", {}),
    ]
    for method, path, kwargs in calls:
        problem = assert_problem(await b.request(method, path.format(batch_id), **kwargs), 404)
        missing = assert_problem(await b.request(method, path.format("b_nope"), **kwargs), 404)
        same_wording(problem, missing, batch_id, "b_nope")
    # nothing of A's changed, and A still reaches all of it
    assert (await a.get(f"/v1/batches/{batch_id}")).json()["labeled_rows"] == 40
    assert (await a.get(f"/v1/batches/{batch_id}/rows")).status_code == 200
    assert (await a.put(f"/v1/batches/{batch_id}/labels", json=labels)).status_code == 200
    assert (await a.delete(f"/v1/batches/{batch_id}")).status_code == 204


async def test_another_projects_batch_cannot_be_evaluated_or_named_in_an_evaluation(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    a, b = clients["a"], clients["b"]
    theirs = await new_batch(a)
    mine = await new_batch(b)
    requests: list[tuple[dict[str, Any], str]] = [
        ({"batch_id": theirs}, "batch_id"),
        ({"batch_id": mine, "baselines": {"human": {"batch_id": theirs}}}, "baselines.human.batch_id"),
        (
            {"batch_id": mine, "baselines": {"existing": [{"name": "c", "batch_id": theirs}]}},
            "baselines.existing[0].batch_id",
        ),
        (
            {
                "batch_id": mine,
                "robustness": {
                    "pairs": [{"name": "p", "original_batch_id": mine, "perturbed_batch_id": theirs}]
                },
            },
            "robustness.pairs[0].perturbed_batch_id",
        ),
    ]
    for request, field in requests:
        problem = assert_problem(await b.post("/v1/evaluations", json=request), 422)
        missing_request = orjson.loads(orjson.dumps(request).replace(theirs.encode(), b"b_nope"))
        missing = assert_problem(await b.post("/v1/evaluations", json=missing_request), 422)
        assert [e["field"] for e in problem["errors"]] == [e["field"] for e in missing["errors"]]
        assert any(e["field"] == field for e in problem["errors"]), problem
        same_wording(problem, missing, theirs, "b_nope")
    assert (await b.get("/v1/jobs")).json()["data"] == []
    # the same requests within one project are accepted
    assert (await a.post("/v1/evaluations", json={"batch_id": theirs})).status_code == 202


async def test_another_project_gets_404_on_every_route_of_a_job(
    clients: dict[str, httpx.AsyncClient], run_all: Callable[[], int]
) -> None:
    a, b = clients["a"], clients["b"]
    batch_id = await new_batch(a)
    done, queued = await new_job(a, batch_id), None
    assert run_all() == 1
    queued = await new_job(a, batch_id)
    for job_id in (done, queued):
        for method, path in [
            ("GET", "/v1/jobs/{}"),
            ("GET", "/v1/jobs/{}/result"),
            ("GET", "/v1/jobs/{}/result?format=junit"),
            ("POST", "/v1/jobs/{}/cancel"),
        ]:
            problem = assert_problem(await b.request(method, path.format(job_id)), 404)
            missing = assert_problem(await b.request(method, path.format("j_nope")), 404)
            same_wording(problem, missing, job_id, "j_nope")
    assert (await a.get(f"/v1/jobs/{queued}")).json()["status"] == "queued"  # B's cancel did nothing
    assert (await a.get(f"/v1/jobs/{done}/result")).status_code == 200
    assert (await a.post(f"/v1/jobs/{queued}/cancel")).json()["status"] == "cancelled"


async def test_lists_show_only_the_callers_project(clients: dict[str, httpx.AsyncClient]) -> None:
    a, b, d = clients["a"], clients["b"], clients["d"]
    a_batches = [await new_batch(a) for _ in range(2)]
    b_batch = await new_batch(b)
    a_job, b_job = await new_job(a, a_batches[0]), await new_job(b, b_batch)
    assert [x["id"] for x in (await a.get("/v1/batches")).json()["data"]] == a_batches[::-1]
    assert [x["id"] for x in (await b.get("/v1/batches")).json()["data"]] == [b_batch]
    assert [x["id"] for x in (await a.get("/v1/jobs")).json()["data"]] == [a_job]
    assert [x["id"] for x in (await b.get("/v1/jobs")).json()["data"]] == [b_job]
    assert [x["id"] for x in (await clients["r"].get("/v1/batches")).json()["data"]] == a_batches[::-1]
    # a key without a project is project "default": it sees neither
    assert (await d.get("/v1/batches")).json()["data"] == []
    assert (await d.get("/v1/jobs")).json()["data"] == []


async def test_a_read_only_key_reads_its_project_and_writes_nothing(
    clients: dict[str, httpx.AsyncClient], run_all: Callable[[], int]
) -> None:
    a, r = clients["a"], clients["r"]
    batch_id = await new_batch(a)
    job_id = await new_job(a, batch_id)
    assert run_all() == 1
    queued = await new_job(a, batch_id)
    writes: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/batches", {"json": batch_body()}),
        ("PUT", f"/v1/batches/{batch_id}/labels", {"json": {"labels": [{"sample_id": "s0", "label": 1}]}}),
        ("DELETE", f"/v1/batches/{batch_id}", {}),
        ("POST", "/v1/evaluations", {"json": {"batch_id": batch_id}}),
        ("POST", f"/v1/jobs/{queued}/cancel", {}),
        ("POST", "/v1/batches", {"json": batch_body(), "headers": {"Idempotency-Key": "r-1"}}),
    ]
    for method, path, kwargs in writes:
        problem = assert_problem(await r.request(method, path, **kwargs), 403)
        assert "read-only" in problem["detail"], problem
        assert [e["field"] for e in problem["errors"]] == ["Authorization"]
    assert [x["id"] for x in (await a.get("/v1/batches")).json()["data"]] == [batch_id]
    assert (await a.get(f"/v1/jobs/{queued}")).json()["status"] == "queued"
    assert len((await a.get("/v1/jobs")).json()["data"]) == 2
    for path in (
        "/v1/batches",
        f"/v1/batches/{batch_id}",
        f"/v1/batches/{batch_id}/rows",
        "/v1/jobs",
        f"/v1/jobs/{job_id}",
        f"/v1/jobs/{job_id}/result",
        f"/v1/jobs/{job_id}/result?format=junit",
    ):
        assert (await r.get(path)).status_code == 200, path
    # a read-only key of another project still gets 404s, not 403s, for reads
    assert_problem(await clients["b"].get(f"/v1/jobs/{job_id}"), 404)


async def test_workers_run_every_projects_jobs_and_results_stay_in_their_project(
    clients: dict[str, httpx.AsyncClient], run_all: Callable[[], int]
) -> None:
    a, b = clients["a"], clients["b"]
    a_job = await new_job(a, await new_batch(a))
    b_job = await new_job(b, await new_batch(b, 60))
    assert run_all() == 2
    a_result = (await a.get(f"/v1/jobs/{a_job}/result")).json()
    b_result = (await b.get(f"/v1/jobs/{b_job}/result")).json()
    assert a_result["verdict"]["rows"] == 40 and b_result["verdict"]["rows"] == 60
    assert_problem(await a.get(f"/v1/jobs/{b_job}/result"), 404)
    assert_problem(await b.get(f"/v1/jobs/{a_job}/result"), 404)


async def test_every_key_is_compared_whichever_matches(
    clients: dict[str, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[bytes] = []
    original = hmac.compare_digest

    def counting(x: bytes, y: bytes) -> bool:
        compared.append(y)
        return original(x, y)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # what service.api.deps calls
    assert (await clients["a"].get("/v1/batches")).status_code == 200  # the first key
    assert len(compared) == 4
    compared.clear()
    assert_problem(await clients["a"].get("/v1/batches", headers={"Authorization": "Bearer nope"}), 401)
    assert len(compared) == 4


async def test_without_keys_everyone_is_the_writable_default_project(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    batch_id = (await client.post("/v1/batches", json=batch_body())).json()["id"]
    assert app.state.store.meta.get_batch(batch_id).project == "default"
    assert (await client.delete(f"/v1/batches/{batch_id}")).status_code == 204


def test_api_keys_parse_projects_and_read_only_access() -> None:
    keys = Settings(api_keys="k1, k2:alpha\nk3:beta:read,k4::read, k5:gamma:write").api_keys
    assert keys == [
        ApiKey(key="k1", project="default", can_write=True),
        ApiKey(key="k2", project="alpha", can_write=True),
        ApiKey(key="k3", project="beta", can_write=False),
        ApiKey(key="k4", project="default", can_write=False),
        ApiKey(key="k5", project="gamma", can_write=True),
    ]
    assert "k2" not in repr(keys)
    # what the worker processes get: the settings as JSON
    assert Settings.model_validate_json(Settings(api_keys="s:p:read").model_dump_json()).api_keys == [
        ApiKey(key="s", project="p", can_write=False)
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("secret-1:alpha:admin", "entry 1: the access after the project is 'read' or 'write'"),
        ("ok, secret-2:has space", "entry 2: project 'has space' must be"),
        ("secret-3:a:read:x", "entry 1: expected key, key:project or key:project:read"),
        ("secret-4, secret-4:b", "entry 2 repeats an earlier key"),
    ],
)
def test_bad_api_key_entries_are_refused_without_printing_keys(value: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Settings(api_keys=value)
    assert message in str(caught.value)
    assert "secret-" not in str(caught.value)


# -- page tokens --------------------------------------------------------------------------------


def unsigned(raw: object) -> str:
    """A token as the previous release made them: base64 JSON, no signature."""
    return base64.urlsafe_b64encode(orjson.dumps(raw)).decode().rstrip("=")


async def test_crafted_page_tokens_are_400_problems_naming_page_token(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    a, b = clients["a"], clients["b"]
    batches = [await new_batch(a, 30) for _ in range(3)]
    for batch_id in batches:
        await new_job(a, batch_id)
    await new_batch(b)
    batch_token = (await a.get("/v1/batches", params={"page_size": 1})).json()["next_page_token"]
    job_token = (await a.get("/v1/jobs", params={"page_size": 1})).json()["next_page_token"]
    rows_url = f"/v1/batches/{batches[0]}/rows"
    rows_token = (await a.get(rows_url, params={"page_size": 10})).json()["next_page_token"]
    other_rows_token = (await a.get(f"/v1/batches/{batches[1]}/rows", params={"page_size": 10})).json()[
        "next_page_token"
    ]
    assert None not in (batch_token, job_token, rows_token, other_rows_token)
    # the real tokens work
    assert len((await a.get("/v1/batches", params={"page_token": batch_token})).json()["data"]) == 2
    assert len((await a.get("/v1/jobs", params={"page_token": job_token})).json()["data"]) == 2
    assert len((await a.get(rows_url, params={"page_token": rows_token})).json()["data"]) == 20

    payload, _, mac = batch_token.partition(".")
    naive_old = unsigned(["2026-01-01T00:00:00", batches[0]])  # the 500 of the previous release
    crafted = {
        "garbage": "garbage!",
        "naive timestamp, old format": naive_old,
        "naive timestamp, signed": paging.sign(
            {"t": "2026-01-01T00:00:00", "i": "b_x"}, scope="batches:alpha"
        ),
        "tampered": unsigned(["2099-01-01T00:00:00+00:00", "b_zzz"]) + "." + mac,
        "truncated signature": batch_token[:-3],
        "offset, old format": unsigned({"o": 5}),
        "negative offset, signed": paging.sign({"o": -5}, scope=f"rows:alpha:{batches[0]}"),
        "huge": "x" * 5000,
    }
    cases = [("/v1/batches", t) for t in crafted.values()]
    cases += [("/v1/jobs", t) for t in crafted.values()]
    cases += [(rows_url, t) for t in crafted.values()]
    # a token of another route, another batch's rows, another project
    cases += [
        ("/v1/batches", job_token),
        ("/v1/jobs", batch_token),
        ("/v1/batches", rows_token),
        (rows_url, batch_token),
        (rows_url, other_rows_token),
    ]
    for url, token in cases:
        problem = assert_problem(await a.get(url, params={"page_token": token}), 400)
        assert [e["field"] for e in problem["errors"]] == ["page_token"], (url, token)
    for url, token in [("/v1/batches", batch_token), ("/v1/jobs", job_token)]:
        problem = assert_problem(await b.get(url, params={"page_token": token}), 400)
        assert problem["errors"][0]["field"] == "page_token"
    assert payload  # the signed part is there to be tampered with above


async def test_critical_slice_history_stays_within_the_project(
    clients: dict[str, httpx.AsyncClient], run_all: Callable[[], int]
) -> None:
    # Both projects evaluate a model of the same name (batch_body names it fraud-gbm).
    request = {"slices": {"critical": [{"name": "br", "where": 'country = "BR"'}]}}
    for name in ("a", "b", "a"):
        batch_id = await new_batch(clients[name])
        response = await clients[name].post("/v1/evaluations", json={"batch_id": batch_id} | request)
        assert response.status_code == 202, response.text
        assert run_all() == 1
    jobs = {name: (await clients[name].get("/v1/jobs")).json()["data"] for name in "ab"}
    latest_a = (await clients["a"].get(f"/v1/jobs/{jobs['a'][0]['id']}/result")).json()
    only_b = (await clients["b"].get(f"/v1/jobs/{jobs['b'][0]['id']}/result")).json()
    # alpha's second evaluation sees alpha's first only; beta's sees nothing of alpha's
    assert [h["job_id"] for h in latest_a["slices"]["critical"][0]["history"]] == [jobs["a"][1]["id"]]
    assert only_b["slices"]["critical"][0]["history"] == []
