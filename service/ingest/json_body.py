"""JSON bodies: the batch envelope in row or column form, parsed with orjson.

The column form goes from orjson's lists straight into Arrow arrays (one C loop per
column). The row form is per-row by nature: one list comprehension per key turns the
rows into columns, then the same path applies. Either way the result is a table with
canonical column names (``scores: {"cat": p}`` becomes ``score__cat``) and a locator
that names problems the way the client wrote them.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

import orjson
import pyarrow as pa

from service.canonical import (
    LABEL,
    LOWER,
    PREDICTION,
    RESERVED_COLUMNS,
    SAMPLE_ID,
    SCORE,
    SCORE_PREFIX,
    UPPER,
    score_column,
)
from service.errors import FieldIssue, MalformedBody
from service.ingest.issues import Issues, Locator, RowsLocator, invalid
from service.ingest.limits import IngestLimits
from service.ingest.spec import RawSpec, spec_from_envelope

ENVELOPE_KEYS = ("model", "task", "positive_class", "classes", "threshold", "rows", "columns")
ROW_SCALARS = (SAMPLE_ID, LABEL, PREDICTION, SCORE, LOWER, UPPER)
ROW_NESTED = ("scores", "features")
_LABEL_COLUMNS = frozenset({LABEL, PREDICTION})
#: the first two bytes of a gzip stream
GZIP_MAGIC = b"\x1f\x8b"
#: unknown row fields named in one answer
_REPORTED_UNKNOWN = 20


def load_json(body: bytes | bytearray | memoryview | pa.Buffer) -> Any:
    """Parse a JSON body (bytes, or a pyarrow buffer read in place)."""
    # A pyarrow buffer's memoryview has signed bytes: cast to unsigned ones.
    data = memoryview(body).cast("B") if isinstance(body, pa.Buffer) else body
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        message = f"body is not valid JSON: {_not_utf8(data) or exc}"
        raise MalformedBody(detail=message, issues=[FieldIssue("body", message)]) from exc


def _not_utf8(data: bytes | bytearray | memoryview) -> str | None:
    """Why the body is not UTF-8 text, when it is not (orjson only says "surrogates not allowed")."""
    if bytes(data[:2]) == GZIP_MAGIC:
        return "it is gzip-compressed; send the raw JSON (content encodings are not accepted)"
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError as exc:
        return f"it is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
    return None


def decode_batch(
    body: bytes | bytearray | memoryview | pa.Buffer, *, limits: IngestLimits | None = None
) -> tuple[pa.Table, RawSpec, Locator]:
    """Decode a JSON batch envelope into a table with canonical column names.

    Rows and columns are counted before any column is built (413 past ``limits``).
    """
    limits = limits or IngestLimits()
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise invalid("body", "expected a JSON object: the batch envelope")
    issues = Issues()
    for key in [key for key in doc if key not in ENVELOPE_KEYS][:_REPORTED_UNKNOWN]:
        issues.add(key, f"unknown field; the envelope has {', '.join(ENVELOPE_KEYS)}")
    spec = spec_from_envelope(doc, issues)
    forms = [key for key in ("rows", "columns") if doc.get(key) is not None]
    if len(forms) != 1:
        issues.add("rows", "send exactly one of rows (a list of objects) or columns (an object of arrays)")
    issues.raise_if_any()
    assert spec is not None
    decoded: tuple[pa.Table, Locator] | None
    if forms == ["rows"]:
        decoded = rows_to_table(
            doc["rows"], prefix="rows", scalars=ROW_SCALARS, nested=ROW_NESTED, issues=issues, limits=limits
        )
    else:
        decoded = columns_to_table(doc["columns"], prefix="columns", issues=issues, limits=limits)
    issues.raise_if_any()
    assert decoded is not None
    table, locator = decoded
    return table, spec, locator


def rows_to_table(
    rows: object,
    *,
    prefix: str,
    scalars: Iterable[str],
    nested: Iterable[str] = (),
    required: Iterable[str] = (),
    issues: Issues,
    limits: IngestLimits | None = None,
) -> tuple[pa.Table, RowsLocator] | None:
    """Transpose ``[{key: value, "features": {...}}]`` into Arrow columns.

    ``scalars`` are the allowed top-level keys; ``nested`` may hold ``scores`` (flattened
    to ``score__<key>``) and ``features`` (flattened to their own names); ``required``
    keys must be present in every row (their value may still be null).
    """
    if not isinstance(rows, list):
        issues.add(prefix, f"{prefix} must be an array of objects")
        return None
    limits = limits or IngestLimits()
    limits.check_rows(len(rows))
    bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if bad is not None:
        issues.add(f"{prefix}[{bad}]", "each row must be an object", bad)
        return None
    allowed = {*scalars, *nested}
    keys = set().union(*rows)
    # A few unknown fields say what is wrong; naming thousands would cost a scan of the rows each.
    for key in sorted(keys - allowed, key=str)[:_REPORTED_UNKNOWN]:
        row = _first_row_with(rows, key)
        hint = "; features go under features" if "features" in allowed else ""
        issues.add(f"{prefix}[{row}].{key}", f"unknown field{hint}", row)
    for key in required:
        missing = next((i for i, item in enumerate(rows) if key not in item), None)
        if missing is not None:
            issues.add(f"{prefix}[{missing}].{key}", f"{key} is required (null is allowed)", missing)
    if issues:
        return None

    lists: dict[str, list[Any]] = {key: [row.get(key) for row in rows] for key in scalars if key in keys}
    score_keys: dict[str, str] = {}
    features: list[str] = []
    for key in nested:
        if key not in keys:
            continue
        inner = _nested_columns(rows, key, prefix, issues, limits=limits, columns=len(lists))
        if inner is None:
            continue
        for name, values in inner.items():
            if key == "scores":
                column = score_column(name)
                score_keys[column] = name
            else:
                column = name
                if name in RESERVED_COLUMNS or name.startswith(SCORE_PREFIX):
                    row = next(i for i, item in enumerate(rows) if name in (item.get(key) or {}))
                    message = f"feature {name!r} uses a reserved column name"
                    issues.add(f"{prefix}[{row}].{key}.{name}", message, row)
                    continue
                features.append(name)
            lists[column] = values
    if issues:
        return None
    limits.check_columns(len(lists))
    locator = RowsLocator(prefix=prefix, features=frozenset(features), score_keys=score_keys)
    arrays = {name: _column_array(values, name, locator, issues) for name, values in lists.items()}
    if issues:
        return None
    if not arrays:
        # Rows that are all empty objects still count: they are rows without a prediction.
        arrays[PREDICTION] = pa.nulls(len(rows))
    return pa.Table.from_pydict(arrays), locator


def columns_to_table(
    columns: object, *, prefix: str, issues: Issues, limits: IngestLimits | None = None
) -> tuple[pa.Table, Locator] | None:
    """Convert ``{"name": [values]}`` into Arrow columns after checking their lengths agree."""
    if not isinstance(columns, dict):
        issues.add(prefix, f"{prefix} must be an object of arrays, one per column")
        return None
    limits = limits or IngestLimits()
    limits.check_columns(len(columns))
    limits.check_rows(
        max((len(values) for values in columns.values() if isinstance(values, list)), default=0)
    )
    expected: tuple[str, int] | None = None
    for name, values in columns.items():
        if not isinstance(values, list):
            issues.add(f"{prefix}.{name}", "a column must be an array")
        elif expected is None:
            expected = (name, len(values))
        elif len(values) != expected[1]:
            issues.add(
                f"{prefix}.{name}",
                f"{prefix}.{name} has {len(values)} values, expected {expected[1]} "
                f"(the length of {prefix}.{expected[0]})",
            )
    if issues:
        return None
    locator = Locator(prefix=prefix)
    arrays = {name: _column_array(values, name, locator, issues) for name, values in columns.items()}
    if issues:
        return None
    return pa.Table.from_pydict(arrays), locator


def _column_array(values: list[Any], name: str, locator: Locator, issues: Issues) -> pa.Array:
    return to_array(values, lambda row: locator.field(name, row), issues, labels=name in _LABEL_COLUMNS)


def to_array(
    values: list[Any], field: Callable[[int], str], issues: Issues, *, labels: bool = False
) -> pa.Array:
    """One Arrow array from JSON values; a column mixing types is an issue at its first odd row.

    ``labels`` columns may mix booleans and integers: booleans are integers there.
    """
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        error = exc
    kinds = [(row, _json_kind(value)) for row, value in enumerate(values) if value is not None]
    distinct = {kind for _, kind in kinds}
    if labels and distinct == {"boolean", "number"}:
        return to_array([int(v) if isinstance(v, bool) else v for v in values], field, issues)
    first_row, first_kind = kinds[0]
    odd = next(((row, kind) for row, kind in kinds if kind != first_kind), None)
    if odd is not None:
        row, kind = odd
        message = f"{_article(kind)} here, but {_article(first_kind)} at row {first_row}; one type per column"
        issues.add(field(row), message, row)
    else:
        bad = next((row for row, value in enumerate(values) if not _converts(value)), None)
        issues.add(field(bad) if bad is not None else field(0), f"cannot be stored: {error}", bad)
    return pa.nulls(len(values))


def _converts(value: object) -> bool:
    try:
        pa.array([value])
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return False
    return True


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _first_row_with(rows: list[dict[str, Any]], key: str) -> int:
    return next(i for i, row in enumerate(rows) if key in row)


def _nested_columns(
    rows: list[dict[str, Any]], key: str, prefix: str, issues: Issues, *, limits: IngestLimits, columns: int
) -> Mapping[str, list[Any]] | None:
    """``rows[i][key]`` objects as columns; a row without the key or a key missing from it is null.

    ``columns`` are already taken: the names are counted against ``max_columns`` before any
    column is built.
    """
    objects = [row.get(key) for row in rows]
    bad = next((i for i, value in enumerate(objects) if not isinstance(value, dict | None)), None)
    if bad is not None:
        issues.add(f"{prefix}[{bad}].{key}", f"{key} must be an object", bad)
        return None
    names = dict.fromkeys(chain.from_iterable(value for value in objects if value))
    limits.check_columns(columns + len(names))
    return {name: [value.get(name) if value else None for value in objects] for name in names}
