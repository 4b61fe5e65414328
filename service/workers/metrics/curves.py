"""ROC and precision-recall curves of a binary scorer, cut to a few hundred points for a report.

A 1M-row batch has up to 1M thresholds; a figure a few hundred pixels wide needs a few hundred
points, but they must be *real* points of the curve (a reader may look one up) and keep its shape.
Two steps:

1. the corners only, as scikit-learn's ``drop_intermediate``: a point between two others on a
   straight ROC segment (``diff(fps, 2) == 0`` and ``diff(tps, 2) == 0``), or a PR point whose
   true-positive count does not change on either side, adds nothing to the drawn curve;
2. if more than ``max_points`` are left, an even spread in curve length: for each of
   ``max_points`` equally spaced distances along the polyline, the nearest corner. Flat stretches
   get few points, bends many, and both ends are always kept.

Every point returned is a point of ``sklearn.metrics.roc_curve`` / ``precision_recall_curve`` on
the same data (tests/unit/test_curves.py checks equality). Thresholds at distinct scores, ties
grouped, as scikit-learn's ``_binary_clf_curve``.

Pure computation: arrays in, a :class:`~schemas.results.Curves` out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from schemas.results import Curves, PrecisionRecallCurve, RocCurve
from service.workers.sorting import sort_floats

#: Points per curve: about one per 2-3 pixels of a report figure.
MAX_POINTS = 200


def _threshold_counts(is_pos: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (false positives, true positives, threshold) at each distinct score, highest first."""
    ascending, s = sort_floats(scores)
    desc, s = ascending[::-1], s[::-1]
    ends = np.append(np.flatnonzero(s[1:] != s[:-1]), s.size - 1)
    tps = np.cumsum(is_pos[desc], dtype=np.float64)[ends]
    fps = 1.0 + ends - tps
    return fps, tps, s[ends]


def spread_along_length(x: np.ndarray, y: np.ndarray, max_points: int) -> npt.NDArray[np.intp]:
    """Indices of at most ``max_points`` vertices of the polyline ``(x, y)``, evenly spread in length.

    The first and last vertices are always kept; the indices are increasing.
    """
    n = x.size
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    length = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))))
    targets = np.linspace(0.0, length[-1], max_points)
    right = np.clip(np.searchsorted(length, targets), 1, n - 1)
    nearer_left = targets - length[right - 1] < length[right] - targets
    picked = np.where(nearer_left, right - 1, right)
    return np.unique(np.concatenate(([0, n - 1], picked))).astype(np.intp)


def binary_curves(
    y_true: np.ndarray, scores: np.ndarray, *, positive: int, max_points: int = MAX_POINTS
) -> Curves | None:
    """The ROC and precision-recall curves of ``scores`` for the class ``positive``.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        Class codes of the labeled rows.
    scores : ndarray of float, shape (n,)
        Probability of the positive class.
    positive : int
        The code of the positive class.
    max_points : int
        Upper bound on the points of each curve (at least 2).

    Returns
    -------
    Curves or None
        None when a class is absent (the ROC curve is undefined, as ``roc_auc_score``).
    """
    if max_points < 2:
        raise ValueError("max_points must be at least 2 (the two ends of a curve).")
    is_pos = np.asarray(y_true) == positive
    if scores.size == 0 or is_pos.all() or not is_pos.any():
        return None
    fps, tps, thresholds = _threshold_counts(is_pos, np.asarray(scores, dtype=np.float64))
    return Curves(
        roc=_roc(fps, tps, thresholds, max_points), precision_recall=_pr(fps, tps, thresholds, max_points)
    )


def _roc(fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray, max_points: int) -> RocCurve:
    if fps.size > 2:  # scikit-learn's drop_intermediate: keep the corners
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    kept = spread_along_length(fpr, tpr, max_points)
    # the added first point (0, 0) lies above every score: scikit-learn's threshold there is inf
    threshold: list[float | None] = [None, *thresholds.tolist()]
    return RocCurve(fpr=fpr[kept].tolist(), tpr=tpr[kept].tolist(), threshold=[threshold[i] for i in kept])


def _pr(fps: np.ndarray, tps: np.ndarray, thresholds: np.ndarray, max_points: int) -> PrecisionRecallCurve:
    if tps.size > 2:  # scikit-learn's drop_intermediate for precision_recall_curve
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    precision = tps / (tps + fps)  # tps + fps >= 1 at every threshold
    recall = tps / tps[-1]
    # scikit-learn's order (recall decreasing) and its last point: recall 0, precision 1, no threshold
    precision, recall = np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]
    threshold: list[float | None] = [*thresholds[::-1].tolist(), None]
    kept = spread_along_length(recall, precision, max_points)
    return PrecisionRecallCurve(
        recall=recall[kept].tolist(),
        precision=precision[kept].tolist(),
        threshold=[threshold[i] for i in kept],
    )
