"""ROC AUC and average precision of every slice from one global sort of the scores.

The scores are sorted once per batch (:class:`Ranking`). For a slice column, a
*stable* sort of the slice codes taken in that order (a radix sort: the codes are
``uint16``) groups the rows by slice while keeping them by decreasing score inside
each slice -- the lexicographic order (slice, score) without a second float sort.
Every slice's curve is then a segment of one array: cumulative sums over the whole
array minus the sum before the segment, evaluated at the ends of the runs of tied
scores (sklearn's thresholds), summed per segment with ``np.add.reduceat``.

Notation per slice: ``P`` positives, ``N`` negatives; per run of tied scores ``g``
(in decreasing score order) ``dTP_g``/``dFP_g`` the positives/negatives in the run,
``TP_g``/``FP_g``/``D_g`` the cumulative positives/negatives/rows up to its end.

* AUC ``= sum_g dFP_g (TP_g - dTP_g / 2) / (P N)`` (trapezoids; ties get half credit).
* AP ``= sum_g dTP_g TP_g / D_g / P`` (sklearn's step sum).

Without ties (continuous scores, the usual case) every row is a threshold, and
:func:`_distinct` gets the same values from segmented cumulative sums and closed
forms in about half the n-row passes (on a million rows the passes, not the
arithmetic, are the cost).

Intervals use the delta method (infinitesimal jackknife), the linearisation of the
row bootstrap, as :mod:`service.workers.significance` does: with per-row gradients
``g_i`` of the metric w.r.t. the row weights, ``Var = sum_i g_i^2``. For AUC these are
DeLong's placements, ``(V10 - AUC) / P`` for a positive (``V10`` = share of the slice's
negatives it outranks, ties half) and ``(V01 - AUC) / N`` for a negative, scaled by
``sqrt(P / (P - 1))`` and ``sqrt(N / (N - 1))`` so that the sum is DeLong et al.'s (1988)
unbiased variance with its ``P - 1``/``N - 1`` denominators. For AP the gradients are those of
:func:`service.workers.significance._ranking_gradients`, scaled by ``sqrt(n / (n - 1))`` (the
sample variance of the influence function).

The rest of the batch (all rows outside a slice) gets an exact AUC by counting
pairs: the concordance of the whole batch minus the pairs that involve the slice
(each row's global placement, summed per slice by one bincount) plus the pairs
inside it. Its variance is Hanley and McNeil's (1982) formula, which needs only
the AUC and the class counts (DeLong's would need every rest row's placement among
the rest, a different number for each slice).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from service.workers.metrics.arithmetic import safe_div
from service.workers.slices.inference import unbiased_factor
from service.workers.sorting import sort_floats


@dataclass(frozen=True)
class Ranking:
    """One ranking of all rows (binary scores, or one class against the rest), sorted once.

    Attributes
    ----------
    desc : ndarray of intp
        Row indices by decreasing score.
    is_pos : ndarray of bool
        Positives, in ``desc`` order.
    tie_id : ndarray of intp or None
        Run of tied scores of each position of ``desc``; None when all scores differ.
    placement : ndarray of float or None
        Per row, in input order: how many rows of the other class it outranks
        (ties half) -- negatives below for a positive, positives above for a negative.
    n_pos, n_neg : int
    concordant : float
        ``AUC * n_pos * n_neg`` over all rows.
    """

    desc: np.ndarray
    is_pos: np.ndarray
    tie_id: np.ndarray | None
    placement: np.ndarray | None
    n_pos: int
    n_neg: int
    concordant: float

    @cached_property
    def depths(self) -> np.ndarray:
        """``1.0 .. n``: positions counted from 1 (built once, shared by every column)."""
        return np.arange(1.0, self.is_pos.size + 1.0)

    @classmethod
    def of(cls, is_pos: np.ndarray, score: np.ndarray, *, placements: bool) -> Ranking:
        # inside a run of ties only the run matters, never the order
        ascending, s = sort_floats(score)
        desc, s = ascending[::-1], s[::-1]
        changes = s[1:] != s[:-1]
        pos = is_pos[desc]
        n = pos.size
        tie_id = None if changes.all() else np.concatenate([[0], np.cumsum(changes)])
        n_pos = int(np.count_nonzero(pos))
        n_neg = n - n_pos
        placement = np.zeros(0) if placements else None
        concordant = 0.0
        if placements and n:
            tp = np.cumsum(pos, dtype=np.float64)
            if tie_id is None:
                # a positive outranks the negatives below it, a negative is outranked
                # by the positives above it
                credit = np.where(pos, n_neg - (np.arange(1.0, n + 1.0) - tp), tp)
            else:
                ends = np.append(np.flatnonzero(changes), n - 1)
                tp_end = tp[ends]
                fp_end = ends + 1.0 - tp_end
                dtp = np.diff(tp_end, prepend=0.0)
                dfp = np.diff(fp_end, prepend=0.0)
                sizes = np.diff(ends, prepend=-1)
                on_pos = np.repeat(n_neg - fp_end + 0.5 * dfp, sizes)
                on_neg = np.repeat(tp_end - 0.5 * dtp, sizes)
                credit = np.where(pos, on_pos, on_neg)
            concordant = float(np.sum(credit, where=pos))
            placement = np.empty(n)
            placement[desc] = credit
        return cls(desc, pos, tie_id, placement, n_pos, n_neg, concordant)


@dataclass(frozen=True)
class SlicedRanking:
    """Per-slice ranking metrics (NaN where undefined: a slice without positives or negatives).

    ``*_var`` are delta-method variances. ``rest_auc``/``rest_auc_var`` describe all
    rows outside the slice. ``rows``, ``auc_rows``, ``ap_rows`` (only when asked for)
    are the input-order row indices and per-row gradients, for macro averages.
    """

    n_pos: np.ndarray
    n_neg: np.ndarray
    auc: np.ndarray | None = None
    auc_var: np.ndarray | None = None
    rest_auc: np.ndarray | None = None
    rest_auc_var: np.ndarray | None = None
    ap: np.ndarray | None = None
    ap_var: np.ndarray | None = None
    rows: np.ndarray | None = None
    auc_rows: np.ndarray | None = None
    ap_rows: np.ndarray | None = None


def hanley_mcneil_variance(auc: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Hanley & McNeil (1982): ``(A(1-A) + (P-1)(Q1-A^2) + (N-1)(Q2-A^2)) / (P N)``,
    ``Q1 = A / (2 - A)``, ``Q2 = 2 A^2 / (1 + A)``."""
    a = auc
    q1 = a / (2.0 - a)
    q2 = 2.0 * a * a / (1.0 + a)
    num = a * (1.0 - a) + (n_pos - 1.0) * (q1 - a * a) + (n_neg - 1.0) * (q2 - a * a)
    return safe_div(np.maximum(num, 0.0), n_pos * n_neg)


