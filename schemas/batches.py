"""Batch resource: what a pipeline posts and what it reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from schemas.common import ModelRef, Page, WireModel

Task = Literal["binary", "multiclass", "regression"]
LabelValue = int | str


class DerivedPrediction(WireModel):
    source: Literal["score"] = "score"
    threshold: float = Field(description="Derived predictions are `score >= threshold`.")
    rows: int = Field(description="Rows whose prediction was missing and was derived.")


class Column(WireModel):
    name: str
    type: str = Field(description="Arrow type name, e.g. `double`, `string`, `int64`.")
    role: Literal["sample_id", "label", "prediction", "score", "interval", "feature"]
    derived: DerivedPrediction | None = Field(
        default=None, description="Binary predictions: how many were derived from the scores, and how."
    )


class Batch(WireModel):
    id: str
    model: ModelRef
    task: Task
    classes: list[LabelValue] | None
    positive_class: LabelValue | None
    rows: int
    labeled_rows: int
    columns: list[Column]
    created_at: datetime


BatchList = Page[Batch]


class BatchRowIn(WireModel):
    """One row of the JSON row form (documentation of the body; decoding is vectorized)."""

    sample_id: str | int | None = None
    label: LabelValue | float | None = None
    prediction: LabelValue | float | None = None
    score: float | None = Field(default=None, description="Binary: probability of positive_class.")
    scores: dict[str, float] | None = Field(default=None, description="Multiclass: class -> probability.")
    lower: float | None = None
    upper: float | None = None
    features: dict[str, Any] | None = None


class BatchCreate(WireModel):
    """JSON body of ``POST /v1/batches``: give exactly one of ``rows`` and ``columns``."""

    model: ModelRef
    task: Task
    positive_class: LabelValue | None = None
    classes: list[LabelValue] | None = None
    rows: list[BatchRowIn] | None = None
    columns: dict[str, list[Any]] | None = Field(
        default=None, description="Column form: equal-length lists; multiclass scores as `score__<class>`."
    )


class SampleRow(WireModel):
    sample_id: str
    prediction: LabelValue | float
    label: LabelValue | float | None


SampleRowList = Page[SampleRow]


class LabelUpdate(WireModel):
    """Body of ``PUT /v1/batches/{id}/labels`` (JSON form; CSV with the same two columns works too)."""

    labels: list[dict[str, Any]] | None = Field(default=None, examples=[[{"sample_id": "s1", "label": 1}]])
    columns: dict[str, list[Any]] | None = None


class LabelUpdateResult(WireModel):
    batch_id: str
    updated: int = Field(description="Rows whose label was set.")
    labeled_rows: int
    unmatched_sample_ids: list[str] = Field(description="Ids in the update that match no row of the batch.")
