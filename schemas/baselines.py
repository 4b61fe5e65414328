"""The baseline panel: request section and result entries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from schemas.common import WireModel
from schemas.metrics import Interval

BaselineKind = Literal["random_uniform", "random_prior", "zero_rule", "heuristic", "human", "existing"]
LabelValue = int | str | float


class HeuristicRule(WireModel):
    when: str = Field(description="A condition in the safe expression language, e.g. `amount > 1000`.")
    then: LabelValue = Field(
        description="The prediction for rows where `when` holds (first matching rule wins)."
    )


class Heuristic(WireModel):
    name: str = Field(min_length=1, max_length=200)
    rules: list[HeuristicRule] = Field(min_length=1)
    otherwise: LabelValue = Field(description="The prediction for rows no rule matches.")


class BatchBaseline(WireModel):
    batch_id: str


class ExistingModel(WireModel):
    name: str = Field(min_length=1, max_length=200)
    batch_id: str


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
        description="`mcnemar_exact`, `binomial`, `two_proportion_z`, `paired_bootstrap`, ..."
    )
    p_value: float | None = None
    difference_interval: Interval | None = Field(default=None, description="CI of model - baseline.")
    verdict: Literal["better", "worse", "no_significant_difference", "undefined"]


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
