"""Every error leaves the service as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemIssue
from service.errors import YardstickError

log = logging.getLogger("yardstick.api")
PROBLEM_BASE = "https://yardstick.dev/problems/"


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str,
    slug: str,
    issues: list[ProblemIssue] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_BASE + slug,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=issues or [],
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> tuple[str, int | None]:
    """pydantic's ``("body", "rows", 3, "score")`` -> ``("rows[3].score", 3)``."""
    parts: list[str] = []
    row: int | None = None
    for item in loc:
        if item in ("body", "query", "path", "header") and not parts:
            continue
        if isinstance(item, int):
            row = item if row is None else row
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "body", row


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(YardstickError)
    async def _domain(request: Request, exc: YardstickError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        issues = [ProblemIssue(field=i.field, row=i.row, message=i.message) for i in exc.issues]
        return problem_response(
            request,
            status=exc.status,
            title=exc.title,
            detail=exc.detail,
            slug=exc.type_slug,
            issues=issues,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = []
        for err in exc.errors():
            field, row = _location(tuple(err.get("loc", ())))
            issues.append(ProblemIssue(field=field, row=row, message=err.get("msg", "invalid value")))
        detail = "; ".join(f"{i.field}: {i.message}" for i in issues[:5]) or "the request is invalid"
        return problem_response(
            request, status=422, title="Invalid input", detail=detail, slug="invalid-input", issues=issues
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail) if exc.detail else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the API"
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            request,
            status=exc.status_code,
            title=detail if len(detail) < 60 else "Error",
            detail=detail,
            slug=slug,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            status=500,
            title="Internal error",
            detail="the service hit an unexpected error; it has been logged",
            slug="internal-error",
        )
