"""Calibration and confidence: request sections and result documents."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.common import Seed, WireModel
from schemas.metrics import Interval

Strategy = Literal["uniform", "quantile"]
Recalibrator = Literal["platt", "isotonic", "temperature"]


class CalibrationRequest(WireModel):
    bins: int = Field(default=10, ge=2, le=1000)
    strategy: Strategy = "uniform"
    recalibrate: list[Recalibrator] = Field(default_factory=list)
    folds: int = Field(default=5, ge=2, le=20, description="Cross-fitting folds for recalibration.")
    ece_tolerance: float = Field(
        default=0.05, gt=0, lt=1, allow_inf_nan=False, description="ECE above this raises `miscalibrated`."
    )
    seed: Seed = 0


class ConfidenceRequest(WireModel):
    target_accuracy: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    bins: int = Field(default=10, ge=2, le=1000)
    level: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="Over/underconfidence: wrong above, or right below, this confidence.",
    )


class ReliabilityBin(WireModel):
    low: float
    high: float
    mean_predicted: float | None
    observed: float | None
    count: int


class ReliabilityDiagram(WireModel):
    bins: list[ReliabilityBin]


class BrierDecomposition(WireModel):
    """Murphy: brier = reliability - resolution + uncertainty (+ within-bin terms when binned)."""

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float = 0.0
    within_bin_covariance: float = 0.0


class CalibrationScores(WireModel):
    ece: float
    mce: float
    adaptive_ece: float
    brier: float
    log_loss: float


class Recalibration(WireModel):
    method: Recalibrator
    before: CalibrationScores
    after: CalibrationScores = Field(description="Out of sample: K-fold cross-fitted predictions.")
    parameters: dict[str, float | list[float]] = Field(
        description="Fitted on all rows: platt {a, b} (p = 1 / (1 + exp(-(a * logit(s) + b))))... "
        "temperature {temperature}; isotonic {x, y} breakpoints."
    )


class LogitClipping(WireModel):
    """How the scores were clipped before ``logit`` for the calibration slope and intercept."""

    epsilon: float = Field(
        description="Scores are clipped to [epsilon, 1 - epsilon] (float64 machine epsilon, "
        "2.22e-16, as scikit-learn's log loss), so |logit| <= 36.04."
    )
    at_zero: int = Field(description="Scores below epsilon (exact zeros included), raised to epsilon.")
    at_one: int = Field(description="Scores above 1 - epsilon (exact ones included), lowered to 1 - epsilon.")


class CalibrationResult(WireModel):
    strategy: Strategy
    bins: int
    reliability: ReliabilityDiagram | None = Field(default=None, description="Binary: the positive class.")
    top_label: ReliabilityDiagram | None = None
    per_class: dict[str, ReliabilityDiagram] | None = None
    ece: float
    mce: float
    adaptive_ece: float
    top_label_ece: float | None = None
    classwise_ece: float | None = None
    ece_interval: Interval | None = None
    brier: BrierDecomposition
    log_loss: float
    slope: float | None = Field(
        description="Logistic fit of the label on logit(score), scores clipped as `clipped` says; "
        "1 is ideal. A handful of scores at exactly 0 or 1 sit at logit -36 / +36 and can pull it."
    )
    intercept: float | None = Field(description="0 is ideal.")
    clipped: LogitClipping | None = Field(
        default=None,
        description="Binary: how many scores were clipped before the logit of the slope/intercept fit, "
        "and to what. None for multiclass (no slope).",
    )
    recalibration: list[Recalibration] = Field(default_factory=list)


class ConfidenceBin(WireModel):
    low: float
    high: float
    count: int
    accuracy: float | None
    mean_confidence: float | None


class RiskCoveragePoint(WireModel):
    threshold: float
    coverage: float
    risk: float


class ThresholdChoice(WireModel):
    target_accuracy: float
    threshold: float | None = Field(
        description="Lowest confidence whose kept rows reach the target; None if none."
    )
    coverage: float
    accuracy: float | None
    kept_rows: int


class IntervalCoverage(WireModel):
    coverage: float
    mean_width: float
    rows: int


class ConfidenceResult(WireModel):
    """Classification fields are empty/None for regression, which only has prediction intervals.

    A row's confidence is the probability the model gave to the class it predicted."""

    bins: list[ConfidenceBin] = Field(default_factory=list)
    risk_coverage: list[RiskCoveragePoint] = Field(
        default_factory=list, description="Down-sampled to at most ~200 points."
    )
    aurc: float | None = Field(
        default=None, description="Area under the risk-coverage curve (lower is better)."
    )
    threshold: ThresholdChoice | None = None
    level: float
    overconfidence_rate: float | None = Field(
        default=None, description="Share of rows wrong with confidence >= level."
    )
    underconfidence_rate: float | None = Field(
        default=None, description="Share of rows right with confidence < level."
    )
    rows_not_most_probable: int | None = Field(
        default=None,
        description="Rows whose prediction is not the most probable class (binary: on the other side "
        "of 0.5, e.g. a batch thresholded elsewhere). Confidence is always the probability of the "
        "predicted class, so theirs is below the top probability (below 1/K possible: the bins then "
        "span [0, 1] instead of [1/K, 1]).",
    )
    prediction_intervals: IntervalCoverage | None = Field(default=None, description="Regression lower/upper.")
