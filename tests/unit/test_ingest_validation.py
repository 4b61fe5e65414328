"""Every validation rule: the error class and status, the issue's field and first offending row."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.errors import FieldIssue, InvalidInput, MalformedBody, UnsupportedMediaType
from service.ingest import ingest_body
from tests.unit.test_ingest import encode, envelope, ingest, reject

TABULAR = ("csv", "parquet", "arrow-stream")


def field_for(fmt: str, column: str, row: int | None, *, row_path: str | None = None) -> str:
    """The field an issue about ``column`` at ``row`` names in format ``fmt``."""
    if fmt == "json-rows":
        return f"rows[{row}].{row_path or column}"
    if fmt == "json-columns":
        return f"columns.{column}"
    return column


def only_issue(error: InvalidInput) -> FieldIssue:
    assert len(error.issues) == 1, error.issues
    return error.issues[0]


def post_json(doc: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        ingest_body(orjson.dumps(doc), "application/json", {})
    assert caught.value.status == 422
    return caught.value


# --- the spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (None, "model"),
        ({"name": "", "version": "1"}, "model.name"),
        ({"name": "m"}, "model.version"),
        ({"name": "m", "version": " "}, "model.version"),
        ({"name": "m", "version": "1", "stage": "prod"}, "model.stage"),
    ],
)
def test_json_model_name_and_version_are_required(model: Any, field: str) -> None:
    doc = {"model": model, "task": "binary", "columns": {"prediction": [0]}}
    assert only_issue(post_json(doc)).field == field


@pytest.mark.parametrize("missing", ["model", "version"])
def test_query_model_name_and_version_are_required(missing: str) -> None:
    body, content_type, params = encode("csv", {"prediction": [0]}, "binary")
    params[missing] = ""
    with pytest.raises(InvalidInput) as caught:
        ingest_body(body, content_type, params)
    assert only_issue(caught.value).field == missing


@pytest.mark.parametrize("fmt", ["json-columns", "csv"])
def test_unknown_task(fmt: str) -> None:
    error = reject(fmt, {"prediction": [0]}, "ranking")
    issue = only_issue(error)
    assert issue.field == "task" and "ranking" in issue.message and issue.row is None


def test_missing_task() -> None:
    assert only_issue(post_json({"model": {"name": "m", "version": "1"}, "columns": {}})).field == "task"


def test_spec_issues_are_reported_together() -> None:
    error = post_json({"model": {"name": "", "version": ""}, "task": "x", "rows": [], "extra": 1})
    assert {issue.field for issue in error.issues} == {"extra", "model.name", "model.version", "task"}
    assert "and 3 more issues" in error.detail


def test_unknown_envelope_key_and_both_forms() -> None:
    doc = envelope("binary")
    doc["rows"] = [{"prediction": 0}]
    doc["columns"] = {"prediction": [0]}
    assert only_issue(post_json(doc)).field == "rows"
    doc = envelope("binary", pos_class=1)
    doc["columns"] = {"prediction": [0]}
    assert only_issue(post_json(doc)).field == "pos_class"
    doc = envelope("binary")
    assert only_issue(post_json(doc)).field == "rows"


# --- the shape of the data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "field"),
    [
        ("json-rows", "rows"),
        ("json-columns", "columns"),
        ("csv", "body"),
        ("parquet", "body"),
        ("arrow-stream", "body"),
    ],
)
def test_empty_batch(fmt: str, field: str) -> None:
    columns = pa.table({"prediction": pa.array([], pa.int64())}) if fmt in TABULAR else {"prediction": []}
    if fmt == "json-rows":
        doc = envelope("binary")
        doc["rows"] = []
        error = post_json(doc)
    else:
        error = reject(fmt, columns, "binary")
    issue = only_issue(error)
    assert (issue.field, issue.row) == (field, None)
    assert "no rows" in issue.message


def test_unequal_column_lengths_name_the_column_and_both_lengths() -> None:
    error = reject(
        "json-columns", {"sample_id": ["a", "b", "c"], "label": [0, 1], "prediction": [0, 1, 1]}, "binary"
    )
    issue = only_issue(error)
    assert issue.field == "columns.label"
    assert "2 values" in issue.message and "expected 3" in issue.message
    assert "columns.sample_id" in issue.message


def test_column_form_values_must_be_arrays() -> None:
    assert only_issue(reject("json-columns", {"prediction": 0}, "binary")).field == "columns.prediction"


def test_unknown_row_key_and_non_object_row() -> None:
    doc = envelope("binary")
    doc["rows"] = [{"prediction": 0}, {"prediction": 1, "amount": 3}]
    issue = only_issue(post_json(doc))
    assert (issue.field, issue.row) == ("rows[1].amount", 1)
    doc["rows"] = [{"prediction": 0}, [1]]
    issue = only_issue(post_json(doc))
    assert (issue.field, issue.row) == ("rows[1]", 1)
    doc["rows"] = [{"prediction": 0, "features": [1]}]
    assert only_issue(post_json(doc)).field == "rows[0].features"


@pytest.mark.parametrize("name", ["label", "score", "scores", "score__cat"])
def test_feature_named_like_a_reserved_column(name: str) -> None:
    doc = envelope("binary")
    doc["rows"] = [{"prediction": 0, "features": {"a": 1}}, {"prediction": 1, "features": {name: 3}}]
    issue = only_issue(post_json(doc))
    assert (issue.field, issue.row) == (f"rows[1].features.{name}", 1)
    assert "reserved" in issue.message


@pytest.mark.parametrize("fmt", ["json-columns", "csv"])
def test_row_form_fields_are_not_columns(fmt: str) -> None:
    error = reject(fmt, {"prediction": [0], "features": [1]}, "binary")
    assert only_issue(error).field == field_for(fmt, "features", None)


@pytest.mark.parametrize(
    ("task", "column"),
    [
        ("binary", "score__1"),
        ("multiclass", "score"),
        ("regression", "score"),
        ("regression", "score__1"),
        ("binary", "lower"),
        ("multiclass", "upper"),
    ],
)
def test_columns_that_do_not_belong_to_the_task(task: str, column: str) -> None:
    columns: dict[str, list[Any]] = {"label": [1], "prediction": [1], column: [1.0]}
    error = reject("parquet", columns, task)
    assert only_issue(error).field == column


def test_duplicate_column_names() -> None:
    arrays = [pa.array([0]), pa.array([1]), pa.array([1])]
    table = pa.Table.from_arrays(arrays, names=["prediction", "x", "x"])
    assert only_issue(reject("parquet", table, "binary")).field == "x"


def test_mixed_types_in_one_json_feature_column() -> None:
    issue = only_issue(reject("json-rows", {"prediction": [0, 1, 1], "amount": [1, 2, "3"]}, "binary"))
    assert (issue.field, issue.row) == ("rows[2].features.amount", 2)


# --- sample ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns", *TABULAR])
def test_duplicate_sample_ids_name_the_id_and_both_rows(fmt: str) -> None:
    columns = {"sample_id": ["a", "b", "c", "b", "a"], "prediction": [0, 1, 0, 1, 0]}
    issue = only_issue(reject(fmt, columns, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "sample_id", 3), 3)
    assert "'b'" in issue.message and "1" in issue.message and "3" in issue.message


@pytest.mark.parametrize("fmt", ["json-columns", "csv"])
def test_missing_sample_id(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"sample_id": ["a", None], "prediction": [0, 1]}, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "sample_id", 1), 1)


# --- probabilities -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "bad"),
    [(fmt, bad) for fmt in ("json-rows", "json-columns", *TABULAR) for bad in (1.2, -0.1)]
    # JSON has no NaN or infinity
    + [(fmt, bad) for fmt in TABULAR for bad in (float("nan"), float("inf"), float("-inf"))],
)
def test_binary_score_outside_unit_interval_or_not_finite(fmt: str, bad: float) -> None:
    columns = {"label": [0, 1, 1], "score": [0.1, 0.5, bad]}
    issue = only_issue(reject(fmt, columns, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "score", 2), 2)


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns", *TABULAR])
def test_multiclass_score_outside_unit_interval(fmt: str) -> None:
    columns = {"label": ["a", "b"], "score__a": [0.5, -0.5], "score__b": [0.5, 1.5]}
    error = reject(fmt, columns, "multiclass")
    fields = [(issue.field, issue.row) for issue in error.issues]
    assert fields == [
        (field_for(fmt, "score__a", 1, row_path="scores.a"), 1),
        (field_for(fmt, "score__b", 1, row_path="scores.b"), 1),
    ]


def test_multiclass_nan_score() -> None:
    columns = {"label": ["a", "b"], "score__a": [0.5, float("nan")], "score__b": [0.5, 0.5]}
    issue = only_issue(reject("parquet", columns, "multiclass"))
    assert (issue.field, issue.row) == ("score__a", 1)


@pytest.mark.parametrize(
    ("fmt", "field"),
    [
        ("json-rows", "rows[2].scores"),
        ("json-columns", "columns.score__*"),
        ("csv", "score__*"),
        ("parquet", "score__*"),
    ],
)
def test_multiclass_scores_must_sum_to_one(fmt: str, field: str) -> None:
    columns = {"label": ["a", "b", "a"], "score__a": [0.6, 0.3, 0.5], "score__b": [0.4, 0.7, 0.4]}
    issue = only_issue(reject(fmt, columns, "multiclass"))
    assert (issue.field, issue.row) == (field, 2)
    assert "0.9" in issue.message


def test_multiclass_sum_tolerance_is_1e_6() -> None:
    ok = {"label": ["a"], "score__a": [0.6 + 5e-7], "score__b": [0.4]}
    off = {"label": ["a"], "score__a": [0.6 + 5e-6], "score__b": [0.4]}
    assert ingest("parquet", ok, "multiclass").rows == 1
    assert only_issue(reject("parquet", off, "multiclass")).row == 0


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns"])
def test_missing_score_in_some_rows(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"label": [0, 1], "score": [0.3, None]}, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "score", 1), 1)


def test_score_must_be_a_number() -> None:
    issue = only_issue(reject("csv", {"label": [0, 1, 1], "score": ["0.1", "0.2", "high"]}, "binary"))
    assert (issue.field, issue.row) == ("score", 2)
    issue = only_issue(reject("json-columns", {"label": [0], "score": ["0.5"]}, "binary"))
    assert (issue.field, issue.row) == ("columns.score", 0)


# --- classes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns", *TABULAR])
@pytest.mark.parametrize("column", ["label", "prediction"])
def test_labels_and_predictions_outside_classes(fmt: str, column: str) -> None:
    columns = {"label": ["cat", "dog", "cat"], "prediction": ["cat", "dog", "dog"]}
    columns[column] = ["cat", "dog", "bird"]
    issue = only_issue(reject(fmt, columns, "multiclass", classes=["cat", "dog"]))
    assert (issue.field, issue.row) == (field_for(fmt, column, 2), 2)
    assert "'bird'" in issue.message


def test_binary_labels_outside_given_classes() -> None:
    issue = only_issue(reject("json-rows", {"label": [0, 2], "prediction": [0, 1]}, "binary", classes=[0, 1]))
    assert (issue.field, issue.row) == ("rows[1].label", 1)


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns"])
def test_mixed_label_types_within_a_column(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"label": [0, 1, "cat"], "prediction": [0, 1, 1]}, "multiclass"))
    assert (issue.field, issue.row) == (field_for(fmt, "label", 2), 2)
    assert "string" in issue.message and "number" in issue.message


@pytest.mark.parametrize("fmt", ["json-columns", "parquet"])
def test_mixed_label_types_between_label_and_prediction(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"label": [None, 1], "prediction": ["a", "b"]}, "multiclass"))
    assert (issue.field, issue.row) == (field_for(fmt, "prediction", 0), 0)
    assert "integers" in issue.message and "strings" in issue.message


def test_fractional_classification_label() -> None:
    issue = only_issue(reject("parquet", {"label": [1.0, 2.5], "prediction": [1, 2]}, "multiclass"))
    assert (issue.field, issue.row) == ("label", 1)


@pytest.mark.parametrize("fmt", ["json-columns", "csv"])
def test_positive_class_not_among_classes(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"label": ["a", "b"]}, "binary", classes=["a", "b"], positive_class="c"))
    assert issue.field == "positive_class" and "'c'" in issue.message
    columns = {"label": ["a", "b"], "prediction": ["a", "a"]}
    issue = only_issue(reject(fmt, columns, "binary", positive_class="c"))
    assert issue.field == "positive_class"
    issue = only_issue(reject(fmt, {"label": [0, 1], "prediction": [0, 1]}, "binary", positive_class=2))
    assert issue.field == "positive_class"
    issue = only_issue(
        reject(fmt, {"label": ["a", "b"], "prediction": ["a", "a"]}, "multiclass", positive_class="c")
    )
    assert issue.field == "positive_class"


@pytest.mark.parametrize("fmt", ["json-rows", "csv"])
def test_binary_batch_with_more_than_two_classes(fmt: str) -> None:
    columns = {"label": [0, 1, 1, 2], "prediction": [0, 1, 0, 1]}
    issue = only_issue(reject(fmt, columns, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "label", 3), 3)
    assert "multiclass" in issue.message
    columns = {"label": [0, 1, 1, 0], "prediction": [0, 1, 5, 1]}
    issue = only_issue(reject(fmt, columns, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "prediction", 2), 2)


def test_binary_given_classes_must_be_two() -> None:
    issue = only_issue(reject("json-columns", {"label": [0, 1]}, "binary", classes=[0, 1, 2]))
    assert issue.field == "classes"


@pytest.mark.parametrize("fmt", ["json-columns", "csv"])
def test_string_labels_need_positive_class(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"label": ["legit", "fraud"], "prediction": ["legit", "legit"]}, "binary"))
    assert issue.field == "positive_class" and "required" in issue.message


def test_binary_other_class_cannot_be_determined() -> None:
    issue = only_issue(
        reject(
            "json-columns", {"label": ["fraud"], "prediction": ["fraud"]}, "binary", positive_class="fraud"
        )
    )
    assert issue.field == "classes"


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns", *TABULAR])
def test_score_column_for_unknown_class(fmt: str) -> None:
    columns = {"label": ["cat", "dog"], "score__cat": [0.5, 0.5], "score__bird": [0.5, 0.5]}
    issue = only_issue(reject(fmt, columns, "multiclass", classes=["cat", "dog"]))
    assert issue.field == field_for(fmt, "score__bird", 0, row_path="scores.bird")
    assert "'bird'" in issue.message


def test_score_column_name_that_is_not_an_int_class() -> None:
    columns = {"label": [0, 1], "score__0": [0.5, 0.5], "score__one": [0.5, 0.5]}
    assert only_issue(reject("csv", columns, "multiclass")).field == "score__one"


def test_class_values_of_the_wrong_type() -> None:
    issue = only_issue(reject("json-columns", {"label": [0, 1]}, "binary", classes=["no", "yes"]))
    assert issue.field == "classes"
    issue = only_issue(reject("csv", {"label": [0, 1]}, "binary", positive_class="yes"))
    assert issue.field == "positive_class"


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns", "csv"])
def test_missing_prediction_with_no_scores(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"sample_id": ["a", "b"], "label": [0, 1]}, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "prediction", 0), 0)
    issue = only_issue(reject(fmt, {"sample_id": ["a", "b"], "label": ["x", "y"]}, "multiclass"))
    assert (issue.field, issue.row) == (field_for(fmt, "prediction", 0), 0)


def test_null_prediction_with_no_scores() -> None:
    issue = only_issue(reject("json-rows", {"label": [0, 1], "prediction": [0, None]}, "binary"))
    assert (issue.field, issue.row) == ("rows[1].prediction", 1)


# --- regression ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json-rows", "json-columns", "csv"])
@pytest.mark.parametrize("column", ["label", "prediction"])
def test_regression_values_must_be_numbers(fmt: str, column: str) -> None:
    columns: dict[str, list[Any]] = {"label": [1.0, 2.0, 3.0], "prediction": [1.0, 2.0, 3.0]}
    columns[column] = ["1.5", "x", "2"] if fmt == "csv" else ["a", "b", "c"]
    issue = only_issue(reject(fmt, columns, "regression"))
    row = 1 if fmt == "csv" else 0
    assert (issue.field, issue.row) == (field_for(fmt, column, row), row)


@pytest.mark.parametrize("fmt", TABULAR)
@pytest.mark.parametrize("column", ["label", "prediction"])
def test_regression_values_must_be_finite(fmt: str, column: str) -> None:
    columns: dict[str, list[Any]] = {"label": [1.0, 2.0, 3.0], "prediction": [1.0, 2.0, 3.0]}
    columns[column] = [1.0, float("inf"), float("nan")]
    issue = only_issue(reject(fmt, columns, "regression"))
    assert (issue.field, issue.row) == (column, 1)


def test_regression_has_no_classes_or_positive_class() -> None:
    error = reject("json-columns", {"prediction": [1.0]}, "regression", classes=[0, 1], positive_class=1)
    assert {issue.field for issue in error.issues} == {"classes", "positive_class"}
    error = reject("csv", {"prediction": [1.0]}, "regression", positive_class=1)
    assert only_issue(error).field == "positive_class"


def test_regression_prediction_is_required_and_bounds_ordered() -> None:
    assert only_issue(reject("json-columns", {"label": [1.0]}, "regression")).field == "columns.prediction"
    issue = only_issue(
        reject("parquet", {"prediction": [1.0, 2.0], "lower": [0.0, 3.0], "upper": [2.0, 2.5]}, "regression")
    )
    assert (issue.field, issue.row) == ("lower", 1)


# --- undecodable bodies and media types ----------------------------------------------------------

PARAMS = {"model": "m", "version": "1", "task": "binary"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"model": ', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"", "application/json"),
        (b"prediction,label\n0,1\n1,0,5\n", "text/csv"),
        (b"", "text/csv"),
        (b"PAR1 not really parquet", "application/vnd.apache.parquet"),
        (b"", "application/vnd.apache.parquet"),
        (b"garbage", "application/vnd.apache.arrow.stream"),
        (b"ARROW1\x00\x00garbage", "application/vnd.apache.arrow.file"),
    ],
)
def test_undecodable_bodies_are_malformed(body: bytes, content_type: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        ingest_body(body, content_type, PARAMS)
    assert caught.value.status == 400
    assert caught.value.issues[0].field == "body"


def test_truncated_parquet_is_malformed() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"prediction": [0, 1]}), sink)
    with pytest.raises(MalformedBody):
        ingest_body(sink.getvalue()[:-20], "application/vnd.apache.parquet", PARAMS)


def test_json_that_is_not_an_object_is_invalid() -> None:
    with pytest.raises(InvalidInput) as caught:
        ingest_body(b"[1, 2]", "application/json", {})
    assert only_issue(caught.value).field == "body"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "", "application/xml", "application/json; charset=latin-1", "text/csv; charset=klingon"],
)
def test_unsupported_media_type(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        ingest_body(b"{}", content_type, PARAMS)
    assert caught.value.status == 415


def test_csv_in_another_charset_is_transcoded() -> None:
    body = "sample_id,prediction,city\né1,0,São Paulo\n".encode("latin-1")
    batch = ingest_body(body, "text/csv; charset=latin-1", PARAMS)
    assert batch.table.column("city").to_pylist() == ["São Paulo"]
    assert batch.table.column("sample_id").to_pylist() == ["é1"]


def test_duplicate_sample_ids_across_arrow_record_batches() -> None:
    schema = pa.schema([("sample_id", pa.string()), ("prediction", pa.int64())])
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, schema) as writer:
        writer.write_batch(pa.record_batch([["a", "b"], [0, 1]], schema=schema))
        writer.write_batch(pa.record_batch([["c", "a"], [1, 0]], schema=schema))
    with pytest.raises(InvalidInput) as caught:
        ingest_body(out.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream", PARAMS)
    issue = only_issue(caught.value)
    assert (issue.field, issue.row) == ("sample_id", 3)
    assert "rows 0 and 3" in issue.message


def test_labels_that_do_not_fit_int64() -> None:
    big = pa.array([1, 2**63 + 1], pa.uint64())
    table = pa.table({"label": big, "prediction": pa.array([1, 1], pa.uint64())})
    issue = only_issue(reject("parquet", table, "multiclass"))
    assert (issue.field, issue.row) == ("label", 1)
    body = (
        b'{"model": {"name": "m", "version": "1"}, "task": "multiclass",'
        b' "columns": {"label": [1, 18446744073709551616], "prediction": [1, 1]}}'
    )
    with pytest.raises(InvalidInput) as caught:
        ingest_body(body, "application/json", {})
    assert (only_issue(caught.value).field, only_issue(caught.value).row) == ("columns.label", 1)


def test_json_classes_mixing_strings_and_integers() -> None:
    error = reject("json-columns", {"score": [0.2]}, "binary", classes=["a", "b"], positive_class=1)
    issue = only_issue(error)
    assert issue.field == "classes"


@pytest.mark.parametrize("fmt", ["json-columns", "parquet"])
def test_sample_id_must_be_text_or_integers_and_non_empty(fmt: str) -> None:
    issue = only_issue(reject(fmt, {"sample_id": [1.5, 2.5], "prediction": [0, 1]}, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "sample_id", 0), 0)
    issue = only_issue(reject(fmt, {"sample_id": ["a", ""], "prediction": [0, 1]}, "binary"))
    assert (issue.field, issue.row) == (field_for(fmt, "sample_id", 1), 1)
