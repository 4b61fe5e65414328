"""The type of a classification batch's labels: int64 or string, never both.

Labels, predictions, ``classes``, ``positive_class`` and multiclass score column
names all name classes. They are brought to one Arrow type here:

- typed sources (JSON, Parquet, Arrow): bool -> int (False=0, True=1), integral
  floats -> int, other integers -> int64, strings stay strings; ints in one column
  and strings in another is an error;
- text sources (CSV cells, query parameters, score column names): int64 when every
  value looks like an integer, else string;
- ``classes``/``positive_class`` given as text for int labels (``"1"``) are coerced.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.canonical import Label
from service.ingest.issues import Issues
from service.ingest.masks import ArrowColumn, combined, first_true, first_valid, float_values
from service.ingest.spec import RawClass, RawSpec

INT = pa.int64()
STR = pa.string()

_INT_TEXT = re.compile(r"^[+-]?\d+$")
# Score column names must spell the integer exactly, so score__01 cannot shadow score__1.
_INT_NAME = re.compile(r"^-?(0|[1-9]\d*)$")
_INT64_MAX = 2**63


def normalize_labels(column: ArrowColumn, name: str, issues: Issues) -> pa.Array | None:
    """Bring a label or prediction column to int64, string or (all missing) null type."""
    array = combined(column)
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_null(kind):
        return array
    if pa.types.is_boolean(kind) or pa.types.is_integer(kind):
        if pa.types.is_uint64(kind):
            row = first_true(pc.greater_equal(array, pa.scalar(_INT64_MAX, pa.uint64())))
            if row is not None:
                issues.at(name, f"{array[row].as_py()} does not fit a 64-bit integer", row)
                return None
        return array.cast(INT)
    if pa.types.is_floating(kind):
        values = float_values(array)
        valid = ~np.asarray(pc.is_null(array).to_numpy(zero_copy_only=False))
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < _INT64_MAX)
        row = first_true(valid & ~integral)
        if row is not None:
            issues.at(
                name,
                f"{float(values[row])!r} is not an integer; classification labels are integers or strings",
                row,
            )
            return None
        return array.cast(INT, safe=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array.cast(STR)
    row = first_valid(array)
    issues.at(name, f"classification {name}s must be integers or strings, not {kind}", row)
    return None


def resolve_kind(
    columns: Mapping[str, pa.Array],
    spec: RawSpec,
    score_names: Sequence[str],
    *,
    textual: bool,
    issues: Issues,
) -> pa.DataType | None:
    """Decide the label type from the data, else from the spec, else from score names.

    ``columns`` are normalized label/prediction columns; ``textual`` says their strings
    are CSV cells that may stand for integers. Returns ``None`` after recording an issue.
    """
    observed = {name: array for name, array in columns.items() if array.null_count < len(array)}
    if textual and observed:
        return INT if all(_casts_to_int(array) for array in observed.values()) else STR
    kinds = {name: array.type for name, array in observed.items()}
    if len(set(kinds.values())) > 1:
        (first, first_kind), (second, second_kind) = list(kinds.items())[:2]
        issues.at(
            second,
            f"{second} holds {_kind_name(second_kind)} but {first} holds {_kind_name(first_kind)}; "
            "labels and predictions must share one type",
            first_valid(observed[second]),
        )
        return None
    if kinds:
        return next(iter(kinds.values()))

    given: list[RawClass] = list(spec.classes or [])
    if spec.positive_class is not None:
        given.append(spec.positive_class)
    if given:
        if spec.textual:
            return INT if all(_INT_TEXT.match(str(value).strip()) for value in given) else STR
        if all(isinstance(value, str) for value in given):
            return STR
        # An integer anywhere makes the others integers too, if they can be ("1" with 1).
        if all(not isinstance(value, str) or _INT_TEXT.match(value.strip()) for value in given):
            return INT
        issues.add(spec.classes_field, "classes and positive_class mix strings and integers")
        return None
    if score_names:
        return INT if all(_INT_NAME.match(name) for name in score_names) else STR
    return INT


def cast_labels(array: pa.Array, kind: pa.DataType) -> pa.Array:
    """Cast a normalized column to the resolved kind (text digits to int64, nulls typed)."""
    if array.type == kind:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), kind)
    return array.cast(kind)


def coerce_class(value: object, kind: pa.DataType) -> Label | None:
    """One class value from the spec in the label type, or ``None`` when it cannot be."""
    if kind == INT:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_TEXT.match(value.strip()):
            return int(value.strip())
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def coerce_score_name(name: str, kind: pa.DataType) -> Label | None:
    """The class a ``score__<name>`` column is for, in the label type."""
    if kind == INT:
        return int(name) if _INT_NAME.match(name) else None
    return name


def _casts_to_int(array: pa.Array) -> bool:
    if array.type == INT:
        return True
    try:
        array.cast(INT)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _kind_name(kind: pa.DataType) -> str:
    return "integers" if pa.types.is_integer(kind) else "strings"


def check_members(
    array: pa.Array | None, name: str, classes: Sequence[Label], kind: pa.DataType, issues: Issues
) -> None:
    """Report the first non-null value of ``array`` that is not one of ``classes``."""
    if array is None:
        return
    outside = pc.and_(pc.is_valid(array), pc.invert(pc.is_in(array, value_set=pa.array(classes, type=kind))))
    row = first_true(outside)
    if row is not None:
        issues.at(name, f"{array[row].as_py()!r} is not among classes {list(classes)!r}", row)
