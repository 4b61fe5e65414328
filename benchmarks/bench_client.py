"""The Python client's overhead: posting 1M binary rows and getting the result back, with
``yardstick.Client`` against the same steps written with raw httpx, on one real server.

(a) raw httpx: ``pq.write_table`` to a buffer, POST it, POST the evaluation, poll the job every
    10 ms until it is done, GET the result (JSON, not validated);
(b) the client: ``Client.post_batch`` (Parquet streamed by row groups) + ``evaluate`` (validated
    locally) + ``wait`` (backing-off polls) returning the typed ``EvaluationResult``.

Each is the median of ``--repeat`` runs, interleaved in the same run, so both see the same
server and machine state. Target: (b) / (a) <= 1.2.

    .venv/bin/python benchmarks/bench_client.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BenchServer, binary_batch, ratio_table

from yardstick import Client

METRICS = ["accuracy", "roc_auc", "log_loss"]
PARAMS = {"model": "bench-client", "version": "1", "task": "binary", "positive_class": "1"}


def raw_httpx(url: str, table: pa.Table) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=300) as http:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        batch = http.post(
            "/v1/batches",
            content=sink.getvalue(),
            params=PARAMS,
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        batch.raise_for_status()
        job = http.post("/v1/evaluations", json={"batch_id": batch.json()["id"], "metrics": METRICS})
        job.raise_for_status()
        while True:
            state = http.get(f"/v1/jobs/{job.json()['id']}").json()
            if state["status"] == "succeeded":
                result: dict[str, object] = http.get(f"/v1/jobs/{state['id']}/result").json()
                return result
            if state["status"] in ("failed", "cancelled"):
                raise RuntimeError(state)
            time.sleep(0.01)


def with_client(url: str, table: pa.Table) -> dict[str, object]:
    with Client(url) as client:
        batch = client.post_batch(table, model="bench-client", version="1", task="binary", positive_class=1)
        result = client.evaluate(batch, metrics=METRICS).wait()
        return result.metrics  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    table = binary_batch(args.rows)
    server = BenchServer(workers=1)
    times: dict[str, list[float]] = {"raw": [], "client": []}
    runs: dict[str, Callable[[str, pa.Table], dict[str, object]]] = {"raw": raw_httpx, "client": with_client}
    try:
        raw_httpx(server.url, table)  # warm: the worker's first job imports its code paths
        metrics = {}
        for _ in range(args.repeat):
            for name, run in runs.items():
                start = time.perf_counter()
                answer = run(server.url, table)
                times[name].append(time.perf_counter() - start)
                metrics[name] = answer["metrics"] if name == "raw" else answer
    finally:
        server.stop()

    raw, ours = statistics.median(times["raw"]), statistics.median(times["client"])
    print(f"\n{args.rows:,} binary rows, 6 slice columns; {len(METRICS)} metrics; median of {args.repeat}\n")
    print(
        ratio_table(
            [("Client: post_batch + evaluate + wait (typed result)", ours, "raw httpx, same steps", raw)]
        )
    )
    for name, seconds in times.items():
        print(f"{name} runs (s): {', '.join(f'{t:.2f}' for t in seconds)}")
    print(f"same metrics from both: {metrics['raw'] == metrics['client']}")


if __name__ == "__main__":
    main()
