"""Verdicts of a comparison: better, worse or no significant difference, read from the interval
of the difference (or a p-value without one) in the direction the metric prefers."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from service.workers.significance.differences import DifferenceInterval

Verdict = Literal["better", "worse", "no_significant_difference", "undefined"]


def normalized_gain(model: float | None, baseline: float | None, *, perfect: float) -> float | None:
    """``(model - baseline) / (perfect - baseline)``: the share of the possible improvement achieved.

    1 = perfect, 0 = no better than the baseline, negative = worse. ``None`` when a
    value is missing or the baseline is already perfect.

    Examples
    --------
    >>> normalized_gain(0.9, 0.5, perfect=1.0), normalized_gain(0.2, 0.4, perfect=0.0)
    (0.8, 0.5)
    """
    if model is None or baseline is None or math.isnan(model) or math.isnan(baseline):
        return None
    if baseline == perfect:
        return None
    return (model - baseline) / (perfect - baseline)


def interval_verdict(interval: DifferenceInterval | None, *, greater_is_better: bool) -> Verdict:
    """``better``/``worse`` when the interval of model - baseline excludes 0 (by the metric's
    direction), else ``no_significant_difference``; ``undefined`` without an interval."""
    if interval is None:
        return "undefined"
    if interval.low > 0 or interval.high < 0:
        up = interval.low > 0
        return "better" if up == greater_is_better else "worse"
    return "no_significant_difference"


def p_value_verdict(p_value: float | None, lift: float, *, alpha: float, greater_is_better: bool) -> Verdict:
    """Verdict of a test: significant at ``alpha`` and in which direction (by the sign of the lift)."""
    if p_value is None:
        return "undefined"
    if p_value >= alpha or lift == 0:
        return "no_significant_difference"
    return "better" if (lift > 0) == greater_is_better else "worse"


class Decision(NamedTuple):
    """A verdict, what it was read from, and a note when the test and the interval disagree."""

    verdict: Verdict
    decided_by: Literal["interval", "p_value"] | None
    note: str | None


def decide(
    lift: float,
    *,
    p_value: float | None,
    interval: DifferenceInterval | None,
    greater_is_better: bool,
    alpha: float,
    test: str | None,
    interval_method: str | None,
) -> Decision:
    """The verdict of a comparison, consistent with the interval printed beside it.

    With an interval, the verdict is :func:`interval_verdict`: ``better`` only when the
    interval of ``model - baseline`` lies on the better side of 0, ``worse`` only on the
    worse side, else ``no_significant_difference`` -- so it never contradicts the
    interval. Without one it is :func:`p_value_verdict` of ``test``. When the test and the
    interval come from different methods (accuracy: McNemar's exact test, the binomial
    or the two-proportion z test beside a bootstrap interval) or the bootstrap p-value
    and percentile interval fall on either side of ``alpha`` by a replicate, the p-value
    alone can say otherwise; ``note`` then says so and that the interval decided.

    Examples
    --------
    >>> d = decide(0.025, p_value=0.0625, interval=DifferenceInterval(0.005, 0.045, None),
    ...            greater_is_better=True, alpha=0.05, test="mcnemar_exact",
    ...            interval_method="paired_bootstrap")
    >>> d.verdict, d.decided_by
    ('better', 'interval')
    """
    if interval is None:
        verdict = p_value_verdict(p_value, lift, alpha=alpha, greater_is_better=greater_is_better)
        return Decision(verdict, None if verdict == "undefined" else "p_value", None)
    verdict = interval_verdict(interval, greater_is_better=greater_is_better)
    note = None
    by_test = p_value_verdict(p_value, lift, alpha=alpha, greater_is_better=greater_is_better)
    if by_test not in ("undefined", verdict):
        assert p_value is not None
        side = "excludes" if interval.low > 0 or interval.high < 0 else "includes"
        significant = "significant" if p_value < alpha else "not significant"
        note = (
            f"{test or 'the test'} gives p = {p_value:.3g} ({significant} at alpha = {alpha:g}), but the "
            f"{interval_method or 'difference'} interval [{interval.low:.4g}, {interval.high:.4g}] "
            f"{side} 0; the verdict ({verdict}) follows the interval."
        )
    return Decision(verdict, "interval", note)
