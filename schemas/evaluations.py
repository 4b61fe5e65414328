"""The evaluation request: which batch, and which sections to compute."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas.baselines import BaselinesRequest
from schemas.calibration import CalibrationRequest, ConfidenceRequest
from schemas.common import ResourceId, Seed, WireModel
from schemas.gates import Gate
from schemas.robustness import RobustnessRequest
from schemas.runs import MlflowExport
from schemas.slices import SlicesRequest


class Bootstrap(WireModel):
    samples: int = Field(
        default=1000,
        ge=10,
        le=10_000,
        description="Replicates. Label metrics cost microseconds each; "
        "score metrics about 30 ms each per 1M rows.",
    )
    confidence: float = Field(default=0.95, gt=0, lt=1, allow_inf_nan=False)
    seed: Seed = 0


class FindingsOptions(WireModel):
    max: int = Field(default=20, ge=0, le=1000, description="List at most this many findings, by rank.")


class EvaluationCreate(WireModel):
    batch_id: ResourceId
    metrics: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Metric names (scikit-learn's), the first one primary; absent = the task's default list "
        "(binary: accuracy, balanced_accuracy, precision, recall, f1, mcc and, with scores, roc_auc, "
        "average_precision, log_loss, brier_score; multiclass: their macro forms and f1_weighted; "
        "regression: mae, rmse, r2, mape, median_ae, max_error).",
    )
    bootstrap: Bootstrap | None = None
    gates: list[Gate] | None = None
    baselines: BaselinesRequest | None = None
    calibration: CalibrationRequest | None = None
    confidence: ConfidenceRequest | None = None
    slices: SlicesRequest | None = None
    robustness: RobustnessRequest | None = None
    threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="Binary: derive every prediction from the score as `score >= threshold` for this "
        "evaluation (explicit predictions included). Absent: the batch's predictions as stored, those "
        "derived at upload with the batch's threshold (default 0.5).",
    )
    labels: Literal["present", "declared"] = Field(
        default="present",
        description="Classes that macro and weighted averages run over: `present` (scikit-learn's "
        "default: classes in the labels or predictions; ranking metrics: classes with labeled rows) or "
        "`declared` (every class of the batch, as scikit-learn's `labels=`).",
    )
    findings: FindingsOptions = Field(default_factory=FindingsOptions)
    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="Notified with a POST (job id, status, gates_passed, result_url) when the job ends.",
    )
    mlflow: MlflowExport | None = Field(
        default=None,
        description="Log the evaluation to an MLflow tracking server when it has its result: metrics with "
        "interval bounds, the request as params, the result and the report as artifacts, tags linking back.",
    )
    run_id: ResourceId | None = Field(
        default=None,
        description="The tracking run (`POST /v1/runs`) this evaluation belongs to: the run lists it in "
        "`evaluations`.",
    )
