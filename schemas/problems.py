"""RFC 9457 problem documents: the body of every error response."""

from __future__ import annotations

from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemIssue(BaseModel):
    field: str = Field(description="Dotted location of the bad value, e.g. `rows[3].score`.")
    row: int | None = Field(default=None, description="0-based row index, when the issue is about one row.")
    message: str = Field(description="What is wrong and how to fix it.")


class Problem(BaseModel):
    type: str = Field(examples=["https://yardstick.dev/problems/invalid-input"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemIssue] = Field(default_factory=list)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses=`` entries declaring problem bodies for ``statuses``."""
    descriptions = {
        400: "Malformed body",
        401: "Missing or wrong API key",
        404: "Not found",
        409: "Conflict with the resource's state",
        413: "Body larger than the configured limit",
        415: "Unsupported content type",
        422: "Invalid input (the errors name each field/row)",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
