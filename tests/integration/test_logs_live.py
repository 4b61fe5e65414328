"""What an operator reads with ``YARDSTICK_LOG_FORMAT=json``: the real ``yardstick serve`` (API only)
and a real ``yardstick worker`` write one JSON object per line, a start and an end line per job
with its figures, the error of a failed job, and an access line per request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import batch_body, binary_columns
from tests.integration.conftest import Server, wait_until

pytestmark = pytest.mark.integration

JSON_LOGS = {"YARDSTICK_LOG_FORMAT": "json"}


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every log line of ``log`` as an object; the CLI's own ``print``s are the only other lines."""
    entries = []
    for line in log.read_text().splitlines():
        if line.startswith(("yardstick worker:", "yardstick serve:")):
            continue
        entry = json.loads(line)  # fails the test on any line that is not JSON
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        entries.append(entry)
    return entries


def test_jobs_requests_and_failures_are_logged_as_json_lines(servers: Callable[..., Server]) -> None:
    api = servers(workers=0, extra_env=JSON_LOGS)
    api.start("serve", "--port", str(api.port), "--log-level", "info")
    wait_until(api._ready, timeout=60, what=f"the API on {api.url} (log: {api.log})")
    with httpx.Client(base_url=api.url, timeout=30) as client:
        good = client.post("/v1/batches", json=batch_body(binary_columns(500))).json()
        doomed = client.post("/v1/batches", json=batch_body(binary_columns(40, seed=1))).json()
        jobs = {
            name: client.post(
                "/v1/evaluations", json={"batch_id": batch["id"], "metrics": ["accuracy"]}
            ).json()
            for name, batch in (("good", good), ("doomed", doomed))
        }
        # no worker runs yet: the doomed job's batch is gone before the job starts
        assert client.delete(f"/v1/batches/{doomed['id']}").status_code == 204
        worker = servers(extra_env=JSON_LOGS).start("worker", "--processes", "1")

        def finished() -> bool:
            states = [client.get(f"/v1/jobs/{job['id']}").json()["status"] for job in jobs.values()]
            return all(state in ("succeeded", "failed") for state in states)

        wait_until(finished, timeout=120, what=f"both jobs to end (log: {worker.log})", interval=0.2)
        statuses = {name: client.get(f"/v1/jobs/{job['id']}").json() for name, job in jobs.items()}
    assert statuses["good"]["status"] == "succeeded" and statuses["doomed"]["status"] == "failed"

    worker_lines = json_lines(worker.log)

    def line(message: str, job: str) -> dict[str, Any]:
        [found] = [e for e in worker_lines if e["message"] == message and e.get("job_id") == jobs[job]["id"]]
        return found

    start, end = line("job started", "good"), line("job finished", "good")
    assert (start["kind"], start["batch_id"], start["rows"]) == ("evaluation", good["id"], 500)
    assert (end["kind"], end["status"], end["rows"]) == ("evaluation", "succeeded", 500)
    assert end["duration_seconds"] > 0
    # a Python process with numpy and pyarrow loaded holds tens of MiB at the least
    assert 30 < end["peak_memory_mib"] < 4096

    start, error, end = (
        line("job started", "doomed"),
        line("job failed", "doomed"),
        line("job finished", "doomed"),
    )
    assert (start["batch_id"], start["rows"]) == (doomed["id"], None)  # the batch was gone already
    assert (
        error["level"] == "WARNING" and doomed["id"] in error["error"] and "does not exist" in error["error"]
    )
    assert error["error"] == statuses["doomed"]["error"]
    assert (end["status"], end["rows"]) == ("failed", None) and end["duration_seconds"] > 0

    access = [e for e in json_lines(api.log) if e["logger"] == "uvicorn.access"]
    evaluations = [e for e in access if e.get("method") == "POST" and e.get("path") == "/v1/evaluations"]
    assert [e["status"] for e in evaluations] == [202, 202]
    assert any(e.get("method") == "DELETE" and e["status"] == 204 for e in access)
