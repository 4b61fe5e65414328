"""``/v1/models`` and the model page, in process, against what the test posted and the results say."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.api import models as models_api
from service.reports.templating import number
from tests.api.conftest import batch_body, binary_columns
from tests.api.test_batches import assert_problem

pytestmark = pytest.mark.anyio

CRITICAL = [{"name": "big-amounts", "where": "amount > 100"}, {"name": "brazil", "where": "country == 'BR'"}]


async def post_evaluation(
    client: httpx.AsyncClient, model: str, version: str, *, seed: int = 0, critical: bool = True
) -> str:
    """A batch of ``model``/``version`` and a queued evaluation of it; the job's id."""
    payload = batch_body(binary_columns(200, seed=seed), model={"name": model, "version": version})
    batch = await client.post("/v1/batches", json=payload)
    assert batch.status_code == 201, batch.text
    request: dict[str, Any] = {
        "batch_id": batch.json()["id"],
        "metrics": ["accuracy", "f1"],
        "bootstrap": {"samples": 50, "seed": 0},
    }
    if critical:
        request["slices"] = {"critical": CRITICAL, "min_support": 5}
    job = await client.post("/v1/evaluations", json=request)
    assert job.status_code == 202, job.text
    return str(job.json()["id"])


async def result_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}/result")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_no_evaluation_no_model(client: httpx.AsyncClient) -> None:
    batch = await client.post("/v1/batches", json=batch_body())  # a batch alone is not a model
    assert batch.status_code == 201
    response = await client.get("/v1/models")
    assert response.status_code == 200
    assert response.json() == {"data": [], "next_page_token": None}


async def test_each_model_with_its_latest_succeeded_evaluation(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    posted = {
        "fraud": [await post_evaluation(client, "fraud", v, seed=i) for i, v in enumerate(("1", "2"))],
        "churn": [await post_evaluation(client, "churn", "5", seed=3)],
    }
    assert run_jobs() == 3
    queued = await post_evaluation(client, "credit", "1", seed=4)  # never run: no latest yet

    listed = (await client.get("/v1/models")).json()
    assert listed["next_page_token"] is None
    by_name = {m["name"]: m for m in listed["data"]}
    assert [m["name"] for m in listed["data"]] == ["credit", "churn", "fraud"]  # newest job first
    assert by_name["credit"]["latest"] is None
    assert (by_name["credit"]["evaluations"], by_name["credit"]["succeeded"]) == (1, 0)
    assert queued
    for name, jobs in posted.items():
        model = by_name[name]
        assert (model["evaluations"], model["succeeded"]) == (len(jobs), len(jobs))
        assert model["page"] == f"/ui/models/{name}"
        latest = model["latest"]
        result = await result_of(client, jobs[-1])
        assert latest["job_id"] == jobs[-1]
        assert latest["version"] == result["model"]["version"]
        assert latest["verdict"] == result["verdict"]["status"]
        assert latest["primary_metric"] == result["verdict"]["primary_metric"]
        assert latest["primary_metric"]["interval"] is not None
        assert latest["report"] == f"/v1/jobs/{jobs[-1]}/report"
        assert latest["finished_at"].replace("Z", "+00:00")[:19] == result["finished_at"][:19]


async def test_pages_of_models_follow_one_another(client: httpx.AsyncClient) -> None:
    names = [f"model-{i}" for i in range(5)]
    for i, name in enumerate(names):
        await post_evaluation(client, name, "1", seed=i, critical=False)
    seen: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": 2} | ({"page_token": token} if token else {})
        page = (await client.get("/v1/models", params=params)).json()
        assert len(page["data"]) <= 2
        seen += [m["name"] for m in page["data"]]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == names[::-1]
    problem = assert_problem(await client.get("/v1/models", params={"page_token": "garbage"}), 400)
    assert "page_token" in problem["detail"]
    jobs_token = (await client.get("/v1/jobs", params={"page_size": 1})).json()["next_page_token"]
    assert_problem(await client.get("/v1/models", params={"page_token": jobs_token}), 400)


async def test_the_model_page_links_every_report_and_draws_both_figures(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    jobs = [await post_evaluation(client, "fraud", v, seed=i) for i, v in enumerate(("1", "2", "3"))]
    assert run_jobs() == 3
    response = await client.get("/ui/models/fraud")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    for job_id in jobs:
        assert f'href="../../v1/jobs/{job_id}/report"' in html
    assert len(re.findall(r"<figure>\s*<svg", html)) == 2
    assert html.count("<figcaption>") == 2
    assert "Critical slices across versions" in html
    for job_id in jobs:
        primary = (await result_of(client, job_id))["verdict"]["primary_metric"]
        assert f'<td class="num">{number(primary["value"])}</td>' in html
    # Nothing to fetch: no script, every link relative (the SVGs' xmlns URIs are names, not requests).
    assert "<script" not in html
    assert re.findall(r'(?:src|href)="(?!(?:\.\./)+v1/jobs/|#|data:,")[^"]*"', html) == []
    assert "3 evaluations</span>" in html and "only" not in html


async def test_a_page_without_critical_slices_says_so_and_escapes_the_name(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    name = "team/<b>fraud</b>"
    job_id = await post_evaluation(client, name, "1", critical=False)
    run_jobs()
    response = await client.get("/ui/models/team/%3Cb%3Efraud%3C/b%3E")
    assert response.status_code == 200, response.text
    html = response.text
    assert "<b>fraud</b>" not in html and "&lt;b&gt;fraud&lt;/b&gt;" in html
    assert f'href="../../../../v1/jobs/{job_id}/report"' in html  # from /ui/models/team/<b>fraud</b>
    assert "No evaluation named critical slices" in html
    assert len(re.findall(r"<figure>\s*<svg", html)) == 1
    listed = (await client.get("/v1/models")).json()["data"]
    assert listed[0]["page"] == "/ui/models/team%2F%3Cb%3Efraud%3C%2Fb%3E"
    assert (await client.get(listed[0]["page"])).status_code == 200


async def test_a_failed_job_is_listed_without_a_verdict_and_the_page_caps_what_it_reads(
    client: httpx.AsyncClient, run_jobs: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [await post_evaluation(client, "fraud", v, seed=i) for i, v in enumerate(("1", "2", "3"))]
    run_jobs()
    monkeypatch.setattr(models_api, "MAX_EVALUATIONS", 2)
    html = (await client.get("/ui/models/fraud")).text
    assert "3 evaluations" not in html and "2 evaluations (the latest 2)" in html
    assert "This page shows the latest 2 evaluations only" in html
    assert jobs[0] not in html  # the oldest is beyond the cap
    assert all(f"v1/jobs/{j}/report" in html for j in jobs[1:])


async def test_an_unknown_model_is_a_404_problem(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/ui/models/nobody"), 404)
    assert "nobody" in problem["detail"]
