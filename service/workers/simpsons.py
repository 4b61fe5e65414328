"""Simpson's paradox: comparisons and trends that reverse between slices and the aggregate.

Pure computation: no I/O, no clock, no random state. The caller encodes a slice
column as integer codes into ``labels`` (``pandas.factorize`` style: a negative
code is a missing value, which belongs to no slice) and builds the
``simpsons_paradox`` finding from the returned details (plain JSON-safe dicts).

Two checks
----------
* :func:`comparison_paradox` -- the model against a baseline (``existing`` or
  ``human``) on one slice column. The kidney-stone pattern (Charig et al. 1986):
  treatment A is better on small stones (81/87 against 234/270) and on large
  stones (192/263 against 55/80) yet worse overall (273/350 = 78% against
  289/350 = 83%) because 75% of A's cases were large stones against 23% of B's.
  The two sides may be different rows (unpaired batches of different slice
  composition) or the same rows (paired); with the same rows and codes the
  composition is equal and the check can never fire.
* :func:`trend_reversal` -- one model: the least-squares slope of the per-row
  error on a numeric column, overall against inside the slices of another column
  (error falls with ``x`` inside every group but rises overall because the groups
  with larger ``x`` have a higher base error rate).

Conventions
-----------
* A slice (stratum) counts only with ``n >= min_support`` rows -- on *both* sides
  for a comparison. At least two supported slices are needed.
* Signs are strict: a difference (slope) of zero, or within ``min_difference``
  of zero, has no direction and vetoes the paradox.
* The aggregate is over all of a side's rows (missing and unsupported slices
  included, as reported), but the reversal must also hold on the rows of the
  supported slices alone; otherwise it comes from slices nobody could compare,
  and "better in every slice" would be a claim about rows that were not checked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

# Differences of means of different row sets can miss an exact tie by a few ulps.
_TIE_SLACK = 1e-12


# --------------------------------------------------------------------------- input checks


def _check_outcomes(values: np.ndarray, *, name: str, binary: bool) -> np.ndarray:
    v = np.asarray(values)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per row), got shape {v.shape}.")
    if v.dtype == bool:
        return v.astype(np.float64)
    if v.size and not (np.issubdtype(v.dtype, np.integer) or np.issubdtype(v.dtype, np.floating)):
        raise ValueError(f"{name} must be numeric or bool, got dtype {v.dtype}.")
    v = v.astype(np.float64)
    if v.size and not np.isfinite(v).all():
        raise ValueError(f"{name} holds NaN or infinite values; drop or score those rows first.")
    if binary and v.size and not np.isin(v, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold 0/1 (correct or not) for accuracy; pass metric= for a loss.")
    return v


def _check_slice_codes(codes: np.ndarray, *, n_labels: int, n: int, name: str) -> np.ndarray:
    c = np.asarray(codes)
    if c.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like its outcomes, got {c.shape}.")
    if c.size and not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"{name} must hold integer codes into labels (negative = missing), got {c.dtype}.")
    c = c.astype(np.intp, copy=False)
    if c.size and c.max() >= n_labels:
        raise ValueError(f"{name} holds code {c.max()} but there are only {n_labels} labels.")
    return c


def _check_min_support(min_support: int) -> None:
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}.")


def _plain(label: Any) -> Any:
    """A label as a JSON-safe Python value (numpy scalars unwrapped)."""
    return label.item() if isinstance(label, np.generic) else label


def _sign(value: float, tolerance: float) -> int:
    return 0 if abs(value) <= tolerance else (1 if value > 0 else -1)


# --------------------------------------------------------------------------- comparison


def _side(outcomes: np.ndarray, codes: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Row count and outcome sum per code (missing codes dropped)."""
    present = codes >= 0
    n = np.bincount(codes[present], minlength=n_labels)
    total = np.bincount(codes[present], weights=outcomes[present], minlength=n_labels)
    return n, total


