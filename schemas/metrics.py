"""Wire models for metric results (the ``metrics`` part of a result document).

A metric that is undefined on the data is ``null`` in ``metrics`` and carries a
reason in ``undefined``; a metric whose value is defined but leans on a
convention (scikit-learn's ``zero_division=0`` inside a macro average, MAPE
dividing by machine epsilon where ``y_true == 0``) keeps its value and explains
the convention in ``notes``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Interval(BaseModel):
    """A bootstrap percentile confidence interval for one metric."""

    model_config = ConfigDict(extra="forbid")

    low: float
    high: float


class ClassMetrics(BaseModel):
    """One class treated as the positive class (one-vs-rest).

    ``precision`` is ``null`` when the class is never predicted, ``recall`` when it
    has no labeled rows, ``f1`` when both; the reason is in the report's
    ``undefined`` under ``per_class.<class>.<metric>``.
    """

    model_config = ConfigDict(extra="forbid")

    precision: float | None
    recall: float | None
    f1: float | None
    support: int = Field(description="Number of labeled rows whose true class is this class.")


class ConfusionMatrix(BaseModel):
    """Counts of labeled rows; rows are true classes, columns predicted classes (as scikit-learn)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str]
    matrix: list[list[int]]


class MetricsReport(BaseModel):
    """Everything the metrics worker computes for one batch."""

    model_config = ConfigDict(extra="forbid")

    metrics: dict[str, float | None] = Field(
        description="Metric name (scikit-learn naming) to value; null when undefined on this data."
    )
    undefined: dict[str, str] = Field(
        default_factory=dict,
        description="Why a metric (or per_class.<class>.<metric>) is null, and what would make it defined.",
    )
    notes: dict[str, str] = Field(
        default_factory=dict,
        description="Conventions that shaped a defined value, e.g. a class counted as 0 in a macro average.",
    )
    per_class: dict[str, ClassMetrics] | None = None
    confusion_matrix: ConfusionMatrix | None = None
    intervals: dict[str, Interval] = Field(default_factory=dict)
