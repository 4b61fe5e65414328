"""The model page in a real browser, served by the real ``yardstick serve``.

Three versions of a model are evaluated with critical slices; the page must load with no console
error, fetch nothing but itself, draw every figure, and link each evaluation to its job's report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import numpy as np
import pytest

from tests.browser.conftest import OpenPage
from tests.integration.conftest import Server, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration]

MODEL = "fraud-gbm"
CRITICAL = [
    {"name": "new-users", "where": "tenure_days < 30"},
    {"name": "brazil-mobile", "where": "country == 'BR' and device == 'ios'"},
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "data", workers=1).start()
    try:
        yield started
    finally:
        started.stop()


def columns(n: int, *, skill: float, seed: int) -> dict[str, list[Any]]:
    """A binary batch whose scores separate the classes by ``skill`` (worse for new users)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    tenure = rng.integers(0, 400, n)
    signal = np.where(tenure < 30, skill * 0.5, skill)
    score = np.clip(0.5 + (label - 0.5) * signal + rng.normal(0, 0.25, n), 0, 1).round(6)
    return {
        "sample_id": [f"s{i}" for i in range(n)],
        "label": label.tolist(),
        "score": score.tolist(),
        "tenure_days": tenure.tolist(),
        "country": rng.choice(["BR", "US", "DE"], n).tolist(),
        "device": rng.choice(["ios", "android", "web"], n).tolist(),
    }


def evaluate(client: httpx.Client, version: str, *, skill: float, seed: int) -> str:
    batch = client.post(
        "/v1/batches",
        json={
            "model": {"name": MODEL, "version": version},
            "task": "binary",
            "positive_class": 1,
            "columns": columns(1500, skill=skill, seed=seed),
        },
    )
    assert batch.status_code == 201, batch.text
    job = client.post(
        "/v1/evaluations",
        json={
            "batch_id": batch.json()["id"],
            "metrics": ["accuracy", "roc_auc"],
            "bootstrap": {"samples": 200, "seed": 0},
            "slices": {"critical": CRITICAL, "min_support": 10},
        },
    )
    assert job.status_code == 202, job.text
    job_id: str = job.json()["id"]

    def finished() -> bool:
        status = client.get(f"/v1/jobs/{job_id}").json()["status"]
        assert status not in ("failed", "cancelled"), client.get(f"/v1/jobs/{job_id}").json()
        return status == "succeeded"

    wait_until(finished, timeout=120, what=f"job {job_id}")
    return job_id


def test_the_model_page_loads_offline_and_draws_every_figure(server: Server, open_page: OpenPage) -> None:
    plan = [("1", 0.20), ("1", 0.22), ("2", 0.30), ("3", 0.40), ("3", 0.38)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        jobs = [evaluate(client, version, skill=skill, seed=i) for i, (version, skill) in enumerate(plan)]

    url = f"{server.url}/ui/models/{MODEL}"
    check = open_page(url, "model-page.png", width=1000)

    assert check.console_errors == []
    assert check.other_requests == []  # the page is the only request: no script, font or image
    assert check.figures == 2
    assert check.blank_figures == []
    assert MODEL in check.title
    reports = {urljoin(url, href) for href in check.links}
    assert reports >= {f"{server.url}/v1/jobs/{job_id}/report" for job_id in jobs}
    for name in ("new-users", "brazil-mobile"):
        assert name in check.html
    assert "5 evaluations" in check.text and "3 versions" in check.text


def test_an_unknown_model_is_a_404_problem_in_the_browser_too(server: Server) -> None:
    response = httpx.get(f"{server.url}/ui/models/nobody", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
