"""Base-rate trends: the error rising (or falling) along a numeric column's bins, over the whole batch.

When the error grows with ``amount`` everywhere, the top ``amount`` bin is a large,
clearly worse slice, and so is every slice inside it; ranked as slices they push out
whatever else is wrong. Such a column is reported once, as a trend, and the finder
measures slices on its bins against the rest of those bins (:mod:`.selection`).

Which columns are ordered: those named in ``ordered`` or, by default, those whose labels
(the null label ``None`` aside) are all ``"[low, high)"`` intervals or all numbers, dates or
times, as :func:`service.workers.slices.codes.slice_codes` labels a binned numeric column
or one with few distinct values. Codes are taken to be in increasing order of the value,
as ``slice_codes`` numbers them. A column needs at least 3 non-empty bins (not counting
the null bin) to have a trend.

The test: Cochran-Armitage's test for a linear trend in proportions for 0/1 errors, with
bin scores 0, 1, 2, ... over the non-empty bins,

    z = sum_b t_b (e_b - n_b m) / sqrt(v (sum_b n_b t_b^2 - (sum_b n_b t_b)^2 / N)),

``m`` and ``v`` the mean and (population) variance of the errors of the binned rows
(``v = m (1 - m)`` for 0/1 errors); for losses the same statistic is a z test of the
slope of the loss on the bin score. It equals ``r sqrt(N)``, ``r`` the row-level Pearson
correlation of bin score and error. Two-sided; Benjamini-Hochberg over the ordered columns
at ``alpha``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from schemas.slices import ErrorTrend
from service.workers.multiple_testing import benjamini_hochberg
from service.workers.slicefinder.columns import SliceColumns
from service.workers.slicefinder.hypotheses import BatchTotals
from service.workers.slicefinder.tables import ErrorTable

_INTERVAL = re.compile(r"^[\[(][^,]*,[^,]*[\])]$")
_ORDERED_TYPES = (int, float, datetime.date, datetime.time, datetime.timedelta)


@dataclass(frozen=True)
class ColumnTrend:
    """The trend test of one ordered column; ``levels`` its non-empty, non-null codes in order."""

    column: int
    levels: np.ndarray
    rows: np.ndarray
    total: np.ndarray
    z: float
    p_value: float
    q_value: float
    significant: bool
    binary: bool = True

    @property
    def increasing(self) -> bool:
        return self.z > 0

    def worse_half(self, card: int) -> np.ndarray:
        """Per code of the column: a level on the trend's worse side (the upper half when increasing)."""
        out = np.zeros(card, dtype=bool)
        mid = (self.levels.size - 1) / 2
        index = np.arange(self.levels.size)
        out[self.levels[index >= mid if self.increasing else index <= mid]] = True
        return out

    def is_level(self, card: int) -> np.ndarray:
        """Per code of the column: one of the trend's levels (not the null bin, not empty)."""
        out = np.zeros(card, dtype=bool)
        out[self.levels] = True
        return out

    def report(self, cols: SliceColumns) -> ErrorTrend:
        error = self.total / self.rows
        steps = np.diff(error) if self.increasing else -np.diff(error)
        return ErrorTrend(
            column=cols.names[self.column],
            direction="increasing" if self.increasing else "decreasing",
            bins=[cols.label(self.column, int(c)) for c in self.levels],
            n=[int(r) for r in self.rows],
            error=[float(x) for x in error],
            monotone=bool(np.all(steps >= 0)),
            statistic=self.z,
            p_value=self.p_value,
            q_value=self.q_value,
            test="cochran_armitage" if self.binary else "linear_trend",
        )


def ordered_columns(cols: SliceColumns, ordered: Collection[str] | None) -> list[int]:
    """Indices of the ordered columns: those named in ``ordered``, else those whose labels look numeric."""
    if ordered is not None:
        if isinstance(ordered, str):
            raise ValueError("ordered must be a collection of column names, not one string.")
        unknown = sorted(set(ordered) - set(cols.names))
        if unknown:
            raise ValueError(f"ordered names columns that are not slice columns: {unknown}.")
        return [j for j, name in enumerate(cols.names) if name in ordered]
    return [j for j, labels in enumerate(cols.labels) if _looks_ordered(labels)]


def _looks_ordered(labels: tuple[Any, ...]) -> bool:
    values = [v for v in labels if v is not None]
    if not values:
        return False
    if all(isinstance(v, str) and _INTERVAL.match(v) for v in values):
        return True
    return all(isinstance(v, _ORDERED_TYPES) and not isinstance(v, bool) for v in values)


def error_trends(
    table: ErrorTable, cols: SliceColumns, ordered: list[int], batch: BatchTotals, *, alpha: float
) -> list[ColumnTrend]:
    """The trend test of every ordered column with at least 3 non-empty bins; BH over them."""
    found = []
    for j in ordered:
        keys, stats = table.cells((j,))
        keep = np.array([cols.label(j, int(k)) is not None for k in keys], dtype=bool)
        levels, rows = keys[keep], stats.rows[keep].astype(np.float64)
        total, squares = stats.total[keep], stats.squares[keep]
        if levels.size < 3:
            continue
        n = rows.sum()
        mean = total.sum() / n
        variance = max(squares.sum() / n - mean * mean, 0.0)
        score = np.arange(levels.size, dtype=np.float64)
        spread = float(np.dot(rows, score * score) - np.dot(rows, score) ** 2 / n)
        statistic = float(np.dot(score, total - rows * mean))
        z = statistic / np.sqrt(variance * spread) if variance > 0 and spread > 0 else 0.0
        p = float(2 * special.ndtr(-abs(z)))
        found.append((j, levels, rows, total, z, p))
    if not found:
        return []
    q = benjamini_hochberg(np.array([f[5] for f in found]))
    return [
        ColumnTrend(j, levels, rows, total, z, p, float(qv), bool(qv <= alpha), binary=batch.binary)
        for (j, levels, rows, total, z, p), qv in zip(found, q, strict=True)
    ]
