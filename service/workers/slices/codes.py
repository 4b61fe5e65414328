"""Slice columns as integer codes, and the codes of a cross of columns.

A slice column becomes ``codes`` (one integer per row) and ``labels`` (the value
each code stands for) once; every statistic of every slice is then a bincount or
a segment sum over those codes.

* Dictionary arrays (how ingest stores repeating string features) are their
  indices: no hashing, only a null fill and a widening copy.
* Other strings, binaries and booleans are dictionary-encoded here (a hash pass).
* Numbers (and dates, times, timestamps, durations) with more distinct values than
  ``bins`` are cut at quantiles of their non-null values into intervals labelled
  ``"[low, high)"``, the last one closed ``"[low, high]"``; with at most ``bins``
  distinct values each value is its own slice (a 0/1 flag stays two slices rather
  than one bin ``"[0, 1]"``).
* Nulls (and NaN) are one more slice whose label is ``None``, shown like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ArrowColumn: TypeAlias = pa.Array | pa.ChunkedArray

# A cross whose dense code space (product of cardinalities) is larger than this is
# compacted with a sort instead of a bincount over the whole space.
_DENSE_CROSS_LIMIT = 1 << 22


def slice_codes(column: ArrowColumn, *, bins: int) -> tuple[np.ndarray, list[Any]]:
    """Integer slice codes of one column and the label of each code.

    Parameters
    ----------
    column : pyarrow.Array or pyarrow.ChunkedArray
        A feature column of the batch (dictionary, string, boolean, numeric or temporal).
    bins : int
        Number of quantile bins for a numeric column (at least 2). Tied quantiles
        are merged, so a skewed column may get fewer bins.

    Returns
    -------
    codes : ndarray of intp, shape (n,)
        ``0 .. len(labels) - 1``. Codes of dictionary entries no row uses may be absent.
    labels : list
        Python values (categorical), ``"[low, high)"`` strings (bins) or ``None`` (the null slice,
        present only when the column has nulls).

    Raises
    ------
    ValueError
        For ``bins < 2`` or a column type that has no notion of slices (lists, structs...).

    Examples
    --------
    >>> import pyarrow as pa
    >>> codes, labels = slice_codes(pa.array([1.0, 2.0, 3.0, 4.0, None]), bins=2)
    >>> codes.tolist(), labels
    ([0, 0, 1, 1, 2], ['[1, 2.5)', '[2.5, 4]', None])
    """
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 2:
        raise ValueError(f"bins must be an integer of at least 2, got {bins!r}.")
    t = column.type
    if pa.types.is_dictionary(t):
        return _dictionary_codes(column)
    if pa.types.is_null(t):
        return np.zeros(len(column), dtype=np.intp), ([None] if len(column) else [])
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_boolean(t)
        or pa.types.is_fixed_size_binary(t)
        or _is_view(t)
    ):
        return _dictionary_codes(pc.dictionary_encode(column))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _numeric_codes(column, bins=int(bins), temporal=None)
    if pa.types.is_temporal(t):
        return _numeric_codes(column, bins=int(bins), temporal=t)
    raise ValueError(
        f"cannot slice a column of type {t}: slice columns must be categorical (strings, booleans, "
        "dictionaries), numeric or temporal."
    )


def _is_view(t: pa.DataType) -> bool:
    is_view = getattr(pa.types, "is_string_view", None)
    is_bview = getattr(pa.types, "is_binary_view", None)
    return bool((is_view is not None and is_view(t)) or (is_bview is not None and is_bview(t)))


def _chunks(column: ArrowColumn) -> list[pa.Array]:
    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def _dictionary_codes(column: ArrowColumn) -> tuple[np.ndarray, list[Any]]:
    """Indices of a dictionary column; nulls (and null dictionary entries) get the last code."""
    if isinstance(column, pa.ChunkedArray) and column.num_chunks > 1:
        column = column.unify_dictionaries()
    chunks = _chunks(column)
    if not chunks:
        return np.zeros(0, dtype=np.intp), []
    values = chunks[0].dictionary.to_pylist()
    # Map dictionary entries to label codes: duplicates (possible in hand-built
    # arrays) share one code, null entries join the null slice.
    first: dict[Any, int] = {}
    remap = np.empty(len(values), dtype=np.intp)
    labels: list[Any] = []
    null_entries = False
    for i, v in enumerate(values):
        if v is None:
            null_entries = True
            remap[i] = -1
            continue
        code = first.setdefault(_hashable(v), len(labels))
        if code == len(labels):
            labels.append(v)
        remap[i] = code
    has_nulls = null_entries or any(c.null_count for c in chunks)
    null_code = len(labels)
    remap[remap < 0] = null_code
    parts = [
        np.asarray(pc.fill_null(c.indices.cast(pa.int64()), len(values)).to_numpy(zero_copy_only=False))
        if c.null_count
        else c.indices.to_numpy(zero_copy_only=False)
        for c in chunks
    ]
    indices = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if has_nulls:
        labels.append(None)
        remap = np.append(remap, null_code)
    identity = np.array_equal(remap, np.arange(remap.size))
    return (indices.astype(np.intp) if identity else remap[indices]), labels


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _numeric_codes(
    column: ArrowColumn, *, bins: int, temporal: pa.DataType | None
) -> tuple[np.ndarray, list[Any]]:
    n = len(column)
    if temporal is not None:
        # dates, times, timestamps, durations: their integer ticks
        column = pc.cast(column, _ticks(temporal))
    values = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    valid = ~np.isnan(values)  # nulls arrive as NaN; a NaN feature is missing too
    all_valid = bool(valid.all())
    present = values if all_valid else values[valid]
    if present.size == 0:
        return np.zeros(n, dtype=np.intp), ([None] if n else [])

    # a hash pass, not a sort: how many distinct values are there?
    distinct = np.sort(np.asarray(pc.unique(pa.array(present)).to_numpy(zero_copy_only=False)))
    labels: list[Any]
    if distinct.size <= bins:
        # each value its own slice, in increasing order
        codes = np.searchsorted(distinct, values).astype(np.intp)
        labels = _values(distinct, column.type, temporal)
    else:
        finite = present[np.isfinite(present)]
        inner: Any = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))[1:-1] if finite.size else []
        edges = np.concatenate([[present.min()], inner, [present.max()]])
        if temporal is not None:
            # integer ticks: x >= 9.67 is x >= 10, so an edge rounds up to a representable instant
            edges = np.ceil(edges)
        edges = np.unique(edges)
        codes = np.searchsorted(edges[1:-1], values, side="right").astype(np.intp)
        labels = _interval_labels(edges, temporal)
    if not all_valid:
        codes[~valid] = len(labels)
        labels.append(None)
    return codes, labels


def _ticks(temporal: pa.DataType) -> pa.DataType:
    return pa.int32() if temporal.bit_width == 32 else pa.int64()


def _values(distinct: np.ndarray, value_type: pa.DataType, temporal: pa.DataType | None) -> list[Any]:
    """Distinct float values back as the column's Python values (ints stay ints, dates dates)."""
    if temporal is not None:
        return list(pa.array(distinct.astype(np.int64)).cast(_ticks(temporal)).cast(temporal).to_pylist())
    if pa.types.is_integer(value_type):
        return [int(v) for v in distinct]
    return [float(v) for v in distinct]


