"""``/v1/jobs``: status, result, cancel and list."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from schemas.gates import GateReport
from schemas.jobs import Job, JobList, JobStatus
from schemas.problems import problem_responses
from schemas.results import EvaluationResult
from service.api.deps import PagingDep, ProjectStoreDep
from service.reports.junit import render_junit, suite_name

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "", response_model=JobList, summary="List jobs, newest first", responses=problem_responses(400, 401, 422)
)
def list_jobs(
    store: ProjectStoreDep,
    paging: PagingDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    model: Annotated[str | None, Query(description="Only jobs of this model name.")] = None,
) -> JobList:
    records, token = store.meta.list_jobs(
        status=status, model=model, page_size=paging.page_size, page_token=paging.page_token
    )
    return JobList(data=[r.to_wire() for r in records], next_page_token=token)


@router.get(
    "/{job_id}", response_model=Job, summary="Job status and progress", responses=problem_responses(401, 404)
)
def get_job(job_id: str, store: ProjectStoreDep) -> Job:
    return store.meta.get_job(job_id).to_wire()


@router.get(
    "/{job_id}/result",
    response_model=EvaluationResult,
    summary="The result document",
    description="409 problem while the job is queued or running, or when it failed or was cancelled. "
    "`format=junit`: the gate report only, as JUnit XML (one test case per gate, a `<failure>` for "
    "each failed gate) for CI systems.",
    responses={
        200: {"content": {"application/xml": {"schema": {"type": "string", "description": "JUnit XML"}}}},
        **problem_responses(401, 404, 409, 422),
    },
)
def get_result(
    job_id: str,
    store: ProjectStoreDep,
    format: Annotated[
        Literal["json", "junit"],
        Query(description="`json`: the result document; `junit`: the gate report as JUnit XML."),
    ] = "json",
) -> Any:
    # Stored already validated; returning the dict avoids re-validating a large document.
    result = store.meta.get_result(job_id)
    if format == "junit":
        report = GateReport.model_validate(result.get("gates") or {"passed": True})
        xml = render_junit(report, suite=suite_name(result), timestamp=result.get("finished_at"))
        return Response(content=xml, media_type="application/xml")
    return result


@router.post(
    "/{job_id}/cancel",
    response_model=Job,
    summary="Cancel a queued or running job",
    responses=problem_responses(401, 403, 404, 409),
)
def cancel_job(job_id: str, store: ProjectStoreDep) -> Job:
    return store.meta.cancel_job(job_id).to_wire()
