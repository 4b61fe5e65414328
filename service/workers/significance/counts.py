"""Exact and classical tests on counts: McNemar's exact test (paired), the exact binomial test
(against a fixed value) and the pooled two-proportion z test (independent samples).

They are exact (or, for the z test, the textbook asymptotic test) at any n and cost O(1)
once the counts are known; the two-proportion test is vectorised, so the slice report
tests every slice against the rest of the batch in one call.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats as scipy_stats
from scipy.special import erfc

from service.workers.metrics.arithmetic import safe_div


class McNemar(NamedTuple):
    """Discordant pairs: ``b`` rows only the model gets right, ``c`` only the baseline."""

    b: int
    c: int
    p_value: float


class ZTest(NamedTuple):
    statistic: float | None
    p_value: float | None


def mcnemar_exact(model_correct: np.ndarray, baseline_correct: np.ndarray) -> McNemar:
    """McNemar's exact test: a two-sided binomial test on the discordant pairs.

    Parameters
    ----------
    model_correct, baseline_correct : ndarray of bool, shape (n,)
        Whether each side predicted row ``i`` correctly (the same rows, aligned).

    Returns
    -------
    McNemar
        ``(b, c, p_value)``.

    Notes
    -----
    Under H0 (equal accuracy) each discordant row is the model's with probability
    1/2: ``p = min(1, 2 P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``,
    and ``p = 1`` without discordant rows.

    Examples
    --------
    >>> import numpy as np
    >>> mcnemar_exact(np.array([True] * 10 + [False]), np.array([False] * 10 + [True]))
    McNemar(b=10, c=1, p_value=0.01171875)
    """
    a = np.asarray(model_correct, dtype=bool)
    o = np.asarray(baseline_correct, dtype=bool)
    if a.shape != o.shape or a.ndim != 1:
        raise ValueError(
            f"model_correct and baseline_correct must be 1-D and aligned, got {a.shape} and {o.shape}."
        )
    return mcnemar_counts(int(np.count_nonzero(a & ~o)), int(np.count_nonzero(o & ~a)))


def mcnemar_counts(b: int, c: int) -> McNemar:
    """:func:`mcnemar_exact` from the discordant counts.

    ``b``: rows only the model got right; ``c``: rows only the baseline got right.
    """
    if b + c == 0:
        return McNemar(b, c, 1.0)
    p = 2.0 * float(scipy_stats.binom.cdf(min(b, c), b + c, 0.5))
    return McNemar(b, c, min(1.0, p))


def binomial_test(successes: int, n: int, p0: float) -> float:
    """Two-sided exact binomial test p-value of ``successes`` in ``n`` trials against ``p0``.

    ``scipy.stats.binomtest`` (minimum-likelihood two-sided rule); 1.0 when ``n == 0``.
    """
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must be a probability in [0, 1], got {p0!r}.")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..n, got {successes} of {n}.")
    if n == 0:
        return 1.0
    return float(scipy_stats.binomtest(int(successes), int(n), float(p0)).pvalue)


def two_proportion_z_test(
    x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z test (two-sided) of ``x1 / n1`` against ``x2 / n2``, elementwise.

    Returns
    -------
    z, p : ndarray
        NaN where a side has no trials; ``z = 0, p = 1`` where the pooled proportion is
        0 or 1 (both sides all wrong or all right: no difference).

    Notes
    -----
    ``p = (x1 + x2) / (n1 + n2)``, ``z = (x1/n1 - x2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2))``;
    ``z^2`` is Pearson's chi-square of the 2x2 table without continuity correction.
    """
    x1, n1, x2, n2 = (np.asarray(a, dtype=np.float64) for a in (x1, n1, x2, n2))
    pooled = safe_div(x1 + x2, n1 + n2)
    var = pooled * (1.0 - pooled) * (safe_div(np.ones_like(n1), n1) + safe_div(np.ones_like(n2), n2))
    diff = safe_div(x1, n1) - safe_div(x2, n2)
    z = safe_div(diff, np.sqrt(np.maximum(var, 0.0)))
    degenerate = np.isfinite(diff) & (var <= 0)
    p = np.asarray(erfc(np.abs(z) / math.sqrt(2.0)), dtype=np.float64)
    return np.where(degenerate, 0.0, z), np.where(degenerate, 1.0, p)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> ZTest:
    """:func:`two_proportion_z_test` of two counts; ``(None, None)`` when a side has no trials."""
    if min(n1, n2) < 0 or not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError(f"need 0 <= x <= n on both sides, got {x1}/{n1} and {x2}/{n2}.")
    z, p = two_proportion_z_test(np.array(x1), np.array(n1), np.array(x2), np.array(n2))
    if np.isnan(p):
        return ZTest(None, None)
    return ZTest(float(z), float(p))


def paired_joint_counts(
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, n_classes: int
) -> np.ndarray:
    """Counts of ``(true, pred_a, pred_b)`` in cell ``(t K + a) K + b`` (one n-row temporary)."""
    k = n_classes
    flat = np.multiply(y_true, k, dtype=np.intp)
    flat += pred_a
    flat *= k
    flat += pred_b
    return np.bincount(flat, minlength=k**3)


def joint_mcnemar(joint: np.ndarray, *, n_classes: int) -> McNemar:
    """:func:`mcnemar_exact` from :func:`paired_joint_counts` (no n-row pass)."""
    k = n_classes
    cube = joint.reshape(k, k, k)
    both = np.einsum("iii->", cube)
    model_right = int(np.einsum("iij->", cube)) - int(both)
    baseline_right = int(np.einsum("iji->", cube)) - int(both)
    return mcnemar_counts(model_right, baseline_right)
