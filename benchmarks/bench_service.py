"""End-to-end speed of the service on 1M binary rows, through the real HTTP server.

Times Parquet ingest, JSON column-form ingest and the metrics job (POST to result), and
compares the job with computing the same metrics directly with scikit-learn in this run.
Also reports peak server memory against the batch's in-memory (Arrow) size and the
latency of /healthz while the job computes.

    .venv/bin/python benchmarks/bench_service.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time

import httpx
import orjson
import pyarrow.parquet as pq
from sklearn import metrics as skm

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import (
    BenchServer,
    binary_batch,
    children,
    median_time,
    peak_rss_bytes,
    ratio_table,
    rss_bytes,
)

METRICS = [
    "accuracy", "balanced_accuracy", "precision", "recall", "f1",
    "roc_auc", "average_precision", "log_loss", "brier_score",
]  # fmt: skip
PARAMS = {"model": "bench", "version": "1", "task": "binary", "positive_class": "1"}


def sklearn_metrics(label, score) -> dict[str, float]:  # type: ignore[no-untyped-def]
    pred = (score >= 0.5).astype(int)
    return {
        "accuracy": skm.accuracy_score(label, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(label, pred),
        "precision": skm.precision_score(label, pred),
        "recall": skm.recall_score(label, pred),
        "f1": skm.f1_score(label, pred),
        "roc_auc": skm.roc_auc_score(label, score),
        "average_precision": skm.average_precision_score(label, score),
        "log_loss": skm.log_loss(label, score),
        "brier_score": skm.brier_score_loss(label, score),
    }


def run_job(client: httpx.Client, batch_id: str) -> dict[str, object]:
    job = client.post("/v1/evaluations", json={"batch_id": batch_id, "metrics": METRICS}).json()
    while True:
        status = client.get(f"/v1/jobs/{job['id']}").json()
        if status["status"] == "succeeded":
            result: dict[str, object] = client.get(f"/v1/jobs/{job['id']}/result").json()
            return result
        if status["status"] in ("failed", "cancelled"):
            raise RuntimeError(status)
        time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    table = binary_batch(args.rows)
    label = table.column("label").to_numpy()
    score = table.column("score").to_numpy()
    sink = io.BytesIO()
    pq.write_table(table, sink)
    parquet_body = sink.getvalue()
    json_body = orjson.dumps(
        {
            "model": {"name": "bench", "version": "1"},
            "task": "binary",
            "positive_class": 1,
            "columns": {name: table.column(name).to_pylist() for name in table.column_names},
        }
    )

    parquet_headers = {"content-type": "application/vnd.apache.parquet"}
    json_headers = {"content-type": "application/json"}

    # Memory per ingest format: a fresh server each, peak RSS after one upload minus its idle RSS.
    memory: list[tuple[str, int, int]] = []
    for fmt, content, params, headers in [
        ("Parquet", parquet_body, PARAMS, parquet_headers),
        ("JSON columns", json_body, {}, json_headers),
    ]:
        fresh = BenchServer(workers=0)
        try:
            idle = rss_bytes(fresh.proc.pid)
            with httpx.Client(base_url=fresh.url, timeout=300) as client:
                client.post("/v1/batches", content=content, params=params, headers=headers).raise_for_status()
            memory.append((fmt, idle, peak_rss_bytes(fresh.proc.pid)))
        finally:
            fresh.stop()

    server = BenchServer(workers=2)
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client:

            def post_parquet() -> str:
                r = client.post("/v1/batches", content=parquet_body, params=PARAMS, headers=parquet_headers)
                r.raise_for_status()
                return str(r.json()["id"])

            def post_json() -> None:
                r = client.post("/v1/batches", content=json_body, headers=json_headers)
                r.raise_for_status()

            t_parquet = median_time(post_parquet, repeat=args.repeat)
            t_json = median_time(post_json, repeat=args.repeat)
            batch_id = post_parquet()
            workers = children(server.proc.pid)
            worker_idle = max(rss_bytes(p) for p in workers)
            run_job(client, batch_id)  # warm the worker (first job imports scikit-learn paths)

            latencies: list[float] = []
            stop = threading.Event()

            def probe() -> None:
                with httpx.Client(base_url=server.url, timeout=5) as probe_client:
                    while not stop.is_set():
                        start = time.perf_counter()
                        probe_client.get("/healthz")
                        latencies.append(time.perf_counter() - start)
                        time.sleep(0.01)

            prober = threading.Thread(target=probe)
            prober.start()
            t_job = median_time(lambda: run_job(client, batch_id), repeat=args.repeat)
            stop.set()
            prober.join()
            result = run_job(client, batch_id)

        t_sklearn = median_time(lambda: sklearn_metrics(label, score), repeat=args.repeat)
        expected = sklearn_metrics(label, score)
        worst = max(abs(result["metrics"][k] - v) for k, v in expected.items())  # type: ignore[index]
        worker_peak = max(peak_rss_bytes(p) for p in workers)
    finally:
        server.stop()

    batch_bytes = table.nbytes
    print(
        f"\n{args.rows:,} binary rows, 6 slice columns; Arrow in-memory size {batch_bytes / 2**20:.0f} MiB\n"
    )
    print(
        ratio_table(
            [
                ("metrics job, POST to result (9 metrics)", t_job, "scikit-learn, same 9 metrics", t_sklearn),
                ("Parquet ingest (POST /v1/batches)", t_parquet, "target", 2.0),
                ("JSON column-form ingest", t_json, "-", None),
            ]
        )
    )
    print()
    print("| process, work | idle RSS MiB | peak RSS MiB | peak x batch | (peak - idle) x batch |")
    print("|---|---:|---:|---:|---:|")
    rows = [(f"API server, one {fmt} upload", idle, peak) for fmt, idle, peak in memory]
    rows.append(("worker process, metrics jobs", worker_idle, worker_peak))
    for what, idle, peak in rows:
        print(
            f"| {what} | {idle / 2**20:.0f} | {peak / 2**20:.0f} | {peak / batch_bytes:.2f} "
            f"| {(peak - idle) / batch_bytes:.2f} |"
        )
    lat = sorted(latencies)
    print(
        f"\n/healthz during the metrics jobs: {len(lat)} probes, "
        f"median {statistics.median(lat) * 1e3:.1f} ms, "
        f"max {lat[-1] * 1e3:.1f} ms"
    )
    print(f"largest |ours - scikit-learn| over the 9 metrics: {worst:.2e}")


if __name__ == "__main__":
    main()
