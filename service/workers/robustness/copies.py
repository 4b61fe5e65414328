"""Invariance and directional copies: a deliberate change whose effect on the model is known.

* **Invariance** (:func:`invariance_copy`): rows holding one of two values get the other; only
  those rows are tested, and the answer must stay the same.
* **Directional expectation** (:func:`directional_copy`): ``add``, ``multiply`` or ``set`` a
  column; the score must not move against ``expect``.

:func:`changed_mask` finds the rows a change actually changed, the only rows a test counts.
:func:`~service.workers.robustness.expectations.expectation_result` counts the violations.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.robustness import Directional, Invariance
from service.workers.robustness.columns import (
    column_values,
    decoded,
    fitting_scalar,
    is_numeric,
    replace_column,
    restore_type,
)


def invariance_copy(table: pa.Table, spec: Invariance) -> tuple[pa.Table, np.ndarray]:
    """Swap two values of ``spec.column``: rows with ``swap[0]`` get ``swap[1]`` and vice versa.

    Returns
    -------
    table : pyarrow.Table
        The copy; other rows and columns untouched, same column type.
    mask : ndarray of bool, shape (n_rows,)
        Rows that changed: the only rows an invariance test counts.

    Raises
    ------
    ValueError
        Missing column, equal swap values, or a swap value that does not fit
        the column's type (``"F"`` in an integer column, ``1.5`` in an integer
        column).

    Examples
    --------
    >>> t = pa.table({"g": ["F", "M", "X", None]})
    >>> copy, mask = invariance_copy(t, Invariance(column="g", swap=["F", "M"]))
    >>> copy.column("g").to_pylist(), mask.tolist()
    (['M', 'F', 'X', None], [True, True, False, False])
    """
    arr = column_values(table, spec.column)
    plain = decoded(arr)
    first, second = spec.swap
    a = fitting_scalar(first, plain.type, column=spec.column, what="swap value")
    b = fitting_scalar(second, plain.type, column=spec.column, what="swap value")
    if a == b:
        raise ValueError(f"the two swap values of column {spec.column!r} are equal ({first!r}).")
    is_a = pc.equal(plain, a).fill_null(False)
    is_b = pc.equal(plain, b).fill_null(False)
    out = pc.if_else(is_a, b, pc.if_else(is_b, a, plain))
    mask = np.asarray(pc.or_(is_a, is_b).to_numpy(zero_copy_only=False), dtype=bool)
    return replace_column(table, spec.column, restore_type(out, arr.type)), mask


def directional_copy(table: pa.Table, spec: Directional) -> pa.Table:
    """Apply ``add``, ``multiply`` or ``set`` to ``spec.column``.

    ``add``/``multiply`` need a numeric column; an integer column stays integer
    when the operand is integral (``age + 1``) and becomes float64 otherwise.
    Nulls stay null. ``set`` writes the value (in the column's type) to every
    row, nulls included. Rows whose value does not change (``x * 2`` at 0, a
    ``set`` to the value already there) are found by :func:`changed_mask`.

    Raises
    ------
    ValueError
        Missing column, arithmetic on a non-numeric column, integer overflow, or
        a ``set`` value that does not fit the column's type.

    Examples
    --------
    >>> t = pa.table({"age": [30, None]})
    >>> spec = Directional(column="age", add=1, expect="increase")
    >>> directional_copy(t, spec).column("age").to_pylist()
    [31, None]
    """
    arr = column_values(table, spec.column)
    if spec.set is not None:
        plain = decoded(arr)
        value = fitting_scalar(spec.set, plain.type, column=spec.column, what="`set` value")
        out = pa.repeat(value, len(plain))
        return replace_column(table, spec.column, restore_type(out, arr.type))
    if spec.add is not None:
        op, operand = "add", float(spec.add)
    else:
        assert spec.multiply is not None  # Directional validates: exactly one of add, multiply, set
        op, operand = "multiply", float(spec.multiply)
    if not is_numeric(arr.type):
        raise ValueError(f"`{op}` needs a numeric column; {spec.column!r} is of type {arr.type}.")
    try:
        if pa.types.is_integer(arr.type) and operand.is_integer():
            fn = pc.add_checked if op == "add" else pc.multiply_checked
            out = fn(arr, pa.scalar(int(operand), type=pa.int64()))
        else:
            fn = pc.add if op == "add" else pc.multiply
            out = fn(arr.cast(pa.float64(), safe=False), pa.scalar(operand, type=pa.float64()))
    except pa.ArrowInvalid as e:
        raise ValueError(f"cannot change column {spec.column!r} ({arr.type}): {e}") from None
    return replace_column(table, spec.column, out)


def changed_mask(before: pa.Array | pa.ChunkedArray, after: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows whose value differs between two versions of a column.

    Null -> null and NaN -> NaN are unchanged; null <-> value is a change. The
    two versions may differ in type when they compare (int64 vs float64 after
    gaussian noise).

    Examples
    --------
    >>> changed_mask(pa.array([1, 2, None, None]), pa.array([1.0, 2.5, None, 3.0])).tolist()
    [False, True, False, True]
    """
    b = decoded(before.combine_chunks() if isinstance(before, pa.ChunkedArray) else before)
    a = decoded(after.combine_chunks() if isinstance(after, pa.ChunkedArray) else after)
    if len(a) != len(b):
        raise ValueError(f"the two versions of the column differ in length: {len(b)} vs {len(a)}.")
    changed = pc.or_(pc.not_equal(b, a).fill_null(False), pc.xor(b.is_null(), a.is_null()))
    if pa.types.is_floating(b.type) and pa.types.is_floating(a.type):
        both_nan = pc.and_(pc.is_nan(b), pc.is_nan(a)).fill_null(False)
        changed = pc.and_(changed, pc.invert(both_nan))
    return np.asarray(changed.to_numpy(zero_copy_only=False), dtype=bool)
