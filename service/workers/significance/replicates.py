"""Bootstrap replicates of ``metric(model) - metric(baseline)``, paired (the same resampled rows on
both sides) or unpaired (each side resampled on its own rows).

Label metrics are functions of confusion matrices: a paired resample of n rows is one
``Multinomial(n, c / n)`` draw over the joint cells ``(true, pred_model, pred_baseline)``,
whose two marginals are the two resampled confusion matrices -- exactly resampling the
same rows for both sides, in milliseconds on any n. Row statistics (scores, regression
values) are re-evaluated under one row-count vector per replicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.workers.bootstrap import (
    check_samples,
    classification_replicates,
    regression_replicates,
    row_replicates,
)
from service.workers.metrics import (
    Labels,
    RegressionStatistics,
    ScoreStatistics,
    confusion_metric_values,
)
from service.workers.significance.counts import paired_joint_counts

# Keep one multinomial draw block near this many cells (replicates x non-empty joint cells).
_DRAW_BLOCK_CELLS = 4_000_000


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
    check_samples(samples)
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
    check_samples(samples)

    def in_order(w: np.ndarray, stats: RegressionStatistics | ScoreStatistics) -> np.ndarray:
        return w if stats.row_order is None else w[stats.row_order]

    def evaluate(w: np.ndarray) -> dict[str, float]:
        va, vb = a.values(in_order(w, a)), b.values(in_order(w, b))
        return {m: va[m] - vb[m] for m in metrics}

    rng = np.random.default_rng(_spawned_seeds(seed, 1)[0])
    return row_replicates(evaluate, list(metrics), n=n, samples=samples, rng=rng, progress=None)


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
