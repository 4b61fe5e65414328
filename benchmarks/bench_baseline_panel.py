"""The baseline panel's cost on 1M rows, through the real server.

Times the plain metrics job and the same job with the full panel (random uniform, random prior,
zero rule, a heuristic rule, a human batch and a champion batch paired on the same sample ids)
in the same run. Target: the panel adds at most 1x the plain job's time.

    .venv/bin/python benchmarks/bench_baseline_panel.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import PANEL_METRICS, BenchServer, panel_baselines, panel_batches, parquet, ratio_table

# Polling the job faster than this steals the 2-core machine's CPU from the worker it waits for.
POLL_SECONDS = 0.02


def post(client: httpx.Client, table: pa.Table, name: str) -> str:
    params = {"model": name, "version": "1", "task": "binary", "positive_class": "1"}
    r = client.post(
        "/v1/batches",
        content=parquet(table),
        params=params,
        headers={"content-type": "application/vnd.apache.parquet"},
    )
    r.raise_for_status()
    return str(r.json()["id"])


def run(client: httpx.Client, request: dict[str, object]) -> dict[str, object]:
    job = client.post("/v1/evaluations", json=request)
    job.raise_for_status()
    job_id = job.json()["id"]
    while True:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if status["status"] == "succeeded":
            result: dict[str, object] = client.get(f"/v1/jobs/{job_id}/result").json()
            return result
        if status["status"] in ("failed", "cancelled"):
            raise RuntimeError(status)
        time.sleep(POLL_SECONDS)


def interleaved(plain: Callable[[], object], panel: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median times of two jobs run alternately, so drift and noise hit both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((plain, times[0]), (panel, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def in_process(tables: dict[str, pa.Table], panel: dict[str, object], repeat: int) -> tuple[float, float]:
    """The same two jobs computed in this process (read, compute, result; no HTTP, no queue),
    set up as a worker process is (service/tuning.py)."""
    from service.tuning import tune_worker_process

    tune_worker_process()
    from schemas.evaluations import EvaluationCreate
    from service.ingest import ingest_body
    from service.jobs.evaluate import run_evaluation
    from service.jobs.submit import submit_evaluation
    from service.settings import Settings
    from service.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), workers=0)
        store = Store.open(settings)
        spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
        ids = {
            name: store.save_batch(ingest_body(parquet(t), "application/vnd.apache.parquet", spec)).id
            for name, t in tables.items()
        }
        baselines = json.loads(json.dumps(panel["baselines"]))
        baselines["human"]["batch_id"] = ids["human"]
        baselines["existing"][0]["batch_id"] = ids["champion"]
        plain_request = {"batch_id": ids["model"], "metrics": PANEL_METRICS}
        jobs = [
            submit_evaluation(store, settings, EvaluationCreate.model_validate(request))
            for request in (plain_request, plain_request | {"baselines": baselines})
        ]

        def runner(job: object) -> Callable[[], object]:
            return lambda: run_evaluation(store, job, progress=lambda _f: None, settings=settings)  # type: ignore[arg-type]

        for job in jobs:
            runner(job)()  # warm-up
        times = interleaved(runner(jobs[0]), runner(jobs[1]), repeat)
        store.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()

    tables = panel_batches(args.rows)

    # One worker process: with two, a timed job may land on the worker that has not yet run
    # this kind of job, and its first run pays cold-memory costs the other already paid.
    server = BenchServer(workers=1)
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            batch_id = post(client, tables["model"], "bench")
            champion_id = post(client, tables["champion"], "champion")
            human_id = post(client, tables["human"], "humans")
            plain = {"batch_id": batch_id, "metrics": PANEL_METRICS}
            panel = plain | {"baselines": panel_baselines(human_id, champion_id)}
            run(client, plain)  # warm-up, both kinds of job
            run(client, panel)
            t_plain, t_panel = interleaved(
                lambda: run(client, plain), lambda: run(client, panel), args.repeat
            )
            result = run(client, panel)
    finally:
        server.stop()
    c_plain, c_panel = in_process(tables, panel, args.repeat)

    print(f"\n{args.rows:,} binary rows, 9 metrics, 6 baselines (two of them paired batches)")
    print(f"medians of {args.repeat} runs of each job, alternated\n")
    print(
        ratio_table(
            [
                ("job through the service: metrics + full panel", t_panel, "plain metrics job", t_plain),
                ("job through the service: the panel alone (difference)", t_panel - t_plain,
                 "plain metrics job", t_plain),
                ("computation in process: metrics + full panel", c_panel,
                 "plain metrics computation", c_plain),
                ("computation in process: the panel alone (difference)", c_panel - c_plain,
                 "plain metrics computation", c_plain),
            ]
        )
    )  # fmt: skip
    print()
    for entry in result["baselines"]:  # type: ignore[union-attr]
        sig = entry["significance"][entry["primary_metric"]]
        print(
            f"- {entry['name']:<15} {entry['pairing']['mode']:<9} accuracy {sig['baseline']:.4f} "
            f"lift {sig['lift']:+.4f} {sig['test']} p={sig['p_value']} beats={entry['beats']}"
        )


if __name__ == "__main__":
    main()
