"""Influence terms of ROC AUC and average precision: the gradients of a ranking metric with
respect to row weights, DeLong's structural components for ROC AUC."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from service.workers.metrics import Labels


def finite_factor(count: float, ddof: int) -> float:
    """``sqrt(count / (count - ddof))``: scales gradients so that their sum of squares is the
    variance with the ``count - 1`` denominator; 1 below two rows (the centred sum is 0 there)."""
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1, got {ddof!r}.")
    return math.sqrt(count / (count - ddof)) if count > ddof else 1.0


def ranking_gradients(
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
        v10 *= finite_factor(n_pos, ddof) / n_pos
        v01 -= auc
        v01 *= finite_factor(n_neg, ddof) / n_neg
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
        scale = finite_factor(n_pos + n_neg, ddof) / n_pos
        precision *= scale
        s2 *= -scale
        out["average_precision"] = rows(precision, s2)
    return out


def _distinct_ranking_gradients(
    is_pos: np.ndarray, want: set[str], tp: np.ndarray | None = None, *, ddof: int = 1
) -> dict[str, np.ndarray] | None:
    """:func:`ranking_gradients` without ties (every row its own group), with few n-row temporaries.

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
        f_pos, f_neg = finite_factor(n_pos, ddof), finite_factor(n_neg, ddof)
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
        precision *= finite_factor(float(n), ddof) / n_pos
        out["average_precision"] = precision
    return out


Ranking = (
    tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
    | tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]
)


def macro_ranking_gradients(
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
        grads = ranking_gradients(is_pos, ends, ranked, *tp, ddof=ddof)
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
