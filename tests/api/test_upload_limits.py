"""Upload limits through the app: bombs and oversized input are 4xx problems, nothing is stored,
and no input can make the batch list fail."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.api.body import SPOOL_MEMORY_BYTES, Upload
from service.app import create_app
from service.settings import Settings
from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import QUERY, arrow_bytes, assert_nothing_stored, assert_problem, csv_bytes

pytestmark = pytest.mark.anyio

MAX_ROWS = 1000
MAX_COLUMNS = 10
PARQUET = "application/vnd.apache.parquet"
ARROW = "application/vnd.apache.arrow.stream"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", workers=0, api_keys=[], max_rows=MAX_ROWS, max_columns=MAX_COLUMNS
    )


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client
    app.state.store.close()


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def columns(rows: int, extra: int = 0) -> dict[str, list[Any]]:
    cols = binary_columns(rows)
    cols.update({f"f{i}": [i] * rows for i in range(extra)})
    return cols


async def post(
    client: httpx.AsyncClient,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
    **params: str,
) -> httpx.Response:
    return await client.post(
        "/v1/batches",
        content=body,
        params=QUERY | params,
        headers={"content-type": content_type, **(headers or {})},
    )


def upload_fds() -> list[str]:
    """Open descriptors of this process on spooled upload files (anonymous: ``uploads/#123 (deleted)``)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if "/uploads/" in target:
            found.append(target)
    return found


# --- decompression bombs and row / column limits ------------------------------------------------------


@pytest.fixture(scope="module")
def parquet_bomb() -> Iterator[bytes]:
    """60M rows of one constant value: a ~100 kB file that decodes to 60M rows."""
    rows = 60_000_000
    table = pa.table({"label": pa.array(np.zeros(rows, np.int8))})
    body = parquet_bytes(table, row_group_size=rows, compression="zstd")
    del table
    yield body


async def test_a_60m_row_parquet_bomb_is_413_with_the_default_limits(
    tmp_path: Path, parquet_bomb: bytes
) -> None:
    assert len(parquet_bomb) < 2_000_000
    settings = Settings(data_dir=tmp_path / "data", workers=0, api_keys=[])
    async with client_for(settings) as client:
        problem = assert_problem(await post(client, parquet_bomb, PARQUET), 413)
        assert "60,000,000 rows" in problem["detail"] and "YARDSTICK_MAX_ROWS" in problem["detail"]
        assert problem["errors"][0]["field"] == "body"
        await assert_nothing_stored(client, settings)


def compressed_arrow(rows: int) -> bytes:
    table = pa.table({"label": pa.array(np.zeros(rows, np.int64))})
    out = pa.BufferOutputStream()
    with pa.ipc.new_stream(out, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return bytes(out.getvalue().to_pybytes())


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param(PARQUET, parquet_bytes(pa.table(columns(MAX_ROWS + 1))), id="parquet"),
        pytest.param(ARROW, arrow_bytes(pa.table(columns(MAX_ROWS + 1))), id="arrow-stream"),
        pytest.param(ARROW, compressed_arrow(5_000_000), id="arrow-zstd-bomb"),
        pytest.param("text/csv", csv_bytes(pa.table(columns(MAX_ROWS + 1))), id="csv"),
    ],
)
async def test_tabular_bodies_over_max_rows_are_413(
    client: httpx.AsyncClient, settings: Settings, content_type: str, body: bytes
) -> None:
    problem = assert_problem(await post(client, body, content_type), 413)
    assert f"the limit is {MAX_ROWS:,} (YARDSTICK_MAX_ROWS)" in problem["detail"]
    await assert_nothing_stored(client, settings)


@pytest.mark.parametrize("form", ["columns", "rows"])
async def test_json_bodies_over_max_rows_are_413(
    client: httpx.AsyncClient, settings: Settings, form: str
) -> None:
    body = batch_body(columns(MAX_ROWS + 1))
    if form == "rows":
        cols = body.pop("columns")
        body["rows"] = [
            {"label": label, "score": score}
            for label, score in zip(cols["label"], cols["score"], strict=True)
        ]
    problem = assert_problem(await client.post("/v1/batches", json=body), 413)
    assert "YARDSTICK_MAX_ROWS" in problem["detail"]
    await assert_nothing_stored(client, settings)


async def test_bodies_at_the_limits_are_accepted(client: httpx.AsyncClient) -> None:
    cols = columns(MAX_ROWS, extra=MAX_COLUMNS - 5)  # sample_id, label, score, country, amount
    response = await post(client, parquet_bytes(pa.table(cols)), PARQUET)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == MAX_ROWS


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        (PARQUET, parquet_bytes),
        (ARROW, arrow_bytes),
        ("text/csv", csv_bytes),
        ("application/json", None),
    ],
)
async def test_bodies_over_max_columns_are_413(
    client: httpx.AsyncClient, settings: Settings, content_type: str, encode: Any
) -> None:
    cols = columns(3, extra=MAX_COLUMNS)
    if encode is None:
        response = await client.post("/v1/batches", json=batch_body(cols))
    else:
        response = await post(client, encode(pa.table(cols)), content_type)
    problem = assert_problem(response, 413)
    # Parquet's footer is read only until the count passes the limit: "more than 10 columns".
    counted = "more than 10" if content_type == PARQUET else f"{MAX_COLUMNS + 5}"
    assert f"{counted} columns; the limit is {MAX_COLUMNS} (YARDSTICK_MAX_COLUMNS)" in problem["detail"]
    await assert_nothing_stored(client, settings)


