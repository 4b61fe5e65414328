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

    def lookup(self, combo: tuple[int, ...], keys: np.ndarray) -> CellStats:
        """Statistics of the cells ``keys`` of ``combo``'s table (``combo`` ascending)."""
        cells = combination_cells(self.cards, combo)
        s = self._stats
        if self.cube:
            axes = tuple(j for j in range(len(self.cards)) if j not in combo)
            shape = self.cards
            count = s.rows.reshape(shape).sum(axis=axes).ravel()[keys]
            total = s.total.reshape(shape).sum(axis=axes).ravel()[keys]
            if self.binary:
                return CellStats(count, total, total, (total > 0).astype(np.float64))
            squares = s.squares.reshape(shape).sum(axis=axes).ravel()[keys]
            maximum = s.maximum.reshape(shape).max(axis=axes).ravel()[keys]
            return CellStats(count, total, squares, maximum)
        group_key = np.ravel_multi_index(
            tuple(self._group_codes[j] for j in combo), tuple(self.cards[j] for j in combo)
        )
        if cells <= _DENSE_CELLS:
            return self._reduce_groups(group_key, cells).take(keys)
        present, inverse = np.unique(group_key, return_inverse=True)
        table = self._reduce_groups(inverse, present.size)
        pos = np.minimum(np.searchsorted(present, keys), present.size - 1)
        found = present[pos] == keys
        out = table.take(pos)
        return CellStats(
            np.where(found, out.rows, 0),
            np.where(found, out.total, 0.0),
            np.where(found, out.squares, 0.0),
            np.where(found, out.maximum, 0.0),
        )

    def present(self, combo: tuple[int, ...]) -> np.ndarray:
        """Keys of the non-empty cells of ``combo``'s table, ascending."""
        if self.cube:
            axes = tuple(j for j in range(len(self.cards)) if j not in combo)
            return np.flatnonzero(self._stats.rows.reshape(self.cards).sum(axis=axes))
        combination_cells(self.cards, combo)
        key = np.ravel_multi_index(
            tuple(self._group_codes[j] for j in combo), tuple(self.cards[j] for j in combo)
        )
        return np.unique(key)

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
