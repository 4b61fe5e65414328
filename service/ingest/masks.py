"""Vectorized row masks: where is the first offending row?

Every rule is checked as one Arrow/numpy expression over the whole column; only
when it fails do we look for the first row to name, still without a Python loop.
"""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

ArrowColumn: TypeAlias = pa.Array | pa.ChunkedArray


def first_true(mask: ArrowColumn | npt.NDArray[np.bool_]) -> int | None:
    """Index of the first true entry (nulls count as false), or ``None``."""
    if isinstance(mask, np.ndarray):
        if mask.size == 0:
            return None
        i = int(np.argmax(mask))
        return i if mask[i] else None
    i = pc.index(mask, True).as_py()
    return None if i < 0 else int(i)


def first_null(column: ArrowColumn) -> int | None:
    if column.null_count == 0:
        return None
    return first_true(pc.is_null(column))


def first_valid(column: ArrowColumn) -> int | None:
    if column.null_count == len(column):
        return None
    return first_true(pc.is_valid(column))


def float_values(column: ArrowColumn) -> npt.NDArray[np.float64]:
    """A float64 column as numpy, nulls as NaN (callers check nulls first when they matter)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def combined(column: ArrowColumn) -> pa.Array:
    """One contiguous array (Parquet and CSV readers hand back chunked columns)."""
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def first_duplicate(values: pa.Array) -> tuple[int, int] | None:
    """The first row repeating an earlier value and that earlier row, or ``None`` when all differ.

    Dictionary codes are assigned in order of first appearance, so a row repeats an
    earlier value exactly when its code is not larger than every code before it.
    """
    if len(pc.unique(values)) == len(values):
        return None
    encoded = pc.dictionary_encode(values)
    codes = encoded.indices.to_numpy()
    before = np.empty_like(codes)
    before[0] = -1
    np.maximum.accumulate(codes[:-1], out=before[1:])
    second = first_true(codes <= before)
    assert second is not None
    first = first_true(codes == codes[second])
    assert first is not None
    return first, second
