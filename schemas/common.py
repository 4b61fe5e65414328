"""Shapes shared by every resource: pages, model references."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


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
