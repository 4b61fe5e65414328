"""Slice-based evaluation: request section and result document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from schemas.common import WireModel
from schemas.metrics import Interval

#: A column of the batch (ingest caps column names at 200 characters).
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class CriticalSlice(WireModel):
    name: str = Field(min_length=1, max_length=200)
    where: str = Field(
        min_length=1,
        max_length=10_000,
        description="A filter in the safe expression language, e.g. `tenure_days < 30`.",
    )


class SliceFinderRequest(WireModel):
    max_conditions: int = Field(default=2, ge=1, le=3)
    top_k: int = Field(default=10, ge=1, le=100)
    alpha: float = Field(
        default=0.05, gt=0, lt=1, allow_inf_nan=False, description="Benjamini-Hochberg false discovery rate."
    )
    min_support: int | None = Field(default=None, ge=1, description="Default: the section's min_support.")
    columns: list[ColumnName] | None = Field(default=None, description="Default: every feature column.")
    bins: int = Field(default=5, ge=2, le=50, description="Quantile bins for numeric columns.")
    error_weight: float = Field(
        default=0.0,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="How the ranking weighs a slice's error against its size: slices are ranked by "
        "share^(1 - error_weight) x relative_effect. 0 (default) ranks by impact (share of rows times "
        "relative increase of the error: a whole batch twice as bad scores 1), 1 by the relative "
        "increase alone (severity, whatever the size). Only the order changes: which slices qualify "
        "is decided by the test, min_support and min_effect.",
    )


class SlicesRequest(WireModel):
    columns: list[ColumnName] = Field(default_factory=list)
    crosses: list[list[ColumnName]] = Field(default_factory=list)
    critical: list[CriticalSlice] = Field(default_factory=list)
    min_support: int = Field(default=30, ge=1)
    bins: int = Field(default=5, ge=2, le=50, description="Quantile bins for numeric slice columns.")
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="False discovery rate for underperforming slices: one Benjamini-Hochberg adjustment "
        "over every slice test of the evaluation.",
    )
    min_effect: float = Field(
        default=0.25,
        ge=0,
        allow_inf_nan=False,
        description="Smallest gap worth a finding, relative to the rest's distance from a perfect value: "
        "(rest - value) / (1 - rest) for scores, (value - rest) / rest for losses. For accuracy, 0.25 "
        "means at least 25% more errors than on the rest of the batch. 0 flags every significant slice.",
    )
    finder: SliceFinderRequest | None = None


class SliceMetric(WireModel):
    value: float | None
    interval: Interval | None = None
    difference: float | None = Field(default=None, description="Slice value minus the overall value.")
    p_value: float | None = Field(default=None, description="Test of the slice against the rest.")


class Slice(WireModel):
    conditions: dict[str, Any] = Field(description="column -> value (or bin label `[low, high)`).")
    n: int
    share: float
    minority: bool = Field(description="Under min_support rows or under 5% of the batch.")
    metrics: dict[str, SliceMetric]


class SliceGroup(WireModel):
    columns: list[str]
    slices: list[Slice]
    omitted: int = Field(
        default=0,
        ge=0,
        description="Slices of this column or cross (with at least one row) not listed in `slices` because "
        "of the limits on slices per group and per result; see `SlicesResult.omitted_slices`.",
    )


class CriticalSliceResult(WireModel):
    name: str
    where: str
    n: int
    share: float
    metrics: dict[str, SliceMetric]
    history: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The same slice in earlier evaluations of this model name, oldest first: "
        "{job_id, version, finished_at, n, metrics}.",
    )


class FoundSlice(WireModel):
    conditions: dict[str, Any]
    n: int
    error: float = Field(description="Error rate (mean loss) of the slice.")
    rest_error: float = Field(description="Error rate (mean loss) of the rest of the batch.")
    effect_size: float = Field(description="error - rest_error.")
    p_value: float = Field(
        description="One-sided test of the slice against the rest of the batch: Fisher's exact test "
        "for 0/1 errors, Welch's t test for losses."
    )
    significant: bool = Field(description="Rejected at the Benjamini-Hochberg level alpha.")
    q_value: float | None = Field(
        default=None, description="Benjamini-Hochberg adjusted p-value, over every slice tested."
    )
    baseline_error: float | None = Field(
        default=None,
        description="Error of the rows the slice is measured against for min_effect and the ranking: "
        "the rest of the batch, or the rest of `compared_within`.",
    )
    compared_within: dict[str, Any] | None = Field(
        default=None,
        description="The slice's conditions on bins of trending numeric columns (see `trends`), when it "
        "has other conditions too: it is measured against the rest of those bins, so that the trend "
        "does not count as its effect. None: measured against the rest of the batch.",
    )
    relative_effect: float | None = Field(
        default=None,
        description="error / baseline_error - 1: 0.25 is 25% more error. None when the baseline has no "
        "error.",
    )
    excess: float | None = Field(
        default=None,
        description="n x (error - baseline_error): the errors (total loss) the slice has beyond its "
        "baseline's rate.",
    )
    score: float | None = Field(
        default=None,
        description="What the slices are ranked by: share^(1 - error_weight) x relative_effect.",
    )
    explained_by_trend: list[str] | None = Field(
        default=None,
        description="Set when every condition of the slice is a bin of a trending numeric column on its "
        "worse side: the overall trend (see `trends`) explains it. Such slices come after all others.",
    )


class ErrorTrend(WireModel):
    """A numeric (ordered) column along whose bins the error rises or falls overall: a base-rate effect."""

    column: str
    direction: str = Field(pattern="^(increasing|decreasing)$", description="increasing or decreasing.")
    bins: list[Any] = Field(description="The column's bins (labels) in order; the null bin is left out.")
    n: list[int] = Field(description="Rows per bin.")
    error: list[float] = Field(description="Error rate (mean loss) per bin.")
    monotone: bool = Field(description="The per-bin errors never step against the direction.")
    statistic: float = Field(
        description="z of the test for a linear trend across the bins (scores 0, 1, ...)."
    )
    p_value: float = Field(description="Two-sided.")
    q_value: float = Field(description="Benjamini-Hochberg adjusted, over the ordered columns tested.")
    test: str = Field(description="cochran_armitage (0/1 errors) or linear_trend (losses).")


class SliceFinderSummary(WireModel):
    """Where the tested slices went: each significant one is counted in exactly one of the counts
    from under_min_effect to qualified."""

    tested: int = Field(description="Slices of at least min_support rows: all tested against the rest.")
    under_min_support: int = Field(
        description="Slices not tested because they have fewer than min_support rows (though at least one "
        "row, and every broader slice has enough)."
    )
    significant: int = Field(
        description="Tested slices worse than the rest with a p-value at most significance_level."
    )
    significance_level: float = Field(
        description="The p-value cut-off: Benjamini-Hochberg's alpha R / m over the m slices tested, with R "
        "the slices that qualify at it (redundant relatives of a reported slice do not loosen it); never "
        "above plain Benjamini-Hochberg's. 0 when Benjamini-Hochberg rejects nothing."
    )
    under_min_effect: int = Field(
        description="Significant, but less than min_effect worse than its baseline (see baseline_error)."
    )
    explained_by_broader: int = Field(
        description="Significant, but not significantly (at significance_level) and min_effect worse than "
        "the rest of a broader significant slice: it only inherits that slice's effect."
    )
    explained_by_narrower: int = Field(
        description="Significant, but only through a narrower significant slice: without it, the rest of "
        "the slice is not significantly and min_effect worse than its baseline."
    )
    explained_by_overlap: int = Field(
        description="Significant, but no longer significantly and min_effect worse than its baseline once "
        "the rows of a better-ranked reported slice it partly overlaps are set apart (checked while "
        "filling top_k)."
    )
    explained_by_trend: int = Field(
        description="Significant, but explained by a trend of a numeric column (see `trends`)."
    )
    qualified: int = Field(
        description="Significant slices set aside by none of the above: ranked, the best top_k reported."
    )
    reported: int = Field(description="Slices returned: the best top_k qualified, then trend slices.")
    why_fewer: str | None = Field(default=None, description="Why fewer than top_k slices were returned.")


class SliceFinderResult(WireModel):
    method: str
    slices: list[FoundSlice]
    candidates_tested: int
    trends: list[ErrorTrend] = Field(
        default_factory=list,
        description="Numeric columns with a significant trend of the error across their bins.",
    )
    summary: SliceFinderSummary | None = Field(
        default=None, description="How many slices were tested, significant and set aside, and why."
    )
    details: dict[str, Any] = Field(default_factory=dict)


class ExplainedSlice(WireModel):
    conditions: dict[str, Any]
    explained_by: dict[str, Any]
    reason: str


class SliceFlagging(WireModel):
    """How the underperforming slices were chosen, and what was set aside."""

    tests: int = Field(description="Slice tests (slice x metric) adjusted together.")
    significant: int = Field(description="Tests rejected after the adjustment, on the worse side.")
    below_min_effect: int = Field(description="Of those, how many were too small a gap to matter.")
    flagged: int = Field(description="Slices flagged as underperforming (one finding each).")
    explained: list[ExplainedSlice] = Field(
        default_factory=list,
        description="Slices worse than the rest only because of a related flagged slice (a parent "
        "that is bad as a whole, or a child that carries the whole gap).",
    )
    alpha: float
    min_effect: float


class SlicesResult(WireModel):
    groups: list[SliceGroup] = Field(default_factory=list)
    omitted_slices: int = Field(
        default=0,
        ge=0,
        description="Slices computed and tested but not listed, over every group: each column or cross "
        "lists at most YARDSTICK_MAX_SLICES_PER_GROUP slices (default 1000) and the result at most "
        "YARDSTICK_MAX_SLICES_PER_RESULT (5000). Listed first: the slices a gate names, the flagged "
        "(underperforming) ones by impact, then the slices of at least min_support rows and 5% of the "
        "batch worst first on the primary metric, then the minority slices the same way. Flagging and "
        "its counts always cover every slice.",
    )
    omitted_reason: str | None = Field(
        default=None, description="When slices were left out: how many, why, and which were kept."
    )
    critical: list[CriticalSliceResult] = Field(default_factory=list)
    finder: SliceFinderResult | None = None
    tree: SliceFinderResult | None = None
    flagging: SliceFlagging | None = None
