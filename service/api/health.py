"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from schemas.problems import problem_responses
from service.api.deps import StoreDep
from service.errors import YardstickError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    # No I/O on purpose: this must answer instantly even while workers are busy.
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: the database answers",
    responses=problem_responses(503),
)
async def readyz(store: StoreDep) -> Health:
    try:
        await run_in_threadpool(store.meta.ping)
    except Exception as exc:
        raise YardstickError("the metadata database does not answer", status=503, title="Not ready") from exc
    return Health(status="ready")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus(request: Request, store: StoreDep) -> PlainTextResponse:
    counts = await run_in_threadpool(store.meta.counts_by_status)
    text = request.app.state.telemetry.render(counts)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
