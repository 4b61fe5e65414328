"""Time ``ingest_body`` on 1M binary rows with 6 slice columns, per body format.

Run from the repository root:

    .venv/bin/python benchmarks/bench_ingest.py [--rows 1000000] [--repeat 3] \
        [--formats parquet,arrow,csv,json-columns]

Prints one line per format: body size, best-of-``repeat`` wall time, rows per second, and
the ratio to the DESIGN.md target for that step (below 1.0 is faster than the target).
``json-rows`` (the per-row JSON form) can be added to ``--formats``; it is slow by nature.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.ingest import ingest_body

PARAMS = {"model": "bench", "version": "1", "task": "binary", "positive_class": "1"}
# Upper ends of DESIGN.md's "what speed is possible" table (decode only, no validation).
TARGETS = {"parquet": 0.8, "arrow": 0.02, "csv": 0.9, "json-columns": 1.2, "json-rows": 8.0}
SLICES = {
    "country": ["BR", "US", "DE", "IN", "FR", "MX", "JP", "NG", "GB", "ES", "IT", "CA", "AU", "KR", "ZA"],
    "device": ["ios", "android", "web"],
    "channel": ["organic", "paid", "referral", "email"],
    "segment": ["consumer", "smb", "enterprise"],
    "plan": ["free", "basic", "pro", "team", "business"],
}


def make_table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    score = rng.random(rows)
    label = (rng.random(rows) < score).astype(np.int64)
    columns: dict[str, pa.Array] = {
        "sample_id": pa.array(np.char.add("s", np.arange(rows).astype(str))),
        "label": pa.array(label),
        "prediction": pa.array((score >= 0.5).astype(np.int64)),
        "score": pa.array(score),
    }
    for name, values in SLICES.items():
        picks = rng.integers(0, len(values), rows)
        columns[name] = pa.array(np.asarray(values, dtype=object)[picks].tolist())
    columns["tenure_days"] = pa.array(rng.integers(0, 3650, rows))
    return pa.table(columns)


def encode(table: pa.Table, form: str) -> tuple[bytes, str]:
    if form == "parquet":
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue(), "application/vnd.apache.parquet"
    if form == "arrow":
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes(), "application/vnd.apache.arrow.stream"
    if form == "csv":
        sink = io.BytesIO()
        pacsv.write_csv(table, sink)
        return sink.getvalue(), "text/csv"
    envelope: dict[str, object] = {
        "model": {"name": "bench", "version": "1"},
        "task": "binary",
        "positive_class": 1,
    }
    if form == "json-columns":
        envelope["columns"] = table.to_pydict()
    else:
        reserved = ("sample_id", "label", "prediction", "score")
        slices = [name for name in table.column_names if name not in reserved]
        envelope["rows"] = [
            {
                "sample_id": row["sample_id"],
                "label": row["label"],
                "prediction": row["prediction"],
                "score": row["score"],
                "features": {name: row[name] for name in slices},
            }
            for row in table.to_pylist()
        ]
    return orjson.dumps(envelope), "application/json"


def best_time(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="parquet,arrow,csv,json-columns")
    args = parser.parse_args()

    table = make_table(args.rows)
    print(f"ingest_body, {args.rows:,} binary rows, 6 slice columns, best of {args.repeat}")
    print(f"{'format':<14}{'body MB':>9}{'seconds':>9}{'rows/s':>13}{'target s':>10}{'ratio':>7}")
    for form in args.formats.split(","):
        body, content_type = encode(table, form)
        batch = ingest_body(body, content_type, PARAMS)
        assert batch.rows == args.rows and batch.spec.classes == [0, 1]
        seconds = best_time(partial(ingest_body, body, content_type, PARAMS), args.repeat)
        target = TARGETS[form] * args.rows / 1_000_000
        print(
            f"{form:<14}{len(body) / 1e6:>9.1f}{seconds:>9.3f}{args.rows / seconds:>13,.0f}"
            f"{target:>10.2f}{seconds / target:>7.2f}"
        )


if __name__ == "__main__":
    main()
