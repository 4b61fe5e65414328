"""Overall binary metrics on 1M rows: scikit-learn calls versus the metrics worker.

Run from the repository root::

    .venv/bin/python benchmarks/bench_metrics_worker.py [--rows 1000000] [--repeat 3]

Both sides compute the same metrics on the same data in the same process; the
table shows the best of ``--repeat`` runs and the ratio sklearn / worker. The
worker's values are checked against sklearn's before timing is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.workers.bootstrap import classification_intervals
from service.workers.metrics import classification_metrics, default_metrics


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=200, help="replicates for the interval timing")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    score = rng.random(args.rows)
    y_true = (rng.random(args.rows) < score).astype(np.int64)
    y_pred = (score >= 0.5).astype(np.int64)
    names = default_metrics("binary", has_scores=True)

    sklearn_calls: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(y_true, y_pred),
        "precision": lambda: skm.precision_score(y_true, y_pred),
        "recall": lambda: skm.recall_score(y_true, y_pred),
        "f1": lambda: skm.f1_score(y_true, y_pred),
        "mcc": lambda: skm.matthews_corrcoef(y_true, y_pred),
        "roc_auc": lambda: skm.roc_auc_score(y_true, score),
        "average_precision": lambda: skm.average_precision_score(y_true, score),
        "log_loss": lambda: skm.log_loss(y_true, score),
        "brier_score": lambda: skm.brier_score_loss(y_true, score),
    }

    def ours(metrics: list[str]) -> object:
        return classification_metrics(
            y_true, y_pred, n_classes=2, class_names=["0", "1"], positive=1, scores=score, metrics=metrics
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = ours(names)
        worst = max(abs(report.metrics[n] - sklearn_calls[n]()) for n in names)  # type: ignore[operator]
        rows = [
            (n, _best(sklearn_calls[n], args.repeat), _best(lambda n=n: ours([n]), args.repeat))
            for n in names
        ]
        total_sk = _best(lambda: [f() for f in sklearn_calls.values()], args.repeat)
        total_ours = _best(lambda: ours(names), args.repeat)
    conf = [n for n in names if n not in ("roc_auc", "average_precision", "log_loss", "brier_score")]
    boot_conf = _best(
        lambda: classification_intervals(
            y_true,
            y_pred,
            n_classes=2,
            positive=1,
            scores=score,
            metrics=conf,
            samples=1000,
            confidence=0.95,
            seed=0,
        ),
        1,
    )
    boot_all = _best(
        lambda: classification_intervals(
            y_true,
            y_pred,
            n_classes=2,
            positive=1,
            scores=score,
            metrics=names,
            samples=args.bootstrap,
            confidence=0.95,
            seed=0,
        ),
        1,
    )

    print(f"{args.rows:,} binary rows, best of {args.repeat}; max |ours - sklearn| = {worst:.1e}")
    print(f"{'metric':<20}{'sklearn s':>12}{'ours s':>10}{'ratio':>8}")
    for name, sk, us in rows:
        print(f"{name:<20}{sk:>12.4f}{us:>10.4f}{sk / us:>8.1f}")
    print(f"{'all ' + str(len(names)):<20}{total_sk:>12.4f}{total_ours:>10.4f}{total_sk / total_ours:>8.1f}")
    print(f"bootstrap, 1000 replicates of the {len(conf)} confusion metrics: {boot_conf:.3f} s")
    print(f"bootstrap, {args.bootstrap} replicates of all {len(names)} metrics: {boot_all:.3f} s")


if __name__ == "__main__":
    main()
