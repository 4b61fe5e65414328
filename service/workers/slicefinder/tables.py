"""Grouped sufficient statistics of the errors: what every slice's count and error sum are read from.

A slice over columns ``combo`` is a cell of the contingency table of those columns;
its statistics are sums over the rows of the cell: row count, error sum, sum of
squared errors (Welch's test on losses) and the largest error (SliceLine's bound).
The rows are reduced once to the joint cells of *all* slice columns; every
table is then a reduction of those, never another pass over the rows:

* **cube** -- when the joint table is small (6 columns of 2, 3, 5, 10, 20, 50 values
  are 300,000 cells), it is held dense, shaped ``cards``, and a combination's
  table is a ``sum`` over the other axes (~0.1 ms for 300,000 cells);
* **groups** -- otherwise the distinct joint codes present are the groups
  (at most one per row), and a combination's table is a ``bincount`` of the
  groups' mixed-radix cell keys (dense), or of their ``np.unique`` ranks when the
  combination has too many cells to hold dense.

Cell keys are mixed-radix (C order) over the combination's cardinalities, the
first column most significant: ``np.ravel_multi_index`` order.

:class:`SliceSet` holds the slices a search tested, every combination's cells
concatenated, so that any slice (a combination and a key) is found by a binary search.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from service.workers.slicefinder.columns import SliceColumns

# Joint tables up to this many cells are held dense (4 arrays of 8 bytes: 128 MB at most).
_CUBE_CELLS = 1 << 22
# A combination's table is dense up to this many cells, else built from the keys present.
_DENSE_CELLS = 1 << 22
# Cell keys must fit int64 with headroom.
_MAX_KEY = 1 << 62


class CellStats(NamedTuple):
    """Per-cell sums, aligned arrays: rows, errors, squared errors, largest error."""

    rows: np.ndarray  # int64
    total: np.ndarray  # float64
    squares: np.ndarray  # float64
    maximum: np.ndarray  # float64

    def take(self, index: np.ndarray) -> CellStats:
        return CellStats(self.rows[index], self.total[index], self.squares[index], self.maximum[index])


def combination_cells(cards: tuple[int, ...], combo: tuple[int, ...]) -> int:
    """Number of cells of ``combo``'s table; refuses keys that would overflow int64."""
    cells = math.prod(cards[j] for j in combo)
    if cells >= _MAX_KEY:
        raise ValueError(
            f"{cells} cells in the table of {len(combo)} slice columns is too many; "
            "bin high-cardinality columns or lower max_conditions."
        )
    return cells


class ErrorTable:
    """Sufficient statistics of ``errors`` per joint cell of ``columns``.

    ``binary`` (0/1 errors) skips the squares and maxima, which follow from the sums.
    """

    def __init__(self, errors: np.ndarray, columns: SliceColumns, *, binary: bool) -> None:
        self.cards = columns.cards
        self.binary = binary
        n = errors.size
        joint = math.prod(self.cards)
        self.cube = joint <= min(_CUBE_CELLS, max(16 * n, 1 << 16))
        if self.cube:
            key = np.zeros(n, dtype=np.intp)
            for codes, card in zip(columns.codes, self.cards, strict=True):
                key *= card
                key += codes
            self._group_codes: tuple[np.ndarray, ...] = ()
            self._stats = self._reduce(key, errors, joint)
        else:
            first, inverse, groups = _group_rows(columns)
            self._group_codes = tuple(codes[first] for codes in columns.codes)
            self._stats = self._reduce(inverse, errors, groups)

    def _reduce(self, key: np.ndarray, errors: np.ndarray, cells: int) -> CellStats:
        count = np.bincount(key, minlength=cells).astype(np.int64)
        total = np.bincount(key, weights=errors, minlength=cells)
        if self.binary:
            return CellStats(count, total, total, (total > 0).astype(np.float64))
        squares = np.bincount(key, weights=errors * errors, minlength=cells)
        maximum = np.zeros(cells)
        np.maximum.at(maximum, key, errors)
        return CellStats(count, total, squares, maximum)

    def cells(self, combo: tuple[int, ...]) -> tuple[np.ndarray, CellStats]:
        """The non-empty cells of ``combo``'s table (``combo`` ascending): keys ascending, and their sums."""
        cells = combination_cells(self.cards, combo)
        s = self._stats
        if self.cube:
            axes = tuple(j for j in range(len(self.cards)) if j not in combo)
            count = s.rows.reshape(self.cards).sum(axis=axes).ravel()
            keys = np.flatnonzero(count)
            total = s.total.reshape(self.cards).sum(axis=axes).ravel()[keys]
            if self.binary:
                return keys, CellStats(count[keys], total, total, (total > 0).astype(np.float64))
            squares = s.squares.reshape(self.cards).sum(axis=axes).ravel()[keys]
            maximum = s.maximum.reshape(self.cards).max(axis=axes).ravel()[keys]
            return keys, CellStats(count[keys], total, squares, maximum)
        group_key = np.ravel_multi_index(
            tuple(self._group_codes[j] for j in combo), tuple(self.cards[j] for j in combo)
        )
        if cells <= _DENSE_CELLS:
            table = self._reduce_groups(group_key, cells)
            keys = np.flatnonzero(table.rows)
            return keys, table.take(keys)
        present, inverse = np.unique(group_key, return_inverse=True)
        return present, self._reduce_groups(inverse.reshape(-1), present.size)

    def _reduce_groups(self, key: np.ndarray, cells: int) -> CellStats:
        s = self._stats
        count = np.bincount(key, weights=s.rows, minlength=cells).astype(np.int64)
        total = np.bincount(key, weights=s.total, minlength=cells)
        if self.binary:
            return CellStats(count, total, total, (total > 0).astype(np.float64))
        squares = np.bincount(key, weights=s.squares, minlength=cells)
        maximum = np.zeros(cells)
        np.maximum.at(maximum, key, s.maximum)
        return CellStats(count, total, squares, maximum)

    def groups(self) -> tuple[tuple[np.ndarray, ...], CellStats]:
        """The non-empty joint cells: each column's code per cell, and the cells' statistics."""
        if self.cube:
            present = np.flatnonzero(self._stats.rows)
            codes = tuple(np.asarray(c, dtype=np.intp) for c in np.unravel_index(present, self.cards))
            return codes, self._stats.take(present)
        return self._group_codes, self._stats


