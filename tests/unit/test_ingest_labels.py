"""Late labels: parse_label_update and merge_labels."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pytest

from service.canonical import CanonicalBatch
from service.errors import FieldIssue, InvalidInput, MalformedBody, UnsupportedMediaType
from service.ingest import merge_labels, parse_label_update
from tests.unit.test_ingest import ingest

BINARY = {"sample_id": ["a", "b", "c", "d"], "label": [0, None, None, 1], "prediction": [0, 1, 1, 1]}
STRINGS = {"sample_id": ["a", "b"], "label": [None, None], "prediction": ["cat", "dog"]}
REGRESSION = {"sample_id": ["a", "b"], "prediction": [1.5, 2.5]}


def binary() -> CanonicalBatch:
    return ingest("json-columns", BINARY, "binary")


def update_json(doc: Any) -> pa.Table:
    return parse_label_update(orjson.dumps(doc), "application/json")


def only_issue(error: InvalidInput) -> FieldIssue:
    assert error.status == 422
    assert len(error.issues) == 1, error.issues
    return error.issues[0]


def test_merge_sets_labels_counts_and_reports_unmatched_ids() -> None:
    batch = binary()
    update = update_json(
        {
            "labels": [
                {"sample_id": "b", "label": 1},
                {"sample_id": "zz", "label": 0},
                {"sample_id": "c", "label": 0},
            ]
        }
    )
    merged = merge_labels(batch, update)
    assert merged.updated == 2
    assert merged.unmatched_sample_ids == ["zz"]
    assert merged.batch.table.column("label").to_pylist() == [0, 1, 0, 1]
    assert merged.batch.table.schema == batch.table.schema
    assert merged.batch.labeled_rows == 4 and merged.batch.spec == batch.spec
    # pure: the input batch is untouched
    assert batch.table.column("label").to_pylist() == [0, None, None, 1]


def test_null_label_clears() -> None:
    merged = merge_labels(binary(), update_json({"columns": {"sample_id": ["a"], "label": [None]}}))
    assert merged.updated == 1
    assert merged.batch.table.column("label").to_pylist() == [None, None, None, 1]


def test_csv_update_text_is_coerced_to_the_batch_label_type() -> None:
    update = parse_label_update(b"sample_id,label\nb,1\nc,\n", "text/csv; charset=utf-8")
    assert update.column("label").type == pa.string()
    merged = merge_labels(binary(), update)
    assert merged.batch.table.column("label").to_pylist() == [0, 1, None, 1]


def test_string_and_regression_batches() -> None:
    batch = ingest("json-columns", STRINGS, "multiclass")
    merged = merge_labels(batch, update_json({"labels": [{"sample_id": "b", "label": "cat"}]}))
    assert merged.batch.table.column("label").to_pylist() == [None, "cat"]
    batch = ingest("json-columns", REGRESSION, "regression")
    merged = merge_labels(batch, parse_label_update(b"sample_id,label\na,3.25\n", "text/csv"))
    assert merged.batch.table.column("label").to_pylist() == [3.25, None]
    assert merged.batch.table.schema.field("label").type == pa.float64()


def test_integer_sample_ids_in_the_update_match_text_ids() -> None:
    batch = ingest("json-columns", {"sample_id": ["1", "2"], "prediction": [0, 1]}, "binary")
    merged = merge_labels(batch, update_json({"columns": {"sample_id": [2], "label": [True]}}))
    assert merged.batch.table.column("label").to_pylist() == [None, 1]


@pytest.mark.parametrize(
    ("body", "content_type", "field", "row"),
    [
        (
            b'{"labels": [{"sample_id": "a", "label": 0}, {"sample_id": "b", "label": 1},'
            b' {"sample_id": "a", "label": 1}]}',
            "application/json",
            "labels[2].sample_id",
            2,
        ),
        (
            b'{"columns": {"sample_id": ["a", "a"], "label": [0, 1]}}',
            "application/json",
            "columns.sample_id",
            1,
        ),
        (b"sample_id,label\nb,0\nb,1\n", "text/csv", "sample_id", 1),
    ],
)
def test_duplicate_ids_in_the_update(body: bytes, content_type: str, field: str, row: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        merge_labels(binary(), parse_label_update(body, content_type))
    issue = only_issue(caught.value)
    assert (issue.field, issue.row) == (field, row)
    assert f"and {row}" in issue.message


@pytest.mark.parametrize(
    ("data", "task", "doc", "field", "row"),
    [
        (
            BINARY,
            "binary",
            {"labels": [{"sample_id": "a", "label": 0}, {"sample_id": "b", "label": 2}]},
            "labels[1].label",
            1,
        ),
        (BINARY, "binary", {"columns": {"sample_id": ["a"], "label": ["yes"]}}, "columns.label", 0),
        (STRINGS, "multiclass", {"labels": [{"sample_id": "a", "label": "bird"}]}, "labels[0].label", 0),
        (REGRESSION, "regression", {"labels": [{"sample_id": "a", "label": "high"}]}, "labels[0].label", 0),
        (BINARY, "binary", {"labels": [{"sample_id": "a", "label": 0.5}]}, "labels[0].label", 0),
    ],
)
def test_update_labels_are_validated_like_ingest(
    data: dict[str, list[Any]], task: str, doc: Any, field: str, row: int
) -> None:
    batch = ingest("json-columns", data, task)
    with pytest.raises(InvalidInput) as caught:
        merge_labels(batch, update_json(doc))
    issue = only_issue(caught.value)
    assert (issue.field, issue.row) == (field, row)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"labels": [{"sample_id": "a"}]}, "labels[0].label"),
        ({"labels": [{"sample_id": "a", "label": 1, "score": 0.3}]}, "labels[0].score"),
        ({"labels": [{"sample_id": None, "label": 1}]}, "labels[0].sample_id"),
        ({"labels": [], "extra": 1}, "extra"),
        ({"columns": {"sample_id": ["a"]}}, "columns.label"),
        ({"columns": {"sample_id": ["a"], "label": [1, 2]}}, "columns.label"),
        ({}, "labels"),
    ],
)
def test_malformed_update_shapes_are_invalid(doc: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        update_json(doc)
    assert caught.value.issues[0].field == field


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"labels": []}', "application/json"),
        (b'{"columns": {"sample_id": [], "label": []}}', "application/json"),
        (b"sample_id,label\n", "text/csv"),
    ],
)
def test_an_empty_update_is_a_no_op(body: bytes, content_type: str) -> None:
    batch = binary()
    merged = merge_labels(batch, parse_label_update(body, content_type))
    assert (merged.updated, merged.unmatched_sample_ids) == (0, [])
    assert merged.batch.table.equals(batch.table)


def test_csv_update_needs_exactly_two_columns() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_label_update(b"sample_id,label,extra\na,1,2\n", "text/csv")
    assert only_issue(caught.value).field == "extra"


def test_undecodable_and_unsupported_updates() -> None:
    with pytest.raises(MalformedBody):
        parse_label_update(b"{", "application/json")
    with pytest.raises(UnsupportedMediaType):
        parse_label_update(b"", "application/vnd.apache.parquet")


def test_merge_accepts_a_table_built_by_the_caller() -> None:
    update = pa.table({"sample_id": ["d", "d"], "label": [0, 1]})
    with pytest.raises(InvalidInput) as caught:
        merge_labels(binary(), update)
    assert only_issue(caught.value).field == "sample_id"
    merged = merge_labels(binary(), pa.table({"sample_id": ["d"], "label": [0]}))
    assert merged.batch.table.column("label").to_pylist() == [0, None, None, 0]
