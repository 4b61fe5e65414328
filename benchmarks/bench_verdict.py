"""What the verdict costs: flagging, de-duplication and ranking against the slice computation they follow.

Run from the repository root::

    .venv/bin/python benchmarks/bench_verdict.py [--rows 1000000] [--repeat 7]

Data: :func:`common.binary_batch` (6 dictionary-encoded slice columns of cardinality 2 to 50) with
two planted cells at twice the error rate, so that there are findings to explain and rank. The
slice job evaluates the 6 columns and 2 crosses (9 metrics, every interval and test) as
:func:`service.jobs.slices.run_slices` does; the verdict adds one Benjamini-Hochberg adjustment
over every test, ``min_effect``, the parent/child explanation, the findings, their ranking and the
verdict itself. Both run in the same process on the same arrays, alternating, and the medians are
compared. The target: the verdict adds under 5%.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_slices import METRICS
from common import SLICE_CARDINALITIES, binary_batch, ratio_table

from schemas.gates import GateReport
from schemas.results import PrimaryMetric
from service.jobs.slices import _underperforming
from service.workers.slices import SliceEvaluator, slice_codes
from service.workers.slices.flagging import flag_slices
from service.workers.verdict import decide, rank_findings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    table = binary_batch(args.rows, seed=0)
    y = table.column("label").to_numpy()
    score = table.column("score").to_numpy()
    pred = (score >= 0.5).astype(np.int64)
    columns = []
    for k in range(len(SLICE_CARDINALITIES)):
        column = table.column(f"slice_{k}").dictionary_encode().unify_dictionaries()
        codes, labels = slice_codes(column, bins=5)
        columns.append((f"slice_{k}", codes, labels))
    rng = np.random.default_rng(1)
    for a, b in ((2, 3), (1, 4)):  # two planted cells: a third of their predictions flipped
        cell = (columns[a][1] == 0) & (columns[b][1] == 0)
        flip = cell & (rng.random(args.rows) < 0.33)
        pred[flip] = 1 - pred[flip]
    groups = [[c] for c in columns] + [[columns[2], columns[3]], [columns[1], columns[4]]]

    def slice_job() -> list[object]:
        evaluator = SliceEvaluator(
            y, pred, task="binary", n_classes=2, positive=1, scores=score, metrics=METRICS
        )
        return [evaluator.evaluate(g)[1] for g in groups]

    def verdict(tests: list[object]) -> object:
        flags = flag_slices(tests)  # type: ignore[arg-type]
        findings = rank_findings([_underperforming(f, "binary") for f in flags.flagged])
        return decide(
            gates=GateReport(passed=True),
            findings=findings,
            errors={},
            primary=PrimaryMetric(name="accuracy", value=0.5, chosen_because="benchmark"),
            rows=args.rows,
            labeled_rows=args.rows,
        )

    plain, total, added = [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        slice_job()
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        tests = slice_job()
        middle = time.perf_counter()
        outcome = verdict(tests)
        end = time.perf_counter()
        total.append(end - start)
        added.append(end - middle)
    flags = flag_slices(slice_job())  # type: ignore[arg-type]
    print(
        f"{args.rows} rows, {len(groups)} groups, {flags.tests} slice tests, {len(flags.flagged)} flagged, "
        f"{len(flags.explained)} explained; verdict {outcome.status}"
    )  # type: ignore[attr-defined]
    p, t, a = statistics.median(plain), statistics.median(total), statistics.median(added)
    print(
        ratio_table(
            [
                ("slice job + verdict, ranking, de-duplication", t, "slice job alone", p),
                ("verdict, ranking, de-duplication alone", a, "slice job alone", p),
            ]
        )
    )


if __name__ == "__main__":
    main()
