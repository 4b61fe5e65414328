"""``GET /v1/batches/{id}/rows`` reads only the Parquet row groups that hold the page."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI

from tests.api.conftest import batch_body

pytestmark = pytest.mark.anyio

N, GROUP, PAGE = 1050, 100, 125


async def post_batch(client: httpx.AsyncClient, app: FastAPI) -> str:
    app.state.store.files.row_group_size = GROUP  # 11 row groups, the last one short
    rng = np.random.default_rng(0)
    label: list[int | None] = rng.integers(0, 2, N).tolist()
    for i in range(0, N, 7):
        label[i] = None  # late labels: some rows have none yet
    columns = {
        "sample_id": [f"s{i}" for i in range(N)],
        "label": label,
        "prediction": rng.integers(0, 2, N).tolist(),
    }
    response = await client.post("/v1/batches", json=batch_body(columns))
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    record = app.state.store.meta.get_batch(batch_id)
    assert pq.read_metadata(app.state.store.files.root / record.data_path).num_row_groups == 11
    return batch_id


async def pages(client: httpx.AsyncClient, batch_id: str) -> list[list[dict[str, Any]]]:
    out, token = [], None
    while True:
        params: dict[str, Any] = {"page_size": PAGE} | ({"page_token": token} if token else {})
        response = await client.get(f"/v1/batches/{batch_id}/rows", params=params)
        assert response.status_code == 200, response.text
        out.append(response.json()["data"])
        token = response.json()["next_page_token"]
        if token is None:
            return out


async def test_paging_through_every_row_group_gives_the_whole_table(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    batch_id = await post_batch(client, app)
    seen = [row for page in await pages(client, batch_id) for row in page]
    record = app.state.store.meta.get_batch(batch_id)
    whole = app.state.store.files.read(record.data_path, columns=["sample_id", "prediction", "label"])
    assert seen == whole.to_pylist()
    assert len(seen) == N and seen[0]["label"] is None and seen[-1]["sample_id"] == f"s{N - 1}"


async def test_a_page_reads_only_the_row_groups_that_cover_it(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch_id = await post_batch(client, app)
    read_groups: list[list[int]] = []
    read_row_groups = pq.ParquetFile.read_row_groups

    def spy(self: pq.ParquetFile, row_groups: list[int], *args: Any, **kwargs: Any) -> Any:
        read_groups.append(list(row_groups))
        return read_row_groups(self, row_groups, *args, **kwargs)

    def whole_file(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a page must not read whole columns")

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    monkeypatch.setattr(pq, "read_table", whole_file)
    got = await pages(client, batch_id)
    assert [len(page) for page in got] == [PAGE] * 8 + [N - 8 * PAGE]
    # rows [o, o + 125) lie in groups o // 100 .. (o + 124) // 100: two of the 11, never more
    covering = [list(range(o // GROUP, (min(o + PAGE, N) - 1) // GROUP + 1)) for o in range(0, N, PAGE)]
    assert read_groups == covering
    assert max(len(groups) for groups in read_groups) == 2
