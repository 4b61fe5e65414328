"""Which of the tested slices are reported, in which order, and where the others went.

Every slice with at least ``min_support`` rows was tested against the rest of the batch
(:mod:`.hypotheses`). A slice is then, in this order of precedence:

1. **significant**: worse than the rest with a p-value at most the cut-off ``alpha R / m``
   (``m`` slices tested). Benjamini-Hochberg takes ``R`` to be all its rejections; here
   ``R`` counts only the slices that end up qualified (6.) or listed as trend bins at
   that cut-off, lowered until it holds. A planted slice makes hundreds of its broader and
   narrower relatives significant too; as rejections they would loosen the cut-off for
   every noise slice, though none of them is reported. The cut-off is never looser than
   Benjamini-Hochberg's, and on pure noise it is the same.
2. **explained by a trend** (:mod:`.trends`): all its conditions are bins on the worse
   side of trending numeric columns (the overall trend *is* the effect); or it has other
   conditions too and is not significantly worse than the rest of its trend bins; or it
   narrows a significant slice ``A`` to trend bins ``T`` only and its error ratio to the
   rest of ``A`` is not significantly (and ``min_effect``) above the trend's own ratio,
   ``T`` against the rows outside ``T``: the trend in ``A`` is the trend everywhere;
3. **under min_effect**: its error is less than ``1 + min_effect`` times its *baseline*,
   the rest of the batch or, for a slice with conditions on trend bins and others,
   the rest of those bins (so that the trend does not count as its effect);
4. with ``distinct``, **explained by a broader** significant slice ``A`` (its conditions
   a subset): it is not significantly and ``min_effect`` worse than the rest of ``A``, so
   it only inherits ``A``'s effect;
5. with ``distinct``, **explained by a narrower** significant slice ``D`` that nothing else
   explains: ``D`` is significantly and ``min_effect`` worse than the rest of the slice,
   and that rest is not significantly and ``min_effect`` worse than the slice's baseline:
   the slice is bad only because it contains ``D`` (when ``D`` narrows it to trend bins,
   the rest is compared with the other rows outside those bins);
6. otherwise **qualified**, and ranked. While the ``top_k`` are filled, with ``distinct``, a
   slice that partly overlaps a better one already taken is **explained by the overlap**
   when, the rows of both set apart, it is no longer significantly and ``min_effect``
   worse than the rows of its baseline in neither.

"Significantly" in 2, 4, 5 and 6 is at the cut-off of 1: being distinct from a related
finding is a finding too. The tests are one-sided (Fisher's exact test for 0/1 errors,
Welch's t for losses; the trend-ratio comparison a z test of log ratios, delta method),
and read only sums of the slices' tables, never the rows.

Qualified slices are ranked by ``share^(1 - error_weight) x relative_effect``, the
relative effect being ``error / baseline - 1``: at ``error_weight = 0`` the share of
rows times how much worse they are (a whole batch twice as bad scores 1), at 1 the
severity alone. Then come the slices that are only trend bins on the worse side (the
"high amount" slice itself), marked, up to ``top_k`` in all.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import special

from schemas.slices import FoundSlice, SliceFinderSummary
from service.workers.multiple_testing import benjamini_hochberg
from service.workers.slicefinder.columns import SliceColumns
from service.workers.slicefinder.hypotheses import (
    BatchTotals,
    compare,
    minus,
    slice_p_values,
)
from service.workers.slicefinder.tables import CellStats, ErrorTable, SliceSet
from service.workers.slicefinder.trends import ColumnTrend


@dataclass(frozen=True)
class Options:
    alpha: float
    min_support: int
    min_effect: float
    error_weight: float
    distinct: bool
    top_k: int


@dataclass(frozen=True)
class Selection:
    slices: list[FoundSlice]
    summary: SliceFinderSummary


def select(
    tested: SliceSet,
    table: ErrorTable,
    cols: SliceColumns,
    batch: BatchTotals,
    trends: list[ColumnTrend],
    options: Options,
    *,
    under_min_support: int,
) -> Selection:
    """The reported slices, best first, and the summary of where the others went (module notes)."""
    alpha = options.alpha
    st = tested.stats
    p = slice_p_values(st, batch, above=alpha)
    q = benjamini_hochberg(p)
    rest = batch.rest(st)
    with np.errstate(divide="ignore", invalid="ignore"):
        worse = (rest.rows > 0) & (st.total / st.rows > rest.total / rest.rows)
    # Benjamini-Hochberg rejects p <= alpha k / m, k the number of rejections
    level = alpha * int(np.sum(q <= alpha)) / max(tested.size, 1)
    sig = np.flatnonzero(worse & (p <= level))
    s = _Significant(tested, table, cols, batch, sig, trends)
    tests = _Tests(s, options, level)
    # Benjamini-Hochberg's cut-off is alpha R / m for R rejections; R counts only the slices
    # that qualify at the cut-off, not their redundant relatives (lower it until it holds)
    active = np.ones(sig.size, dtype=bool)
    while True:
        found = tests.categorize(active, level)
        lower = alpha * max(found.qualified + len(found.trend_slices), 1) / max(tested.size, 1)
        if lower >= level or not active.any():
            break
        level = lower
        active = p[sig] <= level
    ranked: list[int] = []
    for i in tests.order:
        if found.category[i] != _QUALIFIED:
            continue
        if len(ranked) == options.top_k:
            break
        if options.distinct and any(s.overlap_explains(r, i, options, level) for r in ranked):
            found.category[i] = _OVERLAP
            continue
        ranked.append(i)
    chosen = (ranked + found.trend_slices)[: options.top_k]
    slices = [
        s.found(i, q=float(q[sig[i]]), p=float(p[sig[i]]), relative=tests.relative[i], score=tests.score[i])
        for i in chosen
    ]
    counts = {name: int(np.sum(found.category == code)) for code, name in enumerate(_CATEGORIES)}
    summary = SliceFinderSummary(
        tested=tested.size,
        under_min_support=under_min_support,
        significant=int(active.sum()),
        significance_level=level,
        under_min_effect=counts["under_min_effect"],
        explained_by_broader=counts["explained_by_broader"],
        explained_by_narrower=counts["explained_by_narrower"],
        explained_by_overlap=counts["explained_by_overlap"],
        explained_by_trend=counts["explained_by_trend"],
        qualified=counts["qualified"],
        reported=len(slices),
    )
    summary.why_fewer = why_fewer(summary, options, trend_listed=len(slices) - min(len(ranked), len(slices)))
    return Selection(slices, summary)


@dataclass
class _Categories:
    """Per significant slice, one of ``_TREND .. _QUALIFIED`` (``_NOT``: no longer significant); and
    the slices of trend bins only, on the trend's worse side and ``min_effect`` worse, best first."""

    category: np.ndarray
    trend_slices: list[int]

    @property
    def qualified(self) -> int:
        return int(np.sum(self.category == _QUALIFIED))


