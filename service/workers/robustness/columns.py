"""Reading and writing one Arrow column of the sample, for the code that builds changed copies.

Copies keep the column's type where they can (a dictionary-encoded column is decoded for the
computation and re-encoded after), leave missing values alone, and refuse a value that would
change on conversion to the column's type rather than silently round it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def column_values(table: pa.Table, column: str) -> pa.Array:
    if column not in table.column_names:
        raise ValueError(f"column {column!r} is not in the batch; its columns are {table.column_names}.")
    return table.column(column).combine_chunks()


def decoded(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def replace_column(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    i = table.column_names.index(column)
    field = table.schema.field(i).with_type(values.type)
    return table.set_column(i, field, values)


def restore_type(values: pa.Array, original: pa.DataType) -> pa.Array:
    """Re-encode a column that was dictionary-decoded for the computation."""
    if pa.types.is_dictionary(original) and values.type == original.value_type:
        return values.cast(original)
    return values


def missing_rows(arr: pa.Array) -> np.ndarray:
    """Null, or NaN in a floating column: values a perturbation leaves alone."""
    missing = arr.is_null()
    if pa.types.is_floating(arr.type):
        missing = pc.or_(missing, pc.is_nan(arr).fill_null(True))
    return np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool)


def is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def fitting_scalar(value: Any, t: pa.DataType, *, column: str, what: str) -> pa.Scalar:
    """``value`` as a scalar of the column's type, refusing lossy conversions (1.5 -> int 1)."""
    try:
        s = pa.scalar(value, type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{what} {value!r} does not fit column {column!r} of type {t}: {e}") from None
    if s.as_py() != value:
        raise ValueError(f"{what} {value!r} does not fit column {column!r} of type {t} (it would become {s})")
    return s
