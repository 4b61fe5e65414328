"""``POST /v1/evaluations``: queue an evaluation job."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool

from schemas.evaluations import EvaluationCreate
from schemas.jobs import Job
from schemas.problems import problem_responses
from service.api.deps import SettingsDep, StoreDep
from service.jobs.submit import submit_evaluation

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    summary="Create an evaluation job",
    description="Answers 202 with the queued job; poll `Location` until it succeeds, then fetch its result.",
    responses=problem_responses(400, 401, 413, 422),
)
async def create_evaluation(
    request: EvaluationCreate, store: StoreDep, settings: SettingsDep, response: Response
) -> Job:
    job = await run_in_threadpool(submit_evaluation, store, settings, request)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job.to_wire()
