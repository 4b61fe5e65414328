"""Domain errors that the API turns into RFC 9457 problem documents.

Every layer below the API (ingest, store, jobs) raises these instead of
HTTP exceptions, so the same rule ("bad input names its field or row") holds
whether the caller is a route, the CLI or a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: longest field name and message a problem document repeats (client input can be any length)
MAX_FIELD_CHARS = 300
MAX_MESSAGE_CHARS = 2000


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, lone surrogates (undecodable input) replaced: it must
    encode as UTF-8 in a problem document."""
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit:,} more characters)"
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class FieldIssue:
    """One thing wrong with the input: where it is and how to fix it.

    ``field`` is a dotted location such as ``rows[3].score`` or ``columns.label``;
    ``row`` is the 0-based row index when the issue is about one row.
    """

    field: str
    message: str
    row: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", printable(self.field, MAX_FIELD_CHARS))
        object.__setattr__(self, "message", printable(self.message, MAX_MESSAGE_CHARS))


@dataclass
class YardstickError(Exception):
    """Base class: an HTTP status, a short title and a human detail."""

    detail: str
    issues: list[FieldIssue] = field(default_factory=list)
    status: int = 400
    title: str = "Bad request"
    type_slug: str = "bad-request"

    def __post_init__(self) -> None:
        self.detail = printable(self.detail, MAX_MESSAGE_CHARS)
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.detail


@dataclass
class InvalidInput(YardstickError):
    """The request is well-formed but its content breaks a rule (422)."""

    status: int = 422
    title: str = "Invalid input"
    type_slug: str = "invalid-input"


@dataclass
class MalformedBody(YardstickError):
    """The body cannot be decoded at all (bad JSON, CSV, Parquet, Arrow) (400)."""

    status: int = 400
    title: str = "Malformed body"
    type_slug: str = "malformed-body"


@dataclass
class UnsupportedMediaType(YardstickError):
    status: int = 415
    title: str = "Unsupported media type"
    type_slug: str = "unsupported-media-type"


@dataclass
class PayloadTooLarge(YardstickError):
    status: int = 413
    title: str = "Payload too large"
    type_slug: str = "payload-too-large"


@dataclass
class NotFound(YardstickError):
    status: int = 404
    title: str = "Not found"
    type_slug: str = "not-found"


@dataclass
class Conflict(YardstickError):
    status: int = 409
    title: str = "Conflict"
    type_slug: str = "conflict"


@dataclass
class Unauthorized(YardstickError):
    status: int = 401
    title: str = "Unauthorized"
    type_slug: str = "unauthorized"