def comparison_paradox(
    column: str,
    model_correct: np.ndarray,
    model_codes: np.ndarray,
    baseline_correct: np.ndarray,
    baseline_codes: np.ndarray,
    labels: Sequence[Any],
    *,
    min_support: int = 30,
    min_difference: float = 0.0,
    metric: str = "accuracy",
    higher_is_better: bool = True,
) -> dict[str, Any] | None:
    """Model against baseline: same direction in every slice of ``column``, opposite in aggregate.

    Parameters
    ----------
    column : str
        The slice column's name (for the details).
    model_correct, baseline_correct : ndarray of bool or 0/1, shape (n_model,), (n_baseline,)
        Per-row outcome of each side. With the default ``metric="accuracy"`` it must
        be 0/1 and its mean is the accuracy; any other ``metric`` name takes any
        finite per-row value (e.g. a log loss with ``higher_is_better=False``) and
        compares means. The two sides may be different rows.
    model_codes, baseline_codes : ndarray of int, same shapes
        Each row's slice as an index into ``labels``; negative means missing.
    labels : sequence
        Slice values, ``labels[code]``.
    min_support : int, default 30
        Rows a slice needs on *each* side to be compared.
    min_difference : float, default 0.0
        Slice and aggregate differences must exceed this in absolute value to
        count as a direction (0: any strict difference).
    metric : str, default "accuracy"
        Name of the per-side value in the details.
    higher_is_better : bool, default True
        Direction of ``metric``; only changes the wording of the explanation.

    Returns
    -------
    dict or None
        None without a paradox, else::

            {column, metric,
             per_slice: [{value, model: {n, <metric>, share}, baseline: {...}, difference}],
             aggregate: {model: {n, <metric>}, baseline: {...}, difference},
             unsupported_rows: {model, baseline}, explanation}

        over the supported slices in code order; ``difference`` is model minus
        baseline and ``share`` the fraction of that side's rows in the slice.

    Notes
    -----
    With ``d_s = m_s - b_s`` on the supported slices ``S`` (``|S| >= 2``) and
    ``D = m - b`` on all rows: a paradox when every ``sign(d_s)`` is the same
    strict sign ``sigma``, ``sign(D) = -sigma``, and the difference of the two
    sides' means over the rows of ``S`` alone also has sign ``-sigma``. A
    weighted mean keeps the sign of equally weighted differences, so a reversal
    needs different slice weights on the two sides -- a different composition.

    Examples
    --------
    >>> import numpy as np
    >>> def rows(small, n_small, large, n_large):
    ...     correct = np.r_[np.arange(n_small) < small, np.arange(n_large) < large]
    ...     return correct, np.r_[np.zeros(n_small, int), np.ones(n_large, int)]
    >>> a, a_codes = rows(81, 87, 192, 263)
    >>> b, b_codes = rows(234, 270, 55, 80)
    >>> found = comparison_paradox("stone_size", a, a_codes, b, b_codes, ["small", "large"])
    >>> found["aggregate"]["model"], found["aggregate"]["baseline"]
    ({'n': 350, 'accuracy': 0.78}, {'n': 350, 'accuracy': 0.8257142857142857})
    """
    _check_min_support(min_support)
    if not (math.isfinite(min_difference) and min_difference >= 0):
        raise ValueError(f"min_difference must be a finite value >= 0, got {min_difference}.")
    binary = metric == "accuracy"
    m = _check_outcomes(model_correct, name="model_correct", binary=binary)
    b = _check_outcomes(baseline_correct, name="baseline_correct", binary=binary)
    k = len(labels)
    mc = _check_slice_codes(model_codes, n_labels=k, n=m.size, name="model_codes")
    bc = _check_slice_codes(baseline_codes, n_labels=k, n=b.size, name="baseline_codes")
    if m.size == 0 or b.size == 0:
        return None

    m_n, m_sum = _side(m, mc, k)
    b_n, b_sum = _side(b, bc, k)
    supported = np.flatnonzero((m_n >= min_support) & (b_n >= min_support))
    if supported.size < 2:
        return None
    tolerance = max(min_difference, _TIE_SLACK)
    m_acc = m_sum[supported] / m_n[supported]
    b_acc = b_sum[supported] / b_n[supported]
    signs = {_sign(d, tolerance) for d in m_acc - b_acc}
    if len(signs) != 1 or 0 in signs:
        return None
    slice_sign = signs.pop()

    m_all, b_all = float(m.mean()), float(b.mean())
    if _sign(m_all - b_all, tolerance) != -slice_sign:
        return None
    m_sup = m_sum[supported].sum() / m_n[supported].sum()
    b_sup = b_sum[supported].sum() / b_n[supported].sum()
    if _sign(m_sup - b_sup, tolerance) != -slice_sign:
        return None

    m_share = m_n[supported] / m.size
    b_share = b_n[supported] / b.size
    per_slice = [
        {
            "value": _plain(labels[code]),
            "model": {"n": int(m_n[code]), metric: float(m_acc[i]), "share": float(m_share[i])},
            "baseline": {"n": int(b_n[code]), metric: float(b_acc[i]), "share": float(b_share[i])},
            "difference": float(m_acc[i] - b_acc[i]),
        }
        for i, code in enumerate(supported)
    ]
    return {
        "column": column,
        "metric": metric,
        "per_slice": per_slice,
        "aggregate": {
            "model": {"n": int(m.size), metric: m_all},
            "baseline": {"n": int(b.size), metric: b_all},
            "difference": m_all - b_all,
        },
        "unsupported_rows": {
            "model": int(m.size - m_n[supported].sum()),
            "baseline": int(b.size - b_n[supported].sum()),
        },
        "explanation": _comparison_explanation(
            column,
            metric,
            model_better_in_slices=(slice_sign > 0) == higher_is_better,
            values=[_plain(labels[code]) for code in supported],
            m_share=m_share,
            b_share=b_share,
            m_n=m_n[supported],
            b_n=b_n[supported],
            pooled=(m_sum[supported] + b_sum[supported]) / (m_n[supported] + b_n[supported]),
        ),
    }


