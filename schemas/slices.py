"""Slice-based evaluation: request section and result document."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from schemas.common import WireModel
from schemas.metrics import Interval


class CriticalSlice(WireModel):
    name: str = Field(min_length=1, max_length=200)
    where: str = Field(description="A filter in the safe expression language, e.g. `tenure_days < 30`.")


class SliceFinderRequest(WireModel):
    max_conditions: int = Field(default=2, ge=1, le=3)
    top_k: int = Field(default=10, ge=1, le=100)
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate.")
    min_support: int | None = Field(default=None, ge=1, description="Default: the section's min_support.")
    columns: list[str] | None = Field(default=None, description="Default: every feature column.")
    bins: int = Field(default=5, ge=2, le=50, description="Quantile bins for numeric columns.")


class SlicesRequest(WireModel):
    columns: list[str] = Field(default_factory=list)
    crosses: list[list[str]] = Field(default_factory=list)
    critical: list[CriticalSlice] = Field(default_factory=list)
    min_support: int = Field(default=30, ge=1)
    bins: int = Field(default=5, ge=2, le=50, description="Quantile bins for numeric slice columns.")
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
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
    error: float
    rest_error: float
    effect_size: float
    p_value: float
    significant: bool = Field(description="Rejected at the Benjamini-Hochberg level alpha.")


class SliceFinderResult(WireModel):
    method: str
    slices: list[FoundSlice]
    candidates_tested: int
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
    critical: list[CriticalSliceResult] = Field(default_factory=list)
    finder: SliceFinderResult | None = None
    tree: SliceFinderResult | None = None
    flagging: SliceFlagging | None = None
