"""Slice metrics on 1M binary rows: the slices worker against a hand-vectorized numpy groupby and sklearn.

Run from the repository root::

    .venv/bin/python benchmarks/bench_slices.py [--rows 1000000] [--repeat 3] [--sklearn-rows 1000000]

Data: :func:`common.binary_batch` -- 6 slice columns of cardinality 2, 3, 5, 10, 20
and 50 (90 slices), stored dictionary-encoded as ingest stores repeating strings,
and the 9 binary metrics accuracy, balanced_accuracy, precision, recall, f1,
roc_auc, average_precision, log_loss and brier_score.

* **ours**: :class:`~service.workers.slices.SliceEvaluator` built once (score sort,
  per-row losses) and ``report`` per column -- values plus every interval (Wilson,
  200-replicate multinomial bootstrap, DeLong, CLT), every test against the rest,
  the findings and the pydantic result models. Also six independent
  :func:`~service.workers.slices.slice_report` calls (the sort redone per column).
* **numpy groupby**: the same point values from the same sufficient statistics,
  written by hand as tightly as numpy allows -- one bincount of (slice, true, pred)
  cells, per-row losses summed by bincount, and per-slice sorted AUC/AP from one
  global sort plus a stable (radix) sort of the codes per column. No intervals,
  no tests, no result objects. The target is ours within 2x of it.
* **sklearn loop**: a boolean mask and 9 scikit-learn calls per slice.

Slice codes come from the dictionary indices (:func:`~service.workers.slices.slice_codes`);
their cost is listed, as is hashing plain strings for comparison. Every value of
ours is checked against the numpy groupby (and against sklearn on a few slices)
before anything is timed. Times are the median of ``--repeat``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SLICE_CARDINALITIES, binary_batch, median_time, ratio_table

from service.workers.slices import SliceEvaluator, slice_codes, slice_report

METRICS = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier_score",
]
EPS = np.finfo(np.float64).eps


def numpy_groupby(
    y: np.ndarray, pred: np.ndarray, score: np.ndarray, columns: list[tuple[np.ndarray, int]]
) -> list[dict[str, np.ndarray]]:
    """Hand-vectorized per-slice values of the 9 metrics (distinct scores assumed, as in this data)."""
    cells = y * 2 + pred
    p_true = np.where(y == 1, score, 1.0 - score)
    log_rows = -np.log(np.clip(p_true, EPS, 1 - EPS))
    brier_rows = (y - score) ** 2
    desc = np.argsort(score)[::-1]
    pos_desc = y[desc] == 1
    out = []
    for codes, g in columns:
        cm = np.bincount(codes * 4 + cells, minlength=4 * g).reshape(g, 2, 2).astype(np.float64)
        tn, fp, fn, tp = cm[:, 0, 0], cm[:, 0, 1], cm[:, 1, 0], cm[:, 1, 1]
        n = cm.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            res = {
                "accuracy": (tp + tn) / n,
                "balanced_accuracy": np.nanmean(np.stack([tp / (tp + fn), tn / (tn + fp)]), axis=0),
                "precision": tp / (tp + fp),
                "recall": tp / (tp + fn),
                "f1": 2 * tp / (2 * tp + fp + fn),
                "log_loss": np.bincount(codes, weights=log_rows, minlength=g) / n,
                "brier_score": np.bincount(codes, weights=brier_rows, minlength=g) / n,
            }
            # rows by (slice, decreasing score): a radix sort of the codes in score order
            perm = np.argsort(codes[desc].astype(np.uint16), kind="stable")
            pos = pos_desc[perm]
            starts = np.concatenate([[0], np.cumsum(n[:-1])]).astype(np.intp)
            tp_cum = np.cumsum(pos, dtype=np.float64)
            p_s = np.add.reduceat(pos.astype(np.float64), starts)
            before = np.repeat(tp_cum[starts] - pos[starts], n.astype(np.intp))
            tp_loc = tp_cum - before
            depth = np.arange(1.0, pos.size + 1.0) - np.repeat(starts.astype(np.float64), n.astype(np.intp))
            n_s = n - p_s
            res["roc_auc"] = np.add.reduceat(np.where(pos, 0.0, tp_loc), starts) / (p_s * n_s)
            res["average_precision"] = np.add.reduceat(np.where(pos, tp_loc / depth, 0.0), starts) / p_s
        out.append(res)
    return out


def sklearn_loop(
    y: np.ndarray, pred: np.ndarray, score: np.ndarray, columns: list[tuple[np.ndarray, int]]
) -> list[dict[str, list[float]]]:
    out = []
    for codes, g in columns:
        res: dict[str, list[float]] = {m: [] for m in METRICS}
        for s in range(g):
            m = codes == s
            yt, yp, sc = y[m], pred[m], score[m]
            res["accuracy"].append(skm.accuracy_score(yt, yp))
            res["balanced_accuracy"].append(skm.balanced_accuracy_score(yt, yp))
            res["precision"].append(skm.precision_score(yt, yp, zero_division=np.nan))
            res["recall"].append(skm.recall_score(yt, yp, zero_division=np.nan))
            res["f1"].append(skm.f1_score(yt, yp, zero_division=np.nan))
            res["roc_auc"].append(skm.roc_auc_score(yt, sc))
            res["average_precision"].append(skm.average_precision_score(yt, sc))
            res["log_loss"].append(skm.log_loss(yt, sc, labels=[0, 1]))
            res["brier_score"].append(skm.brier_score_loss(yt, sc))
        out.append(res)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", type=int, default=200, help="replicates of the label-metric bootstrap")
    args = parser.parse_args()

    table = binary_batch(args.rows, seed=0)
    y = table.column("label").to_numpy()
    score = table.column("score").to_numpy()
    assert np.unique(score).size == score.size, "the numpy reference assumes distinct scores"
    pred = (score >= 0.5).astype(np.int64)
    names = [f"slice_{k}" for k in range(len(SLICE_CARDINALITIES))]
    plain = [table.column(c) for c in names]
    encoded = [c.dictionary_encode() for c in plain]  # what ingest stores

    def codes_of(columns: list[Any]) -> list[tuple[np.ndarray, list[Any]]]:
        return [slice_codes(c, bins=5) for c in columns]

    coded = codes_of(encoded)
    groups = [[(name, codes, labels)] for name, (codes, labels) in zip(names, coded, strict=True)]
    ref_columns = [(codes, len(labels)) for codes, labels in coded]
    overall = {"accuracy": float(np.mean(pred == y))}

    def ours() -> list[Any]:
        ev = SliceEvaluator(
            y,
            pred,
            task="binary",
            n_classes=2,
            positive=1,
            scores=score,
            metrics=METRICS,
            overall=overall,
            min_support=30,
            bootstrap_samples=args.bootstrap,
            seed=0,
        )
        return [ev.report(g) for g in groups]

    def ours_one_shot() -> list[Any]:
        return [
            slice_report(
                y,
                pred,
                group_columns=g,
                task="binary",
                n_classes=2,
                positive=1,
                scores=score,
                metrics=METRICS,
                overall=overall,
                min_support=30,
                bootstrap_samples=args.bootstrap,
                seed=0,
            )
            for g in groups
        ]

    def reference() -> list[dict[str, np.ndarray]]:
        return numpy_groupby(y, pred, score, ref_columns)

    # correctness before timing
    got = ours()
    ref = reference()
    worst = 0.0
    for (group, _), expected in zip(got, ref, strict=True):
        for i, s in enumerate(group.slices):
            for m in METRICS:
                v = s.metrics[m].value
                assert v is not None, (m, s.conditions)
                worst = max(worst, abs(v - float(expected[m][i])))
    assert worst < 1e-9, worst
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        few = sklearn_loop(y, pred, score, [ref_columns[0]])[0]
    for i, s in enumerate(got[0][0].slices):
        for m in METRICS:
            assert abs(s.metrics[m].value - few[m][i]) < 1e-9, (m, s.metrics[m].value, few[m][i])

    t_ours = median_time(ours, repeat=args.repeat)
    t_one_shot = median_time(ours_one_shot, repeat=args.repeat)
    t_ref = median_time(reference, repeat=args.repeat)
    t_codes = median_time(lambda: codes_of(encoded), repeat=args.repeat)
    t_hash = median_time(lambda: codes_of(plain), repeat=args.repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        sklearn_loop(y, pred, score, ref_columns)
        t_sklearn = time.perf_counter() - start

    # where our time goes: preparation (global sort, losses) against the per-column reports
    ev_holder: list[SliceEvaluator] = []

    def prepare() -> None:
        ev_holder[:] = [
            SliceEvaluator(
                y,
                pred,
                task="binary",
                n_classes=2,
                positive=1,
                scores=score,
                metrics=METRICS,
                overall=overall,
                min_support=30,
                bootstrap_samples=args.bootstrap,
                seed=0,
            )
        ]

    t_prepare = median_time(prepare, repeat=args.repeat)
    t_reports = median_time(lambda: [ev_holder[0].report(g) for g in groups], repeat=args.repeat)

    n_slices = sum(len(g.slices) for g, _ in got)
    print(
        f"{args.rows:,} binary rows, {len(groups)} slice columns ({n_slices} slices), "
        f"{len(METRICS)} metrics, "
        f"median of {args.repeat}; max |ours - numpy groupby| = {worst:.1e}"
    )
    print()
    print(
        ratio_table(
            [
                ("slice metrics, 6 columns (evaluator)", t_ours, "numpy groupby", t_ref),
                ("  preparation: score sort, losses", t_prepare, "numpy groupby", t_ref),
                ("  6 reports: values, intervals, tests", t_reports, "numpy groupby", t_ref),
                ("6 one-shot slice_report calls", t_one_shot, "numpy groupby", t_ref),
                ("slice metrics, 6 columns (evaluator)", t_ours, "sklearn loop (1 run)", t_sklearn),
                ("slice codes of 6 dictionary columns", t_codes, "numpy groupby", t_ref),
                ("slice codes of 6 plain string columns", t_hash, "numpy groupby", t_ref),
            ]
        )
    )


if __name__ == "__main__":
    main()
