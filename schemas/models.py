"""``/v1/models``: the model names a project has evaluated, each with its latest evaluation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.common import Page, WireModel
from schemas.metrics import Interval
from schemas.results import PrimaryMetric


class LatestEvaluation(WireModel):
    """The newest succeeded evaluation of a model: what a dashboard shows next to its name."""

    job_id: str
    version: str
    finished_at: datetime | None
    verdict: Literal["pass", "warn", "fail"] | None = Field(
        description="The result's verdict; null in results stored before verdicts."
    )
    primary_metric: PrimaryMetric | None = Field(
        description="The result's primary metric, with its interval when `bootstrap` was requested; "
        "null in results stored before verdicts."
    )
    report: str = Field(description="Path of the job's HTML report.", examples=["/v1/jobs/j_0123/report"])


class ModelSummary(WireModel):
    name: str = Field(examples=["fraud-gbm"])
    evaluations: int = Field(description="Evaluation jobs of this model name, in any status.")
    succeeded: int = Field(description="Of which succeeded (have a result).")
    last_evaluated_at: datetime = Field(
        description="When the newest evaluation job of this model was created: the list's order."
    )
    latest: LatestEvaluation | None = Field(
        description="The newest succeeded evaluation; null while none has succeeded."
    )
    page: str = Field(
        description="Path of the model's HTML page: its metric and critical slices across versions.",
        examples=["/ui/models/fraud-gbm"],
    )


ModelList = Page[ModelSummary]


class HistoryPoint(WireModel):
    """One succeeded evaluation's value of the metric."""

    job_id: str
    version: str
    finished_at: datetime | None
    verdict: Literal["pass", "warn", "fail"] | None
    metric: str = Field(description="The metric read: the one asked for, else the evaluation's primary.")
    value: float | None
    interval: Interval | None = Field(description="Present when the evaluation had `bootstrap`.")
    n: int | None = Field(default=None, description="Critical slices: the slice's rows.")


class CriticalSliceHistory(WireModel):
    name: str
    where: str
    points: list[HistoryPoint] = Field(description="Oldest first.")


class ModelHistory(WireModel):
    model: str
    metric: str | None = Field(description="The metric asked for; null: each evaluation's primary metric.")
    points: list[HistoryPoint] = Field(description="Every succeeded evaluation, oldest first.")
    critical: list[CriticalSliceHistory] = Field(
        description="Each critical slice (by name) across the evaluations that had it."
    )
    capped: bool = Field(description="True when older evaluations were left out (the newest 200 are read).")