def _comparison_explanation(
    column: str,
    metric: str,
    *,
    model_better_in_slices: bool,
    values: list[Any],
    m_share: np.ndarray,
    b_share: np.ndarray,
    m_n: np.ndarray,
    b_n: np.ndarray,
    pooled: np.ndarray,
) -> str:
    # Name the slice the overall loser is most over-represented in: with two slices
    # it is necessarily the one that is harder for both sides.
    if model_better_in_slices:
        over = int(np.argmax(m_share - b_share))
        head = f"the model is better than the baseline in every {column} slice but worse overall"
    else:
        over = int(np.argmax(b_share - m_share))
        head = f"the model is worse than the baseline in every {column} slice but better overall"
    rest = np.ones(len(values), dtype=bool)
    rest[over] = False
    rest_rows = m_n[rest] + b_n[rest]
    rest_value = float((pooled[rest] * rest_rows).sum() / rest_rows.sum())
    return (
        f"{head} because the two were evaluated on rows of different {column} composition: "
        f"model rows in {values[over]}: {m_share[over]:.1%}, baseline rows: {b_share[over]:.1%} "
        f"(pooled {metric} in {values[over]}: {pooled[over]:.3g}, in the other slices: {rest_value:.3g})"
    )


# --------------------------------------------------------------------------- trend


def _slope(x: np.ndarray, y: np.ndarray, *, groups: np.ndarray | None = None) -> tuple[float, float] | None:
    """Least-squares slope of ``y`` on ``x`` (within ``groups`` when given) and its p-value.

    The within (fixed-effects) slope demeans both variables per group. The
    standard error is heteroskedasticity-robust (HC1), as 0/1 errors are never
    homoskedastic; the p-value is two-sided from Student's t. None when ``x`` has
    no variation (inside the groups) or there are no residual degrees of freedom.
    """
    if groups is None:
        xd, yd, params = x - x.mean(), y - y.mean(), 2
    else:
        _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
        xd = x - (np.bincount(inverse, weights=x) / counts)[inverse]
        yd = y - (np.bincount(inverse, weights=y) / counts)[inverse]
        params = counts.size + 1
    sxx = float(xd @ xd)
    df = x.size - params
    if df < 1 or sxx <= 1e-12 * max(1.0, float(x @ x)):
        return None
    slope = float(xd @ yd) / sxx
    resid = yd - slope * xd
    variance = float((xd * xd) @ (resid * resid)) / (sxx * sxx) * x.size / df
    if variance <= 0:
        return slope, (0.0 if slope != 0 else 1.0)
    t = slope / math.sqrt(variance)
    return slope, float(2.0 * scipy_stats.t.sf(abs(t), df))