class _Tests:
    """Steps 2 to 5 of the module notes: the tests once, for the significant slices at the loosest
    cut-off; :meth:`categorize` for the slices still significant at a lower one."""

    def __init__(self, s: _Significant, options: Options, level: float) -> None:
        alpha, min_effect, binary, batch = options.alpha, options.min_effect, s.batch.binary, s.batch
        self.options = options
        full = (1 << s.level) - 1
        trend_only = s.on == full
        self.on_worse_side = trend_only & (s.worse == full)
        self.mixed = np.flatnonzero((s.on != 0) & ~trend_only)
        with np.errstate(divide="ignore", invalid="ignore"):
            base_error = s.base.total / s.base.rows
            relative = np.where(base_error > 0, s.error / base_error - 1, np.where(s.error > 0, np.inf, 0.0))
            self.relative = np.nan_to_num(relative, nan=0.0)
            self.score = (s.stats.rows / batch.n) ** (1 - options.error_weight) * self.relative
        self.effect = (self.relative > 0) & (self.relative >= min_effect)
        self.order = [int(i) for i in np.lexsort((s.key, s.combo_id, -self.score))]

        # Is a slice worse beyond what explains it? Against the rest of a broader slice (o),
        # the rest of its trend bins (mixed), the trend's own ratio (t).
        pairs = s.pairs()
        self.d, self.a = pairs.d, pairs.a
        inside, parent = s.stats.take(self.d), s.stats.take(self.a)
        parent_rest = minus(parent, inside)
        self.o = np.flatnonzero(pairs.trend_bins < 0)
        self.t = np.flatnonzero(pairs.trend_bins >= 0)
        o, t = self.o, self.t
        bins = s.tested.stats.take(pairs.trend_bins[t])
        outside_bins = batch.rest(bins)
        self.p_child = compare(inside.take(o), parent_rest.take(o), binary=binary, above=alpha)
        self.child_worse = worse_by(inside.take(o), parent_rest.take(o), min_effect)
        self.p_within = compare(s.stats.take(self.mixed), s.base.take(self.mixed), binary=binary, above=alpha)
        self.p_ratio, ratio = ratio_exceeds(
            inside.take(t), parent_rest.take(t), bins, outside_bins, binary=binary
        )
        self.ratio_worse = ratio >= 1 + min_effect
        # would the broader slice still be found without the narrower one's rows? Against its
        # baseline; narrowed to trend bins, against the other rows outside those bins
        self.rest_o = _Beyond(parent_rest.take(o), s.base.take(self.a[o]), binary, min_effect, level)
        others = minus(outside_bins, parent_rest.take(t))
        self.rest_t = _Beyond(parent_rest.take(t), others, binary, min_effect, level)

    def categorize(self, active: np.ndarray, level: float) -> _Categories:
        """Categories of the significant slices ``active`` (p-values at most ``level``).

        A slice counts as worse than what could explain it only at the discovery cut-off
        ``level`` itself (and by ``min_effect``): being distinct from a broader finding is a
        finding too, and many true differences (a planted slice against each of its broader
        relatives) would loosen a separate adjustment for the chance ones.
        """
        d, a, o, t, mixed = self.d, self.a, self.o, self.t, self.mixed
        on_o = active[d[o]] & active[a[o]]
        on_t = active[d[t]] & active[a[t]]
        on_m = active[mixed]
        o, t, mixed = o[on_o], t[on_t], mixed[on_m]
        child_beyond = (self.p_child[on_o] <= level) & self.child_worse[on_o]
        ratio_beyond = (self.p_ratio[on_t] <= level) & self.ratio_worse[on_t]
        within_beyond = self.p_within[on_m] <= level

        trend = self.on_worse_side.copy()
        trend[mixed[~within_beyond]] = True
        trend[d[t[~ratio_beyond]]] = True
        broader = np.zeros(active.size, dtype=bool)
        narrower = np.zeros(active.size, dtype=bool)
        if self.options.distinct:
            broader[d[o[~child_beyond]]] = True
            # a narrower slice explains a broader one only if nothing else explains it
            clean = np.ones(active.size, dtype=bool)
            clean[d[o[~child_beyond]]] = False
            clean[d[t[~ratio_beyond]]] = False
            clean[mixed[~within_beyond]] = False
            clean = clean[d]
            narrower[a[o[child_beyond & clean[o] & ~self.rest_o.at(level)[on_o]]]] = True
            narrower[a[t[ratio_beyond & clean[t] & ~self.rest_t.at(level)[on_t]]]] = True
        category = np.select(
            [~active, trend, ~self.effect, broader, narrower],
            [_NOT, _TREND, _EFFECT, _BROADER, _NARROWER],
            default=_QUALIFIED,
        )
        has_parent = np.zeros(active.size, dtype=bool)
        has_parent[d[active[d] & active[a]]] = True
        trend_slices = [
            i
            for i in self.order
            if active[i]
            and self.on_worse_side[i]
            and self.effect[i]
            and not (self.options.distinct and has_parent[i])
        ]
        return _Categories(category, trend_slices)


