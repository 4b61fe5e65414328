"""The API contract in process: what submission refuses, how errors look, Allow, auth, schemas.

The same contract is checked against the real server by tests/integration/test_schemathesis.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

from schemas.batches import BatchCreate, LabelUpdate
from schemas.evaluations import EvaluationCreate
from tests.api.conftest import batch_body
from tests.api.test_batches import assert_problem

pytestmark = pytest.mark.anyio

NAN, INF = float("nan"), float("inf")
ENDPOINT = {"url": "https://model.example/v1/models/m:predict"}
HUGE_ID = "b" * 10_000_000
LONG_ID = "b" * 100_000


async def post_json(client: httpx.AsyncClient, path: str, body: object) -> httpx.Response:
    """POST ``body`` as JSON, NaN and Infinity literals included (Python's json module writes them
    and FastAPI's parser reads them, so they reach the request models)."""
    return await client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


async def created_batch(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/batches", json=batch_body())
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    return batch_id


# -- 1. What a job would refuse is refused at submission -----------------------------------------

REFUSED = [
    # seeds: numpy refuses negative seeds when the job starts drawing
    ({"bootstrap": {"seed": -1}}, "bootstrap.seed"),
    ({"calibration": {"seed": -1}}, "calibration.seed"),
    ({"robustness": {"seed": -1}}, "robustness.seed"),
    ({"bootstrap": {"seed": 2**53}}, "bootstrap.seed"),
    # NaN and infinite numbers
    ({"threshold": NAN}, "threshold"),
    ({"bootstrap": {"confidence": NAN}}, "bootstrap.confidence"),
    ({"calibration": {"ece_tolerance": INF}}, "calibration.ece_tolerance"),
    ({"confidence": {"level": NAN}}, "confidence.level"),
    ({"confidence": {"target_accuracy": NAN}}, "confidence.target_accuracy"),
    ({"slices": {"alpha": NAN}}, "slices.alpha"),
    ({"slices": {"min_effect": INF}}, "slices.min_effect"),
    ({"slices": {"finder": {"alpha": NAN}}}, "slices.finder.alpha"),
    ({"robustness": {"score_tolerance": NAN}}, "robustness.score_tolerance"),
    ({"robustness": {"max_flip_rate": NAN}}, "robustness.max_flip_rate"),
    (
        {"robustness": {"endpoint": ENDPOINT | {"timeout_seconds": INF}}},
        "robustness.endpoint.timeout_seconds",
    ),
    (
        {
            "robustness": {
                "endpoint": ENDPOINT,
                "perturbation": [{"column": "amount", "noise": "gaussian", "scale": NAN}],
            }
        },
        "robustness.perturbation[0].scale",
    ),
    (
        {
            "robustness": {
                "endpoint": ENDPOINT,
                "directional": [{"column": "amount", "add": NAN, "expect": "increase"}],
            }
        },
        "robustness.directional[0].add",
    ),
    (
        {
            "robustness": {
                "endpoint": ENDPOINT,
                "directional": [{"column": "amount", "multiply": INF, "expect": "increase"}],
            }
        },
        "robustness.directional[0].multiply",
    ),
    (
        {
            "robustness": {
                "endpoint": ENDPOINT,
                "directional": [{"column": "amount", "set": NAN, "expect": "increase"}],
            }
        },
        "robustness.directional[0].set",
    ),
    (
        {"robustness": {"endpoint": ENDPOINT, "invariance": [{"column": "amount", "swap": [NAN, 1.0]}]}},
        "robustness.invariance[0].swap",
    ),
    (
        {
            "baselines": {
                "heuristics": [{"name": "h", "rules": [{"when": "amount > 1", "then": NAN}], "otherwise": 0}]
            }
        },
        "baselines.heuristics[0].rules[0].then",
    ),
    (
        {
            "baselines": {
                "heuristics": [{"name": "h", "rules": [{"when": "amount > 1", "then": 1}], "otherwise": INF}]
            }
        },
        "baselines.heuristics[0].otherwise",
    ),
    # ids over 64 characters: refused as too long, never looked up or echoed
    ({"batch_id": HUGE_ID}, "batch_id"),
    ({"baselines": {"human": {"batch_id": LONG_ID}}}, "baselines.human.batch_id"),
    (
        {"baselines": {"existing": [{"name": "champion", "batch_id": LONG_ID}]}},
        "baselines.existing[0].batch_id",
    ),
    (
        {"robustness": {"pairs": [{"name": "p", "original_batch_id": LONG_ID, "perturbed_batch_id": "b_x"}]}},
        "robustness.pairs[0].original_batch_id",
    ),
    (
        {"robustness": {"pairs": [{"name": "p", "original_batch_id": "b_x", "perturbed_batch_id": LONG_ID}]}},
        "robustness.pairs[0].perturbed_batch_id",
    ),
    # what the robustness worker refuses about the changes, found on the batch's column types
    (
        {"robustness": {"endpoint": ENDPOINT, "invariance": [{"column": "amount", "swap": ["F", "M"]}]}},
        "robustness.invariance[0]",
    ),
    (
        {"robustness": {"endpoint": ENDPOINT, "invariance": [{"column": "country", "swap": ["BR", "BR"]}]}},
        "robustness.invariance[0]",
    ),
    (
        {
            "robustness": {
                "endpoint": ENDPOINT,
                "directional": [{"column": "country", "add": 1, "expect": "increase"}],
            }
        },
        "robustness.directional[0]",
    ),
    (
        {
            "robustness": {
                "endpoint": ENDPOINT,
                "directional": [{"column": "amount", "set": "lots", "expect": "increase"}],
            }
        },
        "robustness.directional[0]",
    ),
    (
        {"robustness": {"endpoint": ENDPOINT, "perturbation": [{"column": "country", "noise": "gaussian"}]}},
        "robustness.perturbation[0].noise",
    ),
    (
        {"robustness": {"endpoint": ENDPOINT, "perturbation": [{"column": "amount", "noise": "typo"}]}},
        "robustness.perturbation[0].noise",
    ),
    (
        {"robustness": {"endpoint": ENDPOINT | {"headers": {"X-Token": "a\nb"}}}},
        "robustness.endpoint.headers",
    ),
]


@pytest.mark.parametrize(("fragment", "field"), REFUSED, ids=[f"{f}-{i}" for i, (_, f) in enumerate(REFUSED)])
async def test_what_a_job_would_refuse_is_a_422_naming_the_field_and_queues_nothing(
    client: httpx.AsyncClient, fragment: dict[str, Any], field: str
) -> None:
    body = {"batch_id": await created_batch(client)} | fragment
    response = await post_json(client, "/v1/evaluations", body)
    problem = assert_problem(response, 422)
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert len(response.content) < 20_000, "the error echoes the input"
    assert (await client.get("/v1/jobs")).json()["data"] == []


async def test_the_same_changes_fitting_the_columns_are_accepted(client: httpx.AsyncClient) -> None:
    robustness = {
        "endpoint": ENDPOINT | {"headers": {"Authorization": "Bearer t0ken", "X-Empty": ""}},
        "seed": 2**53 - 1,
        "invariance": [{"column": "country", "swap": ["BR", "US"]}],
        "directional": [{"column": "amount", "add": 10, "expect": "increase"}],
        "perturbation": [{"column": "amount", "noise": "gaussian"}, {"column": "country", "noise": "typo"}],
    }
    body = {"batch_id": await created_batch(client), "robustness": robustness, "bootstrap": {"seed": 0}}
    # The endpoint's host is public but does not resolve here: the only complaint left is the URL.
    response = await post_json(client, "/v1/evaluations", body)
    if response.status_code == 422:
        assert {e["field"] for e in response.json()["errors"]} == {"robustness.endpoint.url"}, response.text
    else:
        assert response.status_code == 202, response.text


# -- Problem documents quote little of the input -------------------------------------------------


async def test_problems_quote_at_most_200_characters_of_any_input(client: httpx.AsyncClient) -> None:
    huge_name = "k" * 1_000_000
    answers = [
        await post_json(client, "/v1/evaluations", {"batch_id": "b_x", huge_name: 1}),
        await client.get(f"/v1/batches/{'x' * 50_000}"),
        await client.get(f"/v1/jobs/{'x' * 50_000}/result"),
        await client.post("/v1/batches", json=batch_body(model={"name": "m" * 100_000, "version": "1"})),
    ]
    for response in answers:
        assert 400 <= response.status_code < 500, response.text[:500]
        assert response.headers["content-type"].startswith("application/problem+json")
        assert len(response.content) < 5_000, response.text[:500]
        assert not re.search(r"([kxm])\1{200,}", response.text), response.text[:500]


# -- 2. 400 for a body that does not parse, 422 for a parsed one with bad fields ----------------

ROUTES = [("POST", "/v1/batches"), ("PUT", "/v1/batches/{id}/labels"), ("POST", "/v1/evaluations")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    ("content_type", "body", "status", "field"),
    [
        ("application/json", b'{"model": ', 400, "body"),
        ("application/json", b"", 400, "body"),
        ("application/json", b"[1, 2]", 422, "body"),
        ("application/json", b'"a string"', 422, "body"),
        ("application/json", b'{"surprise": 1}', 422, "surprise"),
        ("text/plain", b"{}", 415, None),
    ],
    ids=["truncated", "empty", "array", "string", "unknown-field", "text-plain"],
)
async def test_one_rule_for_bad_bodies_on_every_route(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    content_type: str,
    body: bytes,
    status: int,
    field: str | None,
) -> None:
    url = path.replace("{id}", await created_batch(client))
    response = await client.request(method, url, content=body, headers={"content-type": content_type})
    problem = assert_problem(response, status)
    if status == 400:
        assert problem["type"].endswith("/malformed-body"), problem
    if field is not None:
        assert any(e["field"] == field for e in problem["errors"]), problem
    assert (await client.get("/v1/jobs")).json()["data"] == []


# -- 3. Allow names every method of a path -------------------------------------------------------

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def documented_paths(app: FastAPI) -> dict[str, set[str]]:
    return {path: {m.upper() for m in ops} for path, ops in app.openapi()["paths"].items()}


async def test_options_and_405_list_every_method_of_every_documented_path(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    paths = documented_paths(app)
    assert "/v1/batches/{batch_id}" in paths and len(paths) >= 12
    for template, methods in paths.items():
        # a value each path parameter accepts (run ids have the issued shape: api/runs.py)
        url = re.sub(r"\{[^}]+\}", "x", template.replace("{run_id}", "r_" + "0" * 32))
        options = await client.options(url)
        assert options.status_code == 204, (template, options.text)
        allow = {m.strip() for m in options.headers["allow"].split(",")}
        assert allow == methods | {"OPTIONS"}, template
        other = next(m for m in METHODS if m not in methods)
        refused = assert_problem(await client.request(other, url), 405)
        assert {m.strip() for m in options.headers["allow"].split(",")} == allow
        assert refused["type"].endswith("/method-not-allowed")
        assert set(re.split(r",\s*", (await client.request(other, url)).headers["allow"])) == allow, template


async def test_allow_needs_no_api_key(tmp_path: Any) -> None:
    from service.app import create_app
    from service.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, workers=0, api_keys=["k-one"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.options("/v1/batches")
        assert response.status_code == 204 and response.headers["allow"] == "GET, OPTIONS, POST"
        assert (await c.patch("/v1/batches/x")).headers["allow"] == "DELETE, GET, OPTIONS"
    app.state.store.close()


# -- 4. The document declares its auth -----------------------------------------------------------


def test_openapi_declares_bearer_auth_on_every_v1_operation_and_only_there(app: FastAPI) -> None:
    document = app.openapi()
    schemes = document["components"]["securitySchemes"]
    assert len(schemes) == 1
    (name, scheme), *_ = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            expected: list[dict[str, list[str]]] | None = [{name: []}] if path.startswith("/v1/") else None
            assert operation.get("security") == expected, f"{method} {path}"


# -- What the schema accepts, the request models accept ------------------------------------------


def document_without_gates(app: FastAPI) -> dict[str, Any]:
    """The app's document, without `gates` in the evaluation request.

    A gate's rules tie its fields together (`min` <= `max`; one of `min`, `max`, `vs`; a slice
    reads a metric) beyond what schemas/gates.py states as JSON Schema yet, and `min` <= `max`
    cannot be stated at all: a gate is a 422 at submission for those, by design."""
    document: dict[str, Any] = json.loads(json.dumps(app.openapi()))
    document["components"]["schemas"]["EvaluationCreate"]["properties"].pop("gates")
    return document


@pytest.mark.parametrize(
    ("path", "method", "model"),
    [
        ("/v1/evaluations", "POST", EvaluationCreate),
        ("/v1/batches", "POST", BatchCreate),
        ("/v1/batches/{batch_id}/labels", "PUT", LabelUpdate),
    ],
)
def test_every_body_the_schema_accepts_the_request_model_accepts(
    app: FastAPI, path: str, method: str, model: type[BaseModel]
) -> None:
    schema = schemathesis.openapi.from_dict(document_without_gates(app))
    strategy = schema[path][method].as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE)
    refused: list[str] = []

    @settings(
        max_examples=150,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def check(case: Any) -> None:
        if case.media_type == "application/json":
            try:
                model.model_validate(case.body)
            except ValueError as exc:
                refused.append(f"{json.dumps(case.body)[:300]}\n{exc}")

    check()
    assert not refused, f"{len(refused)} schema-valid bodies refused, e.g.:\n" + "\n\n".join(refused[:3])


async def test_an_unexpected_error_is_a_500_problem_that_closes_the_connection(app: Any) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/_broken", broken, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/v1/_broken")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["connection"] == "close"
    assert "a bug" not in response.text


def test_operation_ids_read_as_resource_and_action(app: FastAPI) -> None:
    ids = [op["operationId"] for path in app.openapi()["paths"].values() for op in path.values()]
    from service.app import OPERATION_IDS

    assert len(ids) == len(set(ids)) == len(OPERATION_IDS)
    assert set(ids) == set(OPERATION_IDS.values())  # every route of the contract is named
    assert "batches-create" in ids and "jobs-get-result" in ids
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)+", operation_id), operation_id
