"""``application/octet-stream`` batches: the format is read from the body's magic bytes, and the
batch stored is the one the same file makes under its own content type."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from service.settings import Settings
from tests.api.conftest import binary_columns

pytestmark = pytest.mark.anyio

QUERY = {"model": "fraud-gbm", "version": "7", "task": "binary", "positive_class": "1"}
OCTET = {"content-type": "application/octet-stream"}


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=20)
    return sink.getvalue()


def arrow_stream_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=20)
    return sink.getvalue().to_pybytes()


def arrow_file_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


async def stored(client: httpx.AsyncClient, response: httpx.Response) -> tuple[dict[str, Any], list[Any]]:
    """The batch's metadata (without id and time) and its whole sample log."""
    assert response.status_code == 201, response.text
    batch = response.json()
    rows = await client.get(f"/v1/batches/{batch['id']}/rows", params={"page_size": 1000})
    meta = {k: v for k, v in batch.items() if k not in ("id", "created_at")}
    return meta, rows.json()["data"]


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("application/vnd.apache.parquet", parquet_bytes),
        ("application/vnd.apache.arrow.stream", arrow_stream_bytes),
        ("application/vnd.apache.arrow.file", arrow_file_bytes),
        ("text/csv", csv_bytes),
    ],
)
async def test_octet_stream_stores_what_the_named_type_stores(
    client: httpx.AsyncClient, content_type: str, encode: Any
) -> None:
    columns = binary_columns(120, seed=3)
    body = encode(pa.table(columns))
    named = await stored(
        client,
        await client.post("/v1/batches", content=body, params=QUERY, headers={"content-type": content_type}),
    )
    sniffed = await stored(
        client, await client.post("/v1/batches", content=body, params=QUERY, headers=OCTET)
    )
    assert sniffed == named
    meta, rows = sniffed
    assert meta["rows"] == 120
    assert [row["label"] for row in rows] == columns["label"]
    assert [row["sample_id"] for row in rows] == columns["sample_id"]


@pytest.mark.parametrize(
    "body",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",  # an image
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",  # gzip
        "sample_id,label\n".encode("utf-16"),  # text, but not UTF-8
        b"\xc3\x28 invalid utf-8\n",
    ],
)
async def test_unrecognised_bytes_are_415_naming_the_formats(
    client: httpx.AsyncClient, settings: Settings, body: bytes
) -> None:
    response = await client.post("/v1/batches", content=body, params=QUERY, headers=OCTET)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    for accepted in ("PAR1", "ARROW1", "CSV", "application/vnd.apache.parquet"):
        assert accepted in problem["detail"]
    assert problem["errors"][0]["field"] == "Content-Type"
    assert (await client.get("/v1/batches")).json()["data"] == []


async def test_an_empty_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/batches", content=b"", params=QUERY, headers=OCTET)
    assert response.status_code == 400, response.text
    assert "empty" in response.json()["detail"]


async def test_a_body_that_only_starts_like_parquet_is_400_from_the_parquet_reader(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/batches", content=b"PAR1 and then nothing", params=QUERY, headers=OCTET)
    assert response.status_code == 400, response.text
    assert "Parquet" in response.json()["detail"]


async def test_the_openapi_document_offers_a_binary_upload(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    content = document["paths"]["/v1/batches"]["post"]["requestBody"]["content"]
    assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}
