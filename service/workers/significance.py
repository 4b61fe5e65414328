"""Is a model's metric significantly different from a baseline's? Tests and intervals of differences.

Pure computation, seeded: no I/O, no clock, no global random state.

Three families, chosen per metric by what is exact and what is affordable on
millions of rows (1M binary rows: a row-resampling bootstrap replicate of a score
metric costs ~28 ms, so 1000 of them cost ~30 s per comparison):

* **Exact / classical tests** on counts: :func:`mcnemar_exact` (paired accuracy),
  :func:`binomial_test` (accuracy against a fixed expected value),
  :func:`two_proportion_z` (unpaired accuracy).
* **Bootstrap of the difference** for the label metrics and the non-smooth
  regression metrics. Label metrics are functions of confusion matrices: a paired
  resample of n rows is one ``Multinomial(n, c / n)`` draw over the joint cells
  ``(true, pred_model, pred_baseline)`` (``K^3`` cells, only the non-empty ones are
  drawn), whose two marginals are the two resampled confusion matrices -- exactly
  resampling the same rows for both sides, in milliseconds on any n. Unpaired
  resamples are independent draws of each side
  (:func:`~service.workers.bootstrap.classification_replicates`).
* **Delta method** for the smooth metrics of scores and values: ROC AUC (this is
  DeLong's variance), average precision, log loss, Brier score, MAE, RMSE, MAPE,
  R^2. Each metric is a smooth function of row weights; its gradient
  ``g_k = d metric / d w_k`` at ``w = 1`` linearises the bootstrap::

      metric(w) - metric(1) ~ sum_k g_k (w_k - 1)

  ``n g_k`` is the empirical influence function, and the variance uses its sample
  variance with the unbiased ``n - 1`` denominator: ``Var = n / (n - 1) sum_k g_k^2``
  (the gradients sum to 0: every metric here is invariant to scaling all weights).
  ROC AUC is a two-sample U-statistic, so its variance is DeLong, DeLong &
  Clarke-Pearson (1988)'s ``S10 / m + S01 / n`` whose structural-component variances
  use ``m - 1`` (positives) and ``n - 1`` (negatives). :func:`score_influence`,
  :func:`regression_influence` and the constant-score shortcuts return the
  *influence terms* ``h_k`` -- the gradients scaled by these finite-sample factors,
  ``sqrt(n / (n - 1))``, for AUC ``sqrt(m / (m - 1))`` on positives and
  ``sqrt(n / (n - 1))`` on negatives (``ddof=0`` gives the bare gradients) -- so
  that every standard error is ``sqrt(sum_k (h_k - mean h)^2)`` (:func:`influence_se`):
  the paired difference ``sqrt(sum (h_model - h_base)^2)`` (both sides have the
  same rows, hence the same factors: DeLong's covariance of two correlated AUCs),
  the unpaired one ``sqrt(se_model^2 + se_base^2)``, and the interval is
  ``diff +- z se`` in O(n) after one sort per side (none for constant probabilities,
  :func:`constant_score_influence`). For a mean of per-row losses this is the plain
  CLT interval of a (paired) difference of means with the sample standard deviation
  (``ddof=1``); for ROC AUC it is DeLong's. A multiclass macro AUC averages the
  per-class influence terms, each with its own class's factors. Average precision
  has no textbook paired test; its gradient is derived in :func:`_ranking_gradients`
  and checked against finite differences and the paired bootstrap in the tests.

The count tests are exact at any n; the bootstrap and delta-method intervals are
asymptotic, so with a few dozen rows their verdicts are optimistic (a bootstrap of
2 rows "proves" little). A degenerate delta-method variance (e.g. a perfect ranking,
every placement 1) gives a zero-width interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np
from scipy import stats as scipy_stats

from schemas.metrics import Interval
from service.workers.bootstrap import (
    _row_replicates,  # the module's row-weight draw loop, reused for paired resamples
    classification_replicates,
    percentile_intervals,
    regression_replicates,
)
from service.workers.metrics import (
    METRICS,
    Labels,
    RegressionStatistics,
    ScoreStatistics,
    confusion_metric_values,
)

Verdict = Literal["better", "worse", "no_significant_difference", "undefined"]

# Metrics whose interval comes from the delta method (smooth in the row weights).
DELTA_METHOD_METRICS = frozenset(
    {"roc_auc", "average_precision", "log_loss", "brier_score", "mae", "rmse", "mape", "r2"}
)
# Keep one multinomial draw block near this many cells (replicates x non-empty joint cells).
_DRAW_BLOCK_CELLS = 4_000_000


# --------------------------------------------------------------------------- tests on counts


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


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> ZTest:
    """Pooled two-proportion z test (two-sided) of ``x1 / n1`` against ``x2 / n2``.

    Notes
    -----
    ``p = (x1 + x2) / (n1 + n2)``, ``z = (x1/n1 - x2/n2) / sqrt(p (1 - p) (1/n1 + 1/n2))``.
    Undefined (``None``) when a side has no rows; ``z = 0, p = 1`` when the pooled
    proportion is 0 or 1 (both sides all wrong or all right: no difference).
    """
    if min(n1, n2) < 0 or not (0 <= x1 <= n1 and 0 <= x2 <= n2):
        raise ValueError(f"need 0 <= x <= n on both sides, got {x1}/{n1} and {x2}/{n2}.")
    if n1 == 0 or n2 == 0:
        return ZTest(None, None)
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return ZTest(0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return ZTest(z, math.erfc(abs(z) / math.sqrt(2)))


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


def perfect_value(name: str) -> float:
    """The best value of a registry metric: 1 for scores (all bounded by 1), 0 for losses/errors."""
    return 1.0 if METRICS[name].greater_is_better else 0.0


# --------------------------------------------------------------------------- intervals of differences


class DifferenceInterval(NamedTuple):
    """A confidence interval of ``model - baseline`` and a two-sided p-value of ``difference == 0``."""

    low: float
    high: float
    p_value: float | None

    def interval(self) -> Interval:
        return Interval(low=self.low, high=self.high)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1) (e.g. 0.95), got {confidence!r}.")


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
    _check_confidence(confidence)
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


def _check_samples(samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 1:
        raise ValueError(f"samples must be a positive integer (e.g. 1000), got {samples!r}.")


def _spawned_seeds(seed: int, k: int) -> list[int]:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(k)]


def paired_confusion_replicates(
    y_true: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    metrics: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
    joint: np.ndarray | None = None,
    labels: Labels = "present",
) -> dict[str, np.ndarray]:
    """Paired bootstrap replicates of ``metric(a) - metric(b)`` for label metrics.

    Parameters
    ----------
    y_true, pred_a, pred_b : ndarray of int, shape (n,)
        Validated class codes of the same rows.
    metrics : sequence of str
        Registry names with ``source == "confusion"``.
    joint : ndarray, optional
        :func:`paired_joint_counts` of the same arrays, when already computed.
    labels : {"present", "declared"}, default "present"
        Classes of the macro averages, as
        :func:`~service.workers.metrics.confusion_metric_values` (each side's resample).

    Returns
    -------
    dict of str to ndarray of shape (samples,)
        NaN where a side's metric is undefined on the replicate.

    Notes
    -----
    A paired row resample only matters through the joint counts of
    ``(true, pred_a, pred_b)``; resampling n rows draws them
    ``Multinomial(n, joint / n)``. Summing out ``pred_b`` (``pred_a``) gives side a's
    (b's) resampled confusion matrix, so both sides see the same rows.
    """
    _check_samples(samples)
    k = n_classes
    n = int(y_true.size)
    if n == 0:
        return {m: np.full(samples, np.nan) for m in metrics}
    if joint is None:
        joint = paired_joint_counts(y_true, pred_a, pred_b, n_classes=k)
    cells = np.flatnonzero(joint)
    # cell (t, a, b) feeds cell t*K + a of side a and t*K + b of side b
    to_a, to_b = cells // k, (cells // (k * k)) * k + cells % k
    rng = np.random.default_rng(_spawned_seeds(seed, 1)[0])
    pvals = joint[cells] / n
    block = max(1, _DRAW_BLOCK_CELLS // cells.size)
    out = {m: np.empty(samples) for m in metrics}
    for start in range(0, samples, block):
        size = min(block, samples - start)
        draws = rng.multinomial(n, pvals, size=size)
        va = confusion_metric_values(_marginal(draws, to_a, k), metrics, positive=positive, labels=labels)
        vb = confusion_metric_values(_marginal(draws, to_b, k), metrics, positive=positive, labels=labels)
        for m in metrics:
            out[m][start : start + size] = va[m] - vb[m]
    return out


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


def _marginal(draws: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Sum each replicate's joint-cell counts into its ``K x K`` confusion cells (one bincount)."""
    size = draws.shape[0]
    flat = (np.arange(size)[:, None] * (k * k) + targets[None, :]).ravel()
    return np.bincount(flat, weights=draws.ravel(), minlength=size * k * k).reshape(size, k, k)


def unpaired_classification_replicates(
    a: tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray | None],
    b: tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray | None],
    *,
    n_classes: int,
    positive: int | None,
    metrics: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
    labels: Labels = "present",
) -> dict[str, np.ndarray]:
    """Replicates of ``metric(a) - metric(b)`` from independent resamples of each side's rows.

    ``a`` and ``b`` are ``(y_true, y_pred)`` of each side, or ``(y_true, y_pred, scores)``
    when score metrics are asked for too; ``labels`` as
    :func:`~service.workers.bootstrap.classification_replicates`.
    """
    seed_a, seed_b = _spawned_seeds(seed, 2)
    ra, rb = (
        classification_replicates(
            side[0],
            side[1],
            n_classes=n_classes,
            positive=positive,
            scores=side[2] if len(side) > 2 else None,
            metrics=metrics,
            samples=samples,
            seed=side_seed,
            labels=labels,
        )
        for side, side_seed in ((a, seed_a), (b, seed_b))
    )
    nan = np.full(samples, np.nan)  # a side without rows has no replicates
    return {m: ra.get(m, nan) - rb.get(m, nan) for m in metrics}