def trend_reversal(
    x: np.ndarray,
    errors: np.ndarray,
    strata_codes: np.ndarray,
    strata_labels: Sequence[Any],
    *,
    x_name: str,
    strata_name: str,
    min_support: int = 30,
    alpha: float = 0.01,
) -> dict[str, Any] | None:
    """One model: the error's trend in ``x`` reverses inside every slice of another column.

    Parameters
    ----------
    x : ndarray of float, shape (n,)
        A numeric column; rows where it is NaN or infinite are left out.
    errors : ndarray of bool, 0/1 or float, shape (n,)
        Per-row error (1 = wrong) or loss; must be finite.
    strata_codes : ndarray of int, shape (n,)
        Each row's slice of the stratifying column as an index into
        ``strata_labels``; negative means missing (the row counts only overall).
    strata_labels : sequence
        Slice values, ``strata_labels[code]``.
    x_name, strata_name : str
        Column names for the details.
    min_support : int, default 30
        Rows (with finite ``x``) a stratum needs to get a slope.
    alpha : float, default 0.01
        Both the overall slope and the pooled within-strata slope must have a
        p-value below ``alpha``, so that noise does not trigger.

    Returns
    -------
    dict or None
        None without a reversal, else::

            {x, column, method: "least_squares",
             overall: {n, slope, p_value},
             within: {n, slope, p_value},
             per_stratum: [{value, n, slope, error_mean, x_mean}],
             explanation}

        ``slope`` is the change in mean error per unit of ``x``.

    Notes
    -----
    Slopes are ordinary least squares of error on ``x``: ``b = S_xy / S_xx``
    overall, per stratum, and pooled within strata (``x`` and error demeaned per
    stratum: the fixed-effects slope, the ``S_xx``-weighted mean of the stratum
    slopes), tested with HC1 robust standard errors. A reversal needs at least
    two supported strata (``n >= min_support`` and ``x`` not constant) whose
    slopes all have the same strict sign, opposite to the overall slope; the
    overall slope and the within slope both significant at ``alpha``; and the
    ordinary slope over the rows of the supported strata alone on the side of
    the overall one (so the reversal is not made by rows outside them).
    Least squares rather than rank correlation because the slope is in the
    error's own units and pools across strata exactly.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.r_[np.arange(100.0), np.arange(100.0) + 100]
    >>> err = np.r_[(np.arange(100) % 10) < 4 - np.arange(100) // 34,
    ...             (np.arange(100) % 10) < 9 - np.arange(100) // 34]
    >>> found = trend_reversal(x, err, np.repeat([0, 1], 100), ["a", "b"], x_name="x", strata_name="g")
    >>> found["overall"]["slope"] > 0 > found["within"]["slope"]
    True
    """
    _check_min_support(min_support)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    xv = np.asarray(x)
    if xv.ndim != 1 or (xv.size and not (np.issubdtype(xv.dtype, np.number) or xv.dtype == bool)):
        raise ValueError(f"x must be a 1-D numeric array, got shape {xv.shape} and dtype {xv.dtype}.")
    xv = xv.astype(np.float64)
    e = _check_outcomes(errors, name="errors", binary=False)
    if e.shape != xv.shape:
        raise ValueError(f"errors must have shape {xv.shape} like x, got {e.shape}.")
    codes = _check_slice_codes(strata_codes, n_labels=len(strata_labels), n=xv.size, name="strata_codes")

    keep = np.isfinite(xv)
    xv, e, codes = xv[keep], e[keep], codes[keep]
    overall = _slope(xv, e)
    if overall is None:
        return None
    overall_sign = _sign(overall[0], 0.0)
    if overall_sign == 0 or overall[1] >= alpha:
        return None

    per_stratum: list[dict[str, Any]] = []
    in_supported = np.zeros(xv.size, dtype=bool)
    for code in range(len(strata_labels)):
        rows = codes == code
        n = int(rows.sum())
        if n < min_support:
            continue
        fit = _slope(xv[rows], e[rows])
        if fit is None:
            continue
        if _sign(fit[0], 0.0) != -overall_sign:
            return None
        in_supported |= rows
        per_stratum.append(
            {
                "value": _plain(strata_labels[code]),
                "n": n,
                "slope": fit[0],
                "error_mean": float(e[rows].mean()),
                "x_mean": float(xv[rows].mean()),
            }
        )
    if len(per_stratum) < 2:
        return None

    xs, es = xv[in_supported], e[in_supported]
    within = _slope(xs, es, groups=codes[in_supported])
    pooled = _slope(xs, es)
    if within is None or within[1] >= alpha or pooled is None or _sign(pooled[0], 0.0) != overall_sign:
        return None

    rising, falling = ("rises", "falls") if overall_sign > 0 else ("falls", "rises")
    return {
        "x": x_name,
        "column": strata_name,
        "method": "least_squares",
        "overall": {"n": int(xv.size), "slope": overall[0], "p_value": overall[1]},
        "within": {"n": int(xs.size), "slope": within[0], "p_value": within[1]},
        "per_stratum": per_stratum,
        "explanation": (
            f"the error {rising} with {x_name} overall (slope {overall[0]:.3g} per unit) but {falling} "
            f"with it inside every {strata_name} slice (pooled within-slice slope {within[0]:.3g}): "
            f"the {strata_name} slices differ in both {x_name} range and base error, so the overall "
            f"trend reflects which slice a row is in, not {x_name}"
        ),
    }