async def test_a_parquet_that_decodes_past_4x_the_body_limit_is_413(tmp_path: Path) -> None:
    rows = 1_000_000
    body = parquet_bytes(pa.table({"label": pa.array(np.zeros(rows, np.int64))}), compression="zstd")
    settings = Settings(data_dir=tmp_path / "data", workers=0, api_keys=[], max_body_bytes=1 << 20)
    assert len(body) < settings.max_body_bytes
    async with client_for(settings) as client:
        problem = assert_problem(await post(client, body, PARQUET), 413)
        assert "4 x YARDSTICK_MAX_BODY_BYTES" in problem["detail"]
        await assert_nothing_stored(client, settings)


# --- strings -----------------------------------------------------------------------------------------

LONG = "x" * 201
HUGE = "y" * 1_000_000

ODD_JSON: list[tuple[dict[str, Any], str]] = [
    (batch_body(model={"name": LONG, "version": "7"}), "model.name"),
    (batch_body(model={"name": HUGE, "version": "7"}), "model.name"),
    (batch_body(model={"name": "m", "version": LONG}), "model.version"),
    (batch_body(model={"name": "m\x00", "version": "7"}), "model.name"),
    (batch_body(model={"name": "m", "version": "7\r\n"}), "model.version"),
    (batch_body(positive_class=LONG), "positive_class"),
    (batch_body(classes=[0, HUGE]), "classes[1]"),
    (batch_body({"sample_id": ["a", LONG], "label": [0, 1], "score": [0.1, 0.9]}), "columns.sample_id"),
    (batch_body({"label": ["a", HUGE], "prediction": ["a", "a"]}, positive_class="a"), "columns.label"),
    (batch_body({"label": [0, 1], "score": [0.1, 0.9], HUGE: [1, 2]}), "columns." + "y" * 40 + "..."),
]


