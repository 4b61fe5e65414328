"""What the client raises: one exception type a pipeline can catch, carrying the server's problem.

The service answers every error with an RFC 9457 problem document (``schemas.problems.Problem``):
its title, detail and per-field ``errors`` are what a person needs to fix the request, so they
travel on the exception instead of being flattened into a status code.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import httpx
from pydantic import ValidationError

from schemas.problems import Problem

if TYPE_CHECKING:
    from schemas.jobs import Job


class YardstickError(Exception):
    """A request the service refused, that never reached it, or whose job did not succeed.

    ``status`` is the HTTP status (``None`` when no answer came); ``problem`` the decoded problem
    document when the service sent one."""

    def __init__(self, message: str, *, status: int | None = None, problem: Problem | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem

    @property
    def title(self) -> str | None:
        return self.problem.title if self.problem else None

    @property
    def detail(self) -> str | None:
        return self.problem.detail if self.problem else None

    @property
    def errors(self) -> list[dict[str, object]]:
        """The problem's field issues as plain dicts (``field``, ``row``, ``message``)."""
        return [issue.model_dump() for issue in self.problem.errors] if self.problem else []


class ServiceUnreachable(YardstickError):
    """No answer at all (connection refused, timed out, reset), after the retries."""


class JobFailed(YardstickError):
    """The evaluation job ended ``failed`` or ``cancelled``; ``job`` is its last state."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} {job.status}: {job.error or 'no error recorded'}")
        self.job = job


def problem_error(response: httpx.Response) -> YardstickError:
    """The exception for an error response: its problem document when it has one, else its text."""
    problem: Problem | None = None
    with contextlib.suppress(ValidationError):
        problem = Problem.model_validate_json(response.content)
    where = f"{response.request.method} {response.request.url.path}"
    if problem is None:
        return YardstickError(
            f"{where}: HTTP {response.status_code}: {response.text[:500]}", status=response.status_code
        )
    fields = "; ".join(f"{issue.field}: {issue.message}" for issue in problem.errors[:5])
    message = f"{where}: {response.status_code} {problem.title}: {problem.detail}"
    return YardstickError(
        message + (f" ({fields})" if fields else ""), status=response.status_code, problem=problem
    )
