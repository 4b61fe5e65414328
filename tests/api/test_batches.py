"""The batch resource through the real app (httpx ASGI transport)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from service.settings import Settings
from tests.api.conftest import batch_body, binary_columns

pytestmark = pytest.mark.anyio

QUERY = {"model": "fraud-gbm", "version": "7", "task": "binary", "positive_class": "1"}


def as_table(columns: dict[str, list[Any]]) -> pa.Table:
    return pa.table(columns)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    return problem


async def assert_nothing_stored(client: httpx.AsyncClient, settings: Settings) -> None:
    listed = (await client.get("/v1/batches")).json()
    assert listed == {"data": [], "next_page_token": None}
    batches_dir = settings.batches_dir
    assert not batches_dir.exists() or list(batches_dir.iterdir()) == []


async def test_json_column_form_creates_a_batch(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/batches", json=batch_body())
    assert response.status_code == 201, response.text
    batch = response.json()
    assert response.headers["location"] == f"/v1/batches/{batch['id']}"
    assert set(batch) == {
        "id",
        "model",
        "task",
        "classes",
        "positive_class",
        "rows",
        "labeled_rows",
        "columns",
        "created_at",
    }
    assert batch["model"] == {"name": "fraud-gbm", "version": "7"}
    assert (batch["task"], batch["classes"], batch["positive_class"]) == ("binary", [0, 1], 1)
    assert (batch["rows"], batch["labeled_rows"]) == (200, 200)
    roles = {c["name"]: c["role"] for c in batch["columns"]}
    assert roles["score"] == "score" and roles["country"] == "feature" and roles["sample_id"] == "sample_id"
    assert (await client.get(f"/v1/batches/{batch['id']}")).json() == batch


async def test_json_row_form_creates_the_same_batch(client: httpx.AsyncClient) -> None:
    cols = binary_columns(20)
    rows = [
        {
            "sample_id": cols["sample_id"][i],
            "label": cols["label"][i],
            "score": cols["score"][i],
            "features": {"country": cols["country"][i], "amount": cols["amount"][i]},
        }
        for i in range(20)
    ]
    body = batch_body(cols)
    del body["columns"]
    body["rows"] = rows
    by_rows = (await client.post("/v1/batches", json=body)).json()
    by_cols = (await client.post("/v1/batches", json=batch_body(cols))).json()
    rows_a = (await client.get(f"/v1/batches/{by_rows['id']}/rows", params={"page_size": 100})).json()
    rows_b = (await client.get(f"/v1/batches/{by_cols['id']}/rows", params={"page_size": 100})).json()
    assert rows_a == rows_b
    assert rows_a["data"][0] == {
        "sample_id": "s0",
        "prediction": int(cols["score"][0] >= 0.5),
        "label": cols["label"][0],
    }


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("text/csv", csv_bytes),
        ("application/vnd.apache.parquet", parquet_bytes),
        ("application/vnd.apache.arrow.stream", arrow_bytes),
    ],
)
async def test_tabular_formats_with_query_parameters(
    client: httpx.AsyncClient, content_type: str, encode: Any
) -> None:
    cols = binary_columns(50)
    response = await client.post(
        "/v1/batches", content=encode(as_table(cols)), params=QUERY, headers={"content-type": content_type}
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["rows"], batch["classes"], batch["positive_class"]) == (50, [0, 1], 1)
    rows = (await client.get(f"/v1/batches/{batch['id']}/rows", params={"page_size": 50})).json()["data"]
    assert [r["label"] for r in rows] == cols["label"]


async def test_multiclass_and_regression_batches(client: httpx.AsyncClient) -> None:
    multi = {
        "model": {"name": "pets", "version": "1"},
        "task": "multiclass",
        "rows": [
            {"sample_id": "a", "label": "cat", "scores": {"cat": 0.7, "dog": 0.2, "fox": 0.1}},
            {"sample_id": "b", "label": "dog", "scores": {"cat": 0.1, "dog": 0.3, "fox": 0.6}},
        ],
    }
    created = (await client.post("/v1/batches", json=multi)).json()
    assert created["classes"] == ["cat", "dog", "fox"] and created["positive_class"] is None
    rows = (await client.get(f"/v1/batches/{created['id']}/rows")).json()["data"]
    assert [r["prediction"] for r in rows] == ["cat", "fox"]

    reg = {
        "model": {"name": "price", "version": "3"},
        "task": "regression",
        "columns": {"sample_id": ["x", "y"], "label": [1.5, None], "prediction": [1.0, 2.0]},
    }
    created = (await client.post("/v1/batches", json=reg)).json()
    assert (created["task"], created["rows"], created["labeled_rows"], created["classes"]) == (
        "regression",
        2,
        1,
        None,
    )


BAD_BODIES = [
    pytest.param(
        batch_body({"sample_id": ["a", "a"], "label": [0, 1], "score": [0.1, 0.9]}),
        "sample_id",
        1,
        id="duplicate-id",
    ),
    pytest.param(
        batch_body({"sample_id": ["a", "b"], "label": [0, 1], "score": [0.1, 1.5]}), "score", 1, id="score>1"
    ),
    pytest.param(
        batch_body({"sample_id": ["a", "b"], "label": [0, 1], "score": [0.1, None]}),
        "score",
        1,
        id="score-null",
    ),
    pytest.param(
        batch_body({"sample_id": ["a", "b"], "label": [0, 1], "score": [0.1]}), "score", None, id="lengths"
    ),
    pytest.param(
        batch_body({"sample_id": ["a", "b"], "label": [0, 7], "score": [0.1, 0.2]}, classes=[0, 1]),
        "label",
        1,
        id="label-outside-classes",
    ),
    pytest.param(batch_body(task="ternary"), "task", None, id="unknown-task"),
    pytest.param(
        {
            "model": {"name": "pets", "version": "1"},
            "task": "multiclass",
            "rows": [
                {"sample_id": "a", "label": "cat", "scores": {"cat": 0.7, "dog": 0.3}},
                {"sample_id": "b", "label": "dog", "scores": {"cat": 0.5, "dog": 0.6}},
            ],
        },
        "scores",
        1,
        id="scores-not-summing-to-1",
    ),
]


@pytest.mark.parametrize(("body", "field", "row"), BAD_BODIES)
async def test_bad_batches_are_422_naming_field_and_row_and_store_nothing(
    client: httpx.AsyncClient, settings: Settings, body: dict[str, Any], field: str, row: int | None
) -> None:
    problem = assert_problem(await client.post("/v1/batches", json=body), 422)
    assert problem["errors"], problem
    issue = problem["errors"][0]
    assert field in issue["field"], problem
    if row is not None:
        assert issue["row"] == row, problem
    await assert_nothing_stored(client, settings)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"model": '),
        ("text/csv", b'sample_id,label\n"a,1\n'),
        ("application/vnd.apache.parquet", b"PAR1 not really parquet"),
        ("application/vnd.apache.arrow.stream", b"\x00\x01garbage"),
    ],
)
async def test_malformed_bodies_are_400(
    client: httpx.AsyncClient, settings: Settings, content_type: str, body: bytes
) -> None:
    assert_problem(
        await client.post("/v1/batches", content=body, params=QUERY, headers={"content-type": content_type}),
        400,
    )
    await assert_nothing_stored(client, settings)


async def test_unsupported_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/batches", content=b"<xml/>", headers={"content-type": "application/xml"}
    )
    assert_problem(response, 415)


async def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    from service.app import create_app

    app = create_app(Settings(data_dir=tmp_path, workers=0, max_body_bytes=1000))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/v1/batches", json=batch_body())
        problem = assert_problem(response, 413)
    assert "1000" in problem["detail"]
    app.state.store.close()


async def test_list_pages_and_filters(client: httpx.AsyncClient) -> None:
    ids = []
    for version in ["1", "2", "2"]:
        body = batch_body(binary_columns(5))
        body["model"]["version"] = version
        ids.append((await client.post("/v1/batches", json=body)).json()["id"])
    first = (await client.get("/v1/batches", params={"page_size": 2})).json()
    second = (
        await client.get("/v1/batches", params={"page_size": 2, "page_token": first["next_page_token"]})
    ).json()
    assert [b["id"] for b in first["data"] + second["data"]] == ids[::-1]
    assert second["next_page_token"] is None
    v2 = (await client.get("/v1/batches", params={"model": "fraud-gbm", "version": "2"})).json()
    assert [b["id"] for b in v2["data"]] == ids[:0:-1]
    assert_problem(await client.get("/v1/batches", params={"page_token": "garbage!"}), 400)


async def test_sample_log_pages(client: httpx.AsyncClient) -> None:
    batch = (await client.post("/v1/batches", json=batch_body(binary_columns(25)))).json()
    seen, token = [], None
    while True:
        params: dict[str, Any] = {"page_size": 10} | ({"page_token": token} if token else {})
        page = (await client.get(f"/v1/batches/{batch['id']}/rows", params=params)).json()
        seen += page["data"]
        token = page["next_page_token"]
        if token is None:
            break
    assert [r["sample_id"] for r in seen] == [f"s{i}" for i in range(25)]


async def test_late_labels_join_by_sample_id_and_report_unmatched(client: httpx.AsyncClient) -> None:
    cols = binary_columns(4)
    cols["label"] = [None, None, 1, None]
    batch = (await client.post("/v1/batches", json=batch_body(cols))).json()
    assert batch["labeled_rows"] == 1
    update = {
        "labels": [
            {"sample_id": "s0", "label": 1},
            {"sample_id": "s3", "label": 0},
            {"sample_id": "zz", "label": 1},
        ]
    }
    response = await client.put(f"/v1/batches/{batch['id']}/labels", json=update)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "batch_id": batch["id"],
        "updated": 2,
        "labeled_rows": 3,
        "unmatched_sample_ids": ["zz"],
    }
    rows = (await client.get(f"/v1/batches/{batch['id']}/rows")).json()["data"]
    assert [r["label"] for r in rows] == [1, None, 1, 0]
    assert (await client.get(f"/v1/batches/{batch['id']}")).json()["labeled_rows"] == 3


async def test_bad_label_update_changes_nothing(client: httpx.AsyncClient) -> None:
    cols = binary_columns(3)
    cols["label"] = [None, None, None]
    batch = (await client.post("/v1/batches", json=batch_body(cols))).json()
    bad = {"labels": [{"sample_id": "s0", "label": 1}, {"sample_id": "s1", "label": 5}]}
    problem = assert_problem(await client.put(f"/v1/batches/{batch['id']}/labels", json=bad), 422)
    assert problem["errors"][0]["row"] == 1
    rows = (await client.get(f"/v1/batches/{batch['id']}/rows")).json()["data"]
    assert [r["label"] for r in rows] == [None, None, None]
    assert_problem(await client.put("/v1/batches/nope/labels", json={"labels": []}), 404)


async def test_delete_removes_metadata_and_files(client: httpx.AsyncClient, settings: Settings) -> None:
    batch = (await client.post("/v1/batches", json=batch_body())).json()
    assert (settings.batches_dir / batch["id"]).is_dir()
    assert (await client.delete(f"/v1/batches/{batch['id']}")).status_code == 204
    assert_problem(await client.get(f"/v1/batches/{batch['id']}"), 404)
    assert not (settings.batches_dir / batch["id"]).exists()
    assert_problem(await client.delete(f"/v1/batches/{batch['id']}"), 404)
