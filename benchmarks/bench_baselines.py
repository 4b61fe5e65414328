"""The baseline panel on 1M binary rows against the plain metrics it rides along with.

Run from the repository root::

    .venv/bin/python benchmarks/bench_baselines.py [--rows 1000000] [--repeat 5] [--samples 1000]

The panel is what an evaluation with ``random_uniform``, ``random_prior``,
``zero_rule`` and one paired ``existing`` baseline computes on top of the model's
metrics: the closed-form random baselines and their tests against the model, the
zero rule's metrics and paired comparison, and the other predictions' metrics and
paired comparison (bootstrap ``--samples`` replicates for the label metrics; delta
method -- DeLong for ROC AUC -- for the score metrics). The model is prepared
(scores sorted, gradients computed) once for the whole panel.

Reference: ``classification_metrics`` on the same rows in the same process, and
the end-to-end metrics job (POST to result) measured by
``benchmarks/bench_service.py`` (``--job-seconds``, default the README's 0.301 s).
The target is panel <= 1x the metrics job. Times are the median of ``--repeat``.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.metrics import MetricsReport
from service.workers.baselines import (
    Comparison,
    PreparedSide,
    Side,
    Strategy,
    compare,
    compare_to_expected,
    expected_random_metrics,
    prepare_side,
    zero_rule_metrics,
    zero_rule_predictions,
)
from service.workers.metrics import ScoreStatistics, classification_metrics, default_metrics

SCORE_METRICS = ("roc_auc", "average_precision", "log_loss", "brier_score")


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _data(n: int) -> tuple[Side, Side]:
    rng = np.random.default_rng(0)
    score = rng.random(n)
    y = (rng.random(n) < score).astype(np.int64)
    other = np.clip(score + rng.normal(0, 0.2, n), 0.0, 1.0)  # a weaker, correlated champion
    return Side(y, (score >= 0.5).astype(np.int64), score), Side(y, (other >= 0.5).astype(np.int64), other)


def _metrics(side: Side, names: list[str]) -> MetricsReport:
    return classification_metrics(
        side.y_true,
        side.y_pred,
        n_classes=2,
        class_names=["0", "1"],
        positive=1,
        scores=side.scores,
        metrics=names,
    )


def _steps(model: Side, existing: Side, names: list[str], samples: int) -> dict[str, Callable[[], object]]:
    """The panel, one callable per step; the steps after the first reuse the prepared model."""
    y = model.y_true
    prepared: list[PreparedSide] = []
    own_names = names if existing.scores is not None else [n for n in names if n not in SCORE_METRICS]

    def prepare() -> object:
        prepared[:] = [prepare_side(model, task="binary", n_classes=2, positive=1, metrics=names)]
        return prepared[0]

    def versus(baseline: Side | MetricsReport) -> Comparison:
        options: dict[str, Any] = {
            "task": "binary",
            "n_classes": 2,
            "positive": 1,
            "metrics": names,
            "primary_metric": "f1",
            "samples": samples,
            "seed": 0,
        }
        if isinstance(baseline, MetricsReport):
            return compare_to_expected(prepared[0], baseline, **options)
        return compare(prepared[0], baseline, paired=True, **options)

    def random(strategy: Strategy) -> Callable[[], object]:
        return lambda: versus(
            expected_random_metrics(y, n_classes=2, positive=1, strategy=strategy, metrics=names)
        )

    def zero_rule() -> object:
        zero_rule_metrics(y, n_classes=2, positive=1, metrics=names)  # the baseline's own report
        return versus(zero_rule_predictions(y, n_classes=2, positive=1))

    return {
        "prepare model (sort, gradients)": prepare,
        "random_uniform: closed form + tests": random("uniform"),
        "random_prior: closed form + tests": random("prior"),
        "zero_rule: closed form + paired tests": zero_rule,
        "existing: its own metrics report": lambda: _metrics(existing, own_names),
        "existing: paired tests": lambda: versus(existing),
    }


def _run_all(steps: dict[str, Callable[[], object]]) -> None:
    for fn in steps.values():
        fn()


def _row_bootstrap_estimate(model: Side, names: list[str], replicates: int) -> float:
    """Seconds for 1000 paired row-bootstrap replicates of the score metrics (the rejected approach)."""
    assert model.scores is not None
    score_names = [n for n in names if n in SCORE_METRICS]
    stats = ScoreStatistics(model.y_true, model.scores, n_classes=2, positive=1, names=score_names)
    n = model.y_true.size
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(replicates):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        stats.values(w if stats.row_order is None else w[stats.row_order])
    # a paired replicate evaluates both sides on the same draw: about 1.5x one side
    return (time.perf_counter() - start) / replicates * 1000 * 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap replicates (label metrics)")
    parser.add_argument("--job-seconds", type=float, default=0.301, help="metrics job, POST to result")
    args = parser.parse_args()

    names = default_metrics("binary", has_scores=True)
    model, existing = _data(args.rows)
    labels_only = Side(existing.y_true, existing.y_pred)
    metrics_s = _median_time(lambda: _metrics(model, names), args.repeat)

    print(
        f"{args.rows:,} binary rows, {len(names)} metrics, {args.samples} bootstrap replicates, "
        f"median of {args.repeat}"
    )
    print(
        f"reference: classification_metrics {metrics_s:.3f} s; "
        f"metrics job end to end {args.job_seconds:.3f} s\n"
    )
    for label, other in (("existing = labels only", labels_only), ("existing = labels + scores", existing)):
        steps = _steps(model, other, names, args.samples)
        for fn in steps.values():  # warm-up: page faults, first allocations
            fn()
        timed = {step: _median_time(fn, args.repeat) for step, fn in steps.items()}
        total = _median_time(functools.partial(_run_all, steps), args.repeat)
        print(f"### panel, {label}")
        print("| step | seconds | / metrics | / metrics job |")
        print("|---|---:|---:|---:|")
        for step, seconds in [*timed.items(), ("**whole panel**", total)]:
            ratios = f"{seconds / metrics_s:.2f}x | {seconds / args.job_seconds:.2f}x"
            print(f"| {step} | {seconds:.3f} | {ratios} |")
        print()
    print(
        f"not used: 1000 paired row-bootstrap replicates of the 4 score metrics would take "
        f"~{_row_bootstrap_estimate(model, names, 5):.0f} s per comparison"
    )


if __name__ == "__main__":
    main()
