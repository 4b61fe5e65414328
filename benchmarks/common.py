"""Shared pieces of the benchmarks: data generation, a real server, timing, tables."""

from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SLICE_CARDINALITIES = (2, 3, 5, 10, 20, 50)


def binary_batch(n: int, *, seed: int = 0) -> pa.Table:
    """``n`` binary rows with an informative score and 6 categorical slice columns."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    score = np.clip(0.3 * label + 0.7 * rng.random(n), 0.0, 1.0)
    columns: dict[str, object] = {
        "sample_id": pa.array(np.char.add("s", np.arange(n).astype(str))),
        "label": label,
        "score": score,
    }
    for k, card in enumerate(SLICE_CARDINALITIES):
        values = np.array([f"c{k}_{v}" for v in range(card)])
        columns[f"slice_{k}"] = values[rng.integers(0, card, n)]
    return pa.table(columns)


#: The metrics of the baseline-panel benchmarks (bench_baseline_panel, bench_tuning).
PANEL_METRICS = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc",
                 "average_precision", "log_loss", "brier_score"]  # fmt: skip


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def panel_batches(n: int) -> dict[str, pa.Table]:
    """The model's batch (:func:`binary_batch`), and a champion's and people's predictions on
    the same sample ids, in the same order: the baseline panel's paired batches."""
    model = binary_batch(n)
    rng = np.random.default_rng(1)
    label = model.column("label").to_numpy()
    champion_score = np.clip(0.25 * label + 0.75 * rng.random(n), 0, 1)
    champion = pa.table({"sample_id": model.column("sample_id"), "label": label, "score": champion_score})
    human_pred = np.where(rng.random(n) < 0.8, label, 1 - label)
    human = pa.table({"sample_id": model.column("sample_id"), "prediction": human_pred})
    return {"model": model, "champion": champion, "human": human}


def panel_baselines(human_id: str, champion_id: str) -> dict[str, object]:
    """The full panel: random uniform and prior, zero rule, a rule, people and a champion."""
    return {
        "random_uniform": True,
        "random_prior": True,
        "zero_rule": True,
        "heuristics": [
            {"name": "slice rule", "rules": [{"when": "slice_0 == 'c0_1'", "then": 1}], "otherwise": 0}
        ],
        "human": {"batch_id": human_id},
        "existing": [{"name": "champion", "batch_id": champion_id}],
    }


def median_time(fn: Callable[[], object], *, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the peak resident set of ``pid`` so far."""
    return _status_field(pid, "VmHWM")


def rss_bytes(pid: int) -> int:
    return _status_field(pid, "VmRSS")


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


class BenchServer:
    """``yardstick serve`` on a free loopback port with a temporary data dir."""

    def __init__(
        self, *, workers: int = 2, data_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="yardstick-bench-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        directory = str(data_dir) if data_dir is not None else self.tmp.name
        environment = (
            os.environ | {"YARDSTICK_DATA_DIR": directory, "YARDSTICK_WORKERS": str(workers)} | (env or {})
        )
        environment.pop("YARDSTICK_API_KEYS", None)
        script = Path(sys.executable).parent / "yardstick"
        self.proc = subprocess.Popen(
            [str(script), "serve", "--port", str(self.port), "--log-level", "warning"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.tmp.cleanup()


def ratio_table(rows: list[tuple[str, float, str, float | None]]) -> str:
    """Markdown table: step, ours, reference, ratio."""
    lines = ["| step | ours (s) | reference | reference (s) | ratio |", "|---|---:|---|---:|---:|"]
    for step, ours, ref_name, ref in rows:
        ratio = f"{ours / ref:.2f}x" if ref else "-"
        ref_s = f"{ref:.3f}" if ref is not None else "-"
        lines.append(f"| {step} | {ours:.3f} | {ref_name} | {ref_s} | {ratio} |")
    return "\n".join(lines)