class _Beyond:
    """``inside`` significantly (p-value at most a level) and ``min_effect`` worse than ``outside``."""

    def __init__(
        self, inside: CellStats, outside: CellStats, binary: bool, min_effect: float, level: float
    ) -> None:
        self.p = compare(inside, outside, binary=binary, above=level)
        self.worse = worse_by(inside, outside, min_effect)

    def at(self, level: float) -> np.ndarray:
        return np.asarray((self.p <= level) & self.worse)


def worse_by(inside: CellStats, outside: CellStats, min_effect: float) -> np.ndarray:
    """``mean(inside)`` above ``mean(outside)`` and at least ``1 + min_effect`` times it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m1 = inside.total / inside.rows
        m0 = outside.total / outside.rows
        return np.asarray((m1 > m0) & (m1 >= (1 + min_effect) * m0), dtype=bool)


def beyond(
    inside: CellStats, outside: CellStats, *, binary: bool, options: Options, level: float
) -> np.ndarray:
    """``inside`` significantly (p-value at most ``level``) and ``min_effect`` worse than ``outside``."""
    p = compare(inside, outside, binary=binary, above=level)
    return np.asarray((p <= level) & worse_by(inside, outside, options.min_effect))


_TREND, _EFFECT, _BROADER, _NARROWER, _OVERLAP, _QUALIFIED = range(6)
_NOT = -1  # no longer significant at a lower cut-off
_CATEGORIES = (
    "explained_by_trend",
    "under_min_effect",
    "explained_by_broader",
    "explained_by_narrower",
    "explained_by_overlap",
    "qualified",
)


@dataclass(frozen=True)
class _Pairs:
    """Nested significant slices: ``d`` narrower, ``a`` broader (positions among the significant).

    ``trend_bins``: when ``d``'s extra conditions are all trend bins, the index (among the
    tested) of the slice of those bins; else -1.
    """

    d: np.ndarray
    a: np.ndarray
    trend_bins: np.ndarray


class _Significant:
    """The significant slices (positions ``0 .. m - 1``): conditions decoded, trend bins, baselines."""

    def __init__(
        self,
        tested: SliceSet,
        table: ErrorTable,
        cols: SliceColumns,
        batch: BatchTotals,
        sig: np.ndarray,
        trends: list[ColumnTrend],
    ) -> None:
        self.tested, self.table, self.cols, self.batch, self.sig = tested, table, cols, batch, sig
        self._tables: dict[tuple[int, ...], tuple[np.ndarray, CellStats]] = {}
        self.trending = {t.column: t for t in trends if t.significant}
        self.combo_id = tested.combo_id[sig]
        self.key = tested.keys[sig]
        self.level = np.array([len(c) for c in tested.combos], dtype=np.int64)[self.combo_id]
        self.stats = tested.stats.take(sig)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.error = self.stats.total / self.stats.rows
        # bit i: condition i is a bin of a trending column (on its worse side)
        self.on = np.zeros(sig.size, dtype=np.int64)
        self.worse = np.zeros(sig.size, dtype=np.int64)
        self.groups = [
            (int(c), np.flatnonzero(self.combo_id == c), *tested.values(sig[self.combo_id == c]))
            for c in np.unique(self.combo_id)
        ]
        for _, at, combo, values in self.groups:
            for i, j in enumerate(combo):
                t = self.trending.get(j)
                if t is not None:
                    card = cols.cards[j]
                    self.on[at] |= t.is_level(card)[values[i]].astype(np.int64) << i
                    self.worse[at] |= t.worse_half(card)[values[i]].astype(np.int64) << i
        # baseline: the rest of the batch, or of the slice's trend bins when it has other conditions
        self.base = batch.rest(self.stats)
        self.bins = np.full(sig.size, -1, dtype=np.intp)  # index (among the tested) of those bins
        full = (1 << self.level) - 1
        for _, at, combo, values in self.groups:
            for bits in np.unique(self.on[at]):
                if bits == 0 or bits == full[at[0]]:
                    continue
                rows = at[self.on[at] == bits]
                members = [i for i in range(len(combo)) if bits >> i & 1]
                self.bins[rows] = self._index(combo, values, members, self.on[at] == bits)
        has = np.flatnonzero(self.bins >= 0)
        if has.size:
            base = minus(tested.stats.take(self.bins[has]), self.stats.take(has))
            for field, part in zip(self.base, base, strict=True):
                field[has] = part

    def _index(
        self, combo: tuple[int, ...], values: tuple[np.ndarray, ...], members: list[int], rows: np.ndarray
    ) -> np.ndarray:
        """Index among the tested of the sub-slices on ``combo[members]`` of the slices ``rows``."""
        sub = tuple(combo[i] for i in members)
        keys = np.ravel_multi_index(
            tuple(values[i][rows] for i in members), tuple(self.cols.cards[j] for j in sub)
        )
        return self.tested.find(sub, np.asarray(keys, dtype=np.int64))

    def pairs(self) -> _Pairs:
        position = np.full(self.tested.size, -1, dtype=np.intp)
        position[self.sig] = np.arange(self.sig.size)
        d_parts, a_parts, bins_parts = [], [], []
        for _, at, combo, values in self.groups:
            every = np.ones(at.size, dtype=bool)
            for r in range(1, len(combo)):
                for members in itertools.combinations(range(len(combo)), r):
                    found = self._index(combo, values, list(members), every)
                    a = np.where(found >= 0, position[found], -1)
                    ok = np.flatnonzero(a >= 0)
                    if ok.size == 0:
                        continue
                    extra = [i for i in range(len(combo)) if i not in members]
                    mask = sum(1 << i for i in extra)
                    bins = np.full(ok.size, -1, dtype=np.intp)
                    by_trend = (self.on[at[ok]] & mask) == mask
                    if by_trend.any():
                        bins[by_trend] = self._index(combo, values, extra, ok[by_trend])
                    d_parts.append(at[ok])
                    a_parts.append(a[ok])
                    bins_parts.append(bins)
        if not d_parts:
            empty = np.zeros(0, dtype=np.intp)
            return _Pairs(empty, empty, empty)
        return _Pairs(np.concatenate(d_parts), np.concatenate(a_parts), np.concatenate(bins_parts))

    def _group(self, i: int) -> tuple[int, np.ndarray, tuple[int, ...], tuple[np.ndarray, ...]]:
        return next(g for g in self.groups if g[0] == self.combo_id[i])

    def codes(self, i: int, members: list[int] | None = None) -> dict[int, int]:
        """Slice ``i``'s conditions as column -> code (only ``members`` of its combination if given)."""
        _, at, combo, values = self._group(i)
        row = int(np.flatnonzero(at == i)[0])
        chosen = range(len(combo)) if members is None else members
        return {combo[m]: int(values[m][row]) for m in chosen}

    def trend_part(self, i: int) -> dict[int, int] | None:
        """The conditions of ``i`` on trend bins, when it has others too (its baseline is their rest)."""
        on, level = int(self.on[i]), int(self.level[i])
        if on == 0 or on == (1 << level) - 1:
            return None
        return self.codes(i, [m for m in range(level) if on >> m & 1])

    def stats_of(self, conditions: dict[int, int]) -> CellStats:
        """Sums of the rows meeting ``conditions`` (column -> code), from the combination's table."""
        combo = tuple(sorted(conditions))
        if combo not in self._tables:
            self._tables[combo] = self.table.cells(combo)
        keys, stats = self._tables[combo]
        key = np.ravel_multi_index(
            tuple(conditions[j] for j in combo), tuple(self.cols.cards[j] for j in combo)
        )
        pos = int(np.searchsorted(keys, key))
        if pos < keys.size and keys[pos] == key:
            return stats.take(np.array([pos]))
        return CellStats(np.zeros(1, np.int64), np.zeros(1), np.zeros(1), np.zeros(1))

    def overlap_explains(self, r: int, i: int, options: Options, level: float) -> bool:
        """Whether slice ``i``, set apart from the better reported slice ``r`` it partly overlaps, is no
        longer significantly and ``min_effect`` worse than its baseline (set apart from ``r`` too)."""
        ci, cr = self.codes(i), self.codes(r)
        if any(ci[j] != cr[j] for j in ci.keys() & cr.keys()):
            return False  # disjoint
        if ci.items() <= cr.items() or cr.items() <= ci.items():
            return False  # nested: the broader and narrower rules had their say
        both = self.stats_of(ci | cr)
        if both.rows[0] == 0:
            return False
        mine = self.stats.take(np.array([i]))
        theirs = self.stats.take(np.array([r]))
        bins = self.trend_part(i)
        if bins is None:  # the rows in neither
            base = minus(minus(self.batch.rest(mine), theirs), _negate(both))
        else:  # the rows of i's trend bins in neither
            theirs_in_bins = (
                self.stats_of(cr | bins)
                if all(cr.get(j, v) == v for j, v in bins.items())
                else CellStats(np.zeros(1, np.int64), np.zeros(1), np.zeros(1), np.zeros(1))
            )
            base = minus(minus(minus(self.stats_of(bins), mine), theirs_in_bins), _negate(both))
        left = minus(mine, both)
        return not bool(beyond(left, base, binary=self.batch.binary, options=options, level=level)[0])

    def conditions(self, i: int, members: list[int] | None = None) -> dict[str, object]:
        return {self.cols.names[j]: self.cols.label(j, v) for j, v in self.codes(i, members).items()}

    def found(self, i: int, *, q: float, p: float, relative: float, score: float) -> FoundSlice:
        n = int(self.stats.rows[i])
        total = float(self.stats.total[i])
        error = total / n
        rest_error = (self.batch.total - total) / (self.batch.n - n)
        base_rows, base_total = float(self.base.rows[i]), float(self.base.total[i])
        base_error = base_total / base_rows if base_rows > 0 else None
        combo = self.tested.combos[int(self.combo_id[i])]
        full = (1 << len(combo)) - 1
        bins = self.trend_part(i)
        within = (
            None if bins is None else {self.cols.names[j]: self.cols.label(j, v) for j, v in bins.items()}
        )
        finite = bool(np.isfinite(relative))
        return FoundSlice(
            conditions=self.conditions(i),
            n=n,
            error=error,
            rest_error=rest_error,
            effect_size=error - rest_error,
            p_value=p,
            significant=True,
            q_value=q,
            baseline_error=base_error,
            compared_within=within,
            relative_effect=float(relative) if finite else None,
            excess=None if base_error is None else n * (error - base_error),
            score=float(score) if finite else None,
            explained_by_trend=[self.cols.names[j] for j in combo] if int(self.worse[i]) == full else None,
        )


