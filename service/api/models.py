"""``/v1/models`` and ``/ui/models/{name}``: the models a project has evaluated, and a page for each.

A model is a name that evaluation jobs were created for (batches alone do not make one). The list
reads one verdict per model; the page reads the verdict and critical slices of the model's newest
:data:`~service.reports.model_page.MAX_EVALUATIONS` evaluations, never whole result documents.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter, ValidationError

from schemas.metrics import Interval
from schemas.models import (
    CriticalSliceHistory,
    HistoryPoint,
    LatestEvaluation,
    ModelHistory,
    ModelList,
    ModelSummary,
)
from schemas.problems import problem_responses
from schemas.results import PrimaryMetric, Verdict
from schemas.slices import CriticalSliceResult
from service.api.deps import PagingDep, ProjectStoreDep
from service.reports.model_page import MAX_EVALUATIONS, ModelEvaluation, render_model_page
from service.store.records import EvaluationRecord, ModelRecord

router = APIRouter(tags=["models"])

_CRITICAL = TypeAdapter(list[CriticalSliceResult])
_HTML: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {"schema": {"type": "string"}}}}}
StoredPart = TypeVar("StoredPart", Verdict, PrimaryMetric, Interval)


@router.get(
    "/v1/models",
    response_model=ModelList,
    summary="List models, most recently evaluated first",
    description="Every model name with evaluation jobs in the caller's project, with its job counts "
    "and its newest succeeded evaluation (verdict and primary metric), and the path of its page.",
    responses=problem_responses(400, 401, 422),
)
def list_models(store: ProjectStoreDep, paging: PagingDep) -> ModelList:
    records, token = store.meta.list_models(page_size=paging.page_size, page_token=paging.page_token)
    return ModelList(data=[_summary(r) for r in records], next_page_token=token)


@router.get(
    "/v1/models/{name:path}/history",
    response_model=ModelHistory,
    summary="A model's metric and critical slices across versions and time",
    description="Every succeeded evaluation's value of `metric` (absent: each evaluation's primary "
    "metric) with its interval, by version and time, oldest first; and each critical slice's value of "
    "the same metric. What the model page plots. The newest "
    f"{MAX_EVALUATIONS} evaluations are read. 404 problem for a model without evaluations.",
    responses=problem_responses(401, 404, 422),
)
def get_model_history(
    name: str,
    store: ProjectStoreDep,
    metric: Annotated[str | None, Query(min_length=1, max_length=100, examples=["f1"])] = None,
) -> ModelHistory:
    records = store.meta.model_evaluations(name, limit=MAX_EVALUATIONS + 1, metric=metric)
    capped = len(records) > MAX_EVALUATIONS
    succeeded = [r for r in reversed(records[:MAX_EVALUATIONS]) if r.status == "succeeded"]
    points: list[HistoryPoint] = []
    slices: dict[str, CriticalSliceHistory] = {}
    for record in succeeded:
        verdict = _parsed(Verdict, record.verdict)
        primary = verdict.primary_metric if verdict is not None else None
        read = metric or (primary.name if primary is not None else None)
        if read is None:
            continue
        base = {
            "job_id": record.job_id,
            "version": record.version,
            "finished_at": record.finished_at,
            "verdict": verdict.status if verdict is not None else None,
            "metric": read,
        }
        if metric is not None:
            interval = _parsed(Interval, record.metric_interval)
            points.append(HistoryPoint(**base, value=record.metric_value, interval=interval))
        elif primary is not None:
            points.append(HistoryPoint(**base, value=primary.value, interval=primary.interval))
        for critical in _evaluation(record).critical:
            entry = critical.metrics.get(read)
            if entry is None:
                continue
            history = slices.setdefault(
                critical.name, CriticalSliceHistory(name=critical.name, where=critical.where, points=[])
            )
            history.points.append(
                HistoryPoint(**base, value=entry.value, interval=entry.interval, n=critical.n)
            )
    return ModelHistory(
        model=name, metric=metric, points=points, critical=list(slices.values()), capped=capped
    )


@router.get(
    "/ui/models/{name:path}",
    response_class=HTMLResponse,
    summary="The model's page (HTML)",
    description=f"A self-contained HTML page: the primary metric and the critical slices across "
    f"versions and time as figures, and a table of the newest {MAX_EVALUATIONS} evaluations with "
    "links to each job's report. 404 problem when the model has no evaluation in this project.",
    responses={**_HTML, **problem_responses(401, 404)},
)
def get_model_page(name: str, request: Request, store: ProjectStoreDep) -> HTMLResponse:
    records = store.meta.model_evaluations(name, limit=MAX_EVALUATIONS + 1)
    shown = [_evaluation(r) for r in records[:MAX_EVALUATIONS]]
    html = render_model_page(
        name,
        shown,
        capped=len(records) > MAX_EVALUATIONS,
        limit=MAX_EVALUATIONS,
        base=_root_relative(request),
    )
    return HTMLResponse(html)


def _summary(record: ModelRecord) -> ModelSummary:
    latest = record.latest
    return ModelSummary(
        name=record.name,
        evaluations=record.evaluations,
        succeeded=record.succeeded,
        last_evaluated_at=record.last_created_at,
        latest=None
        if latest is None
        else LatestEvaluation(
            job_id=latest.job_id,
            version=latest.version,
            finished_at=latest.finished_at,
            verdict=_verdict_status(latest.verdict),
            primary_metric=_parsed(PrimaryMetric, (latest.verdict or {}).get("primary_metric")),
            report=f"/v1/jobs/{latest.job_id}/report",
        ),
        page=f"/ui/models/{quote(record.name, safe='')}",
    )


def _evaluation(record: EvaluationRecord) -> ModelEvaluation:
    try:
        critical = _CRITICAL.validate_python(record.critical)
    except ValidationError:  # stored by an older version in another shape: not drawn
        critical = []
    return ModelEvaluation(
        job_id=record.job_id,
        version=record.version,
        status=record.status,
        created_at=record.created_at,
        finished_at=record.finished_at,
        verdict=_parsed(Verdict, record.verdict),
        critical=critical,
    )


def _parsed(model: type[StoredPart], stored: Any) -> StoredPart | None:
    """``stored`` read as ``model``; None when absent or stored by an older version in another shape."""
    if stored is None:
        return None
    try:
        return model.model_validate(stored)
    except ValidationError:
        return None


def _verdict_status(verdict: dict[str, Any] | None) -> Any:
    status = (verdict or {}).get("status")
    return status if status in ("pass", "warn", "fail") else None


def _root_relative(request: Request) -> str:
    """``../`` as many times as it takes from the page's URL back to the API's root, so links work
    behind a proxy that mounts the service under a path prefix."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return "../" * (raw.split(b"?")[0].count(b"/") - 1)
