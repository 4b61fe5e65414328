"""Is a slice worse than the rest of the batch? One-sided tests on sums, and Benjamini-Hochberg.

Every test is vectorized over slices and reads only sums (rows, errors, squared
errors) of the slice and of the whole batch; the rest is the difference.

* 0/1 errors: Fisher's exact test, ``H1: error(slice) > error(rest)``: given the
  batch's ``E`` errors, the slice's count is hypergeometric, ``p = P(X >= x)``.
* Losses: Welch's t test on the means, same alternative.

One-sided because the finder looks for where the model does *worse*; a slice
that is better than the rest gets a p-value near 1.

Why not the two-proportion z test: the smallest slices the search tests, with
a rare error, have a right-skewed count whose tail the normal curve badly
understates (30 rows with 6 errors at a 5% rate: z gives p = 8e-5, the exact tail
is 3e-3), and with hundreds of slices tested that tail is exactly where
Benjamini-Hochberg's threshold lies: on pure noise, 5 of 30 batches had a
"significant" slice with z, against the 1.5 that alpha = 0.05 allows. On large
slices the two agree. For losses, right skew makes the one-sided Welch test
conservative, not liberal.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import special

from schemas.slices import FoundSlice
from service.workers.slicefinder.tables import CellStats

TestName = Literal["fisher_exact", "welch_t"]
# Terms of a hypergeometric tail summed per vectorized step.
_TERMS_PER_STEP = 32


class BatchTotals:
    """Sums over the whole batch, the reference each slice is compared with ("the rest")."""

    def __init__(self, errors: np.ndarray, *, binary: bool) -> None:
        self.n = int(errors.size)
        self.total = float(errors.sum())
        self.squares = self.total if binary else float(np.dot(errors, errors))
        self.binary = binary
        self.mean = self.total / self.n

    @property
    def test(self) -> TestName:
        return "fisher_exact" if self.binary else "welch_t"

    def rest(self, cells: CellStats) -> CellStats:
        """Sums of the rows outside each of ``cells``."""
        return CellStats(
            self.n - cells.rows,
            self.total - cells.total,
            self.squares - cells.squares,
            np.zeros(cells.rows.size),
        )


def minus(a: CellStats, b: CellStats) -> CellStats:
    """Sums of the rows of ``a`` that are not in ``b`` (``b``'s rows a subset of ``a``'s)."""
    return CellStats(a.rows - b.rows, a.total - b.total, a.squares - b.squares, np.zeros(a.rows.size))


def slice_p_values(cells: CellStats, batch: BatchTotals, *, above: float | None = None) -> np.ndarray:
    """One-sided p-values of ``error(slice) > error(rest)``; 1 where the rest is empty or too small.

    With ``above``, a p-value known to exceed it may be returned as a lower bound that
    exceeds it (see :func:`hypergeom_sf`); every p-value at or below ``above`` is exact.
    """
    return compare(cells, batch.rest(cells), binary=batch.binary, above=above)


def compare(inside: CellStats, outside: CellStats, *, binary: bool, above: float | None = None) -> np.ndarray:
    """One-sided p-values of ``mean(inside) > mean(outside)``, two disjoint sets of rows per entry.

    0/1 errors: Fisher's exact test on the 2x2 table (errors and non-errors, inside and
    outside), ``P(X >= x)`` with ``X`` hypergeometric given the margins. Losses: Welch's
    t test on the means. 1 where either side is empty (or, for Welch, has one row).
    """
    n1 = np.asarray(inside.rows, dtype=np.float64)
    n2 = np.asarray(outside.rows, dtype=np.float64)
    p = np.ones(n1.size)
    if binary:
        ok = (n1 > 0) & (n2 > 0)
        e1 = np.rint(inside.total[ok])
        e2 = np.rint(outside.total[ok])
        p[ok] = hypergeom_sf(e1, n1[ok] + n2[ok], e1 + e2, n1[ok], above=above)
        return p
    ok = (n1 > 1) & (n2 > 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = inside.total / n1
        m2 = outside.total / n2
        # sums of squares about the mean; clipped, as cancellation can leave -1e-12
        v1 = np.maximum(inside.squares - n1 * m1 * m1, 0) / (n1 - 1)
        v2 = np.maximum(outside.squares - n2 * m2 * m2, 0) / (n2 - 1)
        a1, a2 = v1 / n1, v2 / n2
        se = np.sqrt(a1 + a2)
        df = (a1 + a2) ** 2 / (a1 * a1 / (n1 - 1) + a2 * a2 / (n2 - 1))
        t = (m1 - m2) / se
        p = np.where(ok & (se > 0), special.stdtr(df, -t), p)
    # no spread on either side: the means differ for certain, or not at all
    p = np.where(ok & (se == 0) & (m1 > m2), 0.0, p)
    return np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)


def hypergeom_sf(
    x: np.ndarray,
    population: float | np.ndarray,
    successes: float | np.ndarray,
    draws: np.ndarray,
    *,
    above: float | None = None,
) -> np.ndarray:
    """``P(X >= x)`` for ``X ~ Hypergeometric(population, successes, draws)``, vectorized over all four.

    scipy's ``hypergeom.sf`` is exact but, below ~10^5 rows, evaluates each term by
    prime factorisation: 0.25 ms per slice, seconds for the thousands of slices a
    search tests. Here each tail is summed from its start in the direction the
    terms shrink, ``_TERMS_PER_STEP`` terms at a time as cumulative products of the
    ratio of consecutive terms, until they no longer add to the sum; the start is
    ``exp`` of a log-pmf from ``betaln`` (relative error ~1e-9 at 10^6 rows). A tail
    starting at or below the mode is taken as ``1 - P(X <= x - 1)``. The ratios
    vanish at the ends of the support, so no term outside it is ever added.

    ``above``: stop a tail as soon as the p-value is known to exceed ``above`` and return
    a lower bound of it that does (most slices of a search are far from significant, and
    summing their long central tails is most of the cost). An upper tail's partial sum
    is such a bound; for ``1 - P(X <= x - 1)`` the rest of the lower tail is at most a
    geometric series in the last ratio of consecutive terms, as the pmf is log-concave
    and those ratios only shrink away from the mode; and for ``x`` at most the floor of
    the mean, ``P(X >= x) >= 1/2``: the median of a hypergeometric is the floor or the
    ceiling of its mean.
    """
    x, n, big_n, big_k = (
        np.array(a, dtype=np.float64).reshape(-1)
        for a in np.broadcast_arrays(
            np.asarray(x, dtype=np.float64),
            np.asarray(draws, dtype=np.float64),
            np.asarray(population, dtype=np.float64),
            np.asarray(successes, dtype=np.float64),
        )
    )
    shape = np.broadcast_shapes(np.shape(x), np.shape(draws), np.shape(population), np.shape(successes))
    lo = np.maximum(0.0, n + big_k - big_n)
    hi = np.minimum(n, big_k)
    mode = np.floor((n + 1) * (big_k + 1) / (big_n + 2))
    upper = x > mode
    k = np.clip(np.where(upper, x, x - 1), lo, hi)
    inside = (x > lo) & (x <= hi)
    with np.errstate(invalid="ignore"):  # outside the support; replaced below
        term = np.exp(_log_choose(big_k, k) + _log_choose(big_n - big_k, n - k) - _log_choose(big_n, n))
    term = np.nan_to_num(term, nan=0.0)
    tail = term.copy()
    bound = np.full(x.size, np.nan)  # lower bounds of the p-values of the tails stopped early
    offsets = np.arange(_TERMS_PER_STEP, dtype=np.float64)
    active = np.flatnonzero(inside & (term > 0))
    if above is not None:
        done = upper[active] & (tail[active] > above)
        bound[active[done]] = tail[active[done]]
        active = active[~done]
        if above < 0.5:
            # the hypergeometric is a sum of independent Bernoullis (Vatutin & Mikhailov 1982), whose
            # median is the floor or the ceiling of the mean (Jogdeo & Samuels 1968): P(X >= x) >= 1/2
            # for x at most the floor of the mean
            low = x[active] <= np.floor(n[active] * big_k[active] / big_n[active])
            bound[active[low]] = 0.5
            active = active[~low]
    while active.size:
        up = upper[active, None]
        step = np.where(up, 1.0, -1.0)
        ka = k[active, None] + step * offsets  # the k each ratio steps from
        na = n[active, None]
        kk = big_k[active, None]
        nn = big_n[active, None]
        with np.errstate(divide="ignore", invalid="ignore"):  # the branch np.where drops
            ratio = np.where(
                up,
                (kk - ka) * (na - ka) / ((ka + 1) * (nn - kk - na + ka + 1)),
                ka * (nn - kk - na + ka) / ((kk - ka + 1) * (na - ka + 1)),
            )
        ratio = np.maximum(np.nan_to_num(ratio, nan=0.0, posinf=0.0), 0.0)
        terms = term[active, None] * np.cumprod(ratio, axis=1)
        tail[active] += terms.sum(axis=1)
        term[active] = terms[:, -1]
        k[active] += step[:, 0] * _TERMS_PER_STEP
        keep = term[active] > tail[active] * 1e-17
        if above is not None:
            last = ratio[:, -1]
            with np.errstate(divide="ignore", invalid="ignore"):
                rest = np.where(last < 1, term[active] * last / (1 - last), np.inf)
            low = np.where(up[:, 0], tail[active], 1.0 - (tail[active] + rest))
            done = keep & (low > above)
            bound[active[done]] = low[done]
            keep &= ~done
        active = active[keep]
    p = np.where(upper, tail, 1.0 - tail)
    p = np.where(np.isnan(bound), p, bound)
    p = np.where(x <= lo, 1.0, np.where(x > hi, 0.0, p))
    return np.clip(p, 0.0, 1.0).reshape(shape)


def _log_choose(a: float | np.ndarray, b: np.ndarray) -> np.ndarray:
    """``log C(a, b)`` via ``betaln``, accurate for large ``a`` (no cancelling log-gammas)."""
    return np.asarray(-np.log(a + 1) - special.betaln(a - b + 1, b + 1))


def found_slices(
    conditions: list[dict[str, object]],
    stats: CellStats,
    batch: BatchTotals,
    p_values: np.ndarray,
    q_values: np.ndarray,
    *,
    alpha: float,
) -> list[FoundSlice]:
    """The reported slices: error against the rest, effect size, p-value and the BH verdict."""
    out = []
    for i, cond in enumerate(conditions):
        n = int(stats.rows[i])
        total = float(stats.total[i])
        rest_n = batch.n - n
        error = total / n
        rest_error = (batch.total - total) / rest_n if rest_n > 0 else float("nan")
        relative = error / rest_error - 1 if rest_error > 0 else None
        out.append(
            FoundSlice(
                conditions=cond,
                n=n,
                error=error,
                rest_error=rest_error,
                effect_size=error - rest_error,
                p_value=float(p_values[i]),
                significant=bool(q_values[i] <= alpha),
                q_value=float(q_values[i]),
                baseline_error=rest_error,
                relative_effect=relative,
                excess=n * (error - rest_error),
            )
        )
    return out


def error_ratios(stats: CellStats, batch: BatchTotals) -> list[float | None]:
    """Slice error over rest error, ``None`` where the rest has no error."""
    out: list[float | None] = []
    for n, total in zip(stats.rows.tolist(), stats.total.tolist(), strict=True):
        rest = (batch.total - total) / (batch.n - n) if batch.n > n else 0.0
        out.append(total / n / rest if rest > 0 else None)
    return out
