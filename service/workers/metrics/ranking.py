"""ROC AUC and average precision of one ranking (binary, or one class versus the rest).

One sort per score vector, with cumulative sums evaluated at the ends of tied-score
groups, which is exactly what ``sklearn.metrics._ranking`` does (thresholds at distinct
scores); any row weighting is then O(n) without sorting again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from service.workers.metrics.registry import Labels
from service.workers.sorting import sort_floats


@dataclass(frozen=True)
class Curve:
    """One ranking (binary, or one class versus the rest), sorted by decreasing score.

    ``order`` maps the statistics' row order to decreasing score (None: already so);
    ``ends`` are the last positions of the runs of tied scores, i.e. sklearn's
    threshold indices (``np.diff(score) != 0`` plus the last row), or None when
    all scores are distinct (every position is a threshold: no gather needed).
    """

    order: np.ndarray | None
    is_pos: np.ndarray
    ends: np.ndarray | None

    @classmethod
    def of(
        cls,
        is_pos: np.ndarray,
        score: np.ndarray,
        *,
        reorder: bool,
        presorted: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[Curve, np.ndarray]:
        # Within a run of ties only the run's end is used, and cumulative sums at the end do
        # not depend on the order inside the run; sort_floats is the fast stable argsort.
        ascending, s = sort_floats(score) if presorted is None else presorted
        desc, s = ascending[::-1], s[::-1]
        changes = s[1:] != s[:-1]
        ends: np.ndarray | None = None
        if not changes.all():
            ends = np.append(np.flatnonzero(changes), s.size - 1)
        return cls(order=desc if reorder else None, is_pos=is_pos[desc], ends=ends), desc

    def counts(self, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative (TP, FP) at each threshold, as sklearn's ``confusion_matrix_at_thresholds``.

        Always float64 (exact for counts below 2**53): numpy's integer dot
        products do not use BLAS and are several times slower.
        """
        if weights is None:
            return self.unweighted_counts
        w = np.asarray(weights if self.order is None else weights[self.order], dtype=np.float64)
        tps = np.cumsum(np.where(self.is_pos, w, 0.0))
        # a second cumulative sum, not total - tps, keeps fps exact near 0 (as sklearn)
        fps = np.cumsum(np.where(self.is_pos, 0.0, w))
        if self.ends is None:
            return tps, fps
        return tps[self.ends], fps[self.ends]

    def _distinct_roc_auc_and_ap(self, want: set[str]) -> dict[str, float]:
        """:meth:`roc_auc_and_ap` of distinct scores without weights, with one n-row temporary.

        Every row is a threshold, so ``dTP`` is ``is_pos``, ``dFP`` its negation and
        ``TP + FP`` the depth ``1 .. n``: the area is ``2 sum_neg TP`` (integers, exact)
        and AP the mean of ``TP / depth`` over the positives (``j / d_j`` for the j-th).
        """
        tps = self.unweighted_tps
        n = tps.size
        n_pos = float(tps[-1])
        n_neg = float(n) - n_pos
        if n_pos <= 0 or n_neg <= 0:
            return dict.fromkeys(want, np.nan)
        out: dict[str, float] = {}
        if "roc_auc" in want:
            # the j-th positive sits where TP == j, so the positives' TP sum to P (P + 1) / 2
            # and the negatives' to the rest (integers, exact in float64; no masked pass)
            area = 2.0 * (float(tps.sum()) - n_pos * (n_pos + 1.0) / 2.0)
            out["roc_auc"] = area / (2.0 * n_pos * n_neg)
        if "average_precision" in want:
            # the j-th positive sits at depth d_j where TP == j: AP is the mean of j / d_j,
            # P-row arrays instead of an n-row precision summed under a mask
            precision = np.flatnonzero(self.is_pos) + 1.0
            np.divide(np.arange(1.0, precision.size + 1.0), precision, out=precision)
            out["average_precision"] = max(0.0, float(precision.sum()) / n_pos)
        return out

    @cached_property
    def unweighted_tps(self) -> np.ndarray:
        """Cumulative TP at each threshold without weights, computed once (the delta method reuses it)."""
        tps = np.cumsum(self.is_pos, dtype=np.float64)
        return tps if self.ends is None else tps[self.ends]

    @cached_property
    def unweighted_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`counts` without weights, computed once (distinct scores need only the TP,
        so their n-row FP array is built only when asked for)."""
        tps = self.unweighted_tps
        fps = np.arange(1.0, tps.size + 1.0) if self.ends is None else self.ends + 1.0
        fps -= tps
        return tps, fps

    def roc_auc_and_ap(self, weights: np.ndarray | None, want: set[str]) -> dict[str, float]:
        """ROC AUC and/or average precision of this ranking; NaN when undefined.

        Notes
        -----
        With TP_k, FP_k the cumulative counts at the k-th distinct threshold
        (TP_0 = FP_0 = 0), P = TP_last and N = FP_last::

            AUC = sum_k (FP_k - FP_{k-1}) (TP_k + TP_{k-1}) / (2 P N)     (trapezoids)
            AP  = sum_k (TP_k - TP_{k-1}) / P * TP_k / (TP_k + FP_k)       (sklearn's step sum)
        """
        if weights is None and self.ends is None and self.is_pos.size:
            return self._distinct_roc_auc_and_ap(want)
        tps, fps = self.counts(weights)
        if not tps.size:
            return dict.fromkeys(want, np.nan)
        n_pos, n_neg = tps[-1], fps[-1]
        if n_pos <= 0 or n_neg <= 0:
            # AUC needs both classes; AP is 0/0 without positives and 1.0 whatever
            # the scores without negatives, so neither says anything about the ranking
            return dict.fromkeys(want, np.nan)
        out: dict[str, float] = {}
        # n-row temporaries are costly (fresh pages): differences written in place
        dtp = _steps(tps)
        if "roc_auc" in want:
            dfp = _steps(fps)
            # (TP_k + TP_{k-1}) = 2 TP_k - dTP_k
            area = 2 * np.dot(dfp, tps) - np.dot(dfp, dtp)
            out["roc_auc"] = float(area) / (2.0 * float(n_pos) * float(n_neg))
        if "average_precision" in want:
            predicted = tps + fps
            # nothing predicted yet (zero-weight rows on top) means dTP == 0 there too;
            # those entries of ``predicted`` are already the 0 the precision needs
            precision = np.divide(tps, predicted, out=predicted, where=predicted != 0)
            out["average_precision"] = max(0.0, float(np.dot(dtp, precision)) / float(n_pos))
        return out


def _steps(cumulative: np.ndarray) -> np.ndarray:
    """``np.diff(cumulative, prepend=0)`` with one allocation."""
    out = np.empty_like(cumulative)
    if cumulative.size:
        out[0] = cumulative[0]
        np.subtract(cumulative[1:], cumulative[:-1], out=out[1:])
    return out


def macro_ranking_value(per_class: np.ndarray, name: str, *, labels: Labels) -> float:
    """Macro mean of one-vs-rest ROC AUCs / APs (NaN: the class has no positives or no negatives).

    With two or more classes present every present class has negatives, so a NaN marks
    a class without labeled rows (or a single present class, when all are NaN).
    ``present``: the mean over the defined classes, undefined below two. ``declared``
    (sklearn ``labels=range(K)``): ROC AUC is NaN as soon as a class is absent; AP counts
    an absent class as 0 and needs two present classes.
    """
    defined = ~np.isnan(per_class)
    count = int(np.count_nonzero(defined))
    if count < 2:
        return np.nan
    if labels == "present":
        return float(per_class[defined].mean())
    if name == "roc_auc":
        return float(per_class.mean())
    return float(np.nan_to_num(per_class, nan=0.0).mean())