def sliced_ranking(
    r: Ranking,
    codes: np.ndarray,
    support: np.ndarray,
    *,
    sort_codes: np.ndarray | None = None,
    auc: bool,
    ap: bool,
    row_gradients: bool = False,
) -> SlicedRanking:
    """ROC AUC / average precision of every slice, with delta-method variances.

    Parameters
    ----------
    r : Ranking
        The batch's ranking (sorted once).
    codes : ndarray of shape (n,)
        Slice code per row (input order), ``0 .. G - 1``, every code occupied.
    support : ndarray of int, shape (G,)
        Rows per slice (``bincount(codes)``).
    sort_codes : ndarray, optional
        The same codes in the narrowest integer type (``uint16``), which makes the
        stable sort a radix sort; default ``codes``.
    auc, ap : bool
        Which metrics to compute.
    row_gradients : bool
        Also return per-row gradients (multiclass macro averages combine them).
    """
    g_count = support.size
    perm = np.argsort((codes if sort_codes is None else sort_codes)[r.desc], kind="stable")
    pos = r.is_pos[perm]
    n = pos.size
    seg_last = np.cumsum(support) - 1
    starts = seg_last + 1 - support
    if n == 0:
        return _no_rows(auc=auc, ap=ap, rest=r.placement is not None, row_gradients=row_gradients)
    if r.tie_id is None:
        return _distinct(
            r, pos, perm, codes, starts, seg_last, support, auc=auc, ap=ap, row_gradients=row_gradients
        )
    # runs of tied scores: the thresholds are the ends of the runs inside each slice
    tp_cum = np.cumsum(pos, dtype=np.float64)
    p_end = tp_cum[seg_last]
    n_pos = np.diff(p_end, prepend=0.0)
    n_neg = support - n_pos
    tp_before = p_end - n_pos
    defined = (n_pos > 0) & (n_neg > 0)

    t = r.tie_id[perm]
    boundary = t[1:] != t[:-1]
    boundary[seg_last[:-1]] = True  # a run never spans two slices
    ends = np.append(np.flatnonzero(boundary), n - 1)
    tp_end = tp_cum[ends]
    depth_end = ends + 1.0
    dtp = np.diff(tp_end, prepend=0.0)
    dfp = np.diff(depth_end - tp_end, prepend=0.0)
    gstarts = np.searchsorted(ends, starts)  # first run of each slice
    gcount = np.diff(np.append(gstarts, ends.size))  # runs per slice
    sizes = np.diff(ends, prepend=-1)  # rows per run
    tp_loc = tp_end - np.repeat(tp_before, gcount)
    depth_loc = depth_end - np.repeat(starts.astype(np.float64), gcount)
    pn = n_pos * n_neg

    out: dict[str, np.ndarray | None] = {}
    rows = r.desc[perm] if row_gradients else None
    if auc:
        u01 = tp_loc - 0.5 * dtp  # positives above a negative of the run (ties half)
        u10 = (depth_loc - tp_loc) - 0.5 * dfp  # negatives above a positive of the run
        area = np.add.reduceat(dfp * u01, gstarts)
        value = np.where(defined, safe_div(area, pn), np.nan)
        s01 = np.add.reduceat(dfp * u01 * u01, gstarts)
        s10 = np.add.reduceat(dtp * u10 * u10, gstarts)
        # sum_pos (V10 - A)^2 / P^2 + sum_neg (V01 - A)^2 / N^2, expanded (see module notes)
        # DeLong's structural components: positives' part over P - 1, negatives' over N - 1
        num = (s10 - n_pos * n_neg**2 * (1.0 - value) ** 2) * unbiased_factor(n_pos) + (
            s01 - n_neg * n_pos**2 * value**2
        ) * unbiased_factor(n_neg)
        out["auc"] = value
        out["auc_var"] = np.where(defined, safe_div(np.maximum(num, 0.0), pn * pn), np.nan)
        if r.placement is not None:
            involved = np.bincount(codes, weights=r.placement, minlength=g_count)
            out.update(_rest_auc(r, n_pos, n_neg, involved, area))
        if row_gradients:
            inv_p, inv_n = _reciprocal(n_pos, gcount), _reciprocal(n_neg, gcount)
            a_g = np.repeat(np.nan_to_num(value), gcount)
            # positives (V10 - A) / P with V10 = 1 - U10 / N; negatives (V01 - A) / N with V01 = U01 / P;
            # scaled so their squares sum to DeLong's unbiased variance
            on_pos = (1.0 - u10 * inv_n - a_g) * inv_p * _root_factor(n_pos, gcount)
            on_neg = (u01 * inv_p - a_g) * inv_n * _root_factor(n_neg, gcount)
            out["auc_rows"] = _row_values(pos, on_pos, on_neg, sizes)
    if ap:
        precision = tp_loc / depth_loc
        step = dtp / depth_loc
        total = np.add.reduceat(dtp * precision, gstarts)
        value = np.where(defined, safe_div(total, n_pos), np.nan)
        s1 = _suffix_sums(step, gstarts, gcount)
        step *= precision  # dTP TP / D^2
        s2 = _suffix_sums(step, gstarts, gcount)
        h = precision
        h += s1
        h -= s2
        sum_h = np.add.reduceat(dtp * h, gstarts)
        sum_h2 = np.add.reduceat(dtp * h * h, gstarts)
        sum_s2 = np.add.reduceat(dfp * s2 * s2, gstarts)
        # positives: (h - AP) / P, negatives: -S2 / P
        v = np.nan_to_num(value)
        num = sum_h2 - 2.0 * v * sum_h + n_pos * v * v + sum_s2
        out["ap"] = value
        # the sample variance of the influence: over n - 1 rows
        unbiased = unbiased_factor(n_pos + n_neg)
        out["ap_var"] = np.where(defined, safe_div(np.maximum(num, 0.0), n_pos * n_pos) * unbiased, np.nan)
        if row_gradients:
            inv_p = _reciprocal(n_pos, gcount) * _root_factor(n_pos + n_neg, gcount)
            on_pos = (h - np.repeat(v, gcount)) * inv_p
            on_neg = -s2 * inv_p
            out["ap_rows"] = _row_values(pos, on_pos, on_neg, sizes)
    return SlicedRanking(n_pos=n_pos, n_neg=n_neg, rows=rows, **out)


