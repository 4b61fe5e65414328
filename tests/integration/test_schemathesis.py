"""The API contract against the real server: Schemathesis, every check, on every operation.

``yardstick serve`` runs in a subprocess (temporary data directory, one worker process) and the
Schemathesis CLI tests it from its own OpenAPI document, once without keys and once with
``YARDSTICK_API_KEYS`` set and the key sent. Before the run, the server gets real data (batches,
jobs, page tokens) that the generated requests are pointed at, so the operations on one batch or
job reach their code instead of answering 404.

Where a request is valid by the schema yet refused by design, the configuration below says why.
Everything else the schema accepts must be accepted: a 4xx there is a failure.

Environment: ``YARDSTICK_CONTRACT_EXAMPLES`` (cases per operation and phase, default 25) and
``YARDSTICK_CONTRACT_SEED`` (default fixed, so that a failure reproduces; ``random`` for a new one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import batch_body, binary_columns
from tests.integration.conftest import Server, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("YARDSTICK_CONTRACT_EXAMPLES", "25"))
SEED = os.environ.get("YARDSTICK_CONTRACT_SEED", "20240601")
KEY = "contract-key"

#: What Schemathesis accepts for a schema-valid request by default.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

#: Schema-valid requests that are still refused, by design, and why:
#: - the bodies of uploads are data whose rules no schema states (labels of the task and its
#:   classes, equal column lengths, one type per column, CSV/Parquet/Arrow content, query parameters
#:   that only non-JSON bodies need): 422, and 400 for bytes that do not decode in their format;
#: - an evaluation is checked against the batch it names (existence, task, columns, metrics) and a
#:   gate's bounds against each other (`min` <= `max`): 422. Unparseable JSON cannot be generated
#:   from a schema, so a 400 there stays a failure. tests/api/test_contract.py checks that every
#:   body the schema accepts passes the request model's own rules;
#: - a sample-log page token is signed for the batch that issued it: the stateful phase pairs the
#:   seeded batch's token with batches it created, which is a 400; the model and run lists'
#:   generated page tokens are not ones the server issued (400), a run filter is `key:value` (422);
#: - an `application/octet-stream` batch is bytes in no accepted format unless it is one (415);
#: - a run import reads an MLflow server the outbound policy allows and that answers (422);
#:   metric points go forward per series (422), and a comparison needs points of its metric (422).
REFUSED_BY_DESIGN = {
    "GET /v1/batches/{batch_id}/rows": ["400"],
    "GET /v1/models": ["400"],
    "GET /v1/runs": ["400", "422"],
    "POST /v1/runs/import": ["422"],
    "POST /v1/runs/{run_id}/metrics": ["422"],
    "POST /v1/runs/compare": ["422"],
    "POST /v1/batches": ["400", "415", "422"],
    "PUT /v1/batches/{batch_id}/labels": ["400", "422"],
    "POST /v1/evaluations": ["422"],
}


@dataclass(frozen=True)
class Seeded:
    """Ids and page tokens of real data on the server, for the generated requests to use."""

    batch: str
    doomed_batch: str
    job: str
    batch_page: str
    job_page: str
    row_page: str


def seed_data(url: str, headers: dict[str, str]) -> Seeded:
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:

        def created(body: dict[str, Any]) -> str:
            response = client.post("/v1/batches", json=body)
            assert response.status_code == 201, response.text
            batch_id: str = response.json()["id"]
            return batch_id

        batch = created(batch_body(binary_columns(120)))
        other = created(batch_body(binary_columns(60, seed=1)))
        doomed = created(batch_body(binary_columns(30, seed=2)))
        jobs = []
        for batch_id in (batch, other):
            response = client.post(
                "/v1/evaluations",
                json={
                    "batch_id": batch_id,
                    "bootstrap": {"samples": 50, "seed": 0},
                    "gates": [{"metric": "accuracy", "min": 0.5}],
                },
            )
            assert response.status_code == 202, response.text
            jobs.append(response.json()["id"])

        def finished() -> bool:
            states = [client.get(f"/v1/jobs/{job}").json()["status"] for job in jobs]
            assert "failed" not in states, states
            return all(state == "succeeded" for state in states)

        wait_until(finished, timeout=60, what="the seeded jobs", interval=0.2)

        def next_token(path: str) -> str:
            response = client.get(path, params={"page_size": 1})
            assert response.status_code == 200, response.text
            token: str = response.json()["next_page_token"]
            assert token, f"{path} has a single page"
            return token

        return Seeded(
            batch=batch,
            doomed_batch=doomed,
            job=jobs[0],
            batch_page=next_token("/v1/batches"),
            job_page=next_token("/v1/jobs"),
            row_page=next_token(f"/v1/batches/{batch}/rows"),
        )


def _toml(value: object) -> str:
    return json.dumps(value)  # JSON strings, numbers and arrays are TOML too


def config_text(seeded: Seeded) -> str:
    dictionaries = {
        "batch": [seeded.batch],
        "doomed": [seeded.doomed_batch],
        "job": [seeded.job],
        "batch_page": [seeded.batch_page],
        "job_page": [seeded.job_page],
        "row_page": [seeded.row_page],
    }
    lines = ["# Written by tests/integration/test_schemathesis.py for one run."]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {_toml(values)}", ""]

    def operation(
        name: str, bindings: dict[str, tuple[str, float]], accepted: list[str] | None = None
    ) -> None:
        lines.extend(["[[operations]]", f"include-name = {_toml(name)}"])
        if bindings:
            entries = ", ".join(
                f'"{key}" = {{ dictionary = "{dictionary}", probability = {probability} }}'
                for key, (dictionary, probability) in bindings.items()
            )
            lines.append(f"parameters = {{ {entries} }}")
        if accepted:
            lines.extend(
                ["[operations.checks.positive_data_acceptance]", f"expected-statuses = {_toml(accepted)}"]
            )
        lines.append("")

    # A page token is the server's signed position: only one it issued is valid (any other is a
    # 400), so the lists get real ones. Ids point at the seeded batch and job most of the time and
    # are generated (404) otherwise.
    operation("GET /v1/batches", {"query.page_token": ("batch_page", 1.0)})
    operation("GET /v1/jobs", {"query.page_token": ("job_page", 1.0)})
    operation(
        "GET /v1/batches/{batch_id}/rows",
        {"path.batch_id": ("batch", 1.0), "query.page_token": ("row_page", 1.0)},
        ACCEPTED + REFUSED_BY_DESIGN["GET /v1/batches/{batch_id}/rows"],
    )
    operation("GET /v1/batches/{batch_id}", {"path.batch_id": ("batch", 0.8)})
    operation("DELETE /v1/batches/{batch_id}", {"path.batch_id": ("doomed", 1.0)})
    operation(
        "PUT /v1/batches/{batch_id}/labels",
        {"path.batch_id": ("batch", 0.8)},
        ACCEPTED + REFUSED_BY_DESIGN["PUT /v1/batches/{batch_id}/labels"],
    )
    operation("POST /v1/batches", {}, ACCEPTED + REFUSED_BY_DESIGN["POST /v1/batches"])
    for name in ("GET /v1/models", "GET /v1/runs", "POST /v1/runs/import", "POST /v1/runs/{run_id}/metrics",
                 "POST /v1/runs/compare"):  # fmt: skip
        operation(name, {}, ACCEPTED + REFUSED_BY_DESIGN[name])
    operation(
        "POST /v1/evaluations",
        {"body.batch_id": ("batch", 0.8)},
        ACCEPTED + REFUSED_BY_DESIGN["POST /v1/evaluations"],
    )
    for name in ("GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/result", "POST /v1/jobs/{job_id}/cancel"):
        operation(name, {"path.job_id": ("job", 0.8)})
    return "\n".join(lines)


def without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document as a server without keys honours it: no operation asks for a key."""
    document = json.loads(json.dumps(document))
    document.get("components", {}).pop("securitySchemes", None)
    for methods in document["paths"].values():
        for operation in methods.values():
            operation.pop("security", None)
    return document


