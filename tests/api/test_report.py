"""``GET /v1/jobs/{id}/report``: the HTML report of each kind of result, rendered from results the real
evaluation code produced, checked for structure (sections in order, one SVG and one caption per
figure, nothing fetched from elsewhere, user strings escaped) and for its HTTP contract.

The cases (:func:`submit_binary` and friends) are shared with the browser test
(tests/browser/test_report_pages.py), which posts them to a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from html.parser import HTMLParser
from typing import Any, Protocol

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx
import numpy as np
import pytest
from markupsafe import escape

from schemas.results import EvaluationResult
from service.reports.report import render_report

#: A slice value and a model name a report must print as text, never as markup.
HOSTILE = '<script>alert("x")</script>'
MODEL = 'fraud <gbm> & "co"'

#: Sections of a report, in the order the issue asks for.
ORDER = [
    "verdict",
    "metrics",
    "baselines",
    "curves",
    "confusion",
    "calibration",
    "confidence",
    "slices",
    "robustness",
    "critical-over-time",
    "findings",
    "errors",
]


class Api(Protocol):
    """What the cases need of a client: POST a JSON body, DELETE a resource."""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, path: str) -> None: ...


def _binary_columns(n: int, seed: int, *, ids: int = 0) -> dict[str, list[Any]]:
    """Scores that separate the classes, worse where country = BR and device = ios."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["BR", "US", HOSTILE], n, p=[0.4, 0.45, 0.15])
    device = rng.choice(["ios", "android", "web"], n)
    label = rng.integers(0, 2, n)
    hard = (country == "BR") & (device == "ios")
    logit = 1.4 * (2 * label - 1) + rng.normal(0, np.where(hard, 3.0, 1.2))
    return {
        "sample_id": [f"s{ids + i}" for i in range(n)],
        "label": label.tolist(),
        "score": (1 / (1 + np.exp(-2 * logit))).round(6).tolist(),
        "country": country.tolist(),
        "device": device.tolist(),
        "tenure_days": rng.integers(0, 400, n).tolist(),
        "amount": rng.normal(100, 30, n).round(2).tolist(),
    }


def _batch(api: Api, body: dict[str, Any]) -> str:
    return str(api.post("/v1/batches", body)["id"])


def _evaluate(api: Api, request: dict[str, Any]) -> str:
    return str(api.post("/v1/evaluations", request)["id"])


CRITICAL = {"critical": [{"name": "new-users", "where": "tenure_days < 30"}]}


