"""Report pages in headless Chromium: each kind of report loads with no console error, makes no
request besides the page itself, and draws every figure.

One real server (no embedded workers) takes the four cases of tests/api/test_report.py; a separate
``yardstick worker`` process then runs their jobs in creation order, so the failed case's batch is
deleted before its job runs. Screenshots: ``report-<kind>.png`` (see tests/browser/conftest.py for
``YARDSTICK_SCREENSHOTS``, which keeps them under docs/screenshots/).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from schemas.jobs import TERMINAL_STATUSES
from tests.api.test_report import (
    assert_no_external_references,
    submit_binary,
    submit_failed,
    submit_multiclass,
    submit_regression,
)
from tests.browser.conftest import OpenPage
from tests.integration.conftest import Server, wait_until

pytestmark = pytest.mark.browser

CASES = {
    "binary": submit_binary,
    "multiclass": submit_multiclass,
    "regression": submit_regression,
    "failed": submit_failed,
}
#: The status each case's job ends in.
EXPECTED_STATUS = {
    "binary": "succeeded",
    "multiclass": "succeeded",
    "regression": "succeeded",
    "failed": "failed",
}


class HttpApi:
    """The cases' :class:`tests.api.test_report.Api` over a real server."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code in (201, 202), response.text
        answer: dict[str, Any] = response.json()
        return answer

    def delete(self, path: str) -> None:
        assert self.client.delete(path).status_code == 204


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The server's URL and each case's job id, every job finished."""
    data = tmp_path_factory.mktemp("reports") / "data"
    server = Server(data, workers=0)
    worker = Server(data)
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=60) as client:
            api = HttpApi(client)
            jobs = {kind: case(api) for kind, case in CASES.items()}
            worker.start("worker")

            def finished() -> bool:
                statuses = [client.get(f"/v1/jobs/{job}").json()["status"] for job in jobs.values()]
                return all(status in TERMINAL_STATUSES for status in statuses)

            wait_until(finished, timeout=240, what="the report cases' jobs", interval=0.2)
            for kind, job in jobs.items():
                assert client.get(f"/v1/jobs/{job}").json()["status"] == EXPECTED_STATUS[kind], kind
        yield server.url, jobs
    finally:
        worker.stop()
        server.stop()


@pytest.mark.parametrize("kind", list(CASES))
def test_report_page_in_the_browser(
    open_page: OpenPage, reports: tuple[str, dict[str, str]], kind: str
) -> None:
    url, jobs = reports
    check = open_page(f"{url}/v1/jobs/{jobs[kind]}/report", f"report-{kind}.png")
    assert check.console_errors == []
    assert check.other_requests == []
    assert check.blank_figures == []
    assert_no_external_references(check.html)
    if kind == "failed":
        assert check.figures == 0 and "Evaluation failed" in check.text and "does not exist" in check.text
    else:
        assert check.figures >= 3
        assert check.title.endswith(f"evaluation {jobs[kind]}")
    assert check.screenshot is not None and check.screenshot.stat().st_size > 0


def test_binary_report_on_a_phone(open_page: OpenPage, reports: tuple[str, dict[str, str]]) -> None:
    """A 390-pixel-wide screen: the same page, every figure still drawn (scaled to the column)."""
    url, jobs = reports
    check = open_page(f"{url}/v1/jobs/{jobs['binary']}/report", "report-binary-phone.png", width=390)
    assert check.console_errors == [] and check.other_requests == []
    assert check.figures >= 10 and check.blank_figures == []
