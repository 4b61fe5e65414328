"""The packed-key argsort (service/workers/sorting.py) against numpy's argsort, 1M values.

Every ranking metric, the risk-coverage curve and the slice rankings sort their scores once;
this is that sort. Both results are checked equal to numpy's stable argsort before timing.

    .venv/bin/python benchmarks/bench_sorting.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import median_time, ratio_table

from service.workers.sorting import argsort_floats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    n = parser.parse_args().rows
    rng = np.random.default_rng(0)
    cases = {
        "float64 probabilities (sklearn predict_proba)": rng.random(n),
        "float32 probabilities (most model servers)": rng.random(n).astype(np.float32).astype(np.float64),
        "scores rounded to 3 decimals (many ties)": rng.random(n).round(3),
        "regression errors, signed": rng.normal(size=n),
    }
    rows = []
    for name, values in cases.items():
        stable = np.argsort(values, kind="stable")
        assert np.array_equal(argsort_floats(values), stable), name
        ours = median_time(lambda v=values: argsort_floats(v), repeat=7)
        quick = median_time(lambda v=values: np.argsort(v), repeat=7)
        rows.append((f"{name}: argsort_floats", ours, "np.argsort (quicksort, unstable)", quick))
        slow = median_time(lambda v=values: np.argsort(v, kind="stable"), repeat=3)
        rows.append((f"{name}: argsort_floats", ours, "np.argsort(kind='stable')", slow))
    print(f"\n{n:,} values\n")
    print(ratio_table(rows))


if __name__ == "__main__":
    main()
