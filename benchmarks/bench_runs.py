"""Tracking runs through the real HTTP server, next to MLflow's tracking server in the same run.

- ingest 1M metric points (10 runs x 10 metrics x 10k steps), 10k points per call;
  MLflow: the same points with ``runs/log-batch`` (its limit: 1000 per call) over its REST API;
- read a 100k-point series downsampled to 1,000 points (LTTB); MLflow has no downsampling: the
  reference is reading the whole history (``metrics/get-history``);
- compare 20 runs of 10k steps (``POST /v1/runs/compare``).

Targets: ingest < 5 s, downsampled read < 50 ms, compare < 200 ms. MLflow runs from
``.venv-mlflow`` (``.ci/run`` makes it); without it the MLflow column is left out.

    .venv/bin/python -m benchmarks.bench_runs
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks.common import BenchServer
from tests.integration.mlflow_server import MlflowServer, mlflow_env

RUNS, METRICS, STEPS, PER_CALL = 10, 10, 10_000, 10_000
T0 = 1_700_000_000.0


def _series(run: int, metric: int, steps: int = STEPS) -> np.ndarray:
    rng = np.random.default_rng(run * 100 + metric)
    return np.exp(-np.arange(steps) / 3000) + rng.normal(0, 0.02, steps)


def _calls() -> list[tuple[int, list[dict[str, object]]]]:
    """(run index, points) per call: each call 10k points of one run, 1k steps of 10 metrics."""
    calls = []
    for run in range(RUNS):
        values = [_series(run, m) for m in range(METRICS)]
        for start in range(0, STEPS, PER_CALL // METRICS):
            points = [
                {"name": f"metric_{m}", "step": s, "value": float(values[m][s]), "timestamp": T0 + s}
                for s in range(start, start + PER_CALL // METRICS)
                for m in range(METRICS)
            ]
            calls.append((run, sorted(points, key=lambda p: (p["name"], p["step"]))))
    return calls


def ours(server: BenchServer, calls: list[tuple[int, list[dict[str, object]]]]) -> dict[str, float]:
    figures = {}
    with httpx.Client(base_url=server.url, timeout=120) as client:
        ids = [
            client.post(
                "/v1/runs", json={"model": {"name": "m", "version": "1"}, "tags": {"sync": str(r % 2)}}
            ).json()["id"]
            for r in range(RUNS)
        ]
        bodies = [(ids[run], httpx.Request("POST", "/", json={"points": pts}).content) for run, pts in calls]
        start = time.perf_counter()
        for run_id, body in bodies:
            answer = client.post(
                f"/v1/runs/{run_id}/metrics", content=body, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 200, answer.text
        figures["ingest"] = time.perf_counter() - start

        long_run = client.post("/v1/runs", json={"model": {"name": "m", "version": "1"}}).json()["id"]
        values = _series(99, 0, 100_000)
        for start_step in range(0, 100_000, 50_000):
            chunk = [
                {"name": "loss", "step": s, "value": float(values[s])}
                for s in range(start_step, start_step + 50_000)
            ]
            client.post(f"/v1/runs/{long_run}/metrics", json={"points": chunk})

        def timed(fn) -> float:  # type: ignore[no-untyped-def]
            times = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        figures["read"] = timed(
            lambda: client.get(f"/v1/runs/{long_run}/metrics", params={"name": "loss", "max_points": 1000})
        )
        figures["read_all"] = timed(
            lambda: client.get(f"/v1/runs/{long_run}/metrics", params={"name": "loss"})
        )
        twenty = []
        for r in range(20):
            run_id = client.post(
                "/v1/runs", json={"model": {"name": "c", "version": "1"}, "tags": {"sync": str(r % 2)}}
            ).json()["id"]
            curve = _series(r, 0)
            client.post(
                f"/v1/runs/{run_id}/metrics",
                json={
                    "points": [{"name": "loss", "step": s, "value": float(curve[s])} for s in range(STEPS)]
                },
            )
            twenty.append(run_id)
        body = {"run_ids": twenty, "metric": "loss", "target": 0.3, "group_by": "sync"}
        figures["compare"] = timed(lambda: client.post("/v1/runs/compare", json=body).raise_for_status())
    return figures


def mlflow(server: MlflowServer, calls: list[tuple[int, list[dict[str, object]]]]) -> dict[str, float]:
    api = f"{server.url}/api/2.0/mlflow"
    figures = {}
    with httpx.Client(timeout=120) as client:
        experiment = client.post(f"{api}/experiments/create", json={"name": "bench"}).json()["experiment_id"]
        ids = [
            client.post(f"{api}/runs/create", json={"experiment_id": experiment, "start_time": 0}).json()[
                "run"
            ]["info"]["run_id"]
            for _ in range(RUNS)
        ]
        bodies = []
        for run, points in calls:
            metrics = [
                {
                    "key": p["name"],
                    "value": p["value"],
                    "step": p["step"],
                    "timestamp": int(float(p["timestamp"]) * 1000),
                }  # type: ignore[arg-type]
                for p in points
            ]
            bodies += [
                {"run_id": ids[run], "metrics": metrics[i : i + 1000]} for i in range(0, len(metrics), 1000)
            ]
        start = time.perf_counter()
        for body in bodies:
            client.post(f"{api}/runs/log-batch", json=body).raise_for_status()
        figures["ingest"] = time.perf_counter() - start

        long_run = client.post(f"{api}/runs/create", json={"experiment_id": experiment}).json()["run"][
            "info"
        ]["run_id"]
        values = _series(99, 0, 100_000)
        for i in range(0, 100_000, 1000):
            metrics = [
                {"key": "loss", "value": float(values[s]), "step": s, "timestamp": 0}
                for s in range(i, i + 1000)
            ]
            client.post(
                f"{api}/runs/log-batch", json={"run_id": long_run, "metrics": metrics}
            ).raise_for_status()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            token, n = None, 0
            while True:
                params = {"run_id": long_run, "metric_key": "loss", "max_results": 25_000}
                if token:
                    params["page_token"] = token
                page = client.get(f"{api}/metrics/get-history", params=params).json()
                n += len(page.get("metrics", []))
                token = page.get("next_page_token")
                if not token:
                    break
            times.append(time.perf_counter() - t)
        assert n == 100_000, n
        figures["read_all"] = statistics.median(times)
    return figures


def main() -> None:
    calls = _calls()
    server = BenchServer(workers=0)
    try:
        ours_figures = ours(server, calls)
    finally:
        server.stop()
    venv = mlflow_env()
    theirs: dict[str, float] = {}
    if venv is not None:
        with tempfile.TemporaryDirectory() as tmp, MlflowServer(venv, Path(tmp)) as mlflow_server:
            theirs = mlflow(mlflow_server, calls)
    points = RUNS * METRICS * STEPS

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"

    rows = [
        (
            f"ingest {points:,} points",
            ours_figures["ingest"],
            5.0,
            theirs.get("ingest"),
            "log-batch, 1000/call",
        ),
        ("read 100k points as 1,000 (LTTB)", ours_figures["read"], 0.05, None, "no downsampling"),
        ("read 100k points whole", ours_figures["read_all"], None, theirs.get("read_all"), "get-history"),
        ("compare 20 runs x 10k steps", ours_figures["compare"], 0.2, None, "no comparison"),
    ]
    print("| step | Yardstick | target | MLflow | MLflow / Yardstick | MLflow call |")
    print("|---|---:|---:|---:|---:|---|")
    for step, ours_s, target, ref, how in rows:
        ratio = f"{ref / ours_s:.1f}x" if ref else "-"
        print(f"| {step} | {cell(ours_s)} | {cell(target)} | {cell(ref)} | {ratio} | {how} |")


if __name__ == "__main__":
    main()
