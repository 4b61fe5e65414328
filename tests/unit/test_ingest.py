"""Every body format decodes into the same canonical batch.

The helpers here (``encode``, ``FORMATS``) are reused by the other ``test_ingest_*`` modules.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from service.canonical import RESERVED_COLUMNS, SCORE_PREFIX, BatchSpec, CanonicalBatch
from service.errors import InvalidInput
from service.ingest import ingest_body, load_canonical

MODEL = {"name": "fraud-gbm", "version": "7"}
FORMATS = ("json-rows", "json-columns", "csv", "parquet", "arrow-stream", "arrow-file")
ROW_KEYS = {"sample_id", "label", "prediction", "score", "lower", "upper"}


def envelope(task: str, **spec: Any) -> dict[str, Any]:
    return {"model": MODEL, "task": task, **{k: v for k, v in spec.items() if v is not None}}


def to_rows(columns: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Column dict -> JSON row objects (score__x -> scores, other columns -> features)."""
    n = len(next(iter(columns.values())))
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {}
        for name, values in columns.items():
            if name in ROW_KEYS:
                row[name] = values[i]
            elif name.startswith(SCORE_PREFIX):
                row.setdefault("scores", {})[name[len(SCORE_PREFIX) :]] = values[i]
            else:
                row.setdefault("features", {})[name] = values[i]
        rows.append(row)
    return rows


def encode(
    fmt: str, columns: Mapping[str, list[Any]] | pa.Table, task: str, **spec: Any
) -> tuple[bytes, str, dict[str, str]]:
    """``(body, content_type, params)`` carrying ``columns`` and the spec in format ``fmt``.

    ``spec`` holds positive_class/classes as JSON values; for query parameters they become text.
    """
    if fmt.startswith("json"):
        assert not isinstance(columns, pa.Table)
        doc = envelope(task, **spec)
        doc["rows" if fmt == "json-rows" else "columns"] = (
            to_rows(columns) if fmt == "json-rows" else dict(columns)
        )
        return orjson.dumps(doc), "application/json", {}
    params = {"model": MODEL["name"], "version": MODEL["version"], "task": task}
    if spec.get("positive_class") is not None:
        params["positive_class"] = str(spec["positive_class"])
    if spec.get("classes") is not None:
        params["classes"] = ",".join(str(c) for c in spec["classes"])
    table = columns if isinstance(columns, pa.Table) else pa.table(dict(columns))
    if fmt == "csv":
        sink = io.BytesIO()
        pacsv.write_csv(table, sink)
        return sink.getvalue(), "text/csv", params
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue(), "application/vnd.apache.parquet", params
    out = pa.BufferOutputStream()
    if fmt == "arrow-stream":
        with pa.ipc.new_stream(out, table.schema) as writer:
            writer.write_table(table)
        return out.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream", params
    assert fmt == "arrow-file"
    with pa.ipc.new_file(out, table.schema) as writer:
        writer.write_table(table)
    return out.getvalue().to_pybytes(), "application/vnd.apache.arrow.file", params


def ingest(fmt: str, columns: Mapping[str, list[Any]] | pa.Table, task: str, **spec: Any) -> CanonicalBatch:
    body, content_type, params = encode(fmt, columns, task, **spec)
    return ingest_body(body, content_type, params)


