"""Numeric columns: regression values, interval bounds and probabilities, as finite float64."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from service.ingest.issues import Issues
from service.ingest.masks import ArrowColumn, combined, first_null, first_true, first_valid, float_values

F64 = pa.float64()
_NUMBER_TEXT = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def finite_numbers(column: ArrowColumn, name: str, issues: Issues, *, nullable: bool) -> pa.Array | None:
    """``column`` as float64 holding only finite values (nulls allowed when ``nullable``).

    Integers and decimals are widened; booleans and strings are refused (a JSON
    ``"0.5"`` is a string, not a number). Returns ``None`` after recording an issue.
    """
    array = combined(column)
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = array.type
    if pa.types.is_null(kind):
        array = pa.nulls(len(array), F64)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        array = array.cast(F64)
    else:
        issues.at(name, *_not_a_number(array, name))
        return None
    if not nullable:
        row = first_null(array)
        if row is not None:
            issues.at(name, "is missing", row)
            return None
    values = float_values(array)
    row = first_true(np.isinf(values) | (np.isnan(values) & ~_null_mask(array)))
    if row is not None:
        issues.at(name, f"{float(values[row])!r} is not a finite number", row)
        return None
    return array


def probabilities(column: ArrowColumn, name: str, issues: Issues) -> npt.NDArray[np.float64] | None:
    """``column`` as a float64 numpy array of probabilities: non-null, finite, in [0, 1]."""
    array = finite_numbers(column, name, issues, nullable=False)
    if array is None:
        return None
    values = float_values(array)
    row = first_true((values < 0.0) | (values > 1.0))
    if row is not None:
        issues.at(name, f"{float(values[row])!r} is not a probability in [0, 1]", row)
        return None
    return values


def text_to_numbers(array: pa.Array) -> pa.Array:
    """Text cells (CSV) that all read as numbers become float64; anything else is returned as is."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    try:
        return array.cast(F64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return array


def _not_a_number(array: pa.Array, name: str) -> tuple[str, int | None]:
    row = None
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        looks_numeric = pc.match_substring_regex(array, _NUMBER_TEXT)
        row = first_true(pc.and_(pc.is_valid(array), pc.invert(looks_numeric)))
    row = first_valid(array) if row is None else row
    shown = "" if row is None else f", got {array[row].as_py()!r}"
    return f"must be a number{shown}", row


def _null_mask(array: pa.Array) -> npt.NDArray[np.bool_]:
    if array.null_count == 0:
        return np.zeros(len(array), dtype=bool)
    return np.asarray(pc.is_null(array).to_numpy(zero_copy_only=False))
