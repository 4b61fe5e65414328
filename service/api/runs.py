"""``/v1/runs``: tracking runs, their metric series, and comparisons of runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.convertors import Convertor, register_url_convertor

from schemas.problems import problem_responses
from schemas.runs import (
    MetricLog,
    MetricLogResult,
    MetricSeries,
    Run,
    RunCompareRequest,
    RunComparison,
    RunCreate,
    RunImport,
    RunImported,
    RunList,
    RunUpdate,
)
from service.api.deps import PagingDep, ProjectStoreDep, SettingsDep
from service.api.evaluations import json_content_type
from service.errors import FieldIssue, InvalidInput
from service.integrations.outbound import OutboundPolicy
from service.jobs.mlflow_sync import import_mlflow_run
from service.jobs.run_comparison import compare_runs, read_series
from service.store import new_id
from service.store.sql import utcnow


class RunIdConvertor(Convertor[str]):
    """Run ids as issued (``r_`` and 32 hex digits): ``/v1/runs/compare`` and ``/v1/runs/import``
    are then never read as a run id, so each path answers OPTIONS and 405 with its own methods."""

    regex = "r_[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("run_id", RunIdConvertor())
router = APIRouter(prefix="/v1/runs", tags=["runs"])
JsonBody = [Depends(json_content_type)]

#: The largest ``max_points`` of a series read.
MAX_SERIES_POINTS = 100_000


def _pairs(values: list[str], field: str) -> dict[str, str]:
    pairs = {}
    for i, value in enumerate(values):
        key, sep, wanted = value.partition(":")
        if not sep or not key:
            raise InvalidInput(
                f"{field} filter {value!r} is not key:value",
                [FieldIssue(f"{field}[{i}]", f"write it as {field}=key:value, e.g. {field}=sync:true")],
            )
        pairs[key] = wanted
    return pairs


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Run,
    summary="Create a tracking run",
    responses=problem_responses(400, 401, 403, 415, 422),
    dependencies=JsonBody,
)
def create_run(body: RunCreate, store: ProjectStoreDep, response: Response) -> Run:
    run = store.runs.create(new_id("r"), body, utcnow())
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return run


@router.get(
    "", response_model=RunList, summary="List runs, newest first", responses=problem_responses(400, 401, 422)
)
def list_runs(
    store: ProjectStoreDep,
    paging: PagingDep,
    model: Annotated[str | None, Query(description="Only runs of this model name.")] = None,
    tag: Annotated[list[str], Query(description="`key:value`; repeat to require several tags.")] = [],  # noqa: B006
    param: Annotated[
        list[str], Query(description="`key:value` of a param (nested keys with dots: `optimizer.lr:0.1`).")
    ] = [],  # noqa: B006
) -> RunList:
    runs, token = store.runs.list_runs(
        model=model,
        tags=_pairs(tag, "tag"),
        params=_pairs(param, "param"),
        page_size=paging.page_size,
        page_token=paging.page_token,
    )
    return RunList(data=runs, next_page_token=token)


@router.post(
    "/compare",
    response_model=RunComparison,
    summary="Compare runs' curves: steps and time to a target, best and final values, groups",
    responses=problem_responses(400, 401, 403, 404, 415, 422),
    dependencies=JsonBody,
)
async def compare(body: RunCompareRequest, store: ProjectStoreDep) -> RunComparison:
    return await run_in_threadpool(compare_runs, store.runs, body)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=RunImported,
    summary="Copy a run from an MLflow tracking server",
    description="Params, tags, status, times and every metric's full history (one point per step: "
    "the latest; non-finite values are skipped and counted). The tracking URI obeys "
    "YARDSTICK_OUTBOUND_ALLOW.",
    responses=problem_responses(400, 401, 403, 415, 422),
    dependencies=JsonBody,
)
async def import_run(
    body: RunImport, store: ProjectStoreDep, settings: SettingsDep, response: Response
) -> RunImported:
    policy = OutboundPolicy.from_settings(settings.outbound_allow)
    imported = await run_in_threadpool(import_mlflow_run, store.runs, body, policy, utcnow())
    response.headers["Location"] = f"/v1/runs/{imported.run.id}"
    return imported


@router.get("/{run_id:run_id}", response_model=Run, summary="A run", responses=problem_responses(401, 404))
def get_run(run_id: str, store: ProjectStoreDep) -> Run:
    return store.runs.get(run_id)


@router.patch(
    "/{run_id:run_id}",
    response_model=Run,
    summary="End a run or add tags",
    responses=problem_responses(400, 401, 403, 404, 415, 422),
    dependencies=JsonBody,
)
def update_run(run_id: str, body: RunUpdate, store: ProjectStoreDep) -> Run:
    return store.runs.update(run_id, body, utcnow())


@router.post(
    "/{run_id:run_id}/metrics",
    response_model=MetricLogResult,
    summary="Log metric points (and param points)",
    description="Idempotent on (name, step, worker): a retried call stores nothing twice. Steps of a "
    "series go forward. System metrics go in the same stream under `system/` "
    "(`system/cpu_percent`, `system/memory_mb`, `system/gpu_utilization`, `system/gpu_memory_mb`, "
    "`system/samples_per_second`).",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
    dependencies=JsonBody,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MetricLog"}}},
        }
    },
)
async def log_metrics(run_id: str, http: Request, store: ProjectStoreDep) -> MetricLogResult:
    # Parsed and validated in one pass by pydantic's JSON parser: about twice as fast as FastAPI's
    # json.loads then validation on 10k-point calls (benchmarks/bench_runs.py).
    raw = await http.body()
    try:
        body = MetricLog.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    accepted, unchanged = await run_in_threadpool(store.runs.log, run_id, body, utcnow())
    return MetricLogResult(accepted=accepted, unchanged=unchanged)


@router.get(
    "/{run_id:run_id}/metrics",
    response_model=MetricSeries,
    summary="A metric series, downsampled on request",
    responses=problem_responses(400, 401, 404, 422),
)
async def get_metrics(
    run_id: str,
    store: ProjectStoreDep,
    name: Annotated[str, Query(min_length=1, max_length=250, description="The metric, e.g. `loss`.")],
    worker: Annotated[str | None, Query(max_length=100, description="A worker's series.")] = None,
    max_points: Annotated[
        int | None,
        Query(ge=4, le=MAX_SERIES_POINTS, description="Downsample to at most this many points."),
    ] = None,
    method: Annotated[
        Literal["lttb", "min_max"],
        Query(
            description="lttb (largest-triangle-three-buckets: keeps the curve's shape) or min_max (each "
            "bucket's extremes)."
        ),
    ] = "lttb",
) -> MetricSeries:
    series = await run_in_threadpool(
        read_series, store.runs, run_id, name, worker=worker, max_points=max_points, method=method
    )
    if series.total_points == 0:
        source = "" if worker is None else f" from worker {worker!r}"
        raise InvalidInput(
            f"run {run_id!r} has no points of {name!r}{source}",
            [FieldIssue("name", "use a name of the run's `metrics`")],
            status=404,
            title="Not found",
            type_slug="not-found",
        )
    return series


@router.get(
    "/{run_id:run_id}/params",
    summary="Param points by name, in step order",
    responses=problem_responses(401, 404),
)
def get_params(run_id: str, store: ProjectStoreDep) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [{"step": step, "value": value} for step, value in points]
        for name, points in store.runs.params(run_id).items()
    }
