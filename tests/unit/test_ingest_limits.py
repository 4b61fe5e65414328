"""Ingest limits: rows, columns and decoded bytes (413, checked before decoding where the format
allows), string lengths (422 naming the field), undecodable CSV text, and the Arrow IPC header
reader that makes the pre-decode checks possible."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from schemas.common import ModelRef
from service.errors import FieldIssue, InvalidInput, MalformedBody, PayloadTooLarge
from service.ingest import IngestLimits, ingest_body, ipc_headers, parquet_footer, parse_label_update
from service.ingest.limits import (
    MAX_CLASS_CHARS,
    MAX_COLUMN_NAME_CHARS,
    MAX_MODEL_CHARS,
    MAX_SAMPLE_ID_CHARS,
    decoded_nbytes,
    leaf_count,
)
from tests.unit.test_ingest import encode

PARAMS = {"model": "m", "version": "1", "task": "binary"}
PARQUET = "application/vnd.apache.parquet"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
FORMATS = ("json-rows", "json-columns", "csv", "parquet", "arrow-stream", "arrow-file")


def too_large(body: bytes, content_type: str, limits: IngestLimits, params: dict[str, str] = PARAMS) -> str:
    with pytest.raises(PayloadTooLarge) as caught:
        ingest_body(body, content_type, params, limits=limits)
    assert caught.value.status == 413
    assert caught.value.issues and caught.value.issues[0].field == "body"
    return caught.value.detail


def invalid(body: bytes, content_type: str, params: dict[str, str] = PARAMS) -> FieldIssue:
    with pytest.raises(InvalidInput) as caught:
        ingest_body(body, content_type, params)
    assert caught.value.status == 422
    return caught.value.issues[0]


def binary_columns(rows: int, extra: int = 0) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {"label": [i % 2 for i in range(rows)], "score": [0.5] * rows}
    columns.update({f"f{i}": [i] * rows for i in range(extra)})
    return columns


def parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def arrow_stream(table: pa.Table, *, compression: str | None = None, chunk: int | None = None) -> bytes:
    out = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(out, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return bytes(out.getvalue().to_pybytes())


def arrow_file(table: pa.Table, *, compression: str | None = None, chunk: int | None = None) -> bytes:
    out = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_file(out, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return bytes(out.getvalue().to_pybytes())


# --- rows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_over_max_rows_are_413_in_every_format(fmt: str) -> None:
    body, content_type, params = encode(fmt, binary_columns(101), "binary")
    detail = too_large(body, content_type, IngestLimits(max_rows=100), params)
    assert "the limit is 100 (YARDSTICK_MAX_ROWS)" in detail
    # At the limit it is accepted.
    assert ingest_body(body, content_type, params, limits=IngestLimits(max_rows=101)).rows == 101


def test_a_constant_parquet_column_is_refused_from_its_footer() -> None:
    """A few kilobytes that would decode to millions of rows: refused from the metadata."""
    rows = 3_000_000
    body = parquet(pa.table({"label": pa.array(np.zeros(rows, np.int8))}), row_group_size=rows)
    assert len(body) < 100_000
    detail = too_large(body, PARQUET, IngestLimits(max_rows=1_000_000))
    assert f"{rows:,}" in detail  # the exact count: it came from the footer, not from decoding


def test_compressed_arrow_batches_are_refused_from_their_headers() -> None:
    """One zstd batch of a constant column: its row count is read without decompressing it."""
    table = pa.table({"label": pa.array(np.zeros(2_000_000, np.int64))})
    for body, content_type in (
        (arrow_stream(table, compression="zstd"), ARROW_STREAM),
        (arrow_file(table, compression="zstd"), ARROW_FILE),
    ):
        assert len(body) < 200_000
        assert "2,000,000 rows" in too_large(body, content_type, IngestLimits(max_rows=1_000_000))
        detail = too_large(body, content_type, IngestLimits(max_decoded_bytes=1 << 20))
        assert "its metadata says" in detail and "YARDSTICK_MAX_BODY_BYTES" in detail


def test_csv_rows_are_counted_when_line_ends_are_not_enough() -> None:
    """Quoted newlines make line ends overcount rows: the rows are counted, not guessed."""
    note = '"a note\nover\nlines"'
    body = ("label,score,note\n" + "".join(f"{i % 2},0.5,{note}\n" for i in range(60))).encode()
    assert ingest_body(body, "text/csv", PARAMS, limits=IngestLimits(max_rows=60)).rows == 60
    detail = too_large(body, "text/csv", IngestLimits(max_rows=59))
    assert "more than 59" in detail


def test_csv_with_lone_carriage_returns_counts_them_as_line_ends() -> None:
    body = ("label,score\r" + "".join(f"{i % 2},0.5\r" for i in range(300))).encode()
    assert ingest_body(body, "text/csv", PARAMS).rows == 300
    too_large(body, "text/csv", IngestLimits(max_rows=100))


# --- columns -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_columns_over_max_columns_are_413_in_every_format(fmt: str) -> None:
    body, content_type, params = encode(fmt, binary_columns(3, extra=20), "binary")
    detail = too_large(body, content_type, IngestLimits(max_columns=10), params)
    counted = "more than 10" if fmt == "parquet" else "22"  # Parquet's footer is read up to the limit
    assert f"{counted} columns; the limit is 10 (YARDSTICK_MAX_COLUMNS)" in detail


def test_nested_parquet_and_arrow_columns_count_their_leaves() -> None:
    struct = pa.StructArray.from_arrays([pa.array([1, 2])] * 12, names=[f"x{i}" for i in range(12)])
    table = pa.table({"label": [0, 1], "score": [0.1, 0.9], "nested": struct})
    assert "more than 10 columns" in too_large(parquet(table), PARQUET, IngestLimits(max_columns=10))
    assert "14 columns" in too_large(arrow_stream(table), ARROW_STREAM, IngestLimits(max_columns=10))


def test_a_csv_header_that_does_not_end_is_413_without_reading_on() -> None:
    header = ",".join(f"c{i}" for i in range(5000))
    body = f"{header}\n".encode() + b"1," * 4999 + b"1\n"
    detail = too_large(body, "text/csv", IngestLimits(max_columns=3))
    assert "header" in detail and "YARDSTICK_MAX_COLUMNS" in detail


# --- decoded bytes -------------------------------------------------------------------------------


def test_parquet_decoded_size_is_estimated_from_the_footer() -> None:
    rows = 1_000_000
    body = parquet(pa.table({"label": pa.array(np.zeros(rows, np.int64))}), compression="zstd")
    assert len(body) < 100_000
    detail = too_large(body, PARQUET, IngestLimits(max_decoded_bytes=4 << 20))
    assert "its metadata says" in detail and f"{8 * rows:,}" in detail


def test_dictionary_strings_count_at_their_decoded_size() -> None:
    """A dictionary of one long string over many rows is small encoded and huge decoded: the
    decode stops at the limit, batch by batch."""
    rows = 200_000
    label = pa.array(["x" * 150] * rows).dictionary_encode()
    table = pa.table({"label": label, "score": pa.array(np.full(rows, 0.5))})
    for body, content_type in ((parquet(table), PARQUET), (arrow_stream(table, chunk=10_000), ARROW_STREAM)):
        assert len(body) < 3_000_000  # 30 MB decoded
        detail = too_large(body, content_type, IngestLimits(max_decoded_bytes=8 << 20))
        assert "decodes to more than" in detail


def test_decoded_nbytes_counts_dictionaries_as_plain() -> None:
    plain = pa.record_batch({"s": pa.array(["abc", "de", None, "abc"])})
    encoded = pa.record_batch({"s": pa.array(["abc", "de", None, "abc"]).dictionary_encode()})
    assert decoded_nbytes(encoded) >= sum(len(v or "") for v in ["abc", "de", None, "abc"])
    assert decoded_nbytes(plain) == plain.nbytes


# --- the Arrow IPC header reader -------------------------------------------------------------------


@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
@pytest.mark.parametrize("form", ["stream", "file"])
def test_ipc_header_totals_match_what_pyarrow_decodes(compression: str | None, form: str) -> None:
    rng = np.random.default_rng(0)
    rows = 50_000
    table = pa.table(
        {
            "i": pa.array(rng.integers(0, 10, rows)),
            "f": pa.array(rng.random(rows)),
            "s": pa.array(np.array(["ab", "cde", None], dtype=object)[rng.integers(0, 3, rows)]),
            "d": pa.array(rng.choice(["BR", "US"], rows)).dictionary_encode(),
            "l": pa.array([[1, 2]] * rows),
        }
    )
    body = (arrow_stream if form == "stream" else arrow_file)(table, compression=compression, chunk=7_000)
    buffer = pa.py_buffer(body)
    totals = ipc_headers.stream_totals(buffer) if form == "stream" else ipc_headers.file_totals(buffer)
    decoded = pa.ipc.open_stream(body).read_all() if form == "stream" else pa.ipc.open_file(body).read_all()
    assert totals.rows == rows
    buffers = sum(b.size for batch in decoded.to_batches() for c in batch.columns for b in c.buffers() if b)
    assert buffers * 0.95 <= totals.decoded_bytes <= buffers * 1.05 + 4096


def test_ipc_headers_that_point_outside_the_body_are_malformed() -> None:
    body = bytearray(arrow_file(pa.table({"label": [0, 1]})))
    body[-10:-6] = (10**6).to_bytes(4, "little")  # a footer longer than the file
    with pytest.raises(MalformedBody):
        ingest_body(bytes(body), ARROW_FILE, PARAMS)


# --- the Parquet footer reader -------------------------------------------------------------------


PARQUET_SCHEMAS = {
    "flat": pa.table({"a": [1, 2], "b": ["x", "y"], "c": [0.1, None], "d": [True, None]}),
    "nested": pa.table(
        {
            "s": pa.StructArray.from_arrays([pa.array([1, 2]), pa.array(["a", "b"])], names=["x", "y"]),
            "l": pa.array([[1], [2, 3]]),
            "m": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
        }
    ),
    "typed": pa.table(
        {
            "dict": pa.array(["a", "b"]).dictionary_encode(),
            "dec": pa.array([1, 2], pa.decimal128(20, 3)),
            "ts": pa.array([1, 2], pa.timestamp("ms", tz="UTC")),
            "fixed": pa.array([b"ab", b"cd"], pa.binary(2)),
            "i8": pa.array([1, None], pa.int8()),
        }
    ),
}


@pytest.mark.parametrize("name", sorted(PARQUET_SCHEMAS))
@pytest.mark.parametrize(
    "options", [{}, {"row_group_size": 1, "compression": "zstd"}, {"write_statistics": False}]
)
def test_parquet_footer_counts_the_leaf_columns_and_rows_pyarrow_sees(
    name: str, options: dict[str, Any]
) -> None:
    body = pa.py_buffer(parquet(PARQUET_SCHEMAS[name], **options))
    metadata = pq.ParquetFile(pa.BufferReader(body)).metadata
    columns, rows = metadata.num_columns, metadata.num_rows
    parquet_footer.check_footer(body, IngestLimits(max_columns=columns, max_rows=rows))
    with pytest.raises(PayloadTooLarge, match="more than"):
        parquet_footer.check_footer(body, IngestLimits(max_columns=columns - 1))
    with pytest.raises(PayloadTooLarge, match=f"the batch has {rows} rows"):
        parquet_footer.check_footer(body, IngestLimits(max_rows=rows - 1))


@pytest.mark.parametrize("name", sorted(PARQUET_SCHEMAS))
def test_arrow_schemas_count_columns_as_parquet_does(name: str) -> None:
    table = PARQUET_SCHEMAS[name]
    metadata = pq.ParquetFile(pa.BufferReader(parquet(table))).metadata
    assert leaf_count(table.schema) == metadata.num_columns


def test_a_wide_parquet_is_refused_before_its_footer_is_parsed() -> None:
    """5,000 columns against a limit of 100: refused after reading ~101 schema entries."""
    wide = pa.table({f"c{i}": pa.array([1], pa.int8()) for i in range(5000)})
    detail = too_large(parquet(wide), PARQUET, IngestLimits(max_columns=100))
    assert "more than 100 columns" in detail


@pytest.mark.parametrize("cut", [9, 30, 200])
def test_a_damaged_parquet_footer_is_left_to_pyarrow(cut: int) -> None:
    body = bytearray(parquet(PARQUET_SCHEMAS["nested"]))
    footer = int.from_bytes(body[-8:-4], "little")
    body[len(body) - 8 - footer + cut] ^= 0xFF
    try:
        ingest_body(bytes(body), PARQUET, PARAMS)
    except (MalformedBody, InvalidInput, PayloadTooLarge):
        pass  # a 4xx of some kind, never a crash of the footer reader


# --- strings ---------------------------------------------------------------------------------------


def test_model_ref_and_ingest_agree_on_the_model_limits() -> None:
    for name in ("name", "version"):
        lengths = [m.max_length for m in ModelRef.model_fields[name].metadata if hasattr(m, "max_length")]
        assert lengths == [MAX_MODEL_CHARS]


def doc(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "model": {"name": "m", "version": "1"},
        "task": "binary",
        "columns": {"sample_id": ["a", "b"], "label": [0, 1], "score": [0.2, 0.7]},
    }
    body.update(overrides)
    return orjson.dumps(body)


LONG_MODEL = "m" * (MAX_MODEL_CHARS + 1)
LONG_CLASS = "c" * (MAX_CLASS_CHARS + 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (doc(model={"name": LONG_MODEL, "version": "1"}), "model.name"),
        (doc(model={"name": "m" * 10_000_000, "version": "1"}), "model.name"),
        (doc(model={"name": "m", "version": LONG_MODEL}), "model.version"),
        (doc(model={"name": "fraud\x00gbm", "version": "1"}), "model.name"),
        (doc(model={"name": "fraud\ngbm", "version": "1"}), "model.name"),
        (doc(positive_class=LONG_CLASS), "positive_class"),
        (doc(classes=["a", LONG_CLASS]), "classes[1]"),
        (
            doc(columns={"label": [LONG_CLASS, "b"], "prediction": ["b", "b"]}, positive_class="b"),
            "columns.label",
        ),
        (doc(columns={"label": ["a", "b"], "prediction": ["b", LONG_CLASS]}), "columns.prediction"),
        (doc(columns={"sample_id": ["a", "s" * 201], "prediction": [0, 1]}), "columns.sample_id"),
        (doc(columns={"prediction": [0, 1], "f" * 201: [1, 2]}), "columns." + "f" * 40 + "..."),
        (
            doc(columns={"prediction": [0, 1], "score__" + "x" * 200: [0.1, 0.2]}),
            "columns.score__" + "x" * 33 + "...",
        ),
    ],
)
def test_json_strings_over_their_limits_are_422_naming_the_field(body: bytes, field: str) -> None:
    issue = invalid(body, "application/json", {})
    assert issue.field == field
    assert len(issue.message) < 400  # the value is not echoed whole


def test_strings_at_their_limits_are_accepted() -> None:
    columns = {
        "sample_id": ["a" * MAX_SAMPLE_ID_CHARS, "b"],
        "label": ["y" * MAX_CLASS_CHARS, "n"],
        "prediction": ["n", "n"],
        "f" * MAX_COLUMN_NAME_CHARS: [1, 2],
    }
    model = {"name": "é" * MAX_MODEL_CHARS, "version": "🚀" * MAX_MODEL_CHARS}
    batch = ingest_body(
        doc(model=model, columns=columns, positive_class="y" * MAX_CLASS_CHARS), "application/json", {}
    )
    assert batch.spec.model_name == "é" * MAX_MODEL_CHARS and batch.spec.classes == [
        "n",
        "y" * MAX_CLASS_CHARS,
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"model": LONG_MODEL}, "model"),
        ({"version": LONG_MODEL}, "version"),
        ({"positive_class": LONG_CLASS}, "positive_class"),
        ({"classes": f"a,{LONG_CLASS}"}, "classes[1]"),
    ],
)
def test_query_strings_over_their_limits_are_422(params: dict[str, str], field: str) -> None:
    body, content_type, _ = encode("csv", {"label": ["a", "b"], "prediction": ["a", "b"]}, "binary")
    assert invalid(body, content_type, PARAMS | params).field == field


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow-stream"])
def test_tabular_strings_over_their_limits_are_422(fmt: str) -> None:
    for columns, field, row in [
        ({"sample_id": ["a", "s" * 201], "prediction": [0, 1]}, "sample_id", 1),
        ({"label": ["a", LONG_CLASS], "prediction": ["a", "a"]}, "label", 1),
        ({"prediction": [0, 1], "n" * 201: [1, 2]}, "n" * 40 + "...", None),
    ]:
        body, content_type, params = encode(fmt, columns, "binary", positive_class="a")
        issue = invalid(body, content_type, params)
        assert (issue.field, issue.row) == (field, row)


def test_label_update_sample_ids_over_the_limit_are_422() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_label_update(b"sample_id,label\na,1\n" + b"s" * 201 + b",0\n", "text/csv")
    assert (caught.value.issues[0].field, caught.value.issues[0].row) == ("sample_id", 1)


def test_label_update_rows_over_max_rows_are_413() -> None:
    body = b"sample_id,label\n" + b"".join(f"s{i},1\n".encode() for i in range(50))
    with pytest.raises(PayloadTooLarge):
        parse_label_update(body, "text/csv", limits=IngestLimits(max_rows=49))
    with pytest.raises(PayloadTooLarge):
        parse_label_update(
            orjson.dumps({"labels": [{"sample_id": f"s{i}", "label": 1} for i in range(50)]}),
            "application/json",
            limits=IngestLimits(max_rows=49),
        )


# --- undecodable text ------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["sample_id", "label", "city"])
def test_csv_cells_that_are_not_utf8_are_400_naming_column_and_row(column: str) -> None:
    rows = [{"sample_id": f"s{i}", "label": "1", "score": "0.5", "city": "Rio"} for i in range(5)]
    rows[3][column] = "S\udcffo"  # an invalid byte, carried through as a surrogate
    lines = ["sample_id,label,score,city"] + [",".join(r.values()) for r in rows]
    body = "\n".join(lines).encode("utf-8", "surrogateescape")
    with pytest.raises(MalformedBody) as caught:
        ingest_body(body, "text/csv", PARAMS)
    issue = caught.value.issues[0]
    assert (issue.field, issue.row) == (column, 3)
    assert "0xff" in issue.message and "UTF-8" in issue.message


def test_a_gzip_body_says_it_is_compressed() -> None:
    import gzip

    for content_type, body in (("text/csv", b"label,score\n1,0.5\n"), ("application/json", doc())):
        with pytest.raises(MalformedBody) as caught:
            ingest_body(gzip.compress(body), content_type, PARAMS)
        assert "gzip" in caught.value.detail and "surrogates" not in caught.value.detail


@pytest.mark.parametrize("wrap", [bytes, pa.py_buffer])
def test_json_that_is_not_utf8_names_the_byte_and_offset(wrap: Any) -> None:
    with pytest.raises(MalformedBody) as caught:
        ingest_body(wrap(b'{"model": "\xff"}'), "application/json", {})
    assert "byte 0xff at offset 11" in caught.value.detail and "surrogates" not in caught.value.detail


def test_problem_texts_are_bounded_and_encodable() -> None:
    issue = FieldIssue("f" * 10_000 + "\udcff", "m" * 100_000)
    assert len(issue.field) < 400 and len(issue.message) < 2100
    issue.field.encode("utf-8")


def test_csv_is_read_in_place_from_a_buffer() -> None:
    table = pa.table(binary_columns(10))
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    assert ingest_body(pa.py_buffer(sink.getvalue()), "text/csv", PARAMS).rows == 10
