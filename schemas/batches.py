"""Batch resource: what a pipeline posts and what it reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from schemas.common import FiniteFloat, ModelRef, Page, WireModel, exactly_one_of, given_count

Task = Literal["binary", "multiclass", "regression"]
LabelValue = int | str
#: A column name of an upload (ingest caps them at 200 characters).
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]

#: Model names and versions are printable text with something besides spaces (ingest's rule).
_MODEL_TEXT = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f\x85][^\x00-\x1f\x7f]*$"


def _exactly_one(*names: str) -> dict[str, Any]:
    """JSON Schema for "exactly one of ``names`` is given and not null" (the others absent or null)."""
    return {
        "oneOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in names]
    }


def _one_given(model: WireModel, names: tuple[str, str], forms: str) -> None:
    if sum(getattr(model, name) is not None for name in names) != 1:
        raise ValueError(f"send exactly one of {forms}")


class DerivedPrediction(WireModel):
    source: Literal["score"] = "score"
    threshold: float = Field(description="Derived predictions are `score >= threshold`.")
    rows: int = Field(description="Rows whose prediction was missing and was derived.")


ColumnRole = Literal["sample_id", "label", "prediction", "score", "interval", "latency", "feature"]


class Column(WireModel):
    name: str
    type: str = Field(description="Arrow type name, e.g. `double`, `string`, `int64`.")
    role: ColumnRole
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


class ModelRefIn(WireModel):
    """The model of an uploaded batch; a numeric version (``7``) is stored as text."""

    name: str = Field(min_length=1, max_length=200, pattern=_MODEL_TEXT, examples=["fraud-gbm"])
    version: Annotated[str, Field(min_length=1, max_length=200, pattern=_MODEL_TEXT)] | int = Field(
        examples=["7"]
    )


class BatchCreate(WireModel):
    """JSON body of ``POST /v1/batches``: give exactly one of ``rows`` and ``columns`` (not null).

    Documentation of the body: it is decoded and checked by ``service.ingest``, which also checks
    what a schema cannot say (labels of the task and its classes, equal column lengths, one type
    per column), each as a 422 naming the field and row."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("rows", "columns"))

    model: ModelRefIn
    task: Task
    positive_class: LabelValue | None = None
    classes: list[LabelValue] | None = Field(
        default=None, min_length=1, json_schema_extra={"uniqueItems": True}
    )
    threshold: FiniteFloat | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Binary: predictions missing from the batch are `score >= threshold` (default 0.5).",
    )
    rows: list[BatchRowIn] | None = Field(
        default=None, min_length=1, description="Row form: one object a row."
    )
    columns: dict[ColumnName, Annotated[list[Any], Field(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="Column form: equal-length lists; multiclass scores as `score__<class>`.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> BatchCreate:
        if given_count(self, "rows", "columns") != 1:
            raise ValueError("send exactly one of rows (a list of objects) or columns (an object of arrays)")
        return self


class SampleRow(WireModel):
    sample_id: str
    prediction: LabelValue | float
    label: LabelValue | float | None


SampleRowList = Page[SampleRow]


SampleId = Annotated[str, Field(max_length=200)] | int
#: A label as JSON carries it; the batch decides which are valid (its classes, or finite numbers).
LabelIn = int | Annotated[str, Field(max_length=200)] | float | bool | None


class LabelRow(WireModel):
    sample_id: SampleId
    label: LabelIn = Field(description="null clears the row's label.")


class LabelColumns(WireModel):
    sample_id: list[SampleId]
    label: list[LabelIn]


class LabelUpdate(WireModel):
    """Body of ``PUT /v1/batches/{id}/labels``: exactly one of ``labels`` (rows) and ``columns``
    (JSON form; CSV with the same two columns works too)."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("labels", "columns"))

    labels: list[LabelRow] | None = Field(default=None, examples=[[{"sample_id": "s1", "label": 1}]])
    columns: LabelColumns | None = None

    @model_validator(mode="after")
    def _one_form(self) -> LabelUpdate:
        if given_count(self, "labels", "columns") != 1:
            raise ValueError(
                "send exactly one of labels (a list of objects) or columns (an object of arrays)"
            )
        return self


class LabelUpdateResult(WireModel):
    batch_id: str
    updated: int = Field(description="Rows whose label was set.")
    labeled_rows: int
    unmatched_sample_ids: list[str] = Field(description="Ids in the update that match no row of the batch.")