def _interval_labels(edges: np.ndarray, temporal: pa.DataType | None) -> list[Any]:
    """``"[a, b)"`` for every bin, the last one closed; numbers printed as briefly as stays distinct."""
    if temporal is not None:
        text = [_temporal_text(v) for v in _values(edges, pa.int64(), temporal)]
    else:
        text = []
        for digits in (6, 10, 17):
            text = [_number_text(float(e), digits) for e in edges]
            if len(set(text)) == len(text):
                break
    m = len(edges) - 1
    return [f"[{text[i]}, {text[i + 1]}{']' if i == m - 1 else ')'}" for i in range(m)]


def _number_text(x: float, digits: int) -> str:
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.{digits}g}"


def _temporal_text(v: Any) -> str:
    iso = getattr(v, "isoformat", None)
    return str(iso()) if iso is not None else str(v)


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class GroupCodes:
    """Rows of a column or a cross of columns grouped into the slices that occur.

    Attributes
    ----------
    codes : ndarray of shape (n,)
        ``0 .. n_groups - 1`` per row; ``uint16`` when there are at most 65535 groups,
        so that a stable ``argsort`` of them is a radix sort.
    n_groups : int
        Slices with at least one row.
    members : ndarray of intp, shape (n_groups, n_columns)
        The per-column label code of each slice, in increasing (mixed radix) order.
    """

    codes: np.ndarray
    n_groups: int
    members: np.ndarray


def group_codes(columns: Sequence[tuple[np.ndarray, int]], *, n: int) -> GroupCodes:
    """The slices of one column or a cross of columns (mixed-radix code of the per-column codes).

    Parameters
    ----------
    columns : sequence of (codes, n_labels)
        Per-column integer codes ``0 .. n_labels - 1`` (validated by the caller).
    n : int
        Number of rows.

    Notes
    -----
    The combined code is ``(...(c_1 k_2 + c_2) k_3 + c_3 ...)``. Unoccupied
    combinations are dropped with one bincount when the product of the cardinalities
    is at most ``2**22``, otherwise with ``np.unique`` (a sort).
    """
    cards = [int(k) for _, k in columns]
    dense = 1
    for k in cards:
        dense *= max(k, 1)
    if len(columns) == 1:
        combined = np.asarray(columns[0][0], dtype=np.intp)
    else:
        combined = np.asarray(columns[0][0], dtype=np.int64).copy()
        for codes, k in columns[1:]:
            combined *= k
            combined += codes
    if dense <= _DENSE_CROSS_LIMIT:
        support = np.bincount(combined, minlength=dense)
        occupied = np.flatnonzero(support)
        if occupied.size < dense:
            remap = np.zeros(dense, dtype=np.intp)
            remap[occupied] = np.arange(occupied.size)
            compact = remap[combined]
        else:
            compact = combined
    else:
        occupied, compact = np.unique(combined, return_inverse=True)
    n_groups = int(occupied.size)
    dtype = np.uint16 if n_groups <= np.iinfo(np.uint16).max else np.intp
    members = (
        np.stack(np.unravel_index(occupied, cards), axis=1).astype(np.intp)
        if n_groups
        else np.zeros((0, len(cards)), dtype=np.intp)
    )
    return GroupCodes(codes=compact.astype(dtype, copy=False).reshape(n), n_groups=n_groups, members=members)