async def test_no_string_can_make_the_batch_list_fail(client: httpx.AsyncClient, settings: Settings) -> None:
    """Every kind of oversized or odd string: a 422 naming the field and nothing stored, or stored
    and listed; the list answers 200 after each."""
    for doc, field in ODD_JSON:
        problem = assert_problem(await client.post("/v1/batches", json=doc), 422)
        assert problem["errors"][0]["field"] == field, problem
        assert len(problem["detail"]) < 2500
        listed = await client.get("/v1/batches")
        assert listed.status_code == 200, listed.text
    tabular = [
        ({"model": LONG}, "model"),
        ({"version": "v" * 20_000}, "version"),
        ({"positive_class": LONG}, "positive_class"),
        ({"classes": f"0,{LONG}"}, "classes[1]"),
    ]
    body = csv_bytes(pa.table(binary_columns(5)))
    for params, field in tabular:
        problem = assert_problem(await post(client, body, "text/csv", None, **params), 422)
        assert problem["errors"][0]["field"] == field, problem
        assert (await client.get("/v1/batches")).status_code == 200
    long_name = parquet_bytes(pa.table(binary_columns(5) | {LONG: [1] * 5}))
    problem = assert_problem(await post(client, long_name, PARQUET), 422)
    assert problem["errors"][0]["field"] == "x" * 40 + "..."
    await assert_nothing_stored(client, settings)

    # Odd but valid: at the limits, any script, replacement characters from a bad query encoding.
    accepted = [
        batch_body(model={"name": "é" * 200, "version": "🚀" * 200}),
        batch_body(model={"name": "مدل", "version": "v\u200f1"}),
        batch_body(
            {"sample_id": ["a" * 200, "b"], "label": ["n" * 200, "p"], "prediction": ["p", "p"]},
            positive_class="p",
        ),
    ]
    for body_doc in accepted:
        response = await client.post("/v1/batches", json=body_doc)
        assert response.status_code == 201, response.text
    response = await client.post(
        "/v1/batches?model=%ff%fe&version=1&task=binary", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    listed = await client.get("/v1/batches")
    assert listed.status_code == 200 and len(listed.json()["data"]) == 4


# --- encodings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
async def test_content_encodings_are_refused_with_415(
    client: httpx.AsyncClient, settings: Settings, encoding: str
) -> None:
    raw = csv_bytes(pa.table(binary_columns(5)))
    response = await client.post(
        "/v1/batches",
        content=gzip.compress(raw),
        params=QUERY,
        headers={"content-type": "text/csv", "content-encoding": encoding},
    )
    problem = assert_problem(response, 415)
    assert problem["errors"][0]["field"] == "Content-Encoding"
    assert "content encodings are not accepted" in problem["detail"] and "surrogates" not in response.text
    await assert_nothing_stored(client, settings)
    identity = await client.post(
        "/v1/batches",
        content=raw,
        params=QUERY,
        headers={"content-type": "text/csv", "content-encoding": "identity"},
    )
    assert identity.status_code == 201, identity.text


async def test_csv_that_is_not_utf8_is_400_naming_column_and_row(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = b"sample_id,label,score,city\na,1,0.9,Rio\nb,0,0.1,S\xe3o Paulo\n"
    problem = assert_problem(await post(client, body, "text/csv"), 400)
    assert (problem["errors"][0]["field"], problem["errors"][0]["row"]) == ("city", 1)
    assert "0xe3" in problem["detail"]
    await assert_nothing_stored(client, settings)
    # The same bytes with their charset named are fine.
    assert (await post(client, body.replace(b"text", b""), "text/csv; charset=latin-1")).status_code == 201


async def test_label_updates_have_the_same_limits(client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/batches", json=batch_body(binary_columns(5)))).json()
    url = f"/v1/batches/{created['id']}/labels"
    too_many = b"sample_id,label\n" + b"".join(f"s{i},1\n".encode() for i in range(MAX_ROWS + 1))
    assert_problem(await client.put(url, content=too_many, headers={"content-type": "text/csv"}), 413)
    not_utf8 = b"sample_id,label\ns\xff,1\n"
    problem = assert_problem(
        await client.put(url, content=not_utf8, headers={"content-type": "text/csv"}), 400
    )
    assert (problem["errors"][0]["field"], problem["errors"][0]["row"]) == ("sample_id", 0)
    gz = gzip.compress(b'{"labels": []}')
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    assert_problem(await client.put(url, content=gz, headers=headers), 415)
    assert (await client.get(f"/v1/batches/{created['id']}")).json()["labeled_rows"] == 5


# --- the body: streamed, spooled, closed --------------------------------------------------------------


async def test_a_chunked_body_over_the_limit_is_413_while_streaming(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", workers=0, api_keys=[], max_body_bytes=1 << 20)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 64 << 10
            yield b"label,score\n" + b"1,0.5\n" * ((64 << 10) // 6 - 2)

    async with client_for(settings) as client:
        response = await client.post(
            "/v1/batches", content=chunks(), params=QUERY, headers={"content-type": "text/csv"}
        )
        problem = assert_problem(response, 413)
        assert "YARDSTICK_MAX_BODY_BYTES" in problem["detail"]
        await assert_nothing_stored(client, settings)
    assert sent < 100 * (64 << 10)  # refused while streaming, not after reading everything


async def test_a_large_body_is_spooled_to_a_file_and_closed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = 600_000
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "label": pa.array(rng.integers(0, 2, rows)),
            "score": pa.array(rng.random(rows)),
            "x": rng.random(rows),
        }
    )
    bodies = [("text/csv", csv_bytes(table)), (PARQUET, parquet_bytes(table, compression="none"))]
    caplog.set_level("DEBUG", logger="yardstick.api")
    async with client_for(Settings(data_dir=tmp_path / "data", workers=0, api_keys=[])) as client:
        for content_type, body in bodies:
            assert len(body) > SPOOL_MEMORY_BYTES
            response = await post(client, body, content_type)
            assert response.status_code == 201, response.text
            assert response.json()["rows"] == rows
            assert upload_fds() == []
        # An Idempotency-Key hashes the spooled body; the retry gets the first answer.
        key = {"Idempotency-Key": "spooled-1"}
        first = await post(client, bodies[1][1], PARQUET, headers=key)
        again = await post(client, bodies[1][1], PARQUET, headers=key)
        assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
        assert upload_fds() == []
        # Refused after decoding began (a 422 from a spooled body): closed all the same.
        bad = bodies[1][1]
        response = await post(client, bad, PARQUET, task="regression")
        assert_problem(response, 422)
        assert upload_fds() == []
    assert "still in use" not in caplog.text


async def test_upload_spools_past_its_memory_threshold(tmp_path: Path) -> None:
    upload = Upload(tmp_path / "uploads", memory_bytes=1000)
    data = bytes(range(256)) * 40
    for start in range(0, len(data), 300):
        await upload.append(data[start : start + 300])
    await upload.finish()
    assert upload.spooled and upload.size == len(data)
    assert upload.buffer().to_pybytes() == data
    reader = upload.reader()
    assert reader.read(5) == data[:5] and reader.read() == data[5:]
    reader.seek(0)
    assert hashlib.sha256(reader.read()).digest() == hashlib.sha256(data).digest()
    assert upload_fds()
    upload.close()
    assert upload_fds() == []
    small = Upload(tmp_path / "uploads", memory_bytes=1000)
    await small.append(b"abc")
    assert not small.spooled and small.buffer().to_pybytes() == b"abc"
    small.close()
