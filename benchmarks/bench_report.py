"""What the HTML report costs: rendering a 1M-row evaluation with every section, and its size.

Run from the repository root::

    .venv/bin/python benchmarks/bench_report.py [--rows 1000000] [--repeat 3]

Data: :func:`common.binary_batch` (informative scores, 6 categorical slice columns of cardinality 2
to 50) plus a numeric ``tenure_days``; the evaluation asks for every section: bootstrap intervals,
the full baseline panel (random, zero rule, a rule, a champion on the same ids), calibration with
Platt and isotonic recalibration, confidence, slices (2 columns, a cross, a critical slice with two
earlier evaluations behind it, the slice finder) and robustness with a pair of batches. The jobs run
in this process through the real code (ingest, store, :class:`~service.jobs.worker.JobWorker`); then
the stored result is rendered, median of ``--repeat`` runs.

Targets (issue 13): under 1 s and under 2 MB of HTML. References in the same run: ``json.dumps``
of the result document (what ``GET /result`` serialises) and the figures alone (matplotlib to SVG),
which is where the time goes.
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
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import binary_batch, parquet

from schemas.evaluations import EvaluationCreate
from schemas.results import EvaluationResult
from service.ingest import ingest_body
from service.jobs.submit import submit_evaluation
from service.jobs.worker import JobWorker
from service.reports import report
from service.reports.report import render_report
from service.settings import Settings
from service.store import Store

CRITICAL = [{"name": "new-users", "where": "tenure_days < 30"}]


def batch(n: int, seed: int) -> pa.Table:
    table = binary_batch(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    return table.append_column("tenure_days", pa.array(rng.integers(0, 400, n)))


def full_request(ids: dict[str, str]) -> dict[str, Any]:
    return {
        "batch_id": ids["model"],
        "metrics": ["roc_auc", "average_precision", "accuracy", "f1", "log_loss", "brier_score"],
        "bootstrap": {"samples": 200, "seed": 0},
        "baselines": {
            "random_uniform": True,
            "random_prior": True,
            "zero_rule": True,
            "heuristics": [
                {"name": "rule", "rules": [{"when": "slice_0 == 'c0_1'", "then": 1}], "otherwise": 0}
            ],
            "existing": [{"name": "champion", "batch_id": ids["champion"]}],
        },
        "calibration": {"bins": 10, "recalibrate": ["platt", "isotonic"]},
        "confidence": {"target_accuracy": 0.8},
        "slices": {
            "columns": ["slice_1", "slice_3"],
            "crosses": [["slice_1", "slice_2"]],
            "critical": CRITICAL,
            "finder": {"max_conditions": 2, "top_k": 10, "columns": ["slice_0", "slice_1", "slice_2"]},
        },
        "robustness": {
            "pairs": [
                {"name": "re-run", "original_batch_id": ids["model"], "perturbed_batch_id": ids["rerun"]}
            ]
        },
        "gates": [
            {"metric": "roc_auc", "min": 0.8, "use": "lower_bound"},
            {"metric": "calibration.ece", "max": 0.05},
        ],
    }


def evaluate_in_process(rows: int, tmp: Path) -> dict[str, Any]:
    """Two small earlier versions (the critical slice's history), then the full evaluation."""
    settings = Settings(data_dir=tmp, workers=0)
    store = Store.open(settings)
    worker = JobWorker(store, settings, worker_id="bench")

    def save(table: pa.Table, version: str) -> str:
        spec = {"model": "fraud", "version": version, "task": "binary", "positive_class": "1"}
        return store.save_batch(ingest_body(parquet(table), "application/vnd.apache.parquet", spec)).id

    def run(request: dict[str, Any]) -> str:
        job = submit_evaluation(store, settings, EvaluationCreate.model_validate(request))
        while worker.run_once() is not None:
            pass
        return job.id

    for version, seed in (("5", 5), ("6", 6)):
        earlier = save(batch(rows // 20, seed), version)
        run({"batch_id": earlier, "metrics": ["roc_auc"], "slices": {"critical": CRITICAL}})
    model = batch(rows, 0)
    label = model.column("label").to_numpy()
    rng = np.random.default_rng(1)
    champion = model.set_column(
        model.column_names.index("score"),
        "score",
        pa.array(np.clip(0.25 * label + 0.75 * rng.random(rows), 0, 1)),
    )
    rerun = model.set_column(
        model.column_names.index("score"),
        "score",
        pa.array(np.clip(model.column("score").to_numpy() + rng.normal(0, 0.01, rows), 0, 1)),
    )
    ids = {"model": save(model, "7"), "champion": save(champion, "champion"), "rerun": save(rerun, "7-rerun")}
    job = run(full_request(ids))
    result = store.meta.get_result(job)
    store.close()
    return result


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        document = evaluate_in_process(args.rows, Path(tmp))
        evaluation = time.perf_counter() - start
    result = EvaluationResult.model_validate(document)
    missing = [
        s
        for s in ("calibration", "confidence", "slices", "robustness", "curves")
        if getattr(result, s) is None
    ]
    assert not missing and not result.errors and result.baselines, (missing, result.errors)

    html = render_report(result)  # warm-up: imports, fonts, templates
    t_render = median_time(lambda: render_report(result), args.repeat)
    t_validate = median_time(lambda: EvaluationResult.model_validate(document), args.repeat)
    t_json = median_time(lambda: json.dumps(document, default=str), args.repeat)
    primary = report.primary_metric(result)
    t_figures = median_time(lambda: report._figures(result, primary), args.repeat)
    size = len(html.encode())
    figures = html.count("<figure>")

    print(
        f"{args.rows:,} rows; evaluation (every section, in process): {evaluation:.1f} s; {figures} figures"
    )
    print()
    print("| step | time (s) | target | within |")
    print("|---|---:|---|---|")
    print(f"| render the report (median of {args.repeat}) | {t_render:.3f} | < 1 s | {t_render < 1.0} |")
    print(f"| reference: the figures alone (matplotlib to SVG) | {t_figures:.3f} | | |")
    print(f"| reference: validate the stored result (pydantic) | {t_validate:.3f} | | |")
    print(f"| reference: json.dumps of the result document | {t_json:.3f} | | |")
    print()
    print("| output | size | target | within |")
    print("|---|---:|---|---|")
    print(f"| report HTML | {size / 1e6:.2f} MB | < 2 MB | {size < 2_000_000} |")
    print(
        f"| reference: result document (JSON) | {len(json.dumps(document, default=str)) / 1e6:.2f} MB | | |"
    )


if __name__ == "__main__":
    main()
