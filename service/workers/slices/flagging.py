"""Which slices to flag as underperforming: significant, large enough to matter, not explained by another.

A slice is flagged when, on at least one metric, all three hold:

1. **Statistically worse.** Its test against the rest of the batch (:mod:`.report`) is
   rejected at ``alpha`` after one Benjamini-Hochberg adjustment over *every* slice test of
   the evaluation (all columns, crosses and metrics together, as
   :func:`scipy.stats.false_discovery_control`), and the slice is on the worse side.
2. **Practically worse.** Its *relative gap* is at least ``min_effect``: the shortfall from the
   rest divided by the rest's distance from a perfect value,
   ``(rest - value) / (perfect - rest)`` for a score (perfect 1: accuracy, F1, AUC, R^2, ...)
   and ``(value - rest) / rest`` for a loss or error (perfect 0). For accuracy that is the
   relative increase of the error rate: 0.25 means "at least 25% more errors than elsewhere".
   A huge batch makes a 1% difference significant; this keeps it quiet.
3. **Not explained by a related slice.** For two flagged slices where one's conditions contain
   the other's (a parent ``country = AR`` and its child ``country = AR and device = web``), the
   per-row error rates decide (misclassified rows; absolute errors in regression):

   * the child is explained by the parent when it is not significantly worse than the rest of
     the parent (``AR and web`` against ``AR and not web``): the whole parent is bad;
   * the parent is explained by the child when the rest of the parent is not significantly
     worse than the rows outside the parent: the parent only looks bad because of the child.

   When both hold (neither side has the power to tell) the slice with the weaker evidence goes.
   An explained slice is not flagged again; its explainer's finding lists it.

The **impact** that orders flagged slices is ``share x relative gap`` (the slice's share of the
labeled rows times its largest relative gap): rows affected times how much worse they are, on a
scale where a whole batch twice as bad as it should be scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from service.workers.metrics import METRICS
from service.workers.significance.counts import two_proportion_z_test
from service.workers.slices.inference import mean_and_variance, welch_p
from service.workers.slices.report import SliceTests

#: the default ``min_effect``: a slice must be at least 25% further from perfect than the rest
DEFAULT_MIN_EFFECT = 0.25


@dataclass(frozen=True)
class FlaggedMetric:
    """One metric on which a slice is significantly and materially worse than the rest."""

    metric: str
    value: float
    rest: float
    overall: float | None
    p_value: float
    p_adjusted: float
    relative_gap: float


@dataclass
class FlaggedSlice:
    """An underperforming slice: its failing metrics (most significant first) and its impact."""

    columns: list[str]
    conditions: dict[str, Any]
    n: int
    share: float
    error_rate: float
    rest_error_rate: float
    metrics: list[FlaggedMetric]
    impact: float
    explains: list[dict[str, Any]] = field(default_factory=list)

    @property
    def p_adjusted(self) -> float:
        return min(m.p_adjusted for m in self.metrics)


@dataclass(frozen=True)
class Explained:
    """A slice that passed the tests but is explained by a related flagged slice."""

    conditions: dict[str, Any]
    by: dict[str, Any]
    reason: str


@dataclass
class SliceFlags:
    """The flagged slices, highest impact first, and how the others were set aside."""

    flagged: list[FlaggedSlice]
    explained: list[Explained]
    tests: int
    significant: int
    below_min_effect: int
    alpha: float
    min_effect: float


def relative_gap(metric: str, value: float, rest: float) -> float:
    """How much worse ``value`` is than ``rest``, relative to the rest's distance from perfect.

    Positive when worse; ``inf`` when the rest is perfect and the slice is not.

    >>> relative_gap("accuracy", 0.8, 0.9)  # twice the error rate
    1.0
    >>> relative_gap("log_loss", 0.5, 0.4)
    0.25
    """
    info = METRICS[metric]
    if info.greater_is_better:
        gap, scale = rest - value, info.perfect - rest
    else:
        gap, scale = value - rest, rest - info.perfect
    if scale <= 0:
        return float("inf") if gap > 0 else 0.0
    return float(gap / scale)


@dataclass(frozen=True)
class _Rows:
    """Sums of per-row errors of some rows: count, sum, sum of squares."""

    n: float
    errors: float
    squares: float

    def __sub__(self, other: _Rows) -> _Rows:
        return _Rows(self.n - other.n, self.errors - other.errors, self.squares - other.squares)

    @property
    def rate(self) -> float:
        return self.errors / self.n if self.n else float("nan")


def flag_slices(
    groups: Sequence[SliceTests],
    *,
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    binary_errors: bool = True,
) -> SliceFlags:
    """Flag the underperforming slices of one evaluation (see the module notes).

    Parameters
    ----------
    groups : sequence of SliceTests
        One per column or cross, from :meth:`~service.workers.slices.report.SliceEvaluator.evaluate`
        on the same rows.
    alpha : float
        False discovery rate of the Benjamini-Hochberg adjustment, and the level of the
        explanation tests.
    min_effect : float
        Smallest relative gap (:func:`relative_gap`) worth a finding; 0 flags every significant one.
    binary_errors : bool
        True when the per-row errors are 0/1 (classification): the explanation tests are then
        two-proportion z tests, else Welch z tests on the error means.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    if not (min_effect >= 0 and np.isfinite(min_effect)):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect!r}.")
    entries = [(g, t) for g in groups for t in g.tests]
    if not entries:
        return SliceFlags([], [], 0, 0, 0, alpha, min_effect)
    p = np.array([t.p_value for _, t in entries])
    adjusted = scipy_stats.false_discovery_control(p, method="bh")
    total = _Rows(float(groups[0].n.sum()), float(groups[0].errors.sum()), float(groups[0].squares.sum()))

    candidates: dict[tuple[int, int], FlaggedSlice] = {}
    rows_of: dict[int, _Rows] = {}
    significant = below = 0
    group_index = {id(g): i for i, g in enumerate(groups)}
    for (g, t), adj in zip(entries, adjusted, strict=True):
        if not (adj <= alpha and t.worse):
            continue
        significant += 1
        gap = relative_gap(t.metric, t.value, t.rest)
        if gap < min_effect:
            below += 1
            continue
        key = (group_index[id(g)], t.slice)
        if key not in candidates:
            rows = _group_rows(g, t.slice)
            rest = total - rows
            candidates[key] = FlaggedSlice(
                columns=list(g.columns),
                conditions=dict(g.conditions[t.slice]),
                n=int(rows.n),
                share=rows.n / total.n if total.n else 0.0,
                error_rate=rows.rate,
                rest_error_rate=rest.rate,
                metrics=[],
                impact=0.0,
            )
            rows_of[id(candidates[key])] = rows
        flagged = candidates[key]
        flagged.metrics.append(
            FlaggedMetric(
                metric=t.metric,
                value=t.value,
                rest=t.rest,
                overall=g.overall.get(t.metric),
                p_value=t.p_value,
                p_adjusted=float(adj),
                relative_gap=gap,
            )
        )
        flagged.impact = max(flagged.impact, flagged.share * min(gap, 1e6))
    for flagged in candidates.values():
        flagged.metrics.sort(key=lambda m: (m.p_adjusted, m.p_value))

    kept, explained = _explain(list(candidates.values()), rows_of, total, alpha=alpha, binary=binary_errors)
    kept.sort(key=lambda f: (-f.impact, f.p_adjusted))
    return SliceFlags(kept, explained, len(entries), significant, below, alpha, min_effect)


