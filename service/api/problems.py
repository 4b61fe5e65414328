"""Every error leaves the service as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from schemas.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemIssue
from service.errors import YardstickError

log = logging.getLogger("yardstick.api")
PROBLEM_BASE = "https://yardstick.dev/problems/"

#: A problem document quotes at most this much of any one value the client sent (an id, a field
#: name, a path): a 10 MB id gets a short answer, not a 10 MB one.
MAX_ECHO_CHARS = 200
#: ... and each of its strings is at most this long.
MAX_TEXT_CHARS = 2000
#: The methods an ``Allow`` header can name (OPTIONS is always answered).
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_LONG_RUN = re.compile(rf"\S{{{MAX_ECHO_CHARS + 1},}}")


def clip(text: str) -> str:
    """``text`` with every run of over MAX_ECHO_CHARS non-space characters cut to that length, and
    the whole cut to MAX_TEXT_CHARS; each cut says how many characters it left out."""

    def cut(match: re.Match[str]) -> str:
        run = match.group()
        return f"{run[:MAX_ECHO_CHARS]}... ({len(run) - MAX_ECHO_CHARS} more characters)"

    text = _LONG_RUN.sub(cut, text)
    if len(text) > MAX_TEXT_CHARS:
        text = f"{text[:MAX_TEXT_CHARS]}... ({len(text) - MAX_TEXT_CHARS} more characters)"
    return text


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
        title=clip(title),
        status=status,
        detail=clip(detail),
        instance=clip(request.url.path),
        errors=[ProblemIssue(field=clip(i.field), row=i.row, message=clip(i.message)) for i in issues or []],
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


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path (the ``Allow`` header).

    Each method is tried against the routes as the router itself matches them (included routers
    too), so the answer holds however the app was put together."""
    routes = request.app.router.routes
    methods = {
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    }
    return sorted(methods | {"OPTIONS"}) if methods else []


def _malformed_body(request: Request, exc: RequestValidationError) -> JSONResponse | None:
    """The 400 of a JSON body that cannot be parsed (or is empty): the same answer the upload
    routes give, before any field is looked at. A parsed body with bad fields stays a 422."""
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            position = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
            reason = (err.get("ctx") or {}).get("error") or err.get("msg", "")
            message = f"body is not valid JSON: {reason}{position}"
        elif err.get("type") == "missing" and loc == ("body",):
            message = "body is empty: send a JSON object"
        else:
            continue
        return problem_response(
            request,
            status=400,
            title="Malformed body",
            detail=message,
            slug="malformed-body",
            issues=[ProblemIssue(field="body", message=message)],
        )
    return None


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
        malformed = _malformed_body(request, exc)
        if malformed is not None:
            return malformed
        issues = []
        for err in exc.errors():
            field, row = _location(tuple(err.get("loc", ())))
            issues.append(ProblemIssue(field=field, row=row, message=err.get("msg", "invalid value")))
        detail = "; ".join(f"{i.field}: {i.message}" for i in issues[:5]) or "the request is invalid"
        return problem_response(
            request, status=422, title="Invalid input", detail=detail, slug="invalid-input", issues=issues
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail) if exc.detail else "error"
        title = detail if len(detail) < 60 else "Error"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs for the API"
        if exc.status_code == 405:
            # Starlette names the methods of the first route on the path only; a path served by
            # several routes (GET and DELETE /v1/batches/{id}) supports all of theirs.
            allow = ", ".join(allowed_methods(request))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            headers["Allow"] = allow
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allow}"
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            request,
            status=exc.status_code,
            title=title,
            detail=detail,
            slug=slug,
            headers=headers or None,
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
            # Starlette re-raises after this answer and the server then drops the connection:
            # say so, so that a keep-alive client opens a new one instead of failing its next call
            headers={"Connection": "close"},
        )