def submit_binary(api: Api, n: int = 3000) -> str:
    """Two earlier versions (for the critical slice's history), then a binary evaluation with every
    section; returns the last job's id. Jobs run in creation order."""
    for version in ("5", "6"):
        earlier = _batch(
            api,
            {
                "model": {"name": MODEL, "version": version},
                "task": "binary",
                "positive_class": 1,
                "columns": _binary_columns(n // 3, seed=int(version)),
            },
        )
        _evaluate(api, {"batch_id": earlier, "metrics": ["roc_auc", "accuracy"], "slices": CRITICAL})
    columns = _binary_columns(n, seed=7)
    main = _batch(
        api,
        {"model": {"name": MODEL, "version": "7"}, "task": "binary", "positive_class": 1, "columns": columns},
    )
    rng = np.random.default_rng(8)
    champion_scores = np.clip(np.array(columns["score"]) + rng.normal(0, 0.25, n), 0, 1).round(6)
    champion = _batch(
        api,
        {
            "model": {"name": "champion", "version": "6"},
            "task": "binary",
            "positive_class": 1,
            "columns": columns | {"score": champion_scores.tolist()},
        },
    )
    jittered = np.clip(np.array(columns["score"]) + rng.normal(0, 0.02, n), 0, 1).round(6)
    perturbed = _batch(
        api,
        {
            "model": {"name": MODEL, "version": "7-perturbed"},
            "task": "binary",
            "positive_class": 1,
            "columns": columns | {"score": jittered.tolist()},
        },
    )
    return _evaluate(
        api,
        {
            "batch_id": main,
            "metrics": ["roc_auc", "average_precision", "accuracy", "f1", "log_loss"],
            "bootstrap": {"samples": 200, "seed": 0},
            "baselines": {
                "random_prior": True,
                "zero_rule": True,
                "heuristics": [
                    {"name": "big <amount>", "rules": [{"when": "amount > 130", "then": 1}], "otherwise": 0}
                ],
                "existing": [{"name": "champion", "batch_id": champion}],
            },
            "calibration": {"bins": 10, "recalibrate": ["platt", "isotonic"]},
            "confidence": {"target_accuracy": 0.9},
            "slices": CRITICAL
            | {
                "columns": ["country", "device"],
                "crosses": [["country", "device"]],
                "finder": {"max_conditions": 2, "top_k": 5},
            },
            "robustness": {
                "pairs": [
                    {
                        "name": "score jitter",
                        "original_batch_id": main,
                        "perturbed_batch_id": perturbed,
                        "expect": "same",
                    }
                ]
            },
            "gates": [
                {"metric": "roc_auc", "min": 0.7, "use": "lower_bound"},
                {"metric": "calibration.ece", "max": 0.01},
            ],
        },
    )


def submit_multiclass(api: Api, n: int = 2000) -> str:
    rng = np.random.default_rng(11)
    classes = ["cat", "dog", "fox"]
    label = rng.integers(0, 3, n)
    raw = rng.dirichlet([1, 1, 1], n) + np.eye(3)[label] * rng.uniform(0, 1.5, (n, 1))
    scores = (raw / raw.sum(axis=1, keepdims=True)).round(6)
    scores[:, 2] = 1 - scores[:, 0] - scores[:, 1]
    columns: dict[str, list[Any]] = {
        "sample_id": [f"m{i}" for i in range(n)],
        "label": [classes[k] for k in label],
        "habitat": rng.choice(["city", "forest", "farm"], n).tolist(),
    }
    for k, name in enumerate(classes):
        columns[f"score__{name}"] = scores[:, k].tolist()
    batch = _batch(
        api,
        {
            "model": {"name": "pets", "version": "2"},
            "task": "multiclass",
            "classes": classes,
            "columns": columns,
        },
    )
    return _evaluate(
        api,
        {
            "batch_id": batch,
            "bootstrap": {"samples": 100, "seed": 0},
            "baselines": {"random_prior": True, "zero_rule": True},
            "calibration": {"bins": 10},
            "confidence": {"target_accuracy": 0.8},
            "slices": {"columns": ["habitat"]},
        },
    )


def submit_regression(api: Api, n: int = 2000) -> str:
    rng = np.random.default_rng(12)
    y = rng.exponential(10, n)
    region = rng.choice(["north", "south", "east"], n)
    pred = y + rng.normal(0, np.where(region == "south", 4.0, 1.0))
    batch = _batch(
        api,
        {
            "model": {"name": "price", "version": "3"},
            "task": "regression",
            "columns": {
                "sample_id": [f"r{i}" for i in range(n)],
                "label": y.round(4).tolist(),
                "prediction": pred.round(4).tolist(),
                "region": region.tolist(),
            },
        },
    )
    return _evaluate(
        api,
        {
            "batch_id": batch,
            "metrics": ["mae", "rmse", "r2"],
            "bootstrap": {"samples": 100, "seed": 0},
            "baselines": {"zero_rule": True},
            "slices": {"columns": ["region"]},
        },
    )


def submit_failed(api: Api) -> str:
    """A job whose batch is deleted before it runs: it fails saying the batch does not exist."""
    batch = _batch(
        api,
        {
            "model": {"name": "gone", "version": "1"},
            "task": "binary",
            "positive_class": 1,
            "columns": _binary_columns(100, seed=3),
        },
    )
    job = _evaluate(api, {"batch_id": batch})
    api.delete(f"/v1/batches/{batch}")
    return job


def submit_simpson(api: Api, n: int = 2000) -> str:
    """A trend that reverses inside slices: within each plan the error falls with usage, but plan
    "pro" has both more usage and more errors, so overall the error rises with usage."""
    rng = np.random.default_rng(21)
    pro = rng.random(n) < 0.5
    usage = np.where(pro, rng.uniform(10, 20, n), rng.uniform(0, 10, n))
    error_rate = np.where(pro, 0.7 - 0.04 * (usage - 10), 0.3 - 0.02 * usage)
    wrong = rng.random(n) < error_rate
    label = rng.integers(0, 2, n)
    confidence = rng.uniform(0.6, 0.95, n)
    score = np.where((label == 1) != wrong, confidence, 1 - confidence)
    batch = _batch(
        api,
        {
            "model": {"name": "churn", "version": "1"},
            "task": "binary",
            "positive_class": 1,
            "columns": {
                "sample_id": [f"p{i}" for i in range(n)],
                "label": label.tolist(),
                "score": score.round(6).tolist(),
                "plan": np.where(pro, "pro", "basic").tolist(),
                "usage": usage.round(3).tolist(),
            },
        },
    )
    # the finder makes the job read `usage`: the trend check only sees the columns the slices read
    slices = {"columns": ["plan"], "finder": {"columns": ["plan", "usage"]}}
    return _evaluate(api, {"batch_id": batch, "metrics": ["accuracy"], "slices": slices})


pytestmark = pytest.mark.anyio


class _InProcessApi:
    """The sync :class:`Api` the cases take, over the async in-process client: the cases run in a
    worker thread (:func:`submit`) and each call hops back to the event loop."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = anyio.from_thread.run(partial(self.client.post, path, json=body))
        assert response.status_code in (201, 202), response.text
        answer: dict[str, Any] = response.json()
        return answer

    def delete(self, path: str) -> None:
        assert anyio.from_thread.run(self.client.delete, path).status_code == 204


async def submit(client: httpx.AsyncClient, case: Callable[..., str], **options: Any) -> str:
    return await anyio.to_thread.run_sync(partial(case, _InProcessApi(client), **options))


class Structure(HTMLParser):
    """What the tests check of a page: sections in order, figures with their SVG and caption,
    every src/href, and the tags used."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.figures: list[dict[str, int]] = []
        self.references: list[str] = []
        self.tags: set[str] = set()
        self._svg_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if tag == "section":
            self.sections.append(values.get("id") or "")
        if tag == "figure":
            self.figures.append({"svg": 0, "figcaption": 0})
        if tag == "svg":
            if self._svg_depth == 0 and self.figures:
                self.figures[-1]["svg"] += 1
            self._svg_depth += 1
        if tag == "figcaption" and self.figures:
            self.figures[-1]["figcaption"] += 1
        self.references += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v is not None]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg_depth -= 1