def _group_rows(columns: SliceColumns) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows grouped by their joint codes: first row of each group, group of each row, group count.

    Columns are folded into a running key, renumbered densely whenever the next
    column could overflow it, so any number of columns works.
    """
    n = columns.codes[0].size
    key = np.zeros(n, dtype=np.int64)
    span = 1
    for codes, card in zip(columns.codes, columns.cards, strict=True):
        if span * card >= _MAX_KEY:
            present, key = np.unique(key, return_inverse=True)
            span = present.size
        key = key * card + codes
        span *= card
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1), first.size


class SliceSet:
    """Slices of several combinations, concatenated: slice ``i`` is cell ``keys[i]`` of combination
    ``combos[combo_id[i]]``.

    Built by :meth:`add`, one combination at a time with its keys ascending, then
    :meth:`freeze`; ``spans[combo]`` is the combination's range, so :meth:`find` is a
    binary search.
    """

    def __init__(self, cards: tuple[int, ...]) -> None:
        self.cards = cards
        self.combos: list[tuple[int, ...]] = []
        self.spans: dict[tuple[int, ...], tuple[int, int]] = {}
        self._parts: list[tuple[np.ndarray, CellStats]] = []
        self.size = 0
        self.combo_id = np.zeros(0, dtype=np.intp)
        self.keys = np.zeros(0, dtype=np.int64)
        self.stats = CellStats(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))

    def add(self, combo: tuple[int, ...], keys: np.ndarray, stats: CellStats) -> None:
        """Append ``combo``'s slices, ``keys`` ascending."""
        self.spans[combo] = (self.size, self.size + keys.size)
        self.combos.append(combo)
        self._parts.append((keys.astype(np.int64, copy=False), stats))
        self.size += keys.size

    def freeze(self) -> None:
        """Concatenate what was added into ``combo_id``, ``keys`` and ``stats``."""
        if not self._parts:
            return
        self.combo_id = np.repeat(np.arange(len(self.combos)), [k.size for k, _ in self._parts])
        self.keys = np.concatenate([k for k, _ in self._parts])
        self.stats = CellStats(
            *(np.concatenate(parts) for parts in zip(*(s for _, s in self._parts), strict=True))
        )
        self._parts = []

    def find(self, combo: tuple[int, ...], keys: np.ndarray) -> np.ndarray:
        """Index of each slice ``(combo, key)`` in the (frozen) set; -1 where it is not in it."""
        out = np.full(keys.size, -1, dtype=np.intp)
        span = self.spans.get(combo)
        if span is None or keys.size == 0:
            return out
        start, stop = span
        pos = np.searchsorted(self.keys[start:stop], keys)
        pos = np.minimum(pos, stop - start - 1)
        hit = self.keys[start:stop][pos] == keys
        out[hit] = start + pos[hit]
        return out

    def values(self, index: np.ndarray) -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
        """The combination of the slices ``index`` (all of one combination) and each column's codes."""
        combo = self.combos[int(self.combo_id[index[0]])]
        shape = tuple(self.cards[j] for j in combo)
        return combo, tuple(np.asarray(v) for v in np.unravel_index(self.keys[index], shape))
