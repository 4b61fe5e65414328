"""Intervals of a difference ``model - baseline``: percentile intervals of bootstrap replicates
and normal intervals whose standard error is a sum of influence terms (the delta method)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from schemas.metrics import Interval
from service.workers.bootstrap import check_confidence, percentile_intervals


class DifferenceInterval(NamedTuple):
    """A confidence interval of ``model - baseline`` and a two-sided p-value of ``difference == 0``."""

    low: float
    high: float
    p_value: float | None

    def interval(self) -> Interval:
        return Interval(low=self.low, high=self.high)


def bootstrap_difference(differences: np.ndarray, *, confidence: float) -> DifferenceInterval | None:
    """Percentile interval and bootstrap p-value of replicated differences.

    NaN replicates are dropped; more than half NaN gives None (as
    :func:`~service.workers.bootstrap.percentile_intervals`). The p-value is
    ``min(1, 2 (min(#{d <= 0}, #{d >= 0}) + 1) / (B + 1))`` over the B defined
    replicates, so it never claims more than the replicates can show.
    """
    iv = percentile_intervals({"d": np.asarray(differences, dtype=np.float64)}, confidence=confidence)
    if "d" not in iv:
        return None
    d = differences[~np.isnan(differences)]
    tail = min(int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0)))
    p = min(1.0, 2.0 * (tail + 1) / (d.size + 1))
    return DifferenceInterval(iv["d"].low, iv["d"].high, p)


def normal_difference(difference: float, se: float, *, confidence: float) -> DifferenceInterval:
    """``difference +- z se`` and the two-sided normal p-value (``se == 0``: a point, p 1 or 0)."""
    check_confidence(confidence)
    if not se > 0:
        return DifferenceInterval(difference, difference, 1.0 if difference == 0 else 0.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = math.erfc(abs(difference / se) / math.sqrt(2))
    return DifferenceInterval(difference - z * se, difference + z * se, p)


def influence_se(*gradients: np.ndarray) -> float:
    """Delta-method standard error ``sqrt(sum_k (h_k - mean h)^2)`` of one metric (or a paired difference).

    Pass the influence terms of one side (:func:`score_influence`,
    :func:`regression_influence`: gradients already scaled to the unbiased ``n - 1``
    / DeLong denominators), or ``h_model - h_baseline`` for a paired difference;
    independent sides add their variances: ``sqrt(se_a^2 + se_b^2)``.
    """
    var = 0.0
    for g in gradients:
        if g.size:
            total = float(g.sum())
            # sum (g - mean)^2 without a centred copy; gradients have mean ~0 anyway
            var += max(0.0, float(np.dot(g, g)) - total * total / g.size)
    return math.sqrt(var)


def paired_influence_se(model: np.ndarray, baseline: np.ndarray, *, block: int = 1 << 16) -> float:
    """:func:`influence_se` of ``model - baseline`` without an n-row temporary.

    The difference is formed a block of rows at a time (a small buffer that stays in
    cache), which on a million rows avoids a fresh 8 MB array per metric.
    """
    if model.shape != baseline.shape:
        raise ValueError(f"paired gradients differ in shape: {model.shape} vs {baseline.shape}.")
    n = model.size
    if not n:
        return 0.0
    buffer = np.empty(min(block, n))
    total = 0.0
    squares = 0.0
    for start in range(0, n, block):
        d = buffer[: min(block, n - start)]
        np.subtract(model[start : start + block], baseline[start : start + block], out=d)
        total += float(d.sum())
        squares += float(np.dot(d, d))
    return math.sqrt(max(0.0, squares - total * total / n))


def class_constant_paired_se(
    model_sum: float,
    model_squares: float,
    class_sums: np.ndarray,
    support: np.ndarray,
    baseline: np.ndarray,
) -> float:
    """:func:`paired_influence_se` of a model gradient and a baseline gradient that is
    ``baseline[c]`` on every row of class ``c``, from the model's sums alone.

    ``model_sum`` / ``model_squares``: sum and sum of squares of the model's gradient;
    ``class_sums[c]``: its sum over the rows of class ``c``; ``support[c]``: those rows.
    """
    counts = np.asarray(support, dtype=np.float64)
    n = float(counts.sum())
    if not n:
        return 0.0
    total = model_sum - float(np.dot(counts, baseline))
    squares = (
        model_squares - 2.0 * float(np.dot(baseline, class_sums)) + float(np.dot(counts, baseline * baseline))
    )
    return math.sqrt(max(0.0, squares - total * total / n))


def delta_method_difference(
    difference: float,
    gradients: Sequence[np.ndarray],
    *,
    confidence: float,
    paired: tuple[np.ndarray, np.ndarray] | None = None,
) -> DifferenceInterval:
    """Normal interval of a difference whose variance is the sum of centred influence-term squares.

    ``paired=(g_model, g_baseline)`` stands for ``gradients=[g_model - g_baseline]``
    (:func:`paired_influence_se`, no n-row temporary); ``gradients`` is then ignored.
    """
    se = influence_se(*gradients) if paired is None else paired_influence_se(*paired)
    return normal_difference(difference, se, confidence=confidence)