def structure(html: str) -> Structure:
    parsed = Structure()
    parsed.feed(html)
    return parsed


def assert_no_external_references(html: str) -> Structure:
    """No script, no embedded resource, and every link a path on this server (no scheme, no ``//``)."""
    page = structure(html)
    assert not {"script", "iframe", "img", "object", "embed", "base"} & page.tags
    # the one link: an empty icon, so that the browser does not ask for /favicon.ico
    assert html.count("<link") == html.count('<link rel="icon" href="data:,">') == 1
    references = [r for r in page.references if r != "data:,"]
    external = [r for r in references if re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", r, re.IGNORECASE)]
    assert not external, external
    assert "@import" not in html and not re.search(r"url\((?!#)", html)  # url(#id): within the page
    return page


def assert_self_contained(html: str) -> Structure:
    page = assert_no_external_references(html)
    assert page.figures, "a report has at least one figure"
    assert all(f == {"svg": 1, "figcaption": 1} for f in page.figures), page.figures
    assert html.count("<svg") == len(page.figures)  # no SVG outside a figure
    assert page.sections == [s for s in ORDER if s in page.sections], page.sections
    return page


async def finished_report(client: httpx.AsyncClient, run_jobs: Callable[[], int], job_id: str) -> str:
    run_jobs()
    response = await client.get(f"/v1/jobs/{job_id}/report")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    return response.text


async def test_binary_report_has_every_section_in_order(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    html = await finished_report(client, run_jobs, await submit(client, submit_binary))
    page = assert_self_contained(html)
    assert page.sections == ORDER[:-1]  # every section but errors, none failed
    result = EvaluationResult.model_validate((await client.get(f"/v1/jobs/{page_job(html)}/result")).json())
    # figures: intervals, forest, ROC+PR, confusion, reliability, risk-coverage, one per slice group,
    # robustness, critical over time
    assert result.slices is not None
    assert len(page.figures) == 8 + len(result.slices.groups)
    assert "<script" not in html and MODEL not in html
    assert "&lt;script&gt;" in html  # the slice value, as text
    assert "fraud &lt;gbm&gt; &amp; &#34;co&#34;" in html
    assert "big &lt;amount&gt;" in html
    assert len(html.encode()) < 1_000_000
    # every gate and finding is on the page, in the result's order
    findings = html.split('id="findings"')[1]
    positions = [findings.index(str(escape(f.message))) for f in result.findings]
    assert positions == sorted(positions) and len(positions) > 0
    assert html.count('<td class="fail">fail</td>') == sum(not g.passed for g in result.gates.results)


def page_job(html: str) -> str:
    found = re.search(r"/v1/jobs/(j_[0-9a-f]+)/result", html)
    assert found is not None
    return found.group(1)


async def test_multiclass_report_has_per_class_figures(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    html = await finished_report(client, run_jobs, await submit(client, submit_multiclass))
    page = assert_self_contained(html)
    assert page.sections == [
        "verdict",
        "metrics",
        "baselines",
        "curves",
        "confusion",
        "calibration",
        "confidence",
        "slices",
        *(["findings"] if 'id="findings"' in html else []),
    ]
    assert "Per-class precision, recall and F1" in html and "ROC" not in html.split('id="curves"')[1][:200]
    for name in ("cat", "dog", "fox"):
        assert f"<td>{name}</td>" in html


async def test_regression_report_leaves_out_classification_sections(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    html = await finished_report(client, run_jobs, await submit(client, submit_regression))
    page = assert_self_contained(html)
    assert {"curves", "confusion", "calibration", "confidence", "robustness"}.isdisjoint(page.sections)
    assert page.sections[:4] == ["verdict", "metrics", "baselines", "slices"]
    assert "By region" in html


async def test_failed_job_page_shows_its_error(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    job = await submit(client, submit_failed)
    run_jobs()
    status = (await client.get(f"/v1/jobs/{job}")).json()
    assert status["status"] == "failed"
    response = await client.get(f"/v1/jobs/{job}/report")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert str(escape(status["error"])) in response.text
    assert "<figure" not in response.text and "Evaluation failed" in response.text
    assert_no_external_references(response.text)


def _queued_job(api: Api) -> str:
    columns = _binary_columns(50, seed=1)
    batch = _batch(
        api,
        {"model": {"name": "m", "version": "1"}, "task": "binary", "positive_class": 1, "columns": columns},
    )
    return _evaluate(api, {"batch_id": batch})


async def test_unfinished_and_unknown_jobs_are_problems(client: httpx.AsyncClient) -> None:
    job = await submit(client, _queued_job)
    queued = await client.get(f"/v1/jobs/{job}/report")
    assert queued.status_code == 409
    assert queued.headers["content-type"] == "application/problem+json"
    assert "queued" in queued.json()["detail"]
    assert (await client.post(f"/v1/jobs/{job}/cancel")).status_code == 200
    cancelled = await client.get(f"/v1/jobs/{job}/report")
    assert cancelled.status_code == 409 and "cancelled" in cancelled.json()["detail"]
    missing = await client.get("/v1/jobs/j_nope/report")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_same_result_same_bytes(client: httpx.AsyncClient, run_jobs: Callable[[], int]) -> None:
    job = await submit(client, submit_regression, n=500)
    run_jobs()
    result = EvaluationResult.model_validate((await client.get(f"/v1/jobs/{job}/result")).json())
    assert render_report(result) == render_report(result)


async def test_simpson_reversal_is_explained_in_a_sentence(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    job = await submit(client, submit_simpson)
    html = await finished_report(client, run_jobs, job)
    result = EvaluationResult.model_validate((await client.get(f"/v1/jobs/{job}/result")).json())
    reversals = [f for f in result.findings if f.kind == "simpsons_paradox"]
    assert [f.details["x"] for f in reversals] == ["usage"]
    slices = html.split('id="slices"')[1].split("</section>")[0]
    explained = slices.split("Simpson reversals")[1]
    assert str(escape(reversals[0].message)) in explained
    assert "usage" in reversals[0].message and "plan" in reversals[0].message
