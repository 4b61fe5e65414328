"""Release gates: the request's thresholds and the report of which passed.

A gate reads one figure of the result: an overall metric (``roc_auc``), the same metric in a
slice (``slice``), or a section figure (``calibration.ece``, ``confidence.aurc``,
``robustness.flip_rate``, see :data:`SECTION_FIGURES`). It can compare the point estimate or
an end of its interval (``use``) with ``min``/``max``, require enough labeled rows
(``min_rows``), and bound the drop against a baseline (``vs``/``max_drop``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from schemas.common import WireModel
from schemas.metrics import Interval

Use = Literal["value", "lower_bound", "upper_bound"]

SECTION_FIGURES: dict[str, str] = {
    "latency.p50": "Median inference latency, ms (a batch with a `latency_ms` column).",
    "latency.p90": "90th percentile of the inference latency, ms.",
    "latency.p99": "99th percentile of the inference latency, ms.",
    "latency.max": "Largest inference latency, ms.",
    "latency.mean": "Mean inference latency, ms.",
    "latency.throughput_per_second": "Rows per second of one stream: 1000 / mean latency.",
    "calibration.ece": "Expected calibration error (has an interval: `calibration.ece_interval`).",
    "calibration.mce": "Maximum calibration error over the bins.",
    "calibration.adaptive_ece": "ECE over equal-count bins.",
    "calibration.top_label_ece": "Multiclass: ECE of the top-label confidence.",
    "calibration.classwise_ece": "Multiclass: mean one-vs-rest ECE.",
    "calibration.brier": "Brier score (`calibration.brier.brier`).",
    "calibration.brier_reliability": "Reliability term of the Brier decomposition (lower is better).",
    "calibration.log_loss": "Log loss of the scores.",
    "calibration.slope": "Calibration slope (1 is ideal).",
    "calibration.intercept": "Calibration intercept (0 is ideal).",
    "confidence.aurc": "Area under the risk-coverage curve (lower is better).",
    "confidence.overconfidence_rate": "Share of rows wrong with confidence >= `confidence.level`.",
    "confidence.underconfidence_rate": "Share of rows right with confidence < `confidence.level`.",
    "confidence.threshold": "Lowest confidence reaching `confidence.target_accuracy` (null if none).",
    "confidence.coverage": "Share of rows kept at that threshold.",
    "confidence.accuracy": "Accuracy of the rows kept at that threshold.",
    "confidence.interval_coverage": "Regression: share of labels inside [lower, upper].",
    "confidence.interval_width": "Regression: mean width of the prediction intervals.",
    "robustness.flip_rate": "Worst (highest) flip rate over the perturbation tests.",
    "robustness.mean_abs_score_change": "Worst mean |score change| over the perturbation tests.",
    "robustness.violation_rate": "Worst violation rate over invariance, directional and pair tests.",
    "robustness.invariance_violation_rate": "Worst violation rate over the invariance tests.",
    "robustness.directional_violation_rate": "Worst violation rate over the directional tests.",
    "robustness.pair_violation_rate": "Worst violation rate over the pair tests.",
}
"""Dotted section figures a gate can read, with what they are."""


def _figure_list() -> str:
    return ", ".join(f"`{name}`" for name in SECTION_FIGURES)


class GateSlice(WireModel):
    """Which slice of ``slices`` the gate reads: one group slice by its exact conditions, or one
    critical slice by name."""

    conditions: dict[str, Any] | None = Field(
        default=None,
        examples=[{"country": "AR"}],
        description="column -> value, equal to a slice's `conditions` in `slices.groups` "
        "(numeric columns by their bin label, e.g. `[10, 20)`).",
    )
    critical: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        examples=["new-users"],
        description="The name of a critical slice in the request's `slices.critical`.",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> GateSlice:
        if (self.conditions is None) == (self.critical is None):
            raise ValueError("a gate slice needs exactly one of `conditions` or `critical`")
        if self.conditions is not None and not self.conditions:
            raise ValueError("`conditions` names at least one column")
        return self


class Gate(WireModel):
    """A release gate: one figure of the result against bounds, a row count and/or a baseline.

    It passes when every condition it sets holds: ``min <= figure <= max`` (figure = the point
    estimate or an end of its interval, per ``use``), ``rows >= min_rows``, and a drop against
    the baseline ``vs`` of at most ``max_drop``.
    """

    metric: str = Field(
        min_length=1,
        max_length=200,
        examples=["roc_auc", "calibration.ece", "robustness.flip_rate"],
        description="A metric this evaluation computes (e.g. `roc_auc`, `log_loss`), or a section "
        f"figure: {_figure_list()}.",
    )
    min: float | None = Field(
        default=None, allow_inf_nan=False, description="The figure must be at least this (inclusive)."
    )
    max: float | None = Field(
        default=None, allow_inf_nan=False, description="The figure must be at most this (inclusive)."
    )
    use: Use = Field(
        default="value",
        description="What `min`/`max` compare: the point estimate (`value`) or an end of its interval. "
        "`lower_bound` is the cautious choice for `min`, `upper_bound` for `max`. Intervals come from "
        "the `bootstrap` section (metrics), slice intervals, and `calibration.ece_interval`; a figure "
        "without one fails the gate. With `vs`, the end of the interval of the difference "
        "(model - baseline) is used for the drop.",
    )
    min_rows: int | None = Field(
        default=None,
        ge=1,
        description="Fewest labeled rows the figure may rest on (the slice's rows for a slice gate, "
        "else `evaluated_rows`); fewer fails the gate.",
    )
    vs: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        examples=["champion", "zero_rule"],
        description="The name of a baseline in the result's `baselines` (an `existing` model's name, "
        "a heuristic's name, `human`, `zero_rule`, `random_prior`...). Metrics only, not slices or "
        "section figures.",
    )
    max_drop: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="With `vs`: how much worse than the baseline the metric may be, in the metric's "
        "bad direction (baseline - model for metrics where greater is better, model - baseline for "
        "losses). Absent: 0, not worse than the baseline.",
    )
    slice: GateSlice | None = Field(
        default=None, description="Read the metric in this slice of `slices` instead of overall."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Gate:
        if self.min is None and self.max is None and self.vs is None:
            raise ValueError("a gate needs `min`, `max` or `vs`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` ({self.min:g}) is greater than `max` ({self.max:g})")
        if self.max_drop is not None and self.vs is None:
            raise ValueError("`max_drop` needs `vs`, the baseline to compare with")
        section = "." in self.metric
        if section and self.metric not in SECTION_FIGURES:
            raise ValueError(f"unknown section figure {self.metric!r}; known: {', '.join(SECTION_FIGURES)}")
        if section and self.slice is not None:
            raise ValueError("a slice gate reads a metric (e.g. `roc_auc`), not a section figure")
        if self.vs is not None and (section or self.slice is not None):
            raise ValueError("`vs` compares overall metrics: not with `slice` or a section figure")
        return self


class GateResult(WireModel):
    """One gate's outcome, with the numbers it was decided on."""

    metric: str = Field(description="The gate's metric or section figure.")
    slice: GateSlice | None = Field(default=None, description="The gate's slice, if any.")
    use: Use = Field(default="value", description="The gate's `use`.")
    value: float | None = Field(
        description="The number compared with `min`/`max`: the point estimate or the interval end "
        "`use` names; null when undefined."
    )
    observed: float | None = Field(default=None, description="The point estimate of the figure.")
    interval: Interval | None = Field(default=None, description="The figure's interval, when it has one.")
    min: float | None
    max: float | None
    min_rows: int | None = Field(default=None, description="The gate's `min_rows`.")
    rows: int | None = Field(
        default=None, description="Labeled rows behind the figure (the slice's for a slice gate)."
    )
    vs: str | None = Field(default=None, description="The baseline compared with.")
    baseline_value: float | None = Field(default=None, description="The baseline's value of the metric.")
    drop: float | None = Field(
        default=None,
        description="How much worse than the baseline the model is (negative: better), at `use`.",
    )
    max_drop: float | None = Field(default=None, description="The drop allowed (0 when `vs` is alone).")
    passed: bool
    reason: str | None = Field(default=None, description="Why the gate failed (a sentence); null if passed.")


class GateReport(WireModel):
    passed: bool = Field(description="Every gate passed (true when there are none).")
    results: list[GateResult] = Field(default_factory=list, description="One per gate, in request order.")