def reject(fmt: str, columns: Mapping[str, list[Any]] | pa.Table, task: str, **spec: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        ingest(fmt, columns, task, **spec)
    assert caught.value.status == 422
    return caught.value


# --- binary --------------------------------------------------------------------------------------

BINARY = {
    "sample_id": ["s1", "s2", "s3"],
    "label": [0, 1, None],
    "prediction": [0, 1, 0],
    "score": [0.12, 0.8, 0.4],
    "amount": [12.5, 3.0, 7.25],
    "country": ["BR", "US", "BR"],
}
BINARY_EXPECTED = pa.table(
    {
        "sample_id": pa.array(["s1", "s2", "s3"]),
        "label": pa.array([0, 1, None], pa.int64()),
        "prediction": pa.array([0, 1, 0], pa.int64()),
        "score": pa.array([0.12, 0.8, 0.4]),
        "amount": pa.array([12.5, 3.0, 7.25]),
        "country": pa.array(["BR", "US", "BR"]),
    }
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_round_trips_into_one_canonical_table(fmt: str) -> None:
    batch = ingest(fmt, BINARY, "binary", positive_class=1)
    assert batch.table.equals(BINARY_EXPECTED), batch.table
    assert batch.spec == BatchSpec("fraud-gbm", "7", "binary", positive_class=1, classes=[0, 1])
    assert batch.feature_columns == ["amount", "country"]
    assert (batch.rows, batch.labeled_rows) == (3, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_string_labels_with_positive_class(fmt: str) -> None:
    columns = {"sample_id": ["a", "b", "c"], "label": ["legit", "fraud", "legit"], "score": [0.2, 0.9, 0.5]}
    batch = ingest(fmt, columns, "binary", positive_class="fraud")
    assert batch.spec.classes == ["legit", "fraud"] and batch.spec.positive_class == "fraud"
    # prediction derived from the score: positive when score >= 0.5
    assert batch.table.column("prediction").to_pylist() == ["legit", "fraud", "fraud"]
    assert batch.table.schema.field("label").type == pa.string()


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_given_classes_order_is_negative_positive(fmt: str) -> None:
    columns = {"label": ["no", "yes"], "prediction": ["no", "no"]}
    batch = ingest(fmt, columns, "binary", classes=["no", "yes"])
    assert (batch.spec.classes, batch.spec.positive_class) == (["no", "yes"], "yes")
    batch = ingest(fmt, columns, "binary", classes=["yes", "no"], positive_class="yes")
    assert (batch.spec.classes, batch.spec.positive_class) == (["no", "yes"], "yes")


@pytest.mark.parametrize("fmt", ["json-rows", "csv", "parquet"])
def test_binary_int_classes_default_and_positive_zero(fmt: str) -> None:
    columns = {"label": [0, 0], "prediction": [0, 0]}
    batch = ingest(fmt, columns, "binary")
    assert (batch.spec.classes, batch.spec.positive_class) == ([0, 1], 1)
    batch = ingest(fmt, columns, "binary", positive_class=0)
    assert (batch.spec.classes, batch.spec.positive_class) == ([1, 0], 0)
    batch = ingest(fmt, {"label": [2, 1], "prediction": [1, 1]}, "binary")
    assert (batch.spec.classes, batch.spec.positive_class) == ([2, 1], 1)


def test_positive_class_and_classes_arrive_as_strings_for_int_labels() -> None:
    batch = ingest(
        "json-columns",
        {"label": [0, 1], "prediction": [1, 1]},
        "binary",
        positive_class="1",
        classes=["0", "1"],
    )
    assert (batch.spec.classes, batch.spec.positive_class) == ([0, 1], 1)
    assert isinstance(batch.spec.positive_class, int)


def test_bool_labels_become_ints() -> None:
    rows = {"label": [True, False, None], "prediction": [True, True, False], "score": [0.9, 0.6, 0.1]}
    for fmt in ("json-rows", "json-columns", "parquet"):
        batch = ingest(fmt, rows, "binary")
        assert batch.table.column("label").to_pylist() == [1, 0, None], fmt
        assert batch.table.column("prediction").to_pylist() == [1, 1, 0], fmt
        assert batch.spec.classes == [0, 1]


def test_json_row_labels_may_mix_bools_and_ints() -> None:
    batch = ingest("json-rows", {"label": [True, 0], "prediction": [1, False]}, "binary")
    assert batch.table.column("label").to_pylist() == [1, 0]


def test_csv_labels_that_look_like_ints_are_int64_and_sample_ids_stay_text() -> None:
    body = b"sample_id,label,prediction\n007,1,0\n008,,1\n"
    batch = ingest_body(body, "text/csv; charset=utf-8", {"model": "m", "version": "1", "task": "binary"})
    assert batch.table.column("sample_id").to_pylist() == ["007", "008"]
    assert batch.table.schema.field("label").type == pa.int64()
    assert batch.table.column("label").to_pylist() == [1, None]
    body = b"sample_id,label,prediction\n1,1.0,0\n2,x,0\n"
    batch = ingest_body(body, "text/csv", {"model": "m", "version": "1", "task": "multiclass"})
    assert batch.spec.classes == ["0", "1.0", "x"]


def test_sample_ids_are_generated_when_absent_and_ints_become_strings() -> None:
    batch = ingest("json-columns", {"prediction": [0, 1, 1]}, "binary")
    assert batch.table.column("sample_id").to_pylist() == ["0", "1", "2"]
    assert batch.table.column("label").null_count == 3
    assert batch.table.schema.field("label").type == pa.int64()
    batch = ingest("json-columns", {"sample_id": [10, 11], "prediction": [0, 1]}, "binary")
    assert batch.table.column("sample_id").to_pylist() == ["10", "11"]


def test_json_prediction_may_be_missing_on_some_rows_when_scores_are_given() -> None:
    doc = envelope("binary")
    doc["rows"] = [{"label": 1, "prediction": 0, "score": 0.9}, {"label": 1, "score": 0.7}]
    batch = ingest_body(orjson.dumps(doc), "application/json", {})
    assert batch.table.column("prediction").to_pylist() == [0, 1]


# --- multiclass ----------------------------------------------------------------------------------

MULTICLASS = {
    "sample_id": ["a", "b", "c"],
    "label": ["cat", "dog", None],
    "prediction": ["cat", "dog", "bird"],
    "score__cat": [0.7, 0.1, 0.3],
    "score__dog": [0.2, 0.8, 0.3],
    "score__bird": [0.1, 0.1, 0.4],
    "device": ["ios", "web", "ios"],
}
MULTICLASS_EXPECTED = pa.table(
    {
        "sample_id": ["a", "b", "c"],
        "label": pa.array(["cat", "dog", None]),
        "prediction": ["cat", "dog", "bird"],
        "score__bird": [0.1, 0.1, 0.4],
        "score__cat": [0.7, 0.1, 0.3],
        "score__dog": [0.2, 0.8, 0.3],
        "device": ["ios", "web", "ios"],
    }
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_multiclass_round_trips_with_classes_sorted_and_scores_in_class_order(fmt: str) -> None:
    batch = ingest(fmt, MULTICLASS, "multiclass")
    assert batch.spec == BatchSpec("fraud-gbm", "7", "multiclass", classes=["bird", "cat", "dog"])
    assert batch.table.equals(MULTICLASS_EXPECTED), batch.table
    assert batch.feature_columns == ["device"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_multiclass_given_classes_keep_their_order(fmt: str) -> None:
    batch = ingest(fmt, MULTICLASS, "multiclass", classes=["dog", "cat", "bird"])
    assert batch.spec.classes == ["dog", "cat", "bird"]
    assert batch.table.column_names[3:6] == ["score__dog", "score__cat", "score__bird"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_multiclass_int_labels_map_score_names_and_argmax_takes_first_max(fmt: str) -> None:
    columns = {
        "label": [2, 0, 1],
        "score__0": [0.1, 0.4, 0.2],
        "score__1": [0.1, 0.4, 0.2],
        "score__2": [0.8, 0.2, 0.6],
    }
    batch = ingest(fmt, columns, "multiclass")
    assert batch.spec.classes == [0, 1, 2]
    # row 1 ties 0 and 1: the class listed first wins
    assert batch.table.column("prediction").to_pylist() == [2, 0, 2]
    assert batch.table.schema.field("prediction").type == pa.int64()


def test_multiclass_class_without_score_column_gets_zero() -> None:
    columns = {"label": ["cat", "bird"], "score__cat": [0.6, 0.3], "score__dog": [0.4, 0.7]}
    batch = ingest("json-columns", columns, "multiclass")
    assert batch.spec.classes == ["bird", "cat", "dog"]
    assert batch.table.column("score__bird").to_pylist() == [0.0, 0.0]
    assert batch.table.column("prediction").to_pylist() == ["cat", "dog"]


def test_multiclass_positive_class_is_kept_when_among_classes() -> None:
    batch = ingest("json-columns", MULTICLASS, "multiclass", positive_class="dog")
    assert batch.spec.positive_class == "dog"


# --- regression ----------------------------------------------------------------------------------

REGRESSION = {
    "sample_id": ["r1", "r2", "r3"],
    "label": [1.5, None, 3.0],
    "prediction": [1.0, 2, -4.5],
    "lower": [0.5, 1.0, -6.0],
    "upper": [2.0, 3.5, -3.0],
    "store": [10, 11, 12],
}
REGRESSION_EXPECTED = pa.table(
    {
        "sample_id": ["r1", "r2", "r3"],
        "label": pa.array([1.5, None, 3.0]),
        "prediction": [1.0, 2.0, -4.5],
        "lower": [0.5, 1.0, -6.0],
        "upper": [2.0, 3.5, -3.0],
        "store": pa.array([10, 11, 12], pa.int64()),
    }
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_regression_round_trips(fmt: str) -> None:
    columns = dict(REGRESSION)
    if fmt not in ("json-rows", "json-columns"):
        columns["prediction"] = [1.0, 2.0, -4.5]  # one Arrow column holds one type
    batch = ingest(fmt, columns, "regression")
    assert batch.table.equals(REGRESSION_EXPECTED), batch.table
    assert batch.spec == BatchSpec("fraud-gbm", "7", "regression")
    assert batch.feature_columns == ["store"]


def test_regression_int_labels_widen_and_absent_labels_are_float_nulls() -> None:
    batch = ingest("json-columns", {"prediction": [1, 2]}, "regression")
    assert batch.table.schema.field("label").type == pa.float64()
    assert batch.table.column("label").null_count == 2
    assert batch.table.schema.field("prediction").type == pa.float64()


# --- content types and storage ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("parquet", "application/x-parquet"),
        ("arrow-stream", "application/vnd.apache.arrow.file"),
        ("arrow-file", "application/vnd.apache.arrow.stream"),
        ("json-columns", "Application/JSON; charset=UTF-8"),
    ],
)
def test_content_type_aliases_and_parameters(fmt: str, content_type: str) -> None:
    body, _, params = encode(fmt, BINARY, "binary")
    assert ingest_body(body, content_type, params).table.equals(BINARY_EXPECTED)


def test_json_ignores_query_parameters() -> None:
    body, content_type, _ = encode("json-columns", BINARY, "binary")
    batch = ingest_body(body, content_type, {"task": "regression", "model": "other"})
    assert batch.spec.task == "binary" and batch.spec.model_name == "fraud-gbm"


def test_model_version_may_be_a_json_number() -> None:
    doc = {"model": {"name": "m", "version": 7}, "task": "binary", "columns": {"prediction": [0, 1]}}
    assert ingest_body(orjson.dumps(doc), "application/json", {}).spec.model_version == "7"


@pytest.mark.parametrize("data", [BINARY, MULTICLASS, REGRESSION])
def test_load_canonical_round_trips_through_parquet(data: Mapping[str, list[Any]]) -> None:
    task = "binary" if data is BINARY else "multiclass" if data is MULTICLASS else "regression"
    batch = ingest("json-columns", data, task)
    sink = io.BytesIO()
    pq.write_table(batch.table, sink)
    restored = load_canonical(pq.read_table(io.BytesIO(sink.getvalue())), batch.spec)
    assert restored.table.equals(batch.table)
    assert restored.spec == batch.spec and restored.feature_columns == batch.feature_columns


def test_load_canonical_casts_dictionary_columns_and_rejects_a_missing_column() -> None:
    batch = ingest("json-columns", MULTICLASS, "multiclass")
    index = batch.table.column_names.index("label")
    encoded = batch.table.set_column(index, "label", batch.table.column("label").dictionary_encode())
    assert load_canonical(encoded, batch.spec).table.equals(batch.table)
    with pytest.raises(ValueError, match="prediction"):
        load_canonical(batch.table.drop_columns(["prediction"]), batch.spec)


def test_canonical_columns_are_reserved_then_features() -> None:
    batch = ingest("json-rows", BINARY, "binary")
    reserved = [name for name in batch.table.column_names if name in RESERVED_COLUMNS]
    assert batch.table.column_names[: len(reserved)] == reserved
    assert not math.isnan(batch.table.column("score").to_pylist()[0])


# --- decoder details -----------------------------------------------------------------------------


def test_csv_quoted_cells_may_hold_newlines_and_only_empty_cells_are_null() -> None:
    body = b'sample_id,prediction,note,country\na,0,"line one\nline two",NA\nb,1,,NA\n'
    batch = ingest_body(body, "text/csv", {"model": "m", "version": "1", "task": "binary"})
    assert batch.table.column("note").to_pylist() == ["line one\nline two", None]
    assert batch.table.column("country").to_pylist() == ["NA", "NA"]


def test_parquet_categoricals_and_large_strings_become_canonical_types() -> None:
    table = pa.table(
        {
            "sample_id": pa.array(["a", "b"], pa.large_string()),
            "label": pa.array(["x", "y"]).dictionary_encode(),
            "prediction": pa.array(["x", "x"], pa.large_string()),
            "segment": pa.array(["s", "t"]).dictionary_encode(),
        }
    )
    batch = ingest("parquet", table, "binary", positive_class="y")
    assert batch.table.schema.types[:3] == [pa.string()] * 3
    # features keep their Arrow type
    assert pa.types.is_dictionary(batch.table.schema.field("segment").type)


def test_arrow_stream_with_several_record_batches() -> None:
    schema = pa.schema([("sample_id", pa.string()), ("prediction", pa.int64()), ("score", pa.float64())])
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, schema) as writer:
        writer.write_batch(pa.record_batch([["a", "b"], [0, 1], [0.1, 0.9]], schema=schema))
        writer.write_batch(pa.record_batch([["c"], [1], [0.7]], schema=schema))
    params = {"model": "m", "version": "1", "task": "binary"}
    batch = ingest_body(out.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream", params)
    assert batch.table.column("sample_id").to_pylist() == ["a", "b", "c"]
    assert batch.table.column("score").to_pylist() == [0.1, 0.9, 0.7]
