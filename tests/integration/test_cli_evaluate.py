"""``yardstick evaluate`` as a CI step runs it: a subprocess against the real server, judged by
its exit status (0 pass, 1 verdict fail, 2 error), its JUnit file and its piped output."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.integration.conftest import Server, free_port, yardstick_command

pytestmark = pytest.mark.integration

CONFIG = """
task: binary
positive_class: 1
metrics: [roc_auc, accuracy]
bootstrap: {{samples: 100, seed: 2}}
gates:
  - {{metric: roc_auc, min: {roc_min}, use: lower_bound}}
  - {{metric: accuracy, min: 0.5}}
  - {{metric: accuracy, vs: zero_rule}}
baselines: {{zero_rule: true}}
"""


@pytest.fixture
def server(servers: Callable[..., Server]) -> Iterator[Server]:
    yield servers(workers=1).start()


def batch_table(n: int = 1500) -> pa.Table:
    rng = np.random.default_rng(11)
    label = rng.integers(0, 2, n)
    return pa.table(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "label": label,
            "score": np.clip(0.4 * label + 0.6 * rng.random(n), 0, 1),
        }
    )


def evaluate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*yardstick_command(), "evaluate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=180,
    )


def write_config(tmp_path: Path, roc_min: float) -> Path:
    path = tmp_path / f"evaluation-{roc_min}.yaml"
    path.write_text(CONFIG.format(roc_min=roc_min))
    return path


def test_a_passing_evaluation_exits_0_with_junit(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "batch.parquet"
    pq.write_table(batch_table(), data)
    junit = tmp_path / "gates.xml"
    done = evaluate(data, "--model", "fraud", "--version", "7", "--config", write_config(tmp_path, 0.6),
                    "--url", server.url, "--junit", junit)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("VERDICT: PASS") or done.stdout.startswith("VERDICT: WARN")
    assert "gates: PASSED" in done.stdout
    assert "\r" not in done.stdout + done.stderr  # piped: plain progress lines
    assert "succeeded" in done.stderr  # the progress went to stderr
    suite = ET.parse(junit).getroot()
    assert len(list(suite.iter("testcase"))) == 3 and not list(suite.iter("failure"))


@pytest.mark.parametrize("suffix", [".csv", ".arrow"])
def test_a_failed_gate_exits_1_and_says_which(server: Server, tmp_path: Path, suffix: str) -> None:
    data = tmp_path / f"batch{suffix}"
    table = batch_table()
    if suffix == ".csv":
        pacsv.write_csv(table, data)
    else:
        with pa.ipc.new_file(data, table.schema) as writer:
            writer.write_table(table)
    junit = tmp_path / "gates.xml"
    done = evaluate(data, "--model", "fraud", "--version", "8", "--config", write_config(tmp_path, 0.99),
                    "--url", server.url, "--junit", junit)  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("VERDICT: FAIL")
    gate_lines = lines[lines.index("gates: FAILED") + 1 :][:3]
    assert [line.split()[0] for line in gate_lines] == ["FAIL", "ok", "ok"]
    assert "roc_auc" in gate_lines[0]
    suite = ET.parse(junit).getroot()
    assert len(list(suite.iter("testcase"))) == 3 and len(list(suite.iter("failure"))) == 1


def test_errors_exit_2_with_one_line(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "batch.parquet"
    pq.write_table(batch_table(100), data)
    config = write_config(tmp_path, 0.5)
    typo = tmp_path / "typo.yaml"
    typo.write_text("task: binary\nmetrics: [accuracy]\ngatez: []\n")
    not_parquet = tmp_path / "config.parquet"
    not_parquet.write_text(config.read_text())
    unused = free_port()
    cases = {
        "missing file": (tmp_path / "nope.parquet", "--config", config, "--url", server.url),
        "unreachable": (data, "--config", config, "--url", f"http://127.0.0.1:{unused}", "--retries", "1"),
        "invalid config": (data, "--config", typo, "--url", server.url),
        "not a parquet file": (not_parquet, "--task", "binary", "--url", server.url),
    }
    expected = {"missing file": "no such file", "unreachable": "no answer", "invalid config": "gatez",
                "not a parquet file": "cannot read it as parquet"}  # fmt: skip
    for name, args in cases.items():
        done = evaluate(args[0], "--model", "m", "--version", "1", *args[1:])
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        message = done.stderr.strip().splitlines()
        assert len(message) == 1 and message[0].startswith("yardstick evaluate: "), (name, done.stderr)
        assert expected[name] in message[0], (name, message)
        assert done.stdout == ""


def test_an_http_error_exits_2_naming_the_field(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "batch.parquet"
    pq.write_table(batch_table(50).set_column(2, "score", pa.array([2.0] * 50)), data)
    done = evaluate(data, "--model", "m", "--version", "1", "--task", "binary", "--url", server.url)
    assert done.returncode == 2
    assert "422" in done.stderr and "score" in done.stderr


def test_yardstick_report_saves_the_jobs_page(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "batch.parquet"
    pq.write_table(batch_table(300), data)
    done = evaluate(data, "--model", "fraud", "--version", "7", "--config", write_config(tmp_path, 0.6),
                    "--url", server.url)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    job_id = httpx.get(f"{server.url}/v1/jobs").json()["data"][0]["id"]
    saved = tmp_path / "report.html"
    report = subprocess.run(
        [*yardstick_command(), "report", job_id, "-o", str(saved), "--url", server.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert saved.read_text() == httpx.get(f"{server.url}/v1/jobs/{job_id}/report").text
    missing = subprocess.run(
        [*yardstick_command(), "report", "j_nope", "-o", str(tmp_path / "x.html"), "--url", server.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "j_nope" in missing.stderr and not (tmp_path / "x.html").exists()
