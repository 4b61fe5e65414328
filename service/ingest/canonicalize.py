"""Turn a decoded table (any format) into a validated :class:`CanonicalBatch`.

Every format decoder ends here with an Arrow table whose column names are already
canonical (``sample_id``, ``label``, ``score__cat``, features...). Each rule is one
vectorized expression over a whole column; Python only runs per class, never per row.
Issues are collected per stage and raised together, so nothing is returned half-done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.canonical import (
    DERIVED_ROWS_KEY,
    DERIVED_THRESHOLD_KEY,
    LABEL,
    LATENCY,
    LOWER,
    PREDICTION,
    RESERVED_COLUMNS,
    SAMPLE_ID,
    SCORE,
    SCORE_PREFIX,
    UPPER,
    BatchSpec,
    CanonicalBatch,
    Label,
    score_column,
)
from service.ingest.issues import SCORES, Issues, Locator
from service.ingest.label_kind import (
    INT,
    STR,
    cast_labels,
    check_members,
    coerce_class,
    coerce_score_name,
    normalize_labels,
    resolve_kind,
)
from service.ingest.limits import (
    MAX_CLASS_CHARS,
    MAX_SAMPLE_ID_CHARS,
    column_name_issue,
    first_too_long,
    too_long_message,
)
from service.ingest.masks import ArrowColumn, combined, first_duplicate, first_null, first_true, first_valid
from service.ingest.numbers import F64, finite_numbers, probabilities
from service.ingest.spec import RawSpec

#: multiclass scores must sum to 1 within this tolerance
SUM_TOLERANCE = 1e-6


def _categorical(column: ArrowColumn) -> ArrowColumn:
    """String features become dictionary-encoded once, here, when they repeat.

    Slice analysis groups rows by these columns; with one dictionary the group codes are the
    dictionary indices, free at every later evaluation (Parquet stores them natively).
    Near-unique strings (free text, ids) stay plain: a dictionary would only add weight.
    """
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) or len(column) == 0:
        return column
    encoded = combined(column).dictionary_encode()
    if len(encoded.dictionary) > len(column) // 2:
        return column
    return pa.chunked_array([encoded])


def canonicalize(table: pa.Table, spec: RawSpec, locator: Locator, *, textual_labels: bool) -> CanonicalBatch:
    """Validate ``table`` against ``spec`` and build the canonical batch.

    ``textual_labels`` is true for CSV, whose label cells are text that may stand for integers.
    Raises :class:`~service.errors.InvalidInput` naming each offending field and first row.
    """
    issues = Issues(locator)
    names = table.column_names
    _check_column_names(names, spec, issues)
    if table.num_rows == 0:
        issues.add(locator.batch, "the batch has no rows")
    issues.raise_if_any()

    columns: dict[str, ArrowColumn] = {name: table.column(i) for i, name in enumerate(names)}
    sample_ids = _sample_ids(columns.get(SAMPLE_ID), table.num_rows, issues)
    if spec.task == "regression":
        resolved = _regression(columns, spec, issues)
    else:
        resolved = _classification(columns, spec, table.num_rows, textual=textual_labels, issues=issues)
    latency = _latency(columns.get(LATENCY), issues)
    issues.raise_if_any()
    assert sample_ids is not None and resolved is not None  # an issue was raised otherwise
    batch_spec, reserved = resolved

    features = [name for name in names if name not in RESERVED_COLUMNS and not name.startswith(SCORE_PREFIX)]
    arrays = [pa.chunked_array([array]) for array in (sample_ids, *reserved.values())]
    arrays += [
        pa.chunked_array([latency])
        if name == LATENCY and latency is not None
        else _categorical(table.column(name))
        for name in features
    ]
    canonical = pa.Table.from_arrays(arrays, names=[SAMPLE_ID, *reserved, *features])
    if spec.task == "binary" and SCORE in columns:
        given = columns.get(PREDICTION)
        derived = table.num_rows if given is None else given.null_count
        canonical = _mark_derived(canonical, threshold=spec.threshold, rows=derived)
    return CanonicalBatch(spec=batch_spec, table=canonical, feature_columns=features)


def _mark_derived(table: pa.Table, *, threshold: float, rows: int) -> pa.Table:
    """Record in the prediction field's metadata (kept in the Parquet file) how many predictions
    were derived from the scores, and with which threshold."""
    index = table.schema.get_field_index(PREDICTION)
    metadata = {DERIVED_THRESHOLD_KEY: repr(threshold).encode(), DERIVED_ROWS_KEY: str(rows).encode()}
    field = table.schema.field(index).with_metadata(metadata)
    return table.set_column(index, field, table.column(index))


def _latency(column: ArrowColumn | None, issues: Issues) -> pa.Array | None:
    """``latency_ms``: per-row inference latency, finite and not negative (null: not measured)."""
    if column is None:
        return None
    latency = finite_numbers(column, LATENCY, issues, nullable=True)
    if latency is None:
        return None
    row = first_true(pc.less(latency, 0.0))
    if row is not None:
        issues.at(LATENCY, f"latency {latency[row].as_py()!r} ms is negative; send milliseconds >= 0", row)
        return None
    return latency


# --- column names -----------------------------------------------------------------------------


def _check_column_names(names: Sequence[str], spec: RawSpec, issues: Issues) -> None:
    seen: set[str] = set()
    for name in names:
        if column_name_issue(name, issues):
            continue
        if name in seen:
            issues.at(name, f"column {name!r} appears more than once")
        seen.add(name)
        if not name:
            issues.at(name, "column names must be non-empty")
        elif name == "scores":
            issues.at(name, "scores is a row-form field; as columns, send a score__<class> column per class")
        elif name == "features":
            issues.at(name, "features is a row-form field; as columns, send each feature as its own column")
        elif name.startswith(SCORE_PREFIX):
            if spec.task == "binary":
                issues.at(name, "a binary batch has one score column: the probability of positive_class")
            elif spec.task == "regression":
                issues.at(name, "a regression batch has no scores")
            elif name == SCORE_PREFIX:
                issues.at(name, "score column without a class name")
        elif name == SCORE and spec.task != "binary":
            where = "score__<class> columns" if spec.task == "multiclass" else "none"
            issues.at(name, f"score is the binary probability; a {spec.task} batch has {where}")
        elif name in (LOWER, UPPER) and spec.task != "regression":
            issues.at(name, f"{name} is a regression prediction-interval bound")


# --- sample ids -------------------------------------------------------------------------------


def _sample_ids(column: ArrowColumn | None, rows: int, issues: Issues) -> pa.Array | None:
    if column is None:
        return pa.array(np.arange(rows, dtype=np.int64)).cast(STR)
    ids = combined(column)
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if pa.types.is_integer(ids.type) or pa.types.is_large_string(ids.type):
        ids = ids.cast(STR)
    elif not pa.types.is_string(ids.type) and not pa.types.is_null(ids.type):
        issues.at(SAMPLE_ID, f"sample_id must be strings (or integers), not {ids.type}", first_valid(ids))
        return None
    row = first_null(ids)
    if row is not None:
        issues.at(SAMPLE_ID, "sample_id is missing; give every row one or leave the column out", row)
        return None
    ids = ids.cast(STR)
    row = first_true(pc.equal(pc.utf8_length(ids), 0))
    if row is not None:
        issues.at(SAMPLE_ID, "sample_id is empty", row)
        return None
    row = first_too_long(ids, MAX_SAMPLE_ID_CHARS)
    if row is not None:
        issues.at(SAMPLE_ID, too_long_message("sample_id", ids[row].as_py(), MAX_SAMPLE_ID_CHARS), row)
        return None
    duplicate = first_duplicate(ids)
    if duplicate is not None:
        first, second = duplicate
        issues.at(
            SAMPLE_ID,
            f"duplicate sample_id {ids[second].as_py()!r}: rows {first} and {second}",
            second,
        )
        return None
    return ids


# --- regression -------------------------------------------------------------------------------


def _regression(
    columns: Mapping[str, ArrowColumn], spec: RawSpec, issues: Issues
) -> tuple[BatchSpec, dict[str, pa.Array]] | None:
    if spec.classes is not None:
        issues.add(spec.classes_field, "a regression batch has no classes")
    if spec.positive_class is not None:
        issues.add(spec.positive_class_field, "a regression batch has no positive_class")
    label_column = columns.get(LABEL)
    prediction_column = columns.get(PREDICTION)
    label = finite_numbers(label_column, LABEL, issues, nullable=True) if label_column is not None else None
    prediction = None
    if prediction_column is None:
        issues.at(PREDICTION, "prediction is required for a regression batch", 0)
    else:
        prediction = finite_numbers(prediction_column, PREDICTION, issues, nullable=False)
    bounds = {
        name: finite_numbers(columns[name], name, issues, nullable=False)
        for name in (LOWER, UPPER)
        if name in columns
    }
    lower, upper = bounds.get(LOWER), bounds.get(UPPER)
    if lower is not None and upper is not None:
        row = first_true(pc.greater(lower, upper))
        if row is not None:
            issues.at(LOWER, f"lower {lower[row].as_py()!r} is above upper {upper[row].as_py()!r}", row)
    if issues or prediction is None or any(bound is None for bound in bounds.values()):
        return None
    rows = len(prediction)
    reserved = {LABEL: label if label is not None else pa.nulls(rows, F64), PREDICTION: prediction}
    reserved.update({name: bound for name, bound in bounds.items() if bound is not None})
    return BatchSpec(spec.model_name, spec.model_version, "regression"), reserved


# --- classification ---------------------------------------------------------------------------


def _classification(
    columns: Mapping[str, ArrowColumn], spec: RawSpec, rows: int, *, textual: bool, issues: Issues
) -> tuple[BatchSpec, dict[str, pa.Array]] | None:
    normalized: dict[str, pa.Array] = {}
    for name in (LABEL, PREDICTION):
        if name in columns:
            array = normalize_labels(columns[name], name, issues)
            if array is None:
                continue
            row = first_too_long(array, MAX_CLASS_CHARS)
            if row is not None:
                issues.at(name, too_long_message(f"a {name}", array[row].as_py(), MAX_CLASS_CHARS), row)
                continue
            normalized[name] = array
    if issues:
        return None
    score_names = [name[len(SCORE_PREFIX) :] for name in columns if name.startswith(SCORE_PREFIX)]
    kind = resolve_kind(normalized, spec, score_names, textual=textual, issues=issues)
    if kind is None:
        return None
    label = cast_labels(normalized.get(LABEL, pa.nulls(rows)), kind)
    prediction = cast_labels(normalized[PREDICTION], kind) if PREDICTION in normalized else None
    given = _given_classes(spec, kind, issues)
    positive = _given_positive(spec, kind, issues)
    if issues:
        return None
    resolved: tuple[list[Label], Label | None, dict[str, pa.Array]] | None
    if spec.task == "binary":
        resolved = _binary(label, prediction, columns.get(SCORE), given, positive, spec, kind, issues)
    else:
        resolved = _multiclass(label, prediction, columns, given, positive, spec, kind, issues)
    if resolved is None:
        return None
    classes, positive, reserved = resolved
    batch_spec = BatchSpec(spec.model_name, spec.model_version, spec.task, positive, classes)
    return batch_spec, reserved


def _given_classes(spec: RawSpec, kind: pa.DataType, issues: Issues) -> list[Label] | None:
    if spec.classes is None:
        return None
    classes: list[Label] = []
    for i, value in enumerate(spec.classes):
        coerced = coerce_class(value, kind)
        if coerced is None:
            issues.add(spec.classes_field, f"class {value!r} (at {i}) is not {_a(kind)} like the labels")
            return None
        if coerced in classes:
            issues.add(spec.classes_field, f"class {coerced!r} is listed twice")
            return None
        classes.append(coerced)
    return classes


def _given_positive(spec: RawSpec, kind: pa.DataType, issues: Issues) -> Label | None:
    if spec.positive_class is None:
        return None
    coerced = coerce_class(spec.positive_class, kind)
    if coerced is None:
        issues.add(
            spec.positive_class_field,
            f"positive_class {spec.positive_class!r} is not {_a(kind)} like the labels",
        )
    return coerced


def _a(kind: pa.DataType) -> str:
    return "an integer" if kind == INT else "a string"


def _observed(label: pa.Array, prediction: pa.Array | None, limit: int) -> list[tuple[Label, str]]:
    """Up to ``limit`` distinct classes in order of appearance (labels first), with their column."""
    found: dict[Label, str] = {}
    for name, array in ((LABEL, label), (PREDICTION, prediction)):
        if array is None:
            continue
        for value in pc.unique(array.drop_null()).slice(0, limit).to_pylist():
            found.setdefault(value, name)
    return list(found.items())[:limit]


def _binary(
    label: pa.Array,
    prediction: pa.Array | None,
    score_column: ArrowColumn | None,
    given: list[Label] | None,
    positive: Label | None,
    spec: RawSpec,
    kind: pa.DataType,
    issues: Issues,
) -> tuple[list[Label], Label, dict[str, pa.Array]] | None:
    score = probabilities(score_column, SCORE, issues) if score_column is not None else None
    classes = (
        _binary_given(label, prediction, given, positive, spec, kind, issues)
        if given is not None
        else _binary_inferred(label, prediction, positive, spec, kind, issues)
    )
    if classes is None or issues:
        return None
    negative, positive = classes
    if prediction is None or prediction.null_count:
        if score is None:
            row = 0 if prediction is None else first_null(prediction)
            issues.at(PREDICTION, "prediction is missing and there is no score to derive it from", row)
            return None
        derived = pc.if_else(
            pa.array(score >= spec.threshold), pa.scalar(positive, type=kind), pa.scalar(negative, type=kind)
        )
        prediction = derived if prediction is None else pc.coalesce(prediction, derived)
    reserved = {LABEL: label, PREDICTION: prediction}
    if score is not None:
        reserved[SCORE] = pa.array(score, type=F64)
    return [negative, positive], positive, reserved


def _binary_given(
    label: pa.Array,
    prediction: pa.Array | None,
    given: list[Label],
    positive: Label | None,
    spec: RawSpec,
    kind: pa.DataType,
    issues: Issues,
) -> tuple[Label, Label] | None:
    if len(given) != 2:
        issues.add(spec.classes_field, f"a binary batch has exactly 2 classes, got {given!r}")
        return None
    if positive is not None and positive not in given:
        issues.add(spec.positive_class_field, f"positive_class {positive!r} is not among classes {given!r}")
        return None
    if positive is None:
        # Ints: 1 is positive as in scikit-learn; otherwise the order the client gave is [negative, positive].
        positive = 1 if kind == INT and 1 in given else given[1]
    negative = given[0] if given[1] == positive else given[1]
    check_members(label, LABEL, given, kind, issues)
    check_members(prediction, PREDICTION, given, kind, issues)
    return negative, positive


def _binary_inferred(
    label: pa.Array,
    prediction: pa.Array | None,
    positive: Label | None,
    spec: RawSpec,
    kind: pa.DataType,
    issues: Issues,
) -> tuple[Label, Label] | None:
    observed = _observed(label, prediction, limit=3)
    if len(observed) > 2:
        third, name = observed[2]
        array = label if name == LABEL else prediction
        assert array is not None
        row = pc.index(array, pa.scalar(third, type=kind)).as_py()
        shown = ", ".join(repr(value) for value, _ in observed)
        issues.at(name, f"a binary batch has 2 classes but found {shown}; use task multiclass", row)
        return None
    values = [value for value, _ in observed]
    if kind == INT and set(values) <= {0, 1}:
        if positive is None:
            positive = 1
        if positive not in (0, 1):
            issues.add(spec.positive_class_field, f"positive_class {positive!r} is not among classes [0, 1]")
            return None
        return 1 - positive, positive
    if positive is None:
        if kind == INT and 1 in values:
            positive = 1
        else:
            issues.add(
                spec.positive_class_field,
                f"positive_class is required: it cannot be determined from classes {values!r}; "
                "pass positive_class (or classes as [negative, positive])",
            )
            return None
    candidates = list(dict.fromkeys([*values, positive]))
    if len(candidates) > 2:
        issues.add(spec.positive_class_field, f"positive_class {positive!r} is not among classes {values!r}")
        return None
    if len(candidates) < 2:
        issues.add(
            spec.classes_field,
            f"only {positive!r} occurs, so the other class cannot be determined; pass classes",
        )
        return None
    negative = candidates[0] if candidates[1] == positive else candidates[1]
    return negative, positive


def _multiclass(
    label: pa.Array,
    prediction: pa.Array | None,
    columns: Mapping[str, ArrowColumn],
    given: list[Label] | None,
    positive: Label | None,
    spec: RawSpec,
    kind: pa.DataType,
    issues: Issues,
) -> tuple[list[Label], Label | None, dict[str, pa.Array]] | None:
    score_classes: dict[Label, str] = {}
    for name in columns:
        if not name.startswith(SCORE_PREFIX):
            continue
        cls = coerce_score_name(name[len(SCORE_PREFIX) :], kind)
        if cls is None or (given is not None and cls not in given):
            shown = name[len(SCORE_PREFIX) :]
            issues.at(name, f"score column for unknown class {shown!r}", first_valid(columns[name]))
        elif cls in score_classes:
            issues.at(name, f"{name} and {score_classes[cls]} are scores for the same class {cls!r}")
        else:
            score_classes[cls] = name
    if given is not None:
        if len(given) < 2:
            issues.add(spec.classes_field, f"a multiclass batch has at least 2 classes, got {given!r}")
            return None
        classes = given
        check_members(label, LABEL, classes, kind, issues)
        check_members(prediction, PREDICTION, classes, kind, issues)
    else:
        found = set(pc.unique(label.drop_null()).to_pylist()) | set(score_classes)
        if prediction is not None:
            found |= set(pc.unique(prediction.drop_null()).to_pylist())
        classes = sorted(found)
    if positive is not None and positive not in classes:
        issues.add(spec.positive_class_field, f"positive_class {positive!r} is not among classes {classes!r}")
    if issues:
        return None

    checked = {cls: probabilities(columns[name], name, issues) for cls, name in score_classes.items()}
    if issues:
        return None
    # probabilities() returns None only after recording an issue
    scores = {cls: values for cls, values in checked.items() if values is not None}
    reserved: dict[str, pa.Array] = {LABEL: label}
    matrix = None
    if scores:
        rows = len(label)
        # A class with no score column gets probability 0; each row must still sum to 1.
        matrix = np.column_stack([scores.get(cls, np.zeros(rows)) for cls in classes])
        sums = matrix.sum(axis=1)
        row = first_true(np.abs(sums - 1.0) > SUM_TOLERANCE)
        if row is not None:
            issues.at(SCORES, f"scores sum to {float(sums[row])!r}, not 1 (tolerance {SUM_TOLERANCE})", row)
            return None
    if prediction is None or prediction.null_count:
        if matrix is None:
            row = 0 if prediction is None else first_null(prediction)
            issues.at(PREDICTION, "prediction is missing and there are no scores to derive it from", row)
            return None
        # np.argmax takes the first maximum: ties go to the class listed first.
        derived = pa.array(classes, type=kind).take(pa.array(np.argmax(matrix, axis=1)))
        prediction = derived if prediction is None else pc.coalesce(prediction, derived)
    reserved[PREDICTION] = prediction
    if matrix is not None:
        for i, cls in enumerate(classes):
            values = scores.get(cls)
            reserved[score_column(cls)] = pa.array(matrix[:, i] if values is None else values, type=F64)
    return classes, positive, reserved
