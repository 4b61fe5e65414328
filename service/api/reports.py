"""``GET /v1/jobs/{job_id}/report``: a job's result as one self-contained HTML page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from schemas.common import ModelRef
from schemas.problems import problem_responses
from schemas.results import EvaluationResult
from service.api.deps import ProjectStoreDep
from service.errors import Conflict
from service.reports.report import render_failed, render_report

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: The problems this route answers with, declared by their ``content`` alone: given a ``model``,
#: FastAPI would also list them under the route's own media type, as if an error came as text/html.
_PROBLEMS = {
    status: {key: value for key, value in response.items() if key != "model"}
    for status, response in problem_responses(401, 404, 409).items()
}


@router.get(
    "/{job_id}/report",
    response_class=HTMLResponse,
    summary="The result as an HTML report",
    description="A succeeded job's result document as one page (verdict, gates, metrics, baselines, "
    "curves, calibration, slices, robustness, findings) with inline SVG figures: it loads nothing "
    "else, so it can be saved, mailed or printed. A failed job gets a short page with its error. "
    "409 problem while the job is queued or running, or when it was cancelled.",
    responses={
        200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The report"},
        **_PROBLEMS,
    },
)
def get_report(job_id: str, store: ProjectStoreDep) -> HTMLResponse:
    job = store.meta.get_job(job_id)
    model = ModelRef(name=job.model_name, version=job.model_version)
    if job.status == "failed":
        return HTMLResponse(render_failed(job.to_wire(), model))
    if job.status != "succeeded":
        hint = (
            "cancelled: create a new evaluation"
            if job.status == "cancelled"
            else (f"{job.status}: poll GET /v1/jobs/{job_id} until it has succeeded")
        )
        raise Conflict(f"job {job_id!r} has no report yet: it is {hint}")
    result = EvaluationResult.model_validate(store.meta.get_result(job_id))
    return HTMLResponse(render_report(result))