@dataclass(frozen=True)
class RunSummary:
    operations: int
    cases: int
    failures: int
    seconds: float
    output: str


def run_schemathesis(server: Server, workdir: Path, *, key: str | None) -> RunSummary:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "the Schemathesis CLI is missing: .venv/bin/pip install -e '.[test]'"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    seeded = seed_data(server.url, headers)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(config_text(seeded))
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    location = workdir / "openapi.json"
    location.write_text(json.dumps(document if key else without_security(document)))
    command = [
        st,
        "--config-file",
        str(config),
        "run",
        str(location),
        "--url",
        server.url,
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        *([] if SEED == "random" else ["--seed", SEED]),
        *(["--header", f"Authorization: Bearer {key}"] if key else []),
    ]
    started = time.monotonic()
    # cwd: Schemathesis keeps its cache (.schemathesis/) in the working directory.
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    tested = re.search(r"Tested:\s*(\d+)", output)
    cases = re.search(r"(\d+) generated", output)
    found = re.search(r"(\d+) found", output)
    summary = RunSummary(
        operations=int(tested.group(1)) if tested else 0,
        cases=int(cases.group(1)) if cases else 0,
        failures=int(found.group(1)) if found else 0,
        seconds=seconds,
        output=output,
    )
    assert done.returncode == 0, f"Schemathesis failed (exit {done.returncode}):\n{output[-20000:]}"
    return summary


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(name: str, **env: str) -> Server:
        (tmp_path / name).mkdir()
        server = Server(tmp_path / name / "data", workers=1, extra_env=env)
        if "YARDSTICK_API_KEYS" in env:
            server.env["YARDSTICK_API_KEYS"] = env["YARDSTICK_API_KEYS"]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("keyed", [False, True], ids=["without-keys", "with-a-key"])
def test_the_server_keeps_its_openapi_contract(
    server_factory: Any, tmp_path: Path, keyed: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "keyed" if keyed else "open"
    server = server_factory(name, **({"YARDSTICK_API_KEYS": KEY} if keyed else {}))
    summary = run_schemathesis(server, tmp_path / name / "schemathesis", key=KEY if keyed else None)
    assert summary.operations >= 14 and summary.cases > 0, summary.output[-5000:]
    assert summary.failures == 0, summary.output[-20000:]
    with capsys.disabled():
        print(
            f"\nschemathesis {name}: {summary.operations} operations, {summary.cases} cases, "
            f"{summary.failures} failures, {summary.seconds:.1f} s"
        )