def _no_rows(*, auc: bool, ap: bool, rest: bool, row_gradients: bool) -> SlicedRanking:
    """No rows, no slices: every requested array is empty."""
    e = np.zeros(0)
    return SlicedRanking(
        n_pos=e,
        n_neg=e,
        auc=e if auc else None,
        auc_var=e if auc else None,
        rest_auc=e if auc and rest else None,
        rest_auc_var=e if auc and rest else None,
        ap=e if ap else None,
        ap_var=e if ap else None,
        rows=np.zeros(0, dtype=np.intp) if row_gradients else None,
        auc_rows=e if auc and row_gradients else None,
        ap_rows=e if ap and row_gradients else None,
    )


def _distinct(
    r: Ranking,
    pos: np.ndarray,
    perm: np.ndarray,
    codes: np.ndarray,
    starts: np.ndarray,
    seg_last: np.ndarray,
    support: np.ndarray,
    *,
    auc: bool,
    ap: bool,
    row_gradients: bool,
) -> SlicedRanking:
    """:func:`sliced_ranking` when no two scores are equal: every row is a threshold.

    Same values as the general path with a fraction of its n-row passes (n-row
    temporaries cost more than the arithmetic on them). Local cumulative counts are
    segmented cumulative sums (the running sum is reset at each slice start), and
    the sums over one class come from sums over all rows minus closed forms: the
    k-th positive of a slice has ``TP = k``, the k-th negative ``FP = k``, so

        sum_neg TP = sum_all TP - P (P + 1) / 2
        sum_neg TP^2 = sum_all TP^2 - P (P + 1) (2P + 1) / 6     (and likewise FP for positives)

    (integer-valued sums: exact in float64 below 2**53).
    """
    n = pos.size
    sizes = support
    tp = np.empty(n)
    np.copyto(tp, pos)
    n_pos = np.add.reduceat(tp, starts)
    n_neg = support - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    pn = n_pos * n_neg
    tp[starts[1:]] -= n_pos[:-1]  # segmented: restart the count at each slice
    np.cumsum(tp, out=tp)  # TP at each row, inside its slice
    depth = np.repeat(starts.astype(np.float64), sizes)
    np.subtract(r.depths, depth, out=depth)  # rows up to each row, inside its slice
    out: dict[str, np.ndarray | None] = {}
    tmp = np.empty(n)
    if auc:
        tri_p = n_pos * (n_pos + 1.0)
        tri_n = n_neg * (n_neg + 1.0)
        area = np.add.reduceat(tp, starts) - tri_p / 2.0
        value = np.where(defined, safe_div(area, pn), np.nan)
        if row_gradients:
            inv_p, inv_n = _reciprocal(n_pos, sizes), _reciprocal(n_neg, sizes)
            a_r = np.repeat(np.nan_to_num(value), sizes)
            fp = depth - tp
            # positives (V10 - A) / P with V10 = 1 - FP / N; negatives (V01 - A) / N with V01 = TP / P;
            # scaled so their squares sum to DeLong's unbiased variance
            on_pos = (1.0 - fp * inv_n - a_r) * inv_p * _root_factor(n_pos, sizes)
            on_neg = (tp * inv_p - a_r) * inv_n * _root_factor(n_neg, sizes)
            out["auc_rows"] = _row_values(pos, on_pos, on_neg, None)
        np.multiply(tp, tp, out=tmp)
        s01 = np.add.reduceat(tmp, starts) - tri_p * (2.0 * n_pos + 1.0) / 6.0
        np.subtract(depth, tp, out=tmp)  # FP
        tmp *= tmp
        s10 = np.add.reduceat(tmp, starts) - tri_n * (2.0 * n_neg + 1.0) / 6.0
        # DeLong's structural components: positives' part over P - 1, negatives' over N - 1
        num = (s10 - n_pos * n_neg**2 * (1.0 - value) ** 2) * unbiased_factor(n_pos) + (
            s01 - n_neg * n_pos**2 * value**2
        ) * unbiased_factor(n_neg)
        out["auc"] = value
        out["auc_var"] = np.where(defined, safe_div(np.maximum(num, 0.0), pn * pn), np.nan)
        if r.placement is not None:
            involved = np.bincount(codes, weights=r.placement, minlength=support.size)
            out.update(_rest_auc(r, n_pos, n_neg, involved, area))
    if ap:
        precision = np.divide(tp, depth, out=tp)  # TP / D (tp is not needed any more)
        np.multiply(precision, pos, out=tmp)
        value = np.where(defined, safe_div(np.add.reduceat(tmp, starts), n_pos), np.nan)
        v = np.nan_to_num(value)
        s1 = np.divide(pos, depth, out=depth)  # [pos] / D
        s2 = np.multiply(s1, precision, out=tmp)  # [pos] TP / D^2
        _segment_suffix_sums(s1, starts, seg_last)
        _segment_suffix_sums(s2, starts, seg_last)
        # gradient x P: positives h - AP with h = TP/D + S1 - S2; negatives -S2
        g = precision
        g += s1
        g *= pos
        g -= s2
        s1[:] = np.repeat(v, sizes)
        s1 *= pos
        g -= s1
        if row_gradients:
            out["ap_rows"] = g * _reciprocal(n_pos, sizes) * _root_factor(n_pos + n_neg, sizes)
        g *= g
        num = np.add.reduceat(g, starts)
        out["ap"] = value
        # the sample variance of the influence: over n - 1 rows
        out["ap_var"] = np.where(
            defined, safe_div(num, n_pos * n_pos) * unbiased_factor(n_pos + n_neg), np.nan
        )
    rows = r.desc[perm] if row_gradients else None
    return SlicedRanking(n_pos=n_pos, n_neg=n_neg, rows=rows, **out)


