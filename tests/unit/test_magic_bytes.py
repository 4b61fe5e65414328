"""Magic-byte detection of ``application/octet-stream`` batches (service.ingest.sniff), on files
written by pyarrow's own writers."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from service.errors import MalformedBody, UnsupportedMediaType
from service.ingest.sniff import sniff_batch_format

TABLE = pa.table({"sample_id": ["a", "b"], "label": [0, 1], "score": [0.2, 0.9]})


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(TABLE, sink)
    return sink.getvalue()


def _stream() -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, TABLE.schema) as writer:
        writer.write_table(TABLE)
    return sink.getvalue().to_pybytes()


def _file() -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, TABLE.schema) as writer:
        writer.write_table(TABLE)
    return sink.getvalue().to_pybytes()


def _csv() -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(TABLE, sink)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_parquet(), "application/vnd.apache.parquet"),
        (_stream(), "application/vnd.apache.arrow.stream"),
        (_file(), "application/vnd.apache.arrow.file"),
        (_csv(), "text/csv"),
        (b"sample_id,label", "text/csv"),  # a header and no rows is still CSV (ingest says what is missing)
        ("sample_id,pa\u00eds\ns1,Brasil\n".encode(), "text/csv"),
    ],
)
def test_each_format_is_told_from_its_first_bytes(body: bytes, expected: str) -> None:
    assert sniff_batch_format(pa.py_buffer(body)) == expected


def test_a_multibyte_character_cut_by_the_head_is_still_text() -> None:
    # 'é' is two bytes; placed so that the 64 KiB head ends between them
    body = b"sample_id,label\n" + b"x" * (65536 - 17) + "é".encode() + b"\n"
    assert sniff_batch_format(pa.py_buffer(body)) == "text/csv"


@pytest.mark.parametrize(
    "body",
    [b"\x00\x01\x02binary", b"\xff\xd8\xff\xe0 jpeg", b"\x1f\x8b\x08gzip", b"\n\n", "a,b\n".encode("utf-16")],
)
def test_other_bytes_are_unsupported(body: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        sniff_batch_format(pa.py_buffer(body))
    assert raised.value.status == 415
    assert "PAR1" in raised.value.detail and "text/csv" in raised.value.detail


def test_an_empty_body_is_malformed() -> None:
    with pytest.raises(MalformedBody, match="empty"):
        sniff_batch_format(pa.py_buffer(b""))
