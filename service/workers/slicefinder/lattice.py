"""The slice lattice: every conjunction of ``column == value`` with at least ``min_support`` rows, tested.

Level 1 holds every ``column == value`` slice; level ``L + 1`` the conjunctions of
``L + 1`` conditions on different columns. A slice has at most the rows of each of its
broader slices, so support is anti-monotone and the search is SliceLine's level-wise
one (Sagadeeva & Boehm, SIGMOD 2021) with support as the only pruning: a combination of
columns is evaluated only when each of its sub-combinations has a slice with
``min_support`` rows. Every slice with ``min_support`` rows is tested, and
Benjamini-Hochberg runs over all of them: the family depends on the columns and
``min_support`` only, not on the errors, and ``min_support`` is exactly the floor of
what can be reported.

Why not SliceLine's score pruning: its score, ``w (e / (s m) - 1) - (1 - w) (n / s - 1)``,
must be positive for a slice to be reported, and at ``w = 0.95`` that takes about 5% of
the rows at twice the error rate whatever ``min_support`` says; a slice of 436 rows of
200,000 at 4.4 times the error (Fisher p = 2e-82) scored below 0 and was never seen.
And a score threshold from the top-k would make the tested family, hence every
q-value, depend on the ranking.

A combination's table is one reduction of the joint cells of
:class:`~service.workers.slicefinder.tables.ErrorTable`, never of the rows.

Cost (1M rows, 6 columns of 2, 3, 5, 10, 20, 50 values, 32,131 slices to depth 3,
``benchmarks/bench_slicefinder.py``, 2-core box): see :mod:`service.workers.slicefinder`.
It grows with the number of column combinations, ``C(k, L)`` at depth ``L`` for ``k``
columns, each one reduction of the joint cells (at most one per row).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from schemas.slices import SliceFinderResult, SliceFinderSummary
from service.workers.slicefinder.columns import ColumnInput, check_columns, check_errors
from service.workers.slicefinder.hypotheses import BatchTotals
from service.workers.slicefinder.selection import Options, select
from service.workers.slicefinder.tables import ErrorTable, SliceSet
from service.workers.slicefinder.trends import error_trends, ordered_columns

#: default ``min_effect``: a slice must have at least 25% more error than its baseline
DEFAULT_MIN_EFFECT = 0.25
#: default ``error_weight``: rank by impact, share of rows x relative increase of the error
DEFAULT_ERROR_WEIGHT = 0.0


def find_slices(
    errors: np.ndarray,
    columns: Sequence[ColumnInput],
    *,
    max_conditions: int = 2,
    top_k: int = 10,
    min_support: int = 30,
    alpha: float = 0.05,
    min_effect: float = DEFAULT_MIN_EFFECT,
    error_weight: float = DEFAULT_ERROR_WEIGHT,
    distinct: bool = True,
    ordered: Collection[str] | None = None,
) -> SliceFinderResult:
    """The ``top_k`` slices where the model does worst: conjunctions of ``column == value``.

    Parameters
    ----------
    errors : ndarray of shape (n,)
        Per-row error: 0/1 (wrong or right) or a loss >= 0.
    columns : list of (name, codes, labels)
        Slice columns: ``codes`` of shape (n,), integers indexing ``labels``; numeric
        columns binned (:func:`service.workers.slices.codes.slice_codes`).
    max_conditions : int, default=2
        Most conditions in a slice (the lattice depth).
    top_k : int, default=10
        Most slices reported.
    min_support : int, default=30
        Fewest rows of a slice that is tested or reported; every slice with that many
        rows (and at most ``max_conditions`` conditions) is tested.
    alpha : float, default=0.05
        Benjamini-Hochberg false discovery rate over every slice tested, and the level
        of the pairwise tests that decide which slices explain others.
    min_effect : float, default=0.25
        Smallest relative increase of the error over the slice's baseline worth
        reporting: 0.25 is 25% more errors than the rest of the batch. 0 reports every
        significant slice.
    error_weight : float, default=0.0
        How the ranking weighs error against size: slices are ranked by
        ``share^(1 - error_weight) x relative_effect``. 0 ranks by impact (share of rows
        times relative increase of the error), 1 by the relative increase alone.
        Changes the order only, not which slices qualify.
    distinct : bool, default=True
        Leave out a slice that only inherits a broader significant slice's effect (not
        significantly worse than the rest of it) or is bad only through a narrower
        significant one (the rest of it is not worse than its baseline).
    ordered : collection of str, optional
        The numeric (ordered) columns, whose codes are in increasing order of value,
        tested for a trend of the error. Default: the columns whose labels are all
        ``"[low, high)"`` intervals or all numbers, dates or times (the null label
        aside), as ``slice_codes`` labels numeric columns.

    Returns
    -------
    SliceFinderResult
        ``method="lattice"``; ``slices`` best first (the qualified, then the slices that
        are only bins of a trending column, marked ``explained_by_trend``);
        ``candidates_tested``, the slices tested; ``trends``, the ordered columns with a
        significant trend of the error; ``summary``, how many slices were tested, were
        significant and were set aside for which reason, with ``why_fewer`` when fewer
        than ``top_k`` came back; ``details``, the parameters and per level the column
        combinations evaluated, the non-empty cells, the slices tested and those under
        ``min_support``.

    Notes
    -----
    Each slice is compared with the rest of the batch by a one-sided test (Fisher's
    exact for 0/1 errors, Welch's t for losses). A significant slice is set aside when
    the trend of a numeric column explains it, when it is less than ``min_effect``
    worse than its baseline, or (``distinct``) when a broader or narrower significant
    slice explains it; the rest are ranked by ``score``
    (:mod:`service.workers.slicefinder.selection` has the rules).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.integers(0, 4, 20_000), rng.integers(0, 5, 20_000)
    >>> errors = (rng.random(20_000) < np.where((a == 1) & (b == 2), 0.3, 0.05)).astype(float)
    >>> result = find_slices(errors, [("a", a, list("wxyz")), ("b", b, list("pqrst"))])
    >>> [s.conditions for s in result.slices]
    [{'a': 'x', 'b': 'r'}]
    """
    e = check_errors(errors)
    cols = check_columns(columns, n=e.size)
    _check_params(max_conditions, top_k, min_support, alpha, min_effect, error_weight)
    ordered_idx = ordered_columns(cols, ordered)
    binary = bool(np.all((e == 0) | (e == 1)))
    batch = BatchTotals(e, binary=binary)
    depth = min(max_conditions, len(cols.names))
    options = Options(alpha, min_support, min_effect, error_weight, distinct, top_k)
    details: dict[str, Any] = {
        "max_conditions": max_conditions,
        "min_support": min_support,
        "alpha": alpha,
        "min_effect": min_effect,
        "error_weight": error_weight,
        "distinct": distinct,
        "ordered_columns": [cols.names[j] for j in ordered_idx],
        "overall_error": batch.mean,
        "test": batch.test,
        "alternative": "slice error greater than the rest",
    }
    table = ErrorTable(e, cols, binary=binary)
    tested, levels, under = enumerate_slices(table, depth, min_support)
    details["levels"] = levels
    if batch.total == 0:
        summary = SliceFinderSummary(
            tested=tested.size,
            under_min_support=under,
            significant=0,
            significance_level=0.0,
            under_min_effect=0,
            explained_by_broader=0,
            explained_by_narrower=0,
            explained_by_overlap=0,
            explained_by_trend=0,
            qualified=0,
            reported=0,
            why_fewer="The batch has no errors: no slice can be worse than the rest.",
        )
        return SliceFinderResult(
            method="lattice", slices=[], candidates_tested=tested.size, summary=summary, details=details
        )
    trends = error_trends(table, cols, ordered_idx, batch, alpha=alpha)
    chosen = select(tested, table, cols, batch, trends, options, under_min_support=under)
    return SliceFinderResult(
        method="lattice",
        slices=chosen.slices,
        candidates_tested=tested.size,
        trends=[t.report(cols) for t in trends if t.significant],
        summary=chosen.summary,
        details=details,
    )


def enumerate_slices(
    table: ErrorTable, depth: int, min_support: int
) -> tuple[SliceSet, list[dict[str, int]], int]:
    """Every slice of at most ``depth`` conditions with ``min_support`` rows, level by level.

    Returns the slices, per level ``{"level", "combinations", "cells", "tested",
    "under_min_support"}``, and the number of non-empty slices under ``min_support``
    whose broader slices all have ``min_support`` rows (smaller slices below those are
    not counted again).
    """
    cards = table.cards
    tested = SliceSet(cards)
    own: dict[tuple[int, ...], np.ndarray] = {}  # keys of each combination's tested slices
    levels = []
    under_total = 0
    for level in range(1, depth + 1):
        info = {"level": level, "combinations": 0, "cells": 0, "tested": 0, "under_min_support": 0}
        for combo in itertools.combinations(range(len(cards)), level):
            parents = [combo[:i] + combo[i + 1 :] for i in range(level)] if level > 1 else []
            if any(parent not in own for parent in parents):
                continue  # a sub-combination has no slice with min_support rows: nor has this one
            keys, stats = table.cells(combo)
            big = stats.rows >= min_support
            small = np.flatnonzero(~big)
            if parents and small.size:
                # count only the small slices whose broader slices were all tested
                digits = np.unravel_index(keys[small], tuple(cards[j] for j in combo))
                frontier = np.ones(small.size, dtype=bool)
                for drop, parent in enumerate(parents):
                    pkey = np.ravel_multi_index(
                        digits[:drop] + digits[drop + 1 :], tuple(cards[j] for j in parent)
                    )
                    pos = np.minimum(np.searchsorted(own[parent], pkey), own[parent].size - 1)
                    frontier &= own[parent][pos] == pkey
                n_small = int(frontier.sum())
            else:
                n_small = int(small.size)
            info["combinations"] += 1
            info["cells"] += int(keys.size)
            info["tested"] += int(big.sum())
            info["under_min_support"] += n_small
            if big.any():
                own[combo] = keys[big]
                tested.add(combo, keys[big], stats.take(big))
        under_total += info["under_min_support"]
        levels.append(info)
    tested.freeze()
    return tested, levels, under_total


def _check_params(
    max_conditions: int, top_k: int, min_support: int, alpha: float, min_effect: float, error_weight: float
) -> None:
    if max_conditions < 1:
        raise ValueError(f"max_conditions must be >= 1, got {max_conditions}.")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    if not (min_effect >= 0 and np.isfinite(min_effect)):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect}.")
    if not 0 <= error_weight <= 1:
        raise ValueError(f"error_weight must be in [0, 1], got {error_weight}.")
