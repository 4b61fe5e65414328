"""The real ``yardstick serve`` in a subprocess: crash recovery, worker processes, scale-out."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from tests.integration.conftest import Server, alive, children_of, wait_until

pytestmark = pytest.mark.integration


def make_batch(n: int, seed: int = 0) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    score = np.clip(0.35 * label + 0.65 * rng.random(n), 0, 1)
    table = pa.table(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "label": label,
            "score": score,
            "segment": rng.choice(["a", "b", "c"], n),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue(), label, score


def post_batch(client: httpx.Client, body: bytes) -> str:
    response = client.post(
        "/v1/batches",
        content=body,
        params={"model": "crashy", "version": "1", "task": "binary", "positive_class": "1"},
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    assert response.status_code == 201, response.text
    batch_id: str = response.json()["id"]
    return batch_id


def job_status(client: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return body


def test_a_job_survives_kill_9_and_completes_once_after_restart(servers: Callable[..., Server]) -> None:
    body, label, score = make_batch(200_000)
    first = servers(workers=1).start()
    with httpx.Client(base_url=first.url, timeout=30) as client:
        batch_id = post_batch(client, body)
        # Long enough (bootstrap of score metrics) that the kill lands mid-computation.
        request = {
            "batch_id": batch_id,
            "metrics": ["accuracy", "roc_auc", "log_loss"],
            "bootstrap": {"samples": 4000, "seed": 7},
        }
        job = client.post("/v1/evaluations", json=request).json()
        wait_until(
            lambda: job_status(client, job["id"])["progress"] >= 0.25,
            timeout=60,
            what="the job to be well under way",
        )
        # While a worker process computes, the API still answers.
        assert client.get("/healthz", timeout=2).json() == {"status": "ok"}
        assert job_status(client, job["id"])["status"] == "running"
    assert first.proc is not None
    workers = children_of(first.proc.pid)
    assert workers, "serve should run its jobs in worker processes"
    first.kill()
    wait_until(lambda: not any(alive(p) for p in workers), timeout=10, what="workers to die with the server")

    second = servers(workers=1)
    second.port, second.url = first.port, first.url
    second.start()
    with httpx.Client(base_url=second.url, timeout=30) as client:
        wait_until(
            lambda: job_status(client, job["id"])["status"] in ("succeeded", "failed"),
            timeout=120,
            what="the job to finish after the restart",
            interval=0.2,
        )
        status = job_status(client, job["id"])
        assert status["status"] == "succeeded", status
        assert status["attempts"] == 2
        result = client.get(f"/v1/jobs/{job['id']}/result").json()
    pred = (score >= 0.5).astype(int)
    assert result["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(label, pred), abs=1e-12)
    assert result["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(label, score), abs=1e-9)
    assert result["metrics"]["log_loss"] == pytest.approx(skm.log_loss(label, score), abs=1e-9)
    assert set(result["intervals"]) == {"accuracy", "roc_auc", "log_loss"}


def test_scale_out_api_without_workers_and_a_separate_worker(servers: Callable[..., Server]) -> None:
    body, label, score = make_batch(5_000, seed=1)
    api = servers(workers=0).start()
    with httpx.Client(base_url=api.url, timeout=30) as client:
        batch_id = post_batch(client, body)
        job = client.post("/v1/evaluations", json={"batch_id": batch_id, "metrics": ["f1"]}).json()
        assert job_status(client, job["id"])["status"] == "queued"
        worker = servers(workers=0).start("worker", "--processes", "1")
        wait_until(
            lambda: job_status(client, job["id"])["status"] == "succeeded", timeout=60, what="the worker"
        )
        result = client.get(f"/v1/jobs/{job['id']}/result").json()
        assert result["metrics"]["f1"] == pytest.approx(
            skm.f1_score(label, (score >= 0.5).astype(int)), abs=1e-12
        )
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(20) == 0


def test_demo_shows_the_whole_flow(servers: Callable[..., Server]) -> None:
    import subprocess

    from tests.integration.conftest import yardstick_command

    server = servers(workers=1).start()
    done = subprocess.run(
        [*yardstick_command(), "demo", "--url", server.url, "--rows", "3000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "3000 rows posted" in out and "succeeded" in out
    # the verdict comes first, and the generated model passes its own gates
    verdict = out.index("VERDICT:")
    assert verdict < out.index("95% interval") < out.index("gates: PASSED")
    assert "VERDICT: FAIL" not in out
    assert "roc_auc" in out
    assert "\r" not in out + done.stderr  # piped: plain lines, no redrawn progress bar
    # a gate the model cannot pass: the demo says so and exits 1 (2 is an error), as a CI step needs
    strict = subprocess.run(
        [*yardstick_command(), "demo", "--url", server.url, "--rows", "3000", "--min-roc-auc", "0.99"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert strict.returncode == 1, strict.stderr
    assert "VERDICT: FAIL" in strict.stdout and "gates: FAILED" in strict.stdout
    assert "gate failed: roc_auc lower bound" in strict.stdout


def test_demo_explains_when_no_service_answers() -> None:
    import subprocess

    from tests.integration.conftest import free_port, yardstick_command

    done = subprocess.run(
        [*yardstick_command(), "demo", "--url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "yardstick serve" in done.stderr


def test_worker_processes_run_blas_single_threaded() -> None:
    """Worker processes (as `serve` and `worker` start them) limit OpenBLAS to one thread, so
    its idle threads never spin on cores other workers need."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from service.tuning import single_threaded_blas\n"
        "def blas(): return [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "before = blas()\n"
        "single_threaded_blas()\n"
        "print(json.dumps([before, blas()]))\n"
    )
    env = {"OPENBLAS_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    before, after = json.loads(out.stdout)
    if (os.cpu_count() or 1) >= 2:  # OpenBLAS never starts more threads than there are cores
        assert before and all(n == 2 for n in before), before
    assert after and all(n == 1 for n in after), after


def test_worker_processes_reuse_freed_memory_without_page_faults() -> None:
    """After keep_freed_memory, a second 16 MiB array reuses the first one's pages."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, resource, numpy\n"
        "from service.tuning import keep_freed_memory\n"
        "tuned = keep_freed_memory()\n"
        "def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "a = numpy.ones(2_000_000); del a\n"
        "before = faults(); a = numpy.ones(2_000_000); after = faults()\n"
        "print(json.dumps([tuned, after - before]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    tuned, faults = json.loads(out.stdout)
    assert tuned is True
    assert faults < 100, faults  # 16 MiB of fresh 4 KiB pages would be 4096 faults
