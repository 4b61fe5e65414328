"""``POST /v1/evaluations``: queue an evaluation job."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from schemas.evaluations import EvaluationCreate
from schemas.jobs import Job
from schemas.problems import problem_responses
from service.api.deps import IdempotencyKeyHeader, ProjectStoreDep, SettingsDep, create_once
from service.ingest.media import JSON, parse_media_type
from service.jobs.submit import submit_evaluation
from service.store import JobRecord, Store

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])


def json_content_type(http: Request) -> None:
    """415 for a body that is not ``application/json`` (UTF-8), as the upload routes answer.

    Runs after FastAPI has tried to parse the body: unparseable JSON is a 400 before this, and a
    parsed body's fields are checked (422) after it."""
    parse_media_type(http.headers.get("content-type"), accepted=(JSON,))


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    summary="Create an evaluation job",
    description="Answers 202 with the queued job; poll `Location` until it succeeds, then fetch its result.",
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422),
    dependencies=[Depends(json_content_type)],
)
async def create_evaluation(
    request: EvaluationCreate,
    http: Request,
    store: ProjectStoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    async def create(target: Store) -> JobRecord:
        return await run_in_threadpool(submit_evaluation, target, settings, request)

    # The raw body (already read to parse `request`) is what a retry must repeat.
    return await create_once(http, store, settings, await http.body(), create)
