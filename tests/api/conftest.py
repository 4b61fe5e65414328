from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.jobs.worker import JobWorker
from service.settings import Settings


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c
    app.state.store.close()


@pytest.fixture
def run_jobs(app: FastAPI) -> Callable[[], int]:
    """The inline runner: run every queued job in this process; return how many ran."""

    def run() -> int:
        worker = JobWorker(app.state.store, app.state.settings, worker_id="test-worker")
        count = 0
        while worker.run_once() is not None:
            count += 1
        return count

    return run


def binary_columns(n: int = 200, *, seed: int = 0) -> dict[str, list[Any]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    score = np.clip(label * 0.3 + rng.random(n) * 0.7, 0, 1).round(6)
    return {
        "sample_id": [f"s{i}" for i in range(n)],
        "label": label.tolist(),
        "score": score.tolist(),
        "country": rng.choice(["BR", "US", "DE"], n).tolist(),
        "amount": rng.normal(100, 20, n).round(2).tolist(),
    }


def batch_body(columns: dict[str, list[Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"name": "fraud-gbm", "version": "7"},
        "task": "binary",
        "positive_class": 1,
        "columns": columns if columns is not None else binary_columns(),
    }
    body.update(overrides)
    return body
