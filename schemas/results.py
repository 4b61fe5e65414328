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
from schemas.latency import JobStats, LatencyResult
from schemas.metrics import ClassMetrics, ConfusionMatrix, Interval
from schemas.robustness import RobustnessResult
from schemas.runs import MlflowExported
from schemas.slices import SlicesResult


class Finding(WireModel):
    kind: str = Field(examples=["worse_than_baseline", "unlabeled_rows"])
    severity: Literal["info", "warning", "critical"]
    rank: int = Field(default=0, description="1 = read first: by severity, then by impact.")
    impact: float = Field(
        default=0.0,
        description="Share of the batch affected times the relative size of the problem (0 to about 1; "
        "see the README's 'Reading a result' for each kind's measure).",
    )
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class PrimaryMetric(WireModel):
    name: str
    value: float | None
    interval: Interval | None = Field(default=None, description="Present when `bootstrap` was requested.")
    chosen_because: str = Field(description="Why this metric leads (request order, or class balance).")


class Verdict(WireModel):
    """What to do with this model version, in one word, and why."""

    status: Literal["pass", "warn", "fail"] = Field(
        description="fail: a gate failed or a critical finding (e.g. significantly worse than a "
        "baseline); warn: a warning finding, or a section that could not finish; pass: neither."
    )
    reasons: list[str] = Field(
        description="Failed gates first, then findings by rank, then sections that could not finish."
    )
    primary_metric: PrimaryMetric
    rows: int
    labeled_rows: int
    label_coverage: float = Field(description="labeled_rows / rows.")
    missing_sections: list[str] = Field(
        default_factory=list, description="Requested sections that failed (see `errors`)."
    )


class SectionError(WireModel):
    error: str


class Threshold(WireModel):
    """How binary predictions relate to the scores."""

    value: float = Field(description="Predictions derived from scores are `score >= value`.")
    source: Literal["request", "batch", "default"]
    derived_rows: int = Field(description="Rows whose prediction was derived from the score with it.")


class RocCurve(WireModel):
    """Points of scikit-learn's ``roc_curve`` (its corners, at most ~200), in its order (fpr increasing)."""

    fpr: list[float]
    tpr: list[float]
    threshold: list[float | None] = Field(
        description="Score at or above which rows are predicted positive; null for the first point "
        "(0, 0), above every score (scikit-learn's inf)."
    )


class PrecisionRecallCurve(WireModel):
    """Points of scikit-learn's ``precision_recall_curve`` (its corners, at most ~200), in its order
    (recall decreasing, ending at recall 0, precision 1)."""

    recall: list[float]
    precision: list[float]
    threshold: list[float | None] = Field(description="As in `roc`; null for the last point.")


class Curves(WireModel):
    """Binary with scores: the curves behind ``roc_auc`` and ``average_precision``, for plotting.

    Corners only (straight stretches dropped, as scikit-learn's ``drop_intermediate``), then at most
    ~200 points spread evenly along the curve; both ends kept."""

    roc: RocCurve
    precision_recall: PrecisionRecallCurve


class EvaluationResult(WireModel):
    job_id: str
    batch_id: str
    model: ModelRef
    task: Task
    verdict: Verdict | None = Field(
        default=None, description="Absent only in results stored before verdicts."
    )
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
    curves: Curves | None = Field(
        default=None, description="Binary with scores and both classes labeled: ROC and precision-recall."
    )
    baselines: list[BaselineResult] = Field(default_factory=list)
    calibration: CalibrationResult | None = None
    confidence: ConfidenceResult | None = None
    robustness: RobustnessResult | None = None
    slices: SlicesResult | None = None
    threshold: Threshold | None = None
    findings: list[Finding] = Field(default_factory=list, description="By rank: 1 = read first.")
    findings_omitted: int = Field(default=0, description="Findings left out by `findings.max`.")
    gates: GateReport = Field(default_factory=lambda: GateReport(passed=True))
    latency: LatencyResult | None = Field(
        default=None, description="Inference latency, when the batch has a `latency_ms` column."
    )
    job: JobStats | None = Field(default=None, description="What computing this result cost.")
    mlflow: MlflowExported | None = Field(
        default=None, description="Where the evaluation was logged in MLflow (the request's `mlflow`)."
    )
    errors: dict[str, SectionError] = Field(
        default_factory=dict,
        description="Sections that could not finish, by name; the job succeeds with every other section.",
    )
