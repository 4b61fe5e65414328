"""Simpson's paradox: comparisons and trends that reverse between slices and the aggregate.

Pure computation: no I/O, no clock, no random state. The caller encodes a slice
column as integer codes into ``labels`` (``pandas.factorize`` style: a negative
code is a missing value, which belongs to no slice) and builds the
``simpsons_paradox`` finding from the returned details (plain JSON-safe dicts).

Two checks
----------
* :func:`comparison_paradox` -- the model against a baseline (``existing`` or
  ``human``) on one slice column, tested as a stratified 2x2 analysis: the crude
  (aggregate) effect against the Mantel-Haenszel effect pooled over the slices.
  It fires when the two point in opposite directions and the crude effect is
  outside the pooled effect's confidence interval -- not only when every slice
  reverses. Two textbook cases:

  - kidney stones (Charig et al. 1986): treatment A is better on small stones
    (81/87 against 234/270) and on large stones (192/263 against 55/80) yet worse
    overall (273/350 = 78% against 289/350 = 83%) because 75% of A's cases were
    large stones against 23% of B's;
  - UC Berkeley graduate admissions 1973 (Bickel, Hammel & O'Connell 1975): men
    are admitted more often overall (44.5% against 30.4%) but, department by
    department, women are not disadvantaged (Mantel-Haenszel odds ratio of
    admission women/men 1.11) -- women applied more to the departments that
    admit few; four of the six departments favour women, two favour men.

  The two sides may be different rows (unpaired batches of different slice
  composition) or the same rows (paired); with the same rows and codes the
  composition is equal, the Mantel-Haenszel risk difference equals the crude
  one, and the check can never fire.
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
  included, as reported), but the crude effect that is tested is over the rows
  of the supported slices alone (the rows the pooled effect is computed on), and
  both must point the same way; otherwise the reversal comes from slices nobody
  could compare.

References
----------
Mantel, N. & Haenszel, W. (1959). Statistical aspects of the analysis of data
from retrospective studies of disease. *J. Natl. Cancer Inst.* 22, 719-748.
Robins, J., Breslow, N. & Greenland, S. (1986). Estimators of the Mantel-Haenszel
variance consistent in both sparse data and large-strata limiting models.
*Biometrics* 42, 311-323.
Greenland, S. & Robins, J. (1985). Estimation of a common effect parameter from
sparse follow-up data. *Biometrics* 41, 55-68.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from service.workers.metrics import METRICS

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


def _side(
    outcomes: np.ndarray, codes: np.ndarray, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row count, outcome sum and sum of squared deviations from the slice mean, per code.

    Rows with a missing (negative) code are dropped.
    """
    present = codes >= 0
    c, v = codes[present], outcomes[present]
    n = np.bincount(c, minlength=n_labels)
    total = np.bincount(c, weights=v, minlength=n_labels)
    mean = np.divide(total, n, out=np.zeros(n_labels), where=n > 0)
    squares = np.bincount(c, weights=(v - mean[c]) ** 2, minlength=n_labels)
    return n, total, squares


def _finite(value: float) -> float | None:
    """A float for the details, None when it is infinite or undefined (JSON has neither)."""
    return float(value) if math.isfinite(value) else None


def _two_sided_p(z: float) -> float:
    return float(2.0 * scipy_stats.norm.sf(abs(z)))