def _root_factor(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``sqrt(count / (count - 1))`` of each slice, repeated over its runs or rows."""
    return np.repeat(np.sqrt(unbiased_factor(counts)), sizes)


def _reciprocal(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``1 / count`` per slice (0 for an empty class, whose gradients then vanish), spread to its runs."""
    inv = np.divide(1.0, counts, out=np.zeros(counts.shape), where=counts > 0)
    return np.repeat(inv, sizes)


def _rest_auc(
    r: Ranking, n_pos: np.ndarray, n_neg: np.ndarray, involved: np.ndarray, area: np.ndarray
) -> dict[str, np.ndarray | None]:
    """AUC of the rows outside each slice: all pairs minus those involving the slice plus those inside it."""
    rest_pos = r.n_pos - n_pos
    rest_neg = r.n_neg - n_neg
    rest_pn = rest_pos * rest_neg
    rest = np.where(rest_pn > 0, safe_div(r.concordant - involved + area, rest_pn), np.nan)
    var = np.where(rest_pn > 0, hanley_mcneil_variance(rest, rest_pos, rest_neg), np.nan)
    return {"rest_auc": rest, "rest_auc_var": var}


def _segment_suffix_sums(x: np.ndarray, starts: np.ndarray, seg_last: np.ndarray) -> None:
    """Replace ``x`` by its suffix sums inside each segment, in place (one reversed cumulative sum)."""
    totals = np.add.reduceat(x, starts)
    x[seg_last[:-1]] -= totals[1:]  # the running sum from the right restarts at each segment end
    rev = x[::-1]
    np.cumsum(rev, out=rev)


def _suffix_sums(x: np.ndarray, gstarts: np.ndarray, gcount: np.ndarray) -> np.ndarray:
    """``sum_{g' >= g}`` of ``x`` inside each segment (runs at or below ``g`` in its slice)."""
    total: np.ndarray = np.cumsum(x[::-1])[::-1]
    after = np.append(total[gstarts[1:]], 0.0)  # what the next segments add
    suffix: np.ndarray = total - np.repeat(after, gcount)
    return suffix


def _row_values(
    pos: np.ndarray, on_pos: np.ndarray, on_neg: np.ndarray, sizes: np.ndarray | None
) -> np.ndarray:
    """Per-run values spread to the rows of each run (sorted order), by class."""
    if sizes is not None:
        on_pos = np.repeat(on_pos, sizes)
        on_neg = np.repeat(on_neg, sizes)
    return np.where(pos, on_pos, on_neg)
