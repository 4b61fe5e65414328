"""Intervals and tests for many slices at once: every function takes and returns arrays over slices.

NaN marks "no interval" / "no test" (a slice without rows of a kind, a rest
without rows); callers turn it into ``None``. No function here warns on 0/0.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from scipy.special import erfc

from service.workers.metrics.arithmetic import safe_div


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95), got {confidence!r}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def two_sided_p(z: np.ndarray) -> np.ndarray:
    """``P(|Z| >= |z|)`` for a standard normal ``Z``; NaN stays NaN."""
    return np.asarray(erfc(np.abs(z) / math.sqrt(2.0)), dtype=np.float64)


def wilson(successes: np.ndarray, trials: np.ndarray, *, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``successes / trials`` per slice (NaN where ``trials == 0``).

    Notes
    -----
    With ``p = x / n``::

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Unlike ``p +- z sqrt(p (1 - p) / n)`` it stays inside [0, 1] and is not a point
    at ``p = 0`` or ``1``.
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    p = safe_div(x, n)
    z2n = safe_div(np.full(n.shape, z * z), n)
    denom = 1.0 + z2n
    centre = (p + z2n / 2.0) / denom
    half = z / denom * np.sqrt(np.maximum(safe_div(p * (1.0 - p), n) + z2n * z2n / (4.0 * z * z), 0.0))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def mean_and_variance(sums: np.ndarray, squares: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice mean and sample variance (``n - 1`` denominator) from sums of values and of squares.

    The variance is NaN below 2 rows. It feeds intervals and tests only, never a
    reported metric, so the one-pass formula's rounding (relative ``~1e-16 mean^2 / var``)
    does not matter.
    """
    mean = safe_div(sums, n)
    var = safe_div(np.maximum(squares - sums * mean, 0.0), np.asarray(n, dtype=np.float64) - 1.0)
    return mean, np.where(np.asarray(n) >= 2, var, np.nan)


def unbiased_factor(count: np.ndarray) -> np.ndarray:
    """``count / (count - 1)`` per slice (1 below two rows): turns a ``1/count`` variance into the
    ``1/(count - 1)`` one.

    The delta-method variance ``sum_i g_i^2`` of per-row gradients divides the squared
    influence by ``n``; the sample variance of the influence function divides by ``n - 1``
    (multiply by ``unbiased_factor(n)``). For ROC AUC, DeLong's structural components use
    ``m - 1`` and ``n - 1``: multiply the positives' part of the variance by
    ``unbiased_factor(P)`` and the negatives' by ``unbiased_factor(N)``, as
    :func:`service.workers.significance.score_influence` does per row.
    """
    c = np.asarray(count, dtype=np.float64)
    return np.where(c >= 2, safe_div(c, c - 1.0), 1.0)


def normal_p(difference: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Two-sided p-value of ``difference / se``; a zero ``se`` gives 1 (no difference) or 0."""
    d = np.asarray(difference, dtype=np.float64)
    s = np.asarray(se, dtype=np.float64)
    p = two_sided_p(safe_div(d, s))
    return np.where(np.isfinite(d) & (s == 0), np.where(d == 0, 1.0, 0.0), p)


def welch_p(
    mean1: np.ndarray, var1: np.ndarray, n1: np.ndarray, mean2: np.ndarray, var2: np.ndarray, n2: np.ndarray
) -> np.ndarray:
    """Welch (unequal variances) z test of two means, two-sided; NaN below 2 rows on a side.

    With millions of rows the t distribution is the normal; with a few dozen the
    normal p-value is slightly optimistic (slices below ``min_support`` are never flagged).
    """
    se = np.sqrt(safe_div(var1, n1) + safe_div(var2, n2))
    return normal_p(np.asarray(mean1) - np.asarray(mean2), se)


def normal_interval(value: np.ndarray, se: np.ndarray, *, z: float) -> tuple[np.ndarray, np.ndarray]:
    """``value +- z se`` (NaN where either is NaN)."""
    return value - z * se, value + z * se


def percentiles(stack: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """Linear-interpolation percentiles (``np.percentile``'s default) of each column of ``stack``.

    Parameters
    ----------
    stack : ndarray of shape (B, G)
        Bootstrap replicates per slice, NaN where undefined.
    q : tuple of float
        Fractions in [0, 1].

    Returns
    -------
    ndarray of shape (len(q), G)
        NaN replicates are dropped; a slice undefined in more than half of its
        replicates gets NaN (as :func:`service.workers.bootstrap.percentile_intervals`).
    """
    b = stack.shape[0]
    ordered = np.sort(stack, axis=0)  # NaN last
    k = np.count_nonzero(~np.isnan(stack), axis=0)
    ok = (k > 0) & (2 * (b - k) <= b)
    out = np.full((len(q), stack.shape[1]), np.nan)
    cols = np.flatnonzero(ok)
    if not cols.size:
        return out
    kk = k[cols]
    for i, frac in enumerate(q):
        pos = frac * (kk - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, kk - 1)
        a = ordered[lo, cols]
        c = ordered[hi, cols]
        out[i, cols] = a + (pos - lo) * (c - a)
    return out