def _log(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf


def _crude_odds_ratio(a: float, n1: float, c: float, n0: float, *, z: float) -> dict[str, Any]:
    """Odds ratio of the collapsed 2x2 table, Woolf interval, Pearson chi-square p-value.

    ``a`` of ``n1`` model rows and ``c`` of ``n0`` baseline rows correct:
    ``OR = a d / (b c)`` with ``b = n1 - a``, ``d = n0 - c``; the interval is
    ``exp(log OR -/+ z sqrt(1/a + 1/b + 1/c + 1/d))`` (Woolf 1955; unbounded with
    an empty cell) and the p-value that of the uncorrected Pearson chi-square
    (the two-proportion z test).
    """
    b, d = n1 - a, n0 - c
    log_or = _log(a * d) - _log(b * c)
    if min(a, b, c, d) > 0:
        se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        interval = [math.exp(log_or - z * se), math.exp(log_or + z * se)]
    else:
        interval = [0.0, math.inf]
    pooled = (a + c) / (n1 + n0)
    spread = pooled * (1 - pooled) * (1 / n1 + 1 / n0)
    p_value = _two_sided_p((a / n1 - c / n0) / math.sqrt(spread)) if spread > 0 else 1.0
    return {"log_odds_ratio": log_or, "interval": interval, "p_value": p_value}


def mantel_haenszel(
    a: np.ndarray, n1: np.ndarray, c: np.ndarray, n0: np.ndarray, *, alpha: float = 0.05
) -> dict[str, float] | None:
    """Mantel-Haenszel pooled odds ratio and risk difference over K 2x2 tables.

    Stratum ``k`` has ``a_k`` successes out of ``n1_k`` in the first group and
    ``c_k`` out of ``n0_k`` in the second; ``b = n1 - a``, ``d = n0 - c``,
    ``n = n1 + n0``.

    Parameters
    ----------
    a, n1, c, n0 : ndarray, shape (K,)
        Successes and sizes of the two groups per stratum (``n1, n0 >= 1``).
    alpha : float, default 0.05
        The interval is at level ``1 - alpha``.

    Returns
    -------
    dict or None
        ``{odds_ratio, log_odds_ratio, se_log_odds_ratio, low, high, p_value,
        cmh_statistic, cmh_p_value, risk_difference}``; None when ``sum R`` or
        ``sum S`` is zero (the pooled odds ratio is 0, infinite or undefined).

    Notes
    -----
    With ``R_k = a_k d_k / n_k`` and ``S_k = b_k c_k / n_k`` (Mantel & Haenszel
    1959)::

        OR_MH = sum R / sum S

    and, with ``P_k = (a_k + d_k) / n_k``, ``Q_k = (b_k + c_k) / n_k``, the
    Robins-Breslow-Greenland (1986) variance::

        Var(log OR_MH) = sum P R / (2 (sum R)^2) + sum (P S + Q R) / (2 sum R sum S)
                         + sum Q S / (2 (sum S)^2)

    giving the Wald interval ``exp(log OR_MH -/+ z_{1-alpha/2} SE)`` and its
    p-value. The Cochran-Mantel-Haenszel statistic (no continuity correction),
    chi-square with one degree of freedom under a common odds ratio of 1, is::

        CMH = (sum a - sum E a)^2 / sum V a,   E a = n1 m1 / n,
        V a = n1 n0 m1 m0 / (n^2 (n - 1)),     m1 = a + c, m0 = b + d.

    The Mantel-Haenszel risk difference (Greenland & Robins 1985) weights the
    per-stratum differences by ``n1 n0 / n``::

        RD_MH = sum (a n0 - c n1) / n / sum n1 n0 / n
    """
    a, n1, c, n0 = (np.asarray(v, dtype=np.float64) for v in (a, n1, c, n0))
    b, d, n = n1 - a, n0 - c, n1 + n0
    r, s = a * d / n, b * c / n
    sum_r, sum_s = float(r.sum()), float(s.sum())
    if sum_r <= 0 or sum_s <= 0:
        return None
    p, q = (a + d) / n, (b + c) / n
    variance = (
        float((p * r).sum()) / (2 * sum_r**2)
        + float((p * s + q * r).sum()) / (2 * sum_r * sum_s)
        + float((q * s).sum()) / (2 * sum_s**2)
    )
    log_or = math.log(sum_r / sum_s)
    se = math.sqrt(variance)
    z = float(scipy_stats.norm.isf(alpha / 2))
    m1, m0 = a + c, b + d
    # sum R > 0 and sum S > 0 leave a stratum with m1, m0 > 0, so sum V a > 0
    var_a = float((n1 * n0 * m1 * m0 / (n**2 * (n - 1))).sum())
    cmh = float((a.sum() - (n1 * m1 / n).sum()) ** 2) / var_a
    return {
        "odds_ratio": math.exp(log_or),
        "log_odds_ratio": log_or,
        "se_log_odds_ratio": se,
        "low": math.exp(log_or - z * se),
        "high": math.exp(log_or + z * se),
        "p_value": _two_sided_p(log_or / se) if se > 0 else (0.0 if log_or else 1.0),
        "cmh_statistic": cmh,
        "cmh_p_value": float(scipy_stats.chi2.sf(cmh, 1)),
        "risk_difference": float(((a * n0 - c * n1) / n).sum() / (n1 * n0 / n).sum()),
    }


def _weighted_difference(
    m_mean: np.ndarray,
    m_var: np.ndarray,
    m_n: np.ndarray,
    b_mean: np.ndarray,
    b_var: np.ndarray,
    b_n: np.ndarray,
    *,
    z: float,
) -> dict[str, Any]:
    """Mantel-Haenszel-weighted difference of means over the slices and its Wald interval.

    ``D = sum w_k d_k / sum w_k`` with ``d_k`` the difference of the two sides'
    means in slice ``k`` and ``w_k = n1_k n0_k / (n1_k + n0_k)`` (for 0/1
    outcomes this is the Mantel-Haenszel risk difference);
    ``Var D = sum w_k^2 (s1_k^2 / n1_k + s0_k^2 / n0_k) / (sum w_k)^2`` with the
    per-slice sample variances.
    """
    w = m_n * b_n / (m_n + b_n)
    diff = m_mean - b_mean
    value = float((w * diff).sum() / w.sum())
    se = float(math.sqrt(float((w**2 * (m_var / m_n + b_var / b_n)).sum())) / w.sum())
    p_value = _two_sided_p(value / se) if se > 0 else (0.0 if value else 1.0)
    return {"difference": value, "se": se, "low": value - z * se, "high": value + z * se, "p_value": p_value}


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
    alpha: float = 0.05,
) -> dict[str, Any] | None:
    """Model against baseline: the aggregate comparison reverses once ``column`` is accounted for.

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
        The crude difference and the pooled difference (risk difference for
        accuracy) must each exceed this in absolute value to count as a
        direction (0: any strict difference).
    metric : str, default "accuracy"
        Name of the per-side value in the details.
    higher_is_better : bool, default True
        Direction of ``metric``; only changes the wording of the explanation.
    alpha : float, default 0.05
        The pooled effect's confidence interval is at level ``1 - alpha``.

    Returns
    -------
    dict or None
        None without a paradox, else::

            {column, metric, status, alpha,
             per_slice: [{value, model: {n, <metric>, share}, baseline: {...},
                          difference, odds_ratio, contribution}],
             aggregate: {model: {n, <metric>}, baseline: {...}, difference},
             crude: {model: {n, <metric>}, baseline: {...}, difference, p_value,
                     odds_ratio, odds_ratio_ci | difference_ci},
             adjusted: {method, difference, p_value, ...},
             driver: {slice, share, effect, odds_ratio},
             reversed_slices: [value, ...],
             unsupported_rows: {model, baseline}, explanation}

        ``per_slice`` is over the supported slices in code order; ``difference``
        is model minus baseline, ``share`` the fraction of that side's rows in
        the slice and ``contribution`` the slice's additive part of the pooled
        effect (see Notes). ``aggregate`` is over all rows, ``crude`` over the
        rows of the supported slices. For accuracy ``adjusted`` is
        ``{method: "mantel_haenszel", odds_ratio, odds_ratio_ci,
        se_log_odds_ratio, p_value, cmh: {statistic, p_value}, difference}``
        (``difference`` the Mantel-Haenszel risk difference); for another
        metric ``{method: "mantel_haenszel_weighted_difference", difference,
        difference_ci, se, p_value}`` and the odds ratios are None. Odds ratios
        and interval ends that are infinite are None.

    Notes
    -----
    **Effects.** For accuracy each supported slice ``k`` is a 2x2 table (model
    / baseline by correct / wrong: ``a_k`` of ``n1_k`` model rows correct, ``c_k``
    of ``n0_k`` baseline rows). The crude effect is that of the collapsed table
    (difference of accuracies and odds ratio ``OR_c``), the adjusted effect the
    Mantel-Haenszel (1959) pooled odds ratio ``OR_MH = sum R_k / sum S_k``
    (``R = a d / n``, ``S = b c / n``) with the Robins-Breslow-Greenland (1986)
    variance of ``log OR_MH`` and its Wald interval ``[L, U]`` at ``1 - alpha``,
    plus the Mantel-Haenszel risk difference ``RD_MH`` (see
    :func:`mantel_haenszel`). For another metric the crude effect is the
    difference of means ``D_c`` and the adjusted one the weighted difference
    ``D_MH = sum w_k d_k / sum w_k``, ``w_k = n1_k n0_k / (n1_k + n0_k)``, with a
    Wald interval from the per-slice variances.

    **Rule.** With ``sigma = sign(D_c)`` (strict, beyond ``min_difference``),
    a paradox when all of:

    1. the difference over all rows (``aggregate``) also has sign ``sigma``;
    2. the adjusted effect points the other way: ``sign(log OR_MH) = -sigma`` and
       ``sign(RD_MH) = -sigma`` beyond ``min_difference`` (``sign(D_MH) = -sigma``
       for another metric);
    3. the crude effect lies outside the adjusted interval, on its own side:
       ``OR_c > U`` when ``sigma > 0``, ``OR_c < L`` when ``sigma < 0`` (the
       same with ``D_c`` and the interval of ``D_MH``). The crude comparison is
       then not a plausible value of the within-slice effect: conditioning on
       ``column`` moves it materially, across no effect.

    ``status`` is ``"reversed"`` when the interval also excludes no effect
    (``U < 1`` or ``L > 1``; 0 for a difference) -- the within-slice effect is
    itself significant at ``alpha`` in the direction opposite to the crude one --
    and ``"confounded"`` otherwise: the crude effect is explained away by the
    slice composition and the pooled effect, pointing the other way, is not
    significant on its own (Berkeley admissions, kidney stones at alpha 0.05).
    Neither the crude nor the adjusted effect needs to be significant by itself;
    with equal composition on both sides ``RD_MH`` equals the crude difference,
    so (2) fails and a reversal needs a different composition. A pooled
    "confounded" reversal of a null within-slice effect points either way by
    chance; only "reversed" claims the opposite effect.

    **Driver.** The pooled effect decomposes exactly into additive slice
    contributions: ``OR_MH - 1 = sum_k (R_k - S_k) / sum S`` for accuracy,
    ``D_MH = sum_k w_k d_k / sum w`` otherwise. The driver is the slice with the
    largest contribution against the crude direction (``-sigma`` times it);
    ``share`` is that contribution over the sum of all contributions against
    the crude direction, ``effect`` its difference (model minus baseline) and
    ``odds_ratio`` its own odds ratio. ``reversed_slices`` lists the slices
    whose own difference points against the crude one.

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
    >>> round(found["crude"]["odds_ratio"], 3), round(found["adjusted"]["odds_ratio"], 3), found["status"]
    (0.748, 1.447, 'confounded')
    """
    _check_min_support(min_support)
    if not (math.isfinite(min_difference) and min_difference >= 0):
        raise ValueError(f"min_difference must be a finite value >= 0, got {min_difference}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    # a proportion of rows (accuracy): 0/1 outcomes, compared as risks and odds
    binary = metric in METRICS and METRICS[metric].kind == "proportion"
    m = _check_outcomes(model_correct, name="model_correct", binary=binary)
    b = _check_outcomes(baseline_correct, name="baseline_correct", binary=binary)
    k = len(labels)
    mc = _check_slice_codes(model_codes, n_labels=k, n=m.size, name="model_codes")
    bc = _check_slice_codes(baseline_codes, n_labels=k, n=b.size, name="baseline_codes")
    if m.size == 0 or b.size == 0:
        return None

    m_n_all, m_sum_all, m_sq_all = _side(m, mc, k)
    b_n_all, b_sum_all, b_sq_all = _side(b, bc, k)
    supported = np.flatnonzero((m_n_all >= min_support) & (b_n_all >= min_support))
    if supported.size < 2:
        return None
    tolerance = max(min_difference, _TIE_SLACK)
    m_n, m_sum = m_n_all[supported].astype(np.float64), m_sum_all[supported]
    b_n, b_sum = b_n_all[supported].astype(np.float64), b_sum_all[supported]
    m_acc, b_acc = m_sum / m_n, b_sum / b_n

    # crude effect on the supported rows; it and the all-rows aggregate set the direction
    m_total, b_total = float(m_n.sum()), float(b_n.sum())
    m_sup, b_sup = float(m_sum.sum()) / m_total, float(b_sum.sum()) / b_total
    sigma = _sign(m_sup - b_sup, tolerance)
    m_all, b_all = float(m.mean()), float(b.mean())
    if sigma == 0 or _sign(m_all - b_all, tolerance) != sigma:
        return None

    z = float(scipy_stats.norm.isf(alpha / 2))
    crude: dict[str, Any] = {
        "model": {"n": int(m_total), metric: m_sup},
        "baseline": {"n": int(b_total), metric: b_sup},
        "difference": m_sup - b_sup,
    }
    slice_or: list[float | None]
    if binary:
        pooled = mantel_haenszel(m_sum, m_n, b_sum, b_n, alpha=alpha)
        if pooled is None:
            return None
        if _sign(pooled["log_odds_ratio"], _TIE_SLACK) != -sigma:
            return None
        if _sign(pooled["risk_difference"], tolerance) != -sigma:
            return None
        odds = _crude_odds_ratio(float(m_sum.sum()), m_total, float(b_sum.sum()), b_total, z=z)
        low, high, crude_value, null = pooled["low"], pooled["high"], math.exp(odds["log_odds_ratio"]), 1.0
        crude |= {
            "odds_ratio": _finite(crude_value),
            "odds_ratio_ci": [_finite(v) for v in odds["interval"]],
            "p_value": odds["p_value"],
        }
        adjusted: dict[str, Any] = {
            "method": "mantel_haenszel",
            "odds_ratio": pooled["odds_ratio"],
            "odds_ratio_ci": [low, high],
            "se_log_odds_ratio": pooled["se_log_odds_ratio"],
            "p_value": pooled["p_value"],
            "cmh": {"statistic": pooled["cmh_statistic"], "p_value": pooled["cmh_p_value"]},
            "difference": pooled["risk_difference"],
        }
        m_wrong, b_wrong = m_n - m_sum, b_n - b_sum
        r = m_sum * b_wrong / (m_n + b_n)
        s = m_wrong * b_sum / (m_n + b_n)
        contribution = (r - s) / s.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            slice_or = [_finite(v) for v in (m_sum * b_wrong) / (m_wrong * b_sum)]
    else:
        m_var = _sample_variance(m_sq_all[supported], m_n)
        b_var = _sample_variance(b_sq_all[supported], b_n)
        weighted = _weighted_difference(m_acc, m_var, m_n, b_acc, b_var, b_n, z=z)
        if _sign(weighted["difference"], tolerance) != -sigma:
            return None
        low, high, crude_value, null = weighted["low"], weighted["high"], m_sup - b_sup, 0.0
        crude_se = math.sqrt(
            _pooled_variance(m_sq_all[supported], m_n, m_acc, m_sup) / m_total
            + _pooled_variance(b_sq_all[supported], b_n, b_acc, b_sup) / b_total
        )
        crude |= {
            "odds_ratio": None,
            "difference_ci": [crude_value - z * crude_se, crude_value + z * crude_se],
            "p_value": _two_sided_p(crude_value / crude_se) if crude_se > 0 else 0.0,
        }
        adjusted = {
            "method": "mantel_haenszel_weighted_difference",
            "difference": weighted["difference"],
            "difference_ci": [low, high],
            "se": weighted["se"],
            "p_value": weighted["p_value"],
        }
        w = m_n * b_n / (m_n + b_n)
        contribution = w * (m_acc - b_acc) / w.sum()
        slice_or = [None] * supported.size

    if not (crude_value > high if sigma > 0 else crude_value < low):
        return None
    status = "reversed" if (high < null if sigma > 0 else low > null) else "confounded"

    values = [_plain(labels[int(code)]) for code in supported]
    pull = -sigma * contribution
    top = int(np.argmax(pull))
    driver = {
        "slice": values[top],
        "share": float(pull[top] / pull[pull > 0].sum()),
        "effect": float(m_acc[top] - b_acc[top]),
        "odds_ratio": slice_or[top],
    }
    m_share, b_share = m_n / m.size, b_n / b.size
    per_slice = [
        {
            "value": values[i],
            "model": {"n": int(m_n[i]), metric: float(m_acc[i]), "share": float(m_share[i])},
            "baseline": {"n": int(b_n[i]), metric: float(b_acc[i]), "share": float(b_share[i])},
            "difference": float(m_acc[i] - b_acc[i]),
            "odds_ratio": slice_or[i],
            "contribution": float(contribution[i]),
        }
        for i in range(supported.size)
    ]
    reversed_slices = [
        values[i] for i in range(supported.size) if _sign(m_acc[i] - b_acc[i], tolerance) == -sigma
    ]
    return {
        "column": column,
        "metric": metric,
        "status": status,
        "alpha": alpha,
        "per_slice": per_slice,
        "aggregate": {
            "model": {"n": int(m.size), metric: m_all},
            "baseline": {"n": int(b.size), metric: b_all},
            "difference": m_all - b_all,
        },
        "crude": crude,
        "adjusted": adjusted,
        "driver": driver,
        "reversed_slices": reversed_slices,
        "unsupported_rows": {
            "model": int(m.size - m_total),
            "baseline": int(b.size - b_total),
        },
        "explanation": _comparison_explanation(
            column,
            metric,
            model_better_overall=(sigma > 0) == higher_is_better,
            status=status,
            alpha=alpha,
            crude=crude,
            adjusted=adjusted,
            values=values,
            reversed_slices=reversed_slices,
            driver=driver,
            m_share=m_share,
            b_share=b_share,
            m_acc=m_acc,
            b_acc=b_acc,
            pooled=(m_sum + b_sum) / (m_n + b_n),
            rows=m_n + b_n,
        ),
    }


def _sample_variance(squares: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sum of squared deviations over ``n - 1`` (0 for a single row)."""
    out = np.zeros(squares.shape, dtype=np.float64)
    np.divide(squares, n - 1, out=out, where=n > 1)
    return out


def _pooled_variance(within: np.ndarray, n: np.ndarray, means: np.ndarray, grand: float) -> float:
    """Sample variance of the slices' rows together (within plus between squares, over N - 1)."""
    total = float(n.sum())
    squares = float(within.sum() + (n * (means - grand) ** 2).sum())
    return squares / (total - 1) if total > 1 else 0.0


def _comparison_explanation(
    column: str,
    metric: str,
    *,
    model_better_overall: bool,
    status: str,
    alpha: float,
    crude: dict[str, Any],
    adjusted: dict[str, Any],
    values: list[Any],
    reversed_slices: list[Any],
    driver: dict[str, Any],
    m_share: np.ndarray,
    b_share: np.ndarray,
    m_acc: np.ndarray,
    b_acc: np.ndarray,
    pooled: np.ndarray,
    rows: np.ndarray,
) -> str:
    overall, within = ("better", "worse") if model_better_overall else ("worse", "better")
    level = f"{1 - alpha:.0%}"
    m_value, b_value = crude["model"][metric], crude["baseline"][metric]
    if adjusted["method"] == "mantel_haenszel":
        crude_effect = f"odds ratio {crude['odds_ratio']:.3g}" if crude["odds_ratio"] is not None else ""
        low, high = adjusted["odds_ratio_ci"]
        adjusted_effect = (
            f"Mantel-Haenszel odds ratio {adjusted['odds_ratio']:.3g}, {level} CI {low:.3g} to {high:.3g}"
        )
    else:
        crude_effect = f"difference {crude['difference']:.3g}"
        low, high = adjusted["difference_ci"]
        adjusted_effect = (
            f"Mantel-Haenszel weighted difference {adjusted['difference']:.3g}, "
            f"{level} CI {low:.3g} to {high:.3g}"
        )
    every = "every" if len(reversed_slices) == len(values) else f"{len(reversed_slices)} of {len(values)}"
    head = (
        f"the model is {overall} than the baseline overall ({metric} {m_value:.3g} against {b_value:.3g}"
        f"{'; ' + crude_effect if crude_effect else ''}) but {within} within {column} slices "
        f"({adjusted_effect}; {within} in {every} {column} slice{'s' if every != 'every' else ''})"
    )
    if status == "reversed":
        verdict = f"the within-slice effect is significant at alpha {alpha:g}"
    else:
        verdict = (
            f"the within-slice effect alone is not significant at alpha {alpha:g}, but the overall "
            f"comparison lies outside its interval: {column} confounds it"
        )
    # The slice the overall loser is most over-represented in: with two slices it is
    # necessarily the one that is harder for both sides.
    over = int(np.argmax(b_share - m_share)) if model_better_overall else int(np.argmax(m_share - b_share))
    rest = np.ones(len(values), dtype=bool)
    rest[over] = False
    rest_value = float((pooled[rest] * rows[rest]).sum() / rows[rest].sum())
    composition = (
        f"the two sides were evaluated on rows of different {column} composition: "
        f"model rows in {values[over]}: {m_share[over]:.1%}, baseline rows: {b_share[over]:.1%} "
        f"(pooled {metric} in {values[over]}: {pooled[over]:.3g}, in the other slices: {rest_value:.3g})"
    )
    top = values.index(driver["slice"])
    drive = (
        f"largest contribution to the reversal: {column} = {driver['slice']} ({driver['share']:.0%} of the "
        f"within-slice pull against the overall direction; {metric} {m_acc[top]:.3g} against "
        f"{b_acc[top]:.3g} there)"
    )
    return f"{head}; {verdict}. {composition[0].upper()}{composition[1:]}. {drive[0].upper()}{drive[1:]}."


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
