"""The application factory: ``create_app(settings)`` wires routers, errors and workers."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pyarrow as pa
from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from schemas.batches import BatchCreate, LabelUpdate
from schemas.problems import Problem
from schemas.runs import MetricLog
from service.api import batches, docs, evaluations, health, jobs, models, reports, runs
from service.api.deps import require_api_key
from service.api.problems import install_problem_handlers
from service.jobs.pool import WorkerPool
from service.settings import Settings
from service.store import Store
from service.telemetry import Telemetry

VERSION = "0.1.0"


def _use_returning_allocator() -> None:
    """Arrow's jemalloc pool hands freed memory back sooner than the default mimalloc,
    which keeps the API's peak memory per upload lower (see docs/benchmarks.md)."""
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return  # an explicit operator choice wins
    # A pyarrow build without jemalloc raises NotImplementedError: then keep the default.
    with contextlib.suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


#: Operation ids as generated clients name their methods: ``<resource>-<action>``.
OPERATION_IDS = {
    "list_batches": "batches-list",
    "create_batch": "batches-create",
    "get_batch": "batches-get",
    "delete_batch": "batches-delete",
    "put_labels": "batches-put-labels",
    "list_rows": "batches-list-rows",
    "create_evaluation": "evaluations-create",
    "list_jobs": "jobs-list",
    "get_job": "jobs-get",
    "cancel_job": "jobs-cancel",
    "get_result": "jobs-get-result",
    "get_report": "jobs-get-report",
    "healthz": "health-live",
    "readyz": "health-ready",
    "prometheus": "metrics-prometheus",
    "create_run": "runs-create",
    "list_runs": "runs-list",
    "get_run": "runs-get",
    "update_run": "runs-update",
    "compare": "runs-compare",
    "log_metrics": "runs-log-metrics",
    "get_metrics": "runs-get-metrics",
    "get_params": "runs-get-params",
    "list_models": "models-list",
    "get_model_page": "ui-model-page",
    "import_run": "runs-import",
    "get_model_history": "models-get-history",
}


def operation_id(route: APIRoute) -> str:
    """The route's readable operation id (``batches-create``, not FastAPI's
    ``create_batch_v1_batches_post``); a route not in :data:`OPERATION_IDS` gets its name with
    dashes (tests/api/test_contract.py checks that every route of the contract is listed)."""
    return OPERATION_IDS.get(route.name, route.name.replace("_", "-"))


def create_app(settings: Settings | None = None, *, embedded_workers: bool = False) -> FastAPI:
    """Build the API. With ``embedded_workers`` the app runs ``settings.workers`` worker
    processes for its lifetime (``yardstick serve``); otherwise jobs wait for ``yardstick worker``."""
    settings = settings or Settings()
    _use_returning_allocator()
    # Opened here rather than in the lifespan so in-process test clients (which do not run
    # lifespans) get a working app too.
    store = Store.open(settings)
    store.sweep_orphan_files()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = WorkerPool(settings, settings.workers) if embedded_workers and settings.workers > 0 else None
        if pool is not None:
            pool.start()
        app.state.pool = pool
        try:
            yield
        finally:
            if pool is not None:
                pool.stop()
            store.close()

    app = FastAPI(
        title="Yardstick",
        version=VERSION,
        summary="Judge every model version the same, thorough way before it ships.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # served by service/api/docs.py from an installed package, not from a CDN
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.telemetry = Telemetry()
    app.state.pool = None

    install_problem_handlers(app)
    authed = [Depends(require_api_key)]
    routers = (batches.router, evaluations.router, jobs.router, reports.router, models.router, runs.router)
    for router in routers:
        app.include_router(router, dependencies=authed)
    app.include_router(health.router)
    app.include_router(docs.router)

    @app.middleware("http")
    async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        app.state.telemetry.request(
            request.method, template, response.status_code, time.perf_counter() - start
        )
        return response

    # FastAPI's documented way to customise the schema is to replace this method, which mypy
    # does not allow for a method declared on the class
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


BEARER_SCHEME = "bearerAuth"


def _declare_bearer_auth(schema: dict[str, Any]) -> None:
    """Every ``/v1`` operation takes a bearer key (checked by ``service.api.deps``); the health
    routes and the OpenAPI document stay open."""
    schema["components"]["securitySchemes"] = {
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key of YARDSTICK_API_KEYS as `Authorization: Bearer <key>`. A "
            "service started without keys (local use, loopback only) does not ask for one.",
        }
    }
    for path, methods in schema.get("paths", {}).items():
        if path.startswith("/v1/"):
            for operation in methods.values():
                operation["security"] = [{BEARER_SCHEME: []}]


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the models of bodies read raw (several content types per route)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (BatchCreate, LabelUpdate, MetricLog, Problem):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema
    # FastAPI documents its own 422 body; ours is a problem document (see api/problems.py).
    problem_422 = {
        "description": "Invalid input (the errors name each field/row)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = problem_422
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    _declare_bearer_auth(schema)
    app.openapi_schema = schema
    return schema