def ratio_exceeds(
    inside: CellStats, rest: CellStats, bins: CellStats, outside_bins: CellStats, *, binary: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p of ``mean(inside) / mean(rest) > mean(bins) / mean(outside_bins)``; that ratio of ratios.

    A z test of the difference of log ratios, each log mean's variance by the delta
    method, ``s^2 / (n m^2)`` (for 0/1 errors ``1/e - 1/n``, with half an error and one row
    added to each group so that an empty count has a finite log).
    """
    logs, variances = [], []
    for part in (inside, rest, bins, outside_bins):
        n = part.rows.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if binary:
                n = n + 1.0
                m = (part.total + 0.5) / n
                var = (1 - m) / (n * m)
            else:
                m = part.total / n
                var = np.maximum(part.squares / n - m * m, 0) / (n * m * m)
            logs.append(np.log(m))
        variances.append(var)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = logs[0] - logs[1] - logs[2] + logs[3]
        z = log_ratio / np.sqrt(sum(variances))
        p = np.nan_to_num(special.ndtr(-z), nan=1.0)
        return p, np.nan_to_num(np.exp(log_ratio), nan=0.0)


def why_fewer(summary: SliceFinderSummary, options: Options, *, trend_listed: int) -> str | None:
    """A sentence on why fewer than ``top_k`` slices came back, from the counts; None if they did not."""
    if summary.reported >= options.top_k:
        return None
    if summary.tested == 0:
        return (
            f"No slice has min_support = {options.min_support} rows, so none was tested "
            f"({_count(summary.under_min_support, 'smaller slice')} not tested)."
        )
    qualified = _count(summary.qualified, "slice")
    text = f"{summary.reported} of top_k = {options.top_k} returned: {qualified} qualified"
    if trend_listed:
        text += f", then {_count(trend_listed, 'slice')} of trend bins"
    text += f". Of {_count(summary.tested, 'slice')} with at least min_support = {options.min_support} rows"
    if summary.under_min_support:
        text += f" ({summary.under_min_support:,} smaller ones not tested)"
    text += f", {summary.significant:,} {_were(summary.significant)} significantly worse than the rest"
    if summary.significant:
        text += f" (FDR alpha = {options.alpha:g}: p <= {summary.significance_level:.2g})"
    reasons = [
        (
            summary.under_min_effect,
            f"less than min_effect = {options.min_effect:.0%} worse than their baseline",
        ),
        (summary.explained_by_broader, "no worse than the rest of a broader significant slice"),
        (summary.explained_by_narrower, "bad only through a narrower significant slice"),
        (
            summary.explained_by_overlap,
            "no longer worse once the rows of a better reported slice are set apart",
        ),
        (summary.explained_by_trend, "explained by a trend of a numeric column (see trends)"),
    ]
    parts = [f"{count:,} {_were(count)} {why}" for count, why in reasons if count]
    if parts:
        text += "; of those, " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text + "."


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def _negate(stats: CellStats) -> CellStats:
    return CellStats(-stats.rows, -stats.total, -stats.squares, stats.maximum)