def _group_rows(group: SliceTests, index: int) -> _Rows:
    return _Rows(float(group.n[index]), float(group.errors[index]), float(group.squares[index]))


def _explain(
    flagged: list[FlaggedSlice], rows: dict[int, _Rows], total: _Rows, *, alpha: float, binary: bool
) -> tuple[list[FlaggedSlice], list[Explained]]:
    """Set aside flagged slices explained by a flagged parent or child (module notes, rule 3)."""

    def worse(a: _Rows, b: _Rows) -> bool:
        if a.n <= 0 or b.n <= 0 or not a.rate > b.rate:
            return False
        return _p_worse(a, b, binary=binary) <= alpha

    dropped: dict[int, Explained] = {}
    by_impact = sorted(flagged, key=lambda f: -f.impact)
    for parent in by_impact:
        for child in by_impact:
            if parent is child or not _contains(child.conditions, parent.conditions):
                continue
            p_rows, c_rows = rows[id(parent)], rows[id(child)]
            rest_of_parent = p_rows - c_rows
            child_by_parent = rest_of_parent.n <= 0 or not worse(c_rows, rest_of_parent)
            parent_by_child = rest_of_parent.n > 0 and not worse(rest_of_parent, total - p_rows)
            if child_by_parent and parent_by_child:
                weaker = child if child.p_adjusted >= parent.p_adjusted else parent
                child_by_parent, parent_by_child = weaker is child, weaker is parent
            if child_by_parent and id(child) not in dropped:
                dropped[id(child)] = Explained(
                    child.conditions,
                    parent.conditions,
                    f"no worse than the rest of {_describe(parent.conditions)}, which is worse as a whole",
                )
            elif parent_by_child and id(parent) not in dropped:
                dropped[id(parent)] = Explained(
                    parent.conditions,
                    child.conditions,
                    f"its other rows are no worse than the batch: the gap comes from "
                    f"{_describe(child.conditions)}",
                )
    kept = [f for f in flagged if id(f) not in dropped]
    for f in kept:
        f.explains = [
            {"conditions": e.conditions, "reason": e.reason} for e in dropped.values() if e.by == f.conditions
        ]
    return kept, list(dropped.values())


def _p_worse(a: _Rows, b: _Rows, *, binary: bool) -> float:
    if binary:
        _, p = two_proportion_z_test(
            np.array([a.errors]), np.array([a.n]), np.array([b.errors]), np.array([b.n])
        )
    else:
        n_a, n_b = np.array([a.n]), np.array([b.n])
        mean_a, var_a = mean_and_variance(np.array([a.errors]), np.array([a.squares]), n_a)
        mean_b, var_b = mean_and_variance(np.array([b.errors]), np.array([b.squares]), n_b)
        p = welch_p(mean_a, var_a, n_a, mean_b, var_b, n_b)
    value = float(p[0])
    return value if np.isfinite(value) else 1.0


def _contains(child: dict[str, Any], parent: dict[str, Any]) -> bool:
    """Is ``parent`` a strict subset of ``child``'s conditions (so the child's rows lie inside it)?"""
    return len(parent) < len(child) and all(k in child and child[k] == v for k, v in parent.items())


def describe_conditions(conditions: dict[str, Any]) -> str:
    """``country = 'AR' and device = 'web'``."""
    return " and ".join(f"{k} = {v!r}" for k, v in conditions.items())


_describe = describe_conditions