def paired_regression_replicates(
    a: RegressionStatistics,
    b: RegressionStatistics,
    *,
    metrics: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Replicates of ``metric(a) - metric(b)`` with the same resampled rows on both sides.

    ``a`` and ``b`` are statistics of the same rows (each possibly stored in its own
    ``row_order``); one row-count vector per replicate is mapped into each order.
    """
    if a.n_rows != b.n_rows:
        raise ValueError(f"paired sides must have the same rows, got {a.n_rows} and {b.n_rows}.")
    return paired_row_replicates(a, b, n=a.n_rows, metrics=metrics, samples=samples, seed=seed)


def paired_row_replicates(
    a: RegressionStatistics | ScoreStatistics,
    b: RegressionStatistics | ScoreStatistics,
    *,
    n: int,
    metrics: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Paired row bootstrap of ``metric(a) - metric(b)`` for statistics of the same ``n`` rows.

    Each replicate draws one row-count vector ``w`` (n rows with replacement) and
    evaluates both sides under it, each in its own ``row_order``: exactly resampling the
    same rows for both. Score statistics (ROC AUC, average precision, log loss, Brier)
    and regression statistics alike; O(n) per replicate, no new sort.
    """
    _check_samples(samples)

    def in_order(w: np.ndarray, stats: RegressionStatistics | ScoreStatistics) -> np.ndarray:
        return w if stats.row_order is None else w[stats.row_order]

    def evaluate(w: np.ndarray) -> dict[str, float]:
        va, vb = a.values(in_order(w, a)), b.values(in_order(w, b))
        return {m: va[m] - vb[m] for m in metrics}

    rng = np.random.default_rng(_spawned_seeds(seed, 1)[0])
    return _row_replicates(evaluate, list(metrics), n=n, samples=samples, rng=rng, progress=None)


def unpaired_regression_replicates(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    *,
    metrics: Sequence[str],
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Replicates of ``metric(a) - metric(b)`` from independent resamples; ``a``, ``b`` = (y_true, y_pred)."""
    seed_a, seed_b = _spawned_seeds(seed, 2)
    ra = regression_replicates(*a, metrics=metrics, samples=samples, seed=seed_a)
    rb = regression_replicates(*b, metrics=metrics, samples=samples, seed=seed_b)
    nan = np.full(samples, np.nan)
    return {m: ra.get(m, nan) - rb.get(m, nan) for m in metrics}


# --------------------------------------------------------------------------- delta method


def _finite_factor(count: float, ddof: int) -> float:
    """``sqrt(count / (count - ddof))``: scales gradients so that their sum of squares is the
    variance with the ``count - 1`` denominator; 1 below two rows (the centred sum is 0 there)."""
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}.")
    return math.sqrt(count / (count - ddof)) if count > ddof else 1.0


def _ranking_gradients(
    is_pos: np.ndarray,
    ends: np.ndarray | None,
    want: set[str],
    tp: np.ndarray | None = None,
    *,
    ddof: int = 1,
) -> dict[str, np.ndarray] | None:
    """Influence terms of ROC AUC and/or average precision w.r.t. row weights, rows by decreasing score.

    ``is_pos`` and ``ends`` as :class:`~service.workers.metrics.ScoreStatistics`'
    rankings (``ends``: last position of each run of tied scores, None when all
    distinct). None when a class is missing (both metrics undefined). With
    ``ddof=0`` the gradients below; with ``ddof=1`` (default) AUC's are scaled by
    ``sqrt(P / (P - 1))`` on positives and ``sqrt(N / (N - 1))`` on negatives
    (DeLong's ``m - 1``, ``n - 1``), AP's by ``sqrt(n / (n - 1))``.

    Notes
    -----
    Per tied group ``g`` with cumulative counts ``TP_g``, ``FP_g``, ``D_g = TP_g + FP_g``,
    group counts ``dTP_g``, ``dFP_g``, totals ``P``, ``N``:

    * AUC (Mann-Whitney with half credit for ties): a positive in ``g`` has
      placement ``V10 = (N - FP_g + dFP_g / 2) / N``, a negative
      ``V01 = (TP_g - dTP_g / 2) / P``; gradients ``(V10 - AUC) / P`` and
      ``(V01 - AUC) / N`` (DeLong's components).
    * AP ``= sum_g dTP_g TP_g / D_g / P``: with suffix sums over groups at or below
      ``g``, ``S1_g = sum dTP / D`` and ``S2_g = sum dTP TP / D^2``, a positive in
      ``g`` has gradient ``(TP_g / D_g + S1_g - S2_g - AP) / P``, a negative ``-S2_g / P``.
    """
    if ends is None:
        return _distinct_ranking_gradients(is_pos, want, tp, ddof=ddof)
    # tp, when given: the cumulative positives at each end already
    if tp is None and ends.size == 1:
        # one run of tied scores (constant probabilities): no cumulative sum needed
        tp = np.array([float(np.count_nonzero(is_pos))])
    elif tp is None:
        tp = np.cumsum(is_pos, dtype=np.float64)[ends]
    depth = ends + 1.0
    sizes = np.diff(ends, prepend=-1)
    n_pos = float(tp[-1]) if tp.size else 0.0
    n_neg = float(depth[-1]) - n_pos if tp.size else 0.0
    if n_pos <= 0 or n_neg <= 0:
        return None
    dtp = np.diff(tp, prepend=0.0)  # group counts

    def rows(on_pos: np.ndarray, on_neg: np.ndarray) -> np.ndarray:
        if sizes.size == 1:
            per_row: np.ndarray = np.where(is_pos, on_pos[0], on_neg[0])
            return per_row
        return np.where(is_pos, np.repeat(on_pos, sizes), np.repeat(on_neg, sizes))

    out: dict[str, np.ndarray] = {}
    if "roc_auc" in want:
        fp = depth - tp
        v10 = (n_neg - fp + 0.5 * np.diff(fp, prepend=0.0)) / n_neg
        v01 = (tp - 0.5 * dtp) / n_pos
        auc = float(np.dot(dtp, v10)) / n_pos
        v10 -= auc
        v10 *= _finite_factor(n_pos, ddof) / n_pos
        v01 -= auc
        v01 *= _finite_factor(n_neg, ddof) / n_neg
        out["roc_auc"] = rows(v10, v01)
    if "average_precision" in want:
        precision = tp / depth
        ap = float(np.dot(dtp, precision)) / n_pos
        step = dtp / depth
        s1 = np.cumsum(step[::-1])[::-1]
        step *= precision  # dTP TP / D^2
        s2 = np.cumsum(step[::-1])[::-1]
        precision += s1
        precision -= s2
        precision -= ap
        scale = _finite_factor(n_pos + n_neg, ddof) / n_pos
        precision *= scale
        s2 *= -scale
        out["average_precision"] = rows(precision, s2)
    return out


def _distinct_ranking_gradients(
    is_pos: np.ndarray, want: set[str], tp: np.ndarray | None = None, *, ddof: int = 1
) -> dict[str, np.ndarray] | None:
    """:func:`_ranking_gradients` without ties (every row its own group), with few n-row temporaries.

    Notes
    -----
    With ``c = 1 / (P N)``, depth ``d = 1 .. n`` and ``TP`` the cumulative positives:

    * AUC: a positive's gradient is ``TP c + (1 - AUC) / P - d c``, a negative's
      ``TP c - AUC / N``; ``AUC = 1 - sum_pos FP / (P N)`` with
      ``sum_pos FP = sum_pos d - P (P + 1) / 2`` and ``sum_pos d = P (n + 1) - sum TP``
      (integers, exact in float64).
    * AP: precision ``TP / d``; a positive ``(TP/d + S1 - S2 - AP) / P``, a negative
      ``-S2 / P`` with the suffix sums of ``[pos] / d`` and ``[pos] TP / d^2``.
    """
    n = is_pos.size
    if not n:
        return None
    if tp is None:
        tp = np.cumsum(is_pos, dtype=np.float64)
    n_pos = float(tp[-1])
    n_neg = float(n) - n_pos
    if n_pos <= 0 or n_neg <= 0:
        return None
    # 0/1 weights: products with them are several times cheaper than masked copies
    pos = is_pos.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    if "roc_auc" in want:
        c = 1.0 / (n_pos * n_neg)
        sum_pos_fp = n_pos * (n + 1.0) - float(tp.sum()) - n_pos * (n_pos + 1.0) / 2.0
        auc = 1.0 - sum_pos_fp * c
        # [pos] ((1 - AUC) / P + AUC / N - d c) + TP c - AUC / N
        g = np.arange(1.0, n + 1.0)
        g *= -c
        g += (1.0 - auc) / n_pos + auc / n_neg
        g *= pos
        g -= auc / n_neg
        g += tp * c
        f_pos, f_neg = _finite_factor(n_pos, ddof), _finite_factor(n_neg, ddof)
        if f_pos != 1.0 or f_neg != 1.0:
            # DeLong's m - 1 on the positives' placements, n - 1 on the negatives'
            g *= np.where(is_pos, f_pos, f_neg)
        out["roc_auc"] = g
    if "average_precision" in want:
        inverse = np.arange(1.0, n + 1.0)
        np.reciprocal(inverse, out=inverse)
        s1 = pos * inverse  # [pos] / d
        precision = np.multiply(tp, inverse, out=inverse)
        # sum over the positives of TP / d as one dot product, not a masked sum
        ap = float(np.dot(s1, tp)) / n_pos
        s2 = s1 * precision  # [pos] TP / d^2
        np.cumsum(s1[::-1], out=s1[::-1])
        np.cumsum(s2[::-1], out=s2[::-1])
        # [pos] (TP / d + S1 - AP) - S2, over P
        precision += s1
        precision -= ap
        precision *= pos
        precision -= s2
        precision *= _finite_factor(float(n), ddof) / n_pos
        out["average_precision"] = precision
    return out


def _row_losses(
    y_true: np.ndarray, scores: np.ndarray, *, n_classes: int, positive: int | None, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-row log loss and Brier terms whose means are the metrics (as ScoreStatistics)."""
    out: dict[str, np.ndarray] = {}
    if positive is not None:
        is_pos = y_true == positive
        p_true = np.where(is_pos, scores, 1 - scores)
    else:
        p_true = scores[np.arange(y_true.size), y_true]
    if "log_loss" in names:
        eps = np.finfo(np.float64).eps
        out["log_loss"] = -np.log(np.clip(p_true, eps, 1 - eps))
    if "brier_score" in names:
        if positive is not None:
            out["brier_score"] = (is_pos - scores) ** 2
        else:
            diff = np.array(scores, dtype=np.float64)
            diff[np.arange(y_true.size), y_true] -= 1
            # sklearn halves the multiclass sum only with fewer than 3 columns
            out["brier_score"] = np.einsum("ij,ij->i", diff, diff) * (0.5 if n_classes < 3 else 1.0)
    return out


# a ranking: is_pos by decreasing score, ends of tied runs (None: no ties), and the
# input row of each position (None: already input order), optionally followed by the
# cumulative positives at each end (float64, not modified)
Ranking = (
    tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
    | tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]
)


def _macro_ranking_gradients(
    rankings: Sequence[Ranking],
    n: int,
    ranked: set[str],
    *,
    binary: bool,
    labels: Labels = "present",
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """Influence terms (input row order) of ROC AUC / AP averaged over rankings (binary: the single one).

    Summed one ranking at a time, so memory stays O(n) per metric for any number of classes.
    ``labels`` as :class:`~service.workers.metrics.ScoreStatistics`: ``present`` averages
    over the rankings with positives, ``declared`` over all of them.
    """
    sums: dict[str, np.ndarray] = {}
    undefined = 0
    spare: np.ndarray | None = None  # a scattered ranking-order row, reused as the next target
    for is_pos, ends, order, *tp in rankings:
        grads = _ranking_gradients(is_pos, ends, ranked, *tp, ddof=ddof)
        if grads is None:
            undefined += 1
            continue
        for name, g in grads.items():
            if name not in sums:
                if order is None:
                    sums[name] = g
                    continue
                target = np.empty(n) if spare is None else spare
                target[order] = g
                sums[name] = target
                spare = g if g.shape == (n,) else None
            elif order is None:
                sums[name] += g
            else:
                sums[name][order] += g  # a permutation: no repeated indices
    defined = len(rankings) - undefined
    # "present": the mean over the defined rankings (an absent class is left out);
    # "declared": over all of them (an absent class adds a constant 0 to AP)
    count = defined if labels == "present" else len(rankings)
    if count > 1:
        for g in sums.values():
            g /= count
    out: dict[str, np.ndarray | None] = {}
    enough = defined >= (1 if binary else 2)
    if "roc_auc" in ranked:
        # declared: sklearn's macro ROC AUC is undefined as soon as one class is absent
        complete = labels == "present" or undefined == 0
        out["roc_auc"] = sums["roc_auc"] if enough and complete else None
    if "average_precision" in ranked:
        # it needs two present classes (one for binary)
        out["average_precision"] = sums["average_precision"] if enough else None
    return out


def _loss_gradients(
    losses: dict[str, np.ndarray], n: int, *, in_place: bool = False, ddof: int = 1
) -> dict[str, np.ndarray | None]:
    # a mean of per-row losses L: d L / d w_k = (l_k - L) / n, times sqrt(n / (n - 1))
    # with ddof=1 (the sample variance of the losses over n); with ``in_place`` the loss
    # rows become the influence terms (no fresh n-row array per metric)
    out: dict[str, np.ndarray | None] = {}
    for name, rows in losses.items():
        if not n:
            out[name] = None
            continue
        mean = rows.mean()
        g = np.subtract(rows, mean, out=rows) if in_place else rows - mean
        g *= _finite_factor(n, ddof) / n
        out[name] = g
    return out


def score_influence(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    stats: ScoreStatistics,
    consume: bool = False,
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """Influence terms (rows in input order) of the score metrics prepared in ``stats``.

    Parameters
    ----------
    y_true, scores, n_classes, positive
        As :class:`~service.workers.metrics.ScoreStatistics` (validated).
    stats : ScoreStatistics
        Built on the same data; its rankings are reused (no new sort), and its
        ``labels`` says which classes the multiclass macro means are over.
    consume : bool, default False
        Turn ``stats``' per-row losses into the influence terms in place (no fresh
        n-row arrays); ``stats`` must not be evaluated afterwards.
    ddof : {1, 0}, default 1
        1: the gradients ``d metric / d w_k`` scaled to the unbiased variance (see the
        module docstring: ``sqrt(n / (n - 1))``, DeLong's per-class factors for ROC
        AUC), so that :func:`influence_se` is the textbook standard error. 0: the bare
        gradients (the infinitesimal jackknife).

    Returns
    -------
    dict of str to ndarray of shape (n,) or None
        None where the metric is undefined. Multiclass ROC AUC / average precision
        are macro means of one-vs-rest values, so their terms are the means of the
        per-class terms (``labels="declared"``: a class without positives adds a
        constant 0 to AP).
    """
    n = y_true.size
    names = stats.names
    ranked = {m for m in names if m in ("roc_auc", "average_precision")}
    out: dict[str, np.ndarray | None] = {}
    if ranked:
        # the cumulative counts ScoreStatistics.values() already computed (no new cumsum)
        rankings: list[Ranking] = [
            (c.is_pos, c.ends, stats.row_order if positive is not None else c.order, c.unweighted_tps)
            for c in stats.curves
        ]
        out.update(
            _macro_ranking_gradients(
                rankings, n, ranked, binary=positive is not None, labels=stats.labels, ddof=ddof
            )
        )
    out.update(_loss_gradients(stats.row_losses, n, in_place=consume, ddof=ddof))
    if consume:
        stats.row_losses = {}
    return {m: out[m] for m in names}


def constant_score_influence(
    y_true: np.ndarray,
    score_row: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    names: Sequence[str],
    labels: Labels = "present",
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """:func:`score_influence` for probabilities that are the same on every row (zero rule, a prior).

    Every ranking is then one run of tied scores in any order, so nothing is sorted
    or permuted, and a row's losses depend only on its class (computed for ``K`` rows,
    then gathered).

    Parameters
    ----------
    score_row : ndarray of shape (1,) or (K,)
        The probability of ``positive`` (binary) or of each class, shared by all rows.
    labels, ddof
        As :class:`~service.workers.metrics.ScoreStatistics` and :func:`score_influence`.
    """
    y = np.asarray(y_true)
    n = y.size
    score_names = [m for m in names if METRICS[m].source == "scores"]
    ranked = {m for m in score_names if m in ("roc_auc", "average_precision")}
    out: dict[str, np.ndarray | None] = {}
    if ranked:
        one_run = np.array([n - 1]) if n else None
        classes = [positive] if positive is not None else range(n_classes)
        rankings = [(y == c, one_run, None) for c in classes]
        out.update(
            _macro_ranking_gradients(
                rankings, n, ranked, binary=positive is not None, labels=labels, ddof=ddof
            )
        )
    codes = np.arange(n_classes)
    if positive is not None:
        rows = np.full(n_classes, float(score_row[0]))
    else:
        rows = np.tile(score_row, (n_classes, 1))
    per_class = _row_losses(codes, rows, n_classes=n_classes, positive=positive, names=score_names)
    # the gathered rows are fresh arrays: they become the gradients in place
    out.update(_loss_gradients({m: table[y] for m, table in per_class.items()}, n, in_place=True, ddof=ddof))
    return {m: out[m] for m in score_names}


def constant_score_class_influence(
    support: np.ndarray,
    score_row: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    names: Sequence[str],
    labels: Labels = "present",
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """:func:`constant_score_influence` per class: entry ``c`` is the influence term of every
    row of class ``c`` (``support[c]`` rows), so no n-row array is built.

    Parameters
    ----------
    support : ndarray of shape (K,)
        Rows per class.
    labels, ddof
        As :func:`constant_score_influence`.
    """
    counts = np.asarray(support, dtype=np.float64)
    n = int(counts.sum())
    score_names = [m for m in names if METRICS[m].source == "scores"]
    if not n:
        return dict.fromkeys(score_names)
    ranked = {m for m in score_names if m in ("roc_auc", "average_precision")}
    out: dict[str, np.ndarray | None] = {}
    codes = np.arange(n_classes)
    if ranked:
        # one run of tied scores over all n rows; a row's gradient depends on its class only
        one_run = np.array([n - 1])
        classes = [positive] if positive is not None else range(n_classes)
        rankings: list[Ranking] = [(codes == c, one_run, None, counts[c : c + 1]) for c in classes]
        out.update(
            _macro_ranking_gradients(
                rankings, n_classes, ranked, binary=positive is not None, labels=labels, ddof=ddof
            )
        )
    if positive is not None:
        rows = np.full(n_classes, float(score_row[0]))
    else:
        rows = np.tile(score_row, (n_classes, 1))
    per_class = _row_losses(codes, rows, n_classes=n_classes, positive=positive, names=score_names)
    for name, losses in per_class.items():
        losses -= float(np.dot(counts, losses)) / n
        losses *= _finite_factor(n, ddof) / n
        out[name] = losses
    return {m: out[m] for m in score_names}


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


def regression_influence(
    y_true: np.ndarray, y_pred: np.ndarray, *, names: Sequence[str], ddof: int = 1
) -> dict[str, np.ndarray | None]:
    """Influence terms of the smooth regression metrics (MAE, RMSE, MAPE, R^2).

    ``ddof=1`` (default): the gradients below times ``sqrt(n / (n - 1))``, so that
    :func:`influence_se` uses the sample variance (``n - 1``) of the influence function
    (for MAE: ``std(|e|, ddof=1) / sqrt(n)``); ``ddof=0``: the bare gradients.

    Notes
    -----
    With ``e = y_hat - y``, ``SSres = sum e^2``, ``SStot = sum (y - ybar)^2``, the
    gradients ``d metric / d w_k`` are::

        mae:  (|e_k| - mae) / n           rmse: (e_k^2 - mse) / (2 rmse n)
        mape: (ape_k - mape) / n          r2:   -(e_k^2 SStot - SSres (y_k - ybar)^2) / SStot^2
    """
    y = np.asarray(y_true, dtype=np.float64)
    n = y.size
    err = np.asarray(y_pred, dtype=np.float64) - y
    out: dict[str, np.ndarray | None] = {}
    if n == 0:
        return {m: None for m in names if m in DELTA_METHOD_METRICS}
    sq = err * err
    factor = _finite_factor(n, ddof)
    for name in names:
        if name == "mae":
            a = np.abs(err)
            out[name] = (a - a.mean()) * (factor / n)
        elif name == "mape":
            ape = np.abs(err) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
            out[name] = (ape - ape.mean()) * (factor / n)
        elif name == "rmse":
            mse = float(sq.mean())
            out[name] = (sq - mse) * (factor / (2 * math.sqrt(mse) * n)) if mse > 0 else np.zeros(n)
        elif name == "r2":
            dev = (y - y.mean()) ** 2
            ss_tot, ss_res = float(dev.sum()), float(sq.sum())
            # undefined for constant y_true, as the metric
            defined = y.min() < y.max() and ss_tot > 0
            out[name] = -(sq * ss_tot - ss_res * dev) * (factor / ss_tot**2) if defined else None
    return out


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


# --------------------------------------------------------------------------- verdicts


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
