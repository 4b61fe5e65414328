"""The result document of an evaluation job (``GET /v1/jobs/{id}/result``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from schemas.baselines import BaselineResult
from schemas.batches import Task
from schemas.calibration import CalibrationResult, ConfidenceResult
from schemas.common import ModelRef, WireModel
from schemas.gates import GateReport
from schemas.metrics import ClassMetrics, ConfusionMatrix, Interval
from schemas.robustness import RobustnessResult
from schemas.slices import SlicesResult


class Finding(WireModel):
    kind: str = Field(examples=["worse_than_baseline", "unlabeled_rows"])
    severity: Literal["info", "warning", "critical"]
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class EvaluationResult(WireModel):
    job_id: str
    batch_id: str
    model: ModelRef
    task: Task
    created_at: datetime
    finished_at: datetime
    rows: int
    labeled_rows: int
    evaluated_rows: int = Field(description="Labeled rows the metrics were computed on.")
    metrics: dict[str, float | None]
    undefined: dict[str, str] = Field(default_factory=dict, description="Why a null metric is undefined.")
    notes: dict[str, str] = Field(default_factory=dict)
    intervals: dict[str, Interval] = Field(default_factory=dict)
    per_class: dict[str, ClassMetrics] | None = None
    confusion_matrix: ConfusionMatrix | None = None
    baselines: list[BaselineResult] = Field(default_factory=list)
    calibration: CalibrationResult | None = None
    confidence: ConfidenceResult | None = None
    robustness: RobustnessResult | None = None
    slices: SlicesResult | None = None
    findings: list[Finding] = Field(default_factory=list)
    gates: GateReport = Field(default_factory=lambda: GateReport(passed=True))
