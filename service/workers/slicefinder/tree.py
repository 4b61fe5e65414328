"""A second method: a shallow regression tree on per-row errors; its leaves are slices.

scikit-learn's ``DecisionTreeRegressor`` on one-hot codes (one feature per
``column == value`` with ``min_support`` rows), fitted not to the rows but to the
joint cells of :class:`~service.workers.slicefinder.tables.ErrorTable`: target the
cell's mean error, weight its row count. The squared-error criterion of a split
over rows is the weighted one over cells plus the within-cell sum of squares,
which no split changes, so the tree is the row-level tree, fitted on at most one
point per distinct combination of codes.

A path's conditions are ``column == value`` (right of a split) and
``column != value`` (left); a column excluded from all its values but one is
that value.

The leaves are chosen by the data, so testing them on the rows that chose them
finds "significant" slices in pure noise (28 of 30 null batches at depth 2 in
our tests). The tree is therefore grown on a seeded random half of the rows and
its leaves are tested on the other half (sample splitting, as in "honest"
trees); sizes and errors are reported on all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.tree import DecisionTreeRegressor

from schemas.slices import SliceFinderResult
from service.workers.multiple_testing import benjamini_hochberg
from service.workers.slicefinder.columns import ColumnInput, SliceColumns, check_columns, check_errors
from service.workers.slicefinder.hypotheses import (
    BatchTotals,
    error_ratios,
    found_slices,
    slice_p_values,
)
from service.workers.slicefinder.tables import CellStats, ErrorTable

# One-hot matrices up to this many entries are dense (float32: 80 MB); larger ones sparse.
_DENSE_ENTRIES = 20_000_000


def tree_slices(
    errors: np.ndarray,
    columns: Sequence[ColumnInput],
    *,
    max_depth: int = 2,
    min_support: int = 30,
    top_k: int = 10,
    alpha: float = 0.05,
    min_effect: float = 0.0,
    seed: int = 0,
) -> SliceFinderResult:
    """Leaves of a depth-``max_depth`` regression tree on the errors, worst first.

    Parameters
    ----------
    errors : ndarray of shape (n,)
        Per-row error: 0/1 or a loss >= 0.
    columns : list of (name, codes, labels)
        As for :func:`~service.workers.slicefinder.find_slices`.
    max_depth : int, default=2
        Depth of the tree: at most this many conditions per slice.
    min_support : int, default=30
        Fewest rows of a leaf in the half the tree is grown on (so about twice
        that in the batch).
    top_k : int, default=10
        Leaves reported: those with more error than the rest, highest error first.
    alpha : float, default=0.05
        Benjamini-Hochberg false discovery rate, over all leaves.
    min_effect : float, default=0.0
        Smallest relative increase of a leaf's error over the rest's
        (``error / rest_error - 1``) for it to be reported; 0.25 is 25% more errors.
        The default reports every leaf worse than the rest, as before.
    seed : int, default=0
        Seed of the split of the rows into the growing and the testing half.

    Returns
    -------
    SliceFinderResult
        ``method="decision_tree"``; conditions map a column to a value (``==``),
        to ``{"not": value}`` or to ``{"not_in": [values]}``. ``candidates_tested``
        is the number of leaves; ``details`` holds ``error_ratios`` and ``q_values``
        per reported slice.

    Notes
    -----
    Leaves are tested against the rest on the held-out half, as in
    :func:`~service.workers.slicefinder.find_slices` (one-sided Fisher's exact test or
    Welch's t); ``n``, ``error`` and ``effect_size`` are over all rows. Deterministic
    for a ``seed`` (the tree's own ``random_state`` is 0).
    """
    e = check_errors(errors)
    cols = check_columns(columns, n=e.size)
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}.")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    if not (min_effect >= 0 and np.isfinite(min_effect)):
        raise ValueError(f"min_effect must be a finite number >= 0, got {min_effect}.")
    binary = bool(np.all((e == 0) | (e == 1)))
    batch = BatchTotals(e, binary=binary)
    details: dict[str, Any] = {
        "max_depth": max_depth,
        "min_support": min_support,
        "min_effect": min_effect,
        "overall_error": batch.mean,
        "test": batch.test,
        "alternative": "slice error greater than the rest",
    }
    grow = np.random.default_rng(seed).random(e.size) < 0.5
    grow_cols = _subset(cols, grow)
    codes, cells = ErrorTable(e[grow], grow_cols, binary=binary).groups()
    features = _features(codes, cells, cols, min_support)
    if batch.total == 0 or not features or cells.rows.sum() < 2 * min_support or grow.all():
        details |= {"leaves": 1, "error_ratios": [], "q_values": []}
        return SliceFinderResult(method="decision_tree", slices=[], candidates_tested=0, details=details)

    x = _one_hot(codes, features, cols)
    # leaves of at least min_support rows; the half row keeps float rounding off the boundary
    tree = DecisionTreeRegressor(
        max_depth=max_depth, min_weight_fraction_leaf=(min_support - 0.5) / cells.rows.sum(), random_state=0
    )
    tree.fit(x, cells.total / cells.rows, sample_weight=cells.rows)
    leaves = np.flatnonzero(tree.tree_.children_left == -1)
    everywhere = _leaf_stats(tree, e, cols, features, binary).take(leaves)
    held_out = ~grow
    tested = _leaf_stats(tree, e[held_out], _subset(cols, held_out), features, binary).take(leaves)
    p_values = slice_p_values(tested, BatchTotals(e[held_out], binary=binary))
    q_values = benjamini_hochberg(p_values)
    rest_n = batch.n - everywhere.rows
    with np.errstate(divide="ignore", invalid="ignore"):
        error = everywhere.total / everywhere.rows
        rest_error = np.where(rest_n > 0, (batch.total - everywhere.total) / rest_n, np.inf)
    worse = np.flatnonzero(
        (everywhere.rows > 0) & (error > rest_error) & (error >= (1 + min_effect) * rest_error)
    )
    order = worse[np.lexsort((leaves[worse], -everywhere.rows[worse], -error[worse]))][:top_k]

    paths = _paths(tree)
    conditions = [_conditions(paths[int(leaves[i])], features, cols) for i in order]
    reported = everywhere.take(order)
    slices = found_slices(conditions, reported, batch, p_values[order], q_values[order], alpha=alpha)
    details |= {
        "leaves": int(leaves.size),
        "features": len(features),
        "error_ratios": error_ratios(reported, batch),
        "q_values": q_values[order].tolist(),
    }
    return SliceFinderResult(
        method="decision_tree", slices=slices, candidates_tested=int(leaves.size), details=details
    )


def _subset(cols: SliceColumns, rows: np.ndarray) -> SliceColumns:
    return SliceColumns(cols.names, tuple(c[rows] for c in cols.codes), cols.labels)


def _leaf_stats(
    tree: DecisionTreeRegressor,
    errors: np.ndarray,
    cols: SliceColumns,
    features: list[tuple[int, int]],
    binary: bool,
) -> CellStats:
    """Rows, error sums and squares per tree node, of the rows given (an empty node: zeros)."""
    nodes = int(tree.tree_.node_count)
    if errors.size == 0:
        return CellStats(np.zeros(nodes, np.int64), np.zeros(nodes), np.zeros(nodes), np.zeros(nodes))
    codes, cells = ErrorTable(errors, cols, binary=binary).groups()
    leaf = tree.apply(_one_hot(codes, features, cols))
    return CellStats(
        np.bincount(leaf, weights=cells.rows, minlength=nodes).round().astype(np.int64),
        np.bincount(leaf, weights=cells.total, minlength=nodes),
        np.bincount(leaf, weights=cells.squares, minlength=nodes),
        np.zeros(nodes),
    )


def _features(
    codes: tuple[np.ndarray, ...], cells: CellStats, cols: SliceColumns, min_support: int
) -> list[tuple[int, int]]:
    """``(column, value)`` pairs with at least ``min_support`` rows: the only ones a leaf can use."""
    out = []
    for j, card in enumerate(cols.cards):
        count = np.bincount(codes[j], weights=cells.rows, minlength=card)
        out += [(j, int(v)) for v in np.flatnonzero(count >= min_support)]
    return out


def _one_hot(codes: tuple[np.ndarray, ...], features: list[tuple[int, int]], cols: SliceColumns) -> Any:
    m = codes[0].size
    rows_parts, feature_parts = [], []
    for j, card in enumerate(cols.cards):
        index = np.full(card, -1, dtype=np.intp)
        for f, (col, value) in enumerate(features):
            if col == j:
                index[value] = f
        f_of_cell = index[codes[j]]
        has = f_of_cell >= 0
        rows_parts.append(np.flatnonzero(has))
        feature_parts.append(f_of_cell[has])
    rows = np.concatenate(rows_parts)
    feats = np.concatenate(feature_parts)
    if m * len(features) <= _DENSE_ENTRIES:
        x = np.zeros((m, len(features)), dtype=np.float32)
        x[rows, feats] = 1.0
        return x
    return sparse.csc_matrix((np.ones(rows.size, dtype=np.float32), (rows, feats)), shape=(m, len(features)))


def _paths(tree: DecisionTreeRegressor) -> dict[int, list[tuple[int, bool]]]:
    """Each node's path from the root: ``(feature, is_one)`` per split taken."""
    t = tree.tree_
    paths: dict[int, list[tuple[int, bool]]] = {0: []}
    stack = [0]
    while stack:
        node = stack.pop()
        left, right = int(t.children_left[node]), int(t.children_right[node])
        if left == -1:
            continue
        feature = int(t.feature[node])
        # one-hot features are 0/1, thresholds 0.5: left is "!= value", right "== value"
        paths[left] = [*paths[node], (feature, False)]
        paths[right] = [*paths[node], (feature, True)]
        stack += [left, right]
    return paths


def _conditions(
    path: list[tuple[int, bool]], features: list[tuple[int, int]], cols: SliceColumns
) -> dict[str, object]:
    equal: dict[int, int] = {}
    excluded: dict[int, set[int]] = {}
    for f, is_one in path:
        j, value = features[f]
        if is_one:
            equal[j] = value
        else:
            excluded.setdefault(j, set()).add(value)
    out: dict[str, object] = {}
    for j in sorted(set(equal) | set(excluded)):
        name = cols.names[j]
        rest = sorted(set(range(cols.cards[j])) - excluded.get(j, set()))
        if j in equal:
            out[name] = cols.label(j, equal[j])
        elif len(rest) == 1:
            out[name] = cols.label(j, rest[0])
        elif len(excluded[j]) == 1:
            out[name] = {"not": cols.label(j, next(iter(excluded[j])))}
        else:
            out[name] = {"not_in": [cols.label(j, v) for v in sorted(excluded[j])]}
    return out
