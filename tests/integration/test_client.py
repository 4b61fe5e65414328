"""The Python client against the real server (with API keys): pandas, polars and pyarrow frames
posted, labels added later, an evaluation waited for, and what comes back compared with what the
HTTP API itself answers."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from schemas.results import EvaluationResult
from tests.integration.conftest import Server
from yardstick import AsyncClient, Client, YardstickError

pytestmark = pytest.mark.integration

KEY = "client-test-key"
SECTIONS: dict[str, Any] = {
    "metrics": ["accuracy", "roc_auc"],
    "bootstrap": {"samples": 100, "seed": 1},
    "gates": [{"metric": "roc_auc", "min": 0.6}, {"metric": "accuracy", "min": 0.99}],
    "slices": {"columns": ["country"]},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("client") / "data", workers=1)
    running.env["YARDSTICK_API_KEYS"] = KEY
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client here finds its key in the environment, as a pipeline's would."""
    monkeypatch.setenv("YARDSTICK_API_KEY", KEY)


def columns(n: int = 600, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    return {
        "sample_id": [f"s{i}" for i in range(n)],
        "score": np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1).round(6),
        "country": rng.choice(["BR", "DE", "US"], n),
        "label": label,
    }


def as_kind(data: dict[str, Any], kind: str) -> Any:
    if kind == "pandas":
        return pd.DataFrame(data)
    if kind == "polars":
        return pl.DataFrame(data)
    return pa.table(data)


def stored_rows(server: Server, batch_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/v1/batches/{batch_id}/rows",
        params={"page_size": 1000},
        headers={"authorization": f"Bearer {KEY}"},
    )
    answer.raise_for_status()
    rows: list[dict[str, Any]] = answer.json()["data"]
    return rows


def raw_result(server: Server, job_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/v1/jobs/{job_id}/result", headers={"authorization": f"Bearer {KEY}"})
    answer.raise_for_status()
    document: dict[str, Any] = answer.json()
    return document


def assert_slice_frames_match(frames: dict[str, pd.DataFrame], document: dict[str, Any]) -> None:
    groups = document["slices"]["groups"]
    assert sorted(frames) == sorted(" x ".join(g["columns"]) for g in groups)
    for group in groups:
        frame = frames[" x ".join(group["columns"])]
        assert len(frame) == len(group["slices"])
        for (_, row), expected in zip(frame.iterrows(), group["slices"], strict=True):
            for column in group["columns"]:
                assert row[column] == expected["conditions"][column]
            assert row["n"] == expected["n"] and row["share"] == expected["share"]
            assert bool(row["minority"]) == expected["minority"]
            for name, metric in expected["metrics"].items():
                assert row[name] == pytest.approx(metric["value"], nan_ok=True)
                assert row[f"{name}_low"] == pytest.approx(metric["interval"]["low"])
                assert row[f"{name}_high"] == pytest.approx(metric["interval"]["high"])


@pytest.mark.parametrize("kind", ["pandas", "polars", "pyarrow"])
def test_post_label_evaluate_wait_read(server: Server, kind: str, tmp_path: Path) -> None:
    data = columns(seed=3)
    predictions = {k: v for k, v in data.items() if k != "label"}
    with Client(server.url) as client:
        batch = client.post_batch(as_kind(predictions, kind), model=f"client-{kind}", version="1",
                                  task="binary", positive_class=1)  # fmt: skip
        assert (batch.rows, batch.labeled_rows) == (600, 0)
        labels = as_kind({"sample_id": data["sample_id"], "label": data["label"]}, kind)
        update = client.put_labels(batch, labels)
        assert (update.updated, update.labeled_rows, update.unmatched_sample_ids) == (600, 600, [])

        job = client.evaluate(batch, **SECTIONS)
        result = job.wait(progress=True, stream=io.StringIO(), timeout=120)

        stored = stored_rows(server, batch.id)
        assert [r["sample_id"] for r in stored] == data["sample_id"]
        assert [r["label"] for r in stored] == data["label"].tolist()

        document = raw_result(server, job.id)
        assert result == EvaluationResult.model_validate(document)
        assert result.verdict is not None and result.verdict.status == "fail"  # the accuracy gate
        assert [g.passed for g in result.gates.results] == [True, False]
        assert_slice_frames_match(job.slices(), document)

        junit = ET.fromstring(job.junit(tmp_path / "gates.xml"))
        assert len(list(junit.iter("testcase"))) == 2 and len(list(junit.iter("failure"))) == 1
        assert (tmp_path / "gates.xml").read_bytes().startswith(b"<?xml")

        page = job.report(tmp_path / "report.html")
        assert b"<html" in page[:500].lower() and (tmp_path / "report.html").read_bytes() == page


def test_arrow_upload_stores_what_parquet_stores(server: Server) -> None:
    table = pa.table(columns(n=300, seed=5))
    with Client(server.url) as client:
        via_parquet = client.post_batch(table, model="fmt", version="1", task="binary", positive_class=1)
        via_arrow = client.post_batch(table, model="fmt", version="1", task="binary", positive_class=1,
                                      format="arrow")  # fmt: skip
    assert via_arrow.columns == via_parquet.columns and via_arrow.rows == 300
    assert stored_rows(server, via_arrow.id) == stored_rows(server, via_parquet.id)


def test_a_bad_request_raises_the_servers_problem(server: Server) -> None:
    table = pa.table(columns(n=10) | {"score": [1.5] * 10})
    with Client(server.url) as client, pytest.raises(YardstickError) as caught:
        client.post_batch(table, model="bad", version="1", task="binary", positive_class=1)
    assert caught.value.status == 422
    assert any(issue["field"].startswith("score") for issue in caught.value.errors)


def test_a_missing_key_is_a_401(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YARDSTICK_API_KEY")
    with Client(server.url) as client, pytest.raises(YardstickError) as caught:
        client.post_batch(pa.table(columns(n=10)), model="m", version="1", task="binary")
    assert caught.value.status == 401


@pytest.mark.anyio
async def test_the_async_client_takes_the_same_path(server: Server) -> None:
    data = columns(seed=8)
    predictions = {k: v for k, v in data.items() if k != "label"}
    async with AsyncClient(server.url) as client:
        batch = await client.post_batch(pl.DataFrame(predictions), model="client-async", version="2",
                                        task="binary", positive_class=1)  # fmt: skip
        pairs = zip(data["sample_id"], data["label"], strict=True)
        await client.put_labels(batch, [{"sample_id": s, "label": int(v)} for s, v in pairs])
        job = await client.evaluate(batch, **SECTIONS)
        result = await job.wait(timeout=120)
        assert result == EvaluationResult.model_validate(raw_result(server, job.id))
        assert_slice_frames_match(await job.slices(), raw_result(server, job.id))
        assert b"<html" in (await job.report())[:500].lower()
