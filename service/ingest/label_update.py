"""Late ground truth: ``PUT /v1/batches/{id}/labels`` joined to a stored batch by ``sample_id``.

Semantics (decided here, relied on by the API):

- The update sets each matched row's label to the given value; a ``null`` label
  *clears* the row's label (ground truth retracted). ``updated`` counts matched rows,
  whether or not their value changed.
- Update labels are checked like ingest checks them, against the batch's fixed
  ``classes`` (a label outside them is a 422: classes are decided at ingest) or, for
  regression, as finite numbers. Text that reads as the batch's label type is
  accepted (``"1"`` for an int-labelled batch), since a CSV cannot say otherwise.
- A sample id appearing twice in the update is a 422 naming both rows; ids that match
  no row are returned in ``unmatched_sample_ids`` and are not an error.
- An empty update (``{"labels": []}``) is a no-op: ``updated == 0``.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from service.canonical import LABEL, SAMPLE_ID, BatchSpec, CanonicalBatch, LabelMerge, join_on_sample_id
from service.ingest.issues import Issues, Locator, RowsLocator, invalid
from service.ingest.json_body import columns_to_table, load_json, rows_to_table
from service.ingest.label_kind import INT, STR, check_members, normalize_labels
from service.ingest.limits import MAX_SAMPLE_ID_CHARS, IngestLimits, first_too_long, too_long_message
from service.ingest.masks import ArrowColumn, combined, first_duplicate, first_null, first_true, first_valid
from service.ingest.media import CSV, JSON, LABEL_TYPES, parse_media_type
from service.ingest.numbers import finite_numbers, text_to_numbers
from service.ingest.reload import load_canonical
from service.ingest.tabular import Body, read_csv

#: schema metadata key recording which form the update came in, so merge issues name fields the same way
FORM_KEY = b"yardstick.form"
UPDATE_KEYS = ("labels", "columns")
UPDATE_COLUMNS = (SAMPLE_ID, LABEL)
_FORMS = "labels (a list of objects) or columns (an object of arrays)"


def parse_label_update(body: Body, content_type: str, *, limits: IngestLimits | None = None) -> pa.Table:
    """Decode a label update into a table ``(sample_id: string, label: as sent)``.

    JSON ``{"labels": [{"sample_id": ..., "label": ...}]}`` or
    ``{"columns": {"sample_id": [...], "label": [...]}}``; CSV with exactly those two columns.
    The label keeps its decoded type; :func:`merge_labels` checks it against the batch.
    Rows and columns past ``limits`` are a 413.
    """
    limits = limits or IngestLimits()
    media = parse_media_type(content_type, accepted=LABEL_TYPES)
    issues = Issues()
    decoded: tuple[pa.Table, Locator] | None
    if media.essence == JSON:
        doc = load_json(body)
        if not isinstance(doc, dict):
            raise invalid("body", 'expected a JSON object: {"labels": [...]} or {"columns": {...}}')
        for key in doc:
            if key not in UPDATE_KEYS:
                issues.add(key, f"unknown field; {_FORMS}")
        forms = [key for key in UPDATE_KEYS if doc.get(key) is not None]
        if len(forms) != 1:
            issues.add("labels", f"send exactly one form: {_FORMS}")
        issues.raise_if_any()
        if doc.get("labels") == []:
            # An empty update is a no-op, not an error.
            empty = pa.table({SAMPLE_ID: pa.array([], STR), LABEL: pa.nulls(0)})
            decoded = empty, RowsLocator(prefix="labels")
        elif forms == ["labels"]:
            decoded = rows_to_table(
                doc["labels"],
                prefix="labels",
                scalars=UPDATE_COLUMNS,
                required=UPDATE_COLUMNS,
                issues=issues,
                limits=limits,
            )
        else:
            decoded = columns_to_table(doc["columns"], prefix="columns", issues=issues, limits=limits)
    else:
        assert media.essence == CSV
        table = read_csv(body, text_columns=UPDATE_COLUMNS, charset=media.charset, limits=limits)
        decoded = table, Locator()
    issues.raise_if_any()
    assert decoded is not None
    table, locator = decoded
    issues.locator = locator
    form = locator.prefix or "table"
    for name in UPDATE_COLUMNS:
        if name not in table.column_names:
            issues.at(name, f"{name} is required")
    for name in table.column_names:
        if name not in UPDATE_COLUMNS:
            issues.at(name, "unknown column; a label update has only sample_id and label")
    issues.raise_if_any()
    ids = _sample_ids(table.column(SAMPLE_ID), issues)
    issues.raise_if_any()
    return pa.table({SAMPLE_ID: ids, LABEL: combined(table.column(LABEL))}).replace_schema_metadata(
        {FORM_KEY: form.encode()}
    )


def merge_labels(batch: CanonicalBatch, update: pa.Table) -> LabelMerge:
    """Set the labels of ``batch`` rows whose ``sample_id`` is in ``update`` (a pure function).

    Raises :class:`~service.errors.InvalidInput` for duplicate ids in the update or labels
    the batch cannot hold; nothing is applied then.
    """
    issues = Issues(_locator(update))
    for name in UPDATE_COLUMNS:
        if name not in update.column_names:
            issues.at(name, f"{name} is required")
    issues.raise_if_any()
    ids = _sample_ids(update.column(SAMPLE_ID), issues)
    labels = _labels_for(batch, update.column(LABEL), issues)
    if ids is not None:
        duplicate = first_duplicate(ids)
        if duplicate is not None:
            first, second = duplicate
            message = f"duplicate sample_id {ids[second].as_py()!r}: rows {first} and {second}"
            issues.at(SAMPLE_ID, message, second)
    issues.raise_if_any()
    assert ids is not None and labels is not None

    table = batch.table
    batch_ids = table.column(SAMPLE_ID)
    join = join_on_sample_id(batch_ids, ids)
    merged = pc.if_else(join.matched, pc.take(labels, join.position), table.column(LABEL))
    unmatched = pc.filter(ids, pc.invert(pc.is_in(ids, value_set=combined(batch_ids))))
    index = table.column_names.index(LABEL)
    new_table = table.set_column(index, table.schema.field(LABEL), merged)
    return LabelMerge(
        batch=CanonicalBatch(spec=batch.spec, table=new_table, feature_columns=list(batch.feature_columns)),
        updated=join.shared,
        unmatched_sample_ids=unmatched.to_pylist(),
    )


def merge_stored_labels(stored: pa.Table, spec: BatchSpec, *, update: pa.Table) -> LabelMerge:
    """:func:`merge_labels` into a batch as read back from storage: what the store's label update
    (:meth:`service.store.Store.update_labels`) applies to each version it reads."""
    return merge_labels(load_canonical(stored, spec), update)


def _locator(update: pa.Table) -> Locator:
    form = (update.schema.metadata or {}).get(FORM_KEY, b"table").decode()
    if form == "labels":
        return RowsLocator(prefix="labels")
    if form == "columns":
        return Locator(prefix="columns")
    return Locator()


def _sample_ids(column: ArrowColumn, issues: Issues) -> pa.Array | None:
    ids = combined(column)
    if pa.types.is_dictionary(ids.type):
        ids = ids.dictionary_decode()
    if not (
        pa.types.is_string(ids.type)
        or pa.types.is_large_string(ids.type)
        or pa.types.is_integer(ids.type)
        or pa.types.is_null(ids.type)
    ):
        issues.at(SAMPLE_ID, f"sample_id must be strings (or integers), not {ids.type}", first_valid(ids))
        return None
    row = first_null(ids)
    if row is not None:
        issues.at(SAMPLE_ID, "sample_id is missing", row)
        return None
    ids = ids.cast(STR)
    row = first_too_long(ids, MAX_SAMPLE_ID_CHARS)
    if row is not None:
        issues.at(SAMPLE_ID, too_long_message("sample_id", ids[row].as_py(), MAX_SAMPLE_ID_CHARS), row)
        return None
    return ids


def _labels_for(batch: CanonicalBatch, column: ArrowColumn, issues: Issues) -> pa.Array | None:
    """Update labels in the batch's label type, checked against its classes."""
    kind = batch.table.schema.field(LABEL).type
    if batch.spec.task == "regression":
        return finite_numbers(text_to_numbers(combined(column)), LABEL, issues, nullable=True)
    array = normalize_labels(column, LABEL, issues)
    if array is None:
        return None
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), kind)
    if array.type != kind:
        if kind == STR:
            array = array.cast(STR)
        else:
            try:
                array = array.cast(INT)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                digits = pc.match_substring_regex(array, r"^[+-]?\d+$")
                row = first_true(pc.and_(pc.is_valid(array), pc.invert(digits)))
                shown = "" if row is None else f" {array[row].as_py()!r}"
                issues.at(LABEL, f"{shown.strip() or 'label'} is not an integer like the batch's labels", row)
                return None
    classes = batch.spec.classes
    if classes is None:
        raise ValueError("a classification batch without resolved classes; build it with ingest_body")
    check_members(array, LABEL, classes, kind, issues)
    return None if issues else array
