"""Shapes shared by every resource: pages, model references."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field

T = TypeVar("T")

#: Ids the service issues are ``<prefix>_<32 hex>`` (``service.store.new_id``); a reference to one
#: in a request is capped so that a huge value is refused (and never echoed) instead of looked up.
MAX_ID_CHARS = 64
#: The largest seed: the largest integer every JSON parser reads exactly (a double's 53 bits).
MAX_SEED = 2**53 - 1

ResourceId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_CHARS,
        examples=["b_0123456789abcdef0123456789abcdef"],
        description="An id this service issued (a batch's `id`).",
    ),
]
Seed = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_SEED,
        description="Seed of every random draw of the section: the same seed gives the same result.",
    ),
]
#: A float that JSON can carry and the workers can use: NaN and infinities are a 422.
FiniteFloat = Annotated[float, AllowInfNan(False)]


def exactly_one_of(*names: str) -> dict[str, Any]:
    """JSON Schema (for ``json_schema_extra``) of a rule a model validator enforces: exactly one of
    ``names`` is given and not null; the others are absent or null."""
    return {
        "oneOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]
    }


def given_count(model: BaseModel, *names: str) -> int:
    """How many of the fields ``names`` are not None."""
    return sum(getattr(model, name) is not None for name in names)


def json_equal(a: object, b: object) -> bool:
    """Equality as JSON Schema's ``uniqueItems`` sees it: ``1 == 1.0``, but ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


class WireModel(BaseModel):
    """Base of every request/response model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ModelRef(WireModel):
    name: str = Field(min_length=1, max_length=200, examples=["fraud-gbm"])
    version: str = Field(min_length=1, max_length=200, examples=["7"])


class Page(WireModel, Generic[T]):
    """A page of a list: pass ``next_page_token`` back as ``page_token`` for the next one."""

    data: list[T]
    next_page_token: str | None = None
