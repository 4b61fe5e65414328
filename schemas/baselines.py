"""The baseline panel: request section and result entries."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from schemas.common import FiniteFloat, ResourceId, WireModel
from schemas.metrics import Interval

BaselineKind = Literal["random_uniform", "random_prior", "zero_rule", "heuristic", "human", "existing"]
#: A rule's prediction: a class of the batch, or a number for regression (NaN and infinity refused).
LabelValue = int | Annotated[str, Field(max_length=200)] | FiniteFloat


class HeuristicRule(WireModel):
    when: str = Field(
        min_length=1,
        max_length=10_000,
        description="A condition in the safe expression language, e.g. `amount > 1000`.",
    )
    then: LabelValue = Field(
        description="The prediction for rows where `when` holds (first matching rule wins)."
    )


class Heuristic(WireModel):
    name: str = Field(min_length=1, max_length=200)
    rules: list[HeuristicRule] = Field(min_length=1)
    otherwise: LabelValue = Field(description="The prediction for rows no rule matches.")


class BatchBaseline(WireModel):
    batch_id: ResourceId


class ExistingModel(WireModel):
    name: str = Field(min_length=1, max_length=200)
    batch_id: ResourceId


class BaselinesRequest(WireModel):
    random_uniform: bool = False
    random_prior: bool = False
    zero_rule: bool = False
    heuristics: list[Heuristic] = Field(default_factory=list)
    human: BatchBaseline | None = None
    existing: list[ExistingModel] = Field(default_factory=list)
    interval_method: Literal["auto", "bootstrap", "delta_method"] = Field(
        default="auto",
        description="Intervals of the smooth metrics (roc_auc, average_precision, log_loss, "
        "brier_score, mae, rmse, mape, r2): a seeded row bootstrap of the difference (paired on "
        "shared rows), or DeLong's / the delta-method normal interval. `auto`: the bootstrap "
        "while rows x bootstrap samples <= 5,000,000 (5,000 rows at 1000 samples), else the "
        "delta method, which gives the same standard error in O(n) instead of O(n x samples). "
        "Label metrics always use the bootstrap, accuracy McNemar / binomial / z tests.",
    )


class MetricComparison(WireModel):
    """The model against one baseline on one metric."""

    model: float | None
    baseline: float | None
    lift: float | None = Field(description="model - baseline (for losses, negative is better).")
    normalized_gain: float | None = Field(
        description="(model - baseline) / (perfect - baseline): "
        "the share of the possible improvement achieved."
    )
    test: str | None = Field(
        description="The test behind `p_value`: `mcnemar_exact`, `binomial`, `two_proportion_z`, "
        "`paired_bootstrap`, `unpaired_delong`, ..."
    )
    p_value: float | None = None
    difference_interval: Interval | None = Field(default=None, description="CI of model - baseline.")
    interval_method: str | None = Field(
        default=None,
        description="How `difference_interval` was computed (`paired_bootstrap`, `unpaired_bootstrap`, "
        "`paired_delong`, `delta_method`, ...); it can differ from `test` (accuracy: an exact count "
        "test beside a bootstrap interval). None without an interval.",
    )
    verdict: Literal["better", "worse", "no_significant_difference", "undefined"] = Field(
        description="`better`/`worse` when the difference is significant at 1 - confidence in the "
        "direction the metric prefers. Never contradicts `difference_interval`: with an interval the "
        "verdict is read from it (it excludes 0 on the better or worse side, or includes 0)."
    )
    decided_by: Literal["interval", "p_value"] | None = Field(
        default=None,
        description="What the verdict was read from: `interval` whenever a difference interval is "
        "printed, `p_value` only without one; None when undefined.",
    )
    note: str | None = Field(
        default=None,
        description="Set when `test`'s p-value alone would give another verdict than the interval "
        "(e.g. McNemar's exact test not significant while the bootstrap interval excludes 0): says "
        "which one decided.",
    )


class Pairing(WireModel):
    mode: Literal["paired", "unpaired", "expected"] = Field(
        description="paired: same sample ids; unpaired: disjoint ids, each on its own rows; "
        "expected: a closed-form random baseline."
    )
    shared_rows: int | None = None
    model_only_rows: int | None = Field(default=None, description="Model rows with no baseline row.")
    baseline_only_rows: int | None = Field(default=None, description="Baseline rows with no model row.")
    note: str | None = None


class BaselineResult(WireModel):
    kind: BaselineKind
    name: str
    metrics: dict[str, float | None]
    undefined: dict[str, str] = Field(default_factory=dict)
    lift: dict[str, float | None]
    significance: dict[str, MetricComparison]
    pairing: Pairing
    beats: bool | None = Field(
        description="Does the model beat this baseline on the primary metric, significantly? "
        "None when that cannot be decided."
    )
    primary_metric: str
    details: dict[str, Any] = Field(default_factory=dict)
