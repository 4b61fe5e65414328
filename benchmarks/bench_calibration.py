"""The calibration worker on 1M binary rows against scikit-learn's calibration_curve + brier_score_loss.

Run from the repository root::

    .venv/bin/python benchmarks/bench_calibration.py [--rows 1000000] [--repeat 5] [--samples 1000]

Reference: ``sklearn.calibration.calibration_curve`` plus
``sklearn.metrics.brier_score_loss`` on the same rows, in the same process. The
report computes more than that (the diagram with empty bins, ECE, MCE, adaptive
ECE with its own equal-mass bins, the Brier decomposition, log loss and the
calibration slope/intercept, a logistic fit); the target is <= 2x the reference
for the report plus the confidence worker (the ``report + confidence_report``
row), so the report alone should stay near 1x. Values are checked against
scikit-learn before anything is timed. The ECE interval, recalibration and a
10-class batch have no scikit-learn counterpart and are listed for their cost
only. Times are the median of ``--repeat``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import median_time, ratio_table

from schemas.calibration import CalibrationResult
from service.workers.calibration import calibration_report
from service.workers.confidence import confidence_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap replicates for the ECE interval")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    p_true = rng.random(args.rows)
    y = (rng.random(args.rows) < p_true).astype(np.int64)
    score = 1 / (1 + np.exp(-1.5 * np.log(p_true / (1 - p_true))))  # somewhat overconfident
    names = ["negative", "positive"]

    def ours(strategy: str, **kwargs: Any) -> CalibrationResult:
        return calibration_report(
            y, score, n_classes=2, positive=1, class_names=names, strategy=strategy, **kwargs
        )

    def sklearn(strategy: str) -> tuple[np.ndarray, np.ndarray, float]:
        prob_true, prob_pred = calibration_curve(y, score, n_bins=10, strategy=strategy)
        return prob_true, prob_pred, float(brier_score_loss(y, score))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        worst = 0.0
        for strategy in ("uniform", "quantile"):
            report = ours(strategy)
            prob_true, prob_pred, brier = sklearn(strategy)
            assert report.reliability is not None
            full = [b for b in report.reliability.bins if b.count]
            worst = max(
                worst,
                float(np.abs(np.array([b.observed for b in full]) - prob_true).max()),
                float(np.abs(np.array([b.mean_predicted for b in full]) - prob_pred).max()),
                abs(report.brier.brier - brier),
            )

        rows: list[tuple[str, float, str, float | None]] = []
        for strategy in ("uniform", "quantile"):
            rows.append(
                (
                    f"report, {strategy} bins",
                    median_time(functools.partial(ours, strategy), repeat=args.repeat),
                    "calibration_curve + brier_score_loss",
                    median_time(functools.partial(sklearn, strategy), repeat=args.repeat),
                )
            )
        # the target: calibration plus confidence (another worker) within 2x of the reference
        y_pred = (score >= 0.5).astype(np.int64)

        def with_confidence() -> object:
            return ours("uniform"), confidence_report(
                y, y_pred, score, bins=10, target_accuracy=0.9, level=0.9
            )

        rows.append(
            (
                "report + confidence_report",
                median_time(with_confidence, repeat=args.repeat),
                "calibration_curve + brier_score_loss",
                median_time(functools.partial(sklearn, "uniform"), repeat=args.repeat),
            )
        )
        extra: list[tuple[str, dict[str, Any]]] = [
            (f"report + ECE interval ({args.samples} replicates)", {"bootstrap_samples": args.samples}),
            ("report + platt (5 folds)", {"recalibrate": ["platt"]}),
            ("report + isotonic (5 folds)", {"recalibrate": ["isotonic"]}),
            ("report + temperature (5 folds)", {"recalibrate": ["temperature"]}),
        ]
        for label, kwargs in extra:
            seconds = median_time(functools.partial(ours, "uniform", **kwargs), repeat=1)
            rows.append((label, seconds, "-", None))

        k = 10
        logits = rng.normal(0, 1.5, (args.rows, k))
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        labels = (probs.cumsum(axis=1) < rng.random((args.rows, 1))).sum(axis=1).clip(0, k - 1)
        classes = [f"c{i}" for i in range(k)]
        rows.append(
            (
                f"report, {k} classes (top-label + per class)",
                median_time(
                    functools.partial(
                        calibration_report, labels, probs, n_classes=k, positive=None, class_names=classes
                    ),
                    repeat=args.repeat,
                ),
                "-",
                None,
            )
        )

    print(f"{args.rows:,} rows, median of {args.repeat}; max |ours - sklearn| = {worst:.1e}")
    print(ratio_table(rows))


if __name__ == "__main__":
    main()
