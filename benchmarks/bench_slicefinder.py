"""The slice finder on 1M rows x 6 categorical columns, against full enumeration and the `sliceline` package.

Data: 1M rows, slice columns of 2, 3, 5, 10, 20, 50 values (``common.SLICE_CARDINALITIES``),
0/1 errors at 5% with a planted slice ``slice_2 == c2_1 & slice_3 == c3_4`` (2% of
rows) at 20%. Times, in the same run:

* ours: ``find_slices`` at depth 2 and 3 (defaults: every slice with ``min_support`` rows
  tested, Benjamini-Hochberg, ``min_effect`` 0.25, ranked by impact), and ``tree_slices``;
* plain numpy enumeration of every slice to the same depth (a mixed-radix ``bincount``
  of count and error sum per column combination over the rows): what the counts alone
  cost without the joint-cell reduction; the number of slices with ``min_support`` rows
  must equal the number ours tests;
* the ``sliceline`` package (the peer, SliceLine's score at weight 0.95), in a separate
  venv and a child process with an address-space cap (``--peer-memory-gb``) and a
  timeout, so running out of memory cannot take the machine down; its peak RSS comes
  from ``wait4``.

Then the top slices of each. A second check (``--check-rows`` rows) adds a small,
severe slice, ``slice_0 == c0_1 & slice_2 == c2_3 & slice_4 == c4_7`` (0.5% of rows at
4x the error), and shows where ours (depth 3) and the package (depth 3, weight 0.95)
rank it.

    python3 -m venv /tmp/slvenv && /tmp/slvenv/bin/pip install sliceline numpy pandas scikit-learn pyarrow
    .venv/bin/python benchmarks/bench_slicefinder.py [--rows 1000000] [--peer-python /tmp/slvenv/bin/python]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SLICE_CARDINALITIES, median_time, ratio_table

from service.workers.slicefinder import find_slices, tree_slices

TOP_K = 10
MIN_SUPPORT = 30
WEIGHT = 0.95

PEER_SCRIPT = r"""
import json, resource, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")  # "numba not available"
from sliceline import Slicefinder

x = np.load(sys.argv[1]); errors = np.load(sys.argv[2]); depth = int(sys.argv[3])
out = {"depth": depth}
start = time.perf_counter()
try:
    sf = Slicefinder(alpha=float(sys.argv[4]), k=int(sys.argv[5]), max_l=depth, min_sup=int(sys.argv[6]),
                     verbose=False)
    sf.fit(x, errors)
    out["seconds"] = time.perf_counter() - start
    out["slices"] = [
        {"conditions": {str(j): int(v) for j, v in enumerate(row) if v is not None}, **stats}
        for row, stats in zip(sf.top_slices_.tolist(), sf.top_slices_statistics_)
    ]
except MemoryError:
    out["error"] = "MemoryError"
    out["seconds"] = time.perf_counter() - start
out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def make_data(
    n: int, seed: int = 0, *, small: bool = False
) -> tuple[np.ndarray, list[tuple[str, np.ndarray, list[str]]]]:
    rng = np.random.default_rng(seed)
    codes = [rng.integers(0, card, n).astype(np.intp) for card in SLICE_CARDINALITIES]
    planted = (codes[2] == 1) & (codes[3] == 4)
    rate = np.where(planted, 0.20, 0.05)
    if small:
        rate = np.where((codes[0] == 1) & (codes[2] == 3) & (codes[4] == 7), 0.20, rate)
    errors = (rng.random(n) < rate).astype(np.float64)
    columns = [
        (f"slice_{k}", c, [f"c{k}_{v}" for v in range(card)])
        for k, (c, card) in enumerate(zip(codes, SLICE_CARDINALITIES, strict=True))
    ]
    return errors, columns


def enumerate_all(errors: np.ndarray, codes: list[np.ndarray], depth: int) -> tuple[int, int]:
    """Every slice to ``depth``: per column combination a mixed-radix key and two bincounts over the rows.

    Returns the number of slices and of those with ``MIN_SUPPORT`` rows.
    """
    n = errors.size
    cards = [int(c.max()) + 1 for c in codes]
    slices = tested = 0
    for d in range(1, depth + 1):
        for combo in itertools.combinations(range(len(codes)), d):
            key = np.zeros(n, dtype=np.intp)
            size = 1
            for j in combo:
                key *= cards[j]
                key += codes[j]
                size *= cards[j]
            count = np.bincount(key, minlength=size)
            np.bincount(key, weights=errors, minlength=size)
            slices += size
            tested += int((count >= MIN_SUPPORT).sum())
    return slices, tested


def run_peer(
    python: str,
    x_path: str,
    e_path: str,
    depth: int,
    memory_gb: float,
    timeout: float,
    weight: float = WEIGHT,
) -> dict[str, Any]:
    """``sliceline`` in a child with an address-space cap; wall time and peak RSS from ``wait4``."""
    cap = int(memory_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    args = [python, "-c", PEER_SCRIPT, x_path, e_path, str(depth), str(weight), str(TOP_K), str(MIN_SUPPORT)]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, preexec_fn=limit)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = -9
                return {
                    "error": f"timeout after {timeout:.0f} s",
                    "wall": time.perf_counter() - start,
                    "peak_gb": usage.ru_maxrss / 2**20,
                }
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, errtext = out.read().decode(), err.read().decode()
    result: dict[str, Any] = {"wall": wall, "peak_gb": usage.ru_maxrss / 2**20}
    if proc.returncode != 0 or not text.strip():
        tail = errtext.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
        result["error"] = f"exit code {proc.returncode}: {tail[0][:200]}"
        return result
    result |= json.loads(text.strip().splitlines()[-1])
    return result


def peak_traced(fn: Any) -> float:
    """Peak bytes allocated (numpy buffers included) while ``fn`` runs, in MB."""
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def ours_top(result: Any) -> list[tuple[dict[str, Any], float, int, float]]:
    return [(s.conditions, s.score or 0.0, s.n, s.error) for s in result.slices]


def peer_top(peer: dict[str, Any]) -> list[tuple[dict[str, Any], float, int, float]]:
    out = []
    for s in peer.get("slices", []):
        cond = {f"slice_{j}": f"c{j}_{v}" for j, v in s["conditions"].items()}
        out.append((cond, s["slice_score"], int(s["slice_size"]), s["slice_average_error"]))
    return out


def show(title: str, rows: list[tuple[dict[str, Any], float, int, float]]) -> None:
    print(f"\n{title}")
    for cond, score, n, err in rows:
        text = " & ".join(f"{k}={v}" for k, v in cond.items())
        print(f"  score {score:8.4f}  n {n:7d}  error {err:.4f}  {text}")


def rank_of(rows: list[tuple[dict[str, Any], float, int, float]], conditions: dict[str, str]) -> str:
    for i, row in enumerate(rows):
        if row[0] == conditions:
            return f"#{i + 1}"
    return "not found"


PLANTED = {"slice_2": "c2_1", "slice_3": "c3_4"}
SMALL = {"slice_0": "c0_1", "slice_2": "c2_3", "slice_4": "c4_7"}


def cross_check(args: argparse.Namespace, tmp: str) -> list[str]:
    """Where ours and the package (weight 0.95) rank a small severe slice, at depth 3."""
    errors, columns = make_data(args.check_rows, seed=1, small=True)
    x_path, e_path = f"{tmp}/x_check.npy", f"{tmp}/e_check.npy"
    np.save(x_path, np.column_stack([c for _, c, _ in columns]).astype(np.int64))
    np.save(e_path, errors)
    ours = ours_top(find_slices(errors, columns, max_conditions=3, top_k=TOP_K, min_support=MIN_SUPPORT))
    lines = [f"  ours: small slice {rank_of(ours, SMALL)}, 2% slice {rank_of(ours, PLANTED)}"]
    peer = run_peer(args.peer_python, x_path, e_path, 3, args.peer_memory_gb, args.peer_timeout)
    if "slices" not in peer:
        lines.append(f"  sliceline: {peer.get('error')}")
    else:
        theirs = peer_top(peer)
        lines.append(
            f"  sliceline (weight {WEIGHT}): small slice {rank_of(theirs, SMALL)}, "
            f"2% slice {rank_of(theirs, PLANTED)} ({peer['seconds']:.2f} s, {peer['peak_gb']:.2f} GB)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peer-python", default="/tmp/slvenv/bin/python")
    parser.add_argument("--peer-memory-gb", type=float, default=12.0)
    parser.add_argument("--peer-timeout", type=float, default=600.0)
    parser.add_argument("--peer-depths", default="2,3", help="depths to run sliceline at; empty: none")
    parser.add_argument(
        "--check-rows",
        type=int,
        default=200_000,
        help="rows of the small-slice check (with sliceline); 0: none",
    )
    args = parser.parse_args()

    errors, columns = make_data(args.rows)
    codes = [c for _, c, _ in columns]
    print(
        f"{args.rows} rows, cardinalities {SLICE_CARDINALITIES}, error rate {errors.mean():.4f}, "
        f"planted slice_2=c2_1 & slice_3=c3_4 ({((codes[2] == 1) & (codes[3] == 4)).mean():.2%} of rows)"
    )

    ours: dict[int, Any] = {}
    ours_s: dict[int, float] = {}
    enum_s: dict[int, float] = {}
    enum_n: dict[int, int] = {}
    for depth in (2, 3):
        search = partial(
            find_slices, errors, columns, max_conditions=depth, top_k=TOP_K, min_support=MIN_SUPPORT
        )
        ours[depth] = search()
        ours_s[depth] = median_time(search, repeat=args.repeat)
        enum_n[depth], enum_tested = enumerate_all(errors, codes, depth)
        enum_s[depth] = median_time(partial(enumerate_all, errors, codes, depth), repeat=args.repeat)
        assert enum_tested == ours[depth].candidates_tested, (enum_tested, ours[depth].candidates_tested)
    tree_s = {d: median_time(partial(tree_slices, errors, columns, max_depth=d), repeat=3) for d in (2, 3)}
    memory_mb = peak_traced(lambda: find_slices(errors, columns, max_conditions=3, top_k=TOP_K))

    peers: dict[int, dict[str, Any]] = {}
    depths = [int(d) for d in args.peer_depths.split(",") if d.strip()]
    if depths and not Path(args.peer_python).exists():
        print(f"\nsliceline not run: {args.peer_python} missing (see the module docstring)")
        depths = []
    checks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-slicefinder-") as tmp:
        x_path, e_path = f"{tmp}/x.npy", f"{tmp}/e.npy"
        np.save(x_path, np.column_stack(codes).astype(np.int64))
        np.save(e_path, errors)
        for depth in depths:
            print(f"running sliceline at depth {depth} (cap {args.peer_memory_gb:g} GB) ...", flush=True)
            peers[depth] = run_peer(
                args.peer_python, x_path, e_path, depth, args.peer_memory_gb, args.peer_timeout
            )
        if depths and args.check_rows:
            print(f"running the small-slice check on {args.check_rows} rows ...", flush=True)
            checks = cross_check(args, tmp)

    rows: list[tuple[str, float, str, float | None]] = []
    for depth in (2, 3):
        tested = ours[depth].candidates_tested
        rows.append(
            (
                f"find_slices depth {depth} ({tested} tested)",
                ours_s[depth],
                f"numpy enumeration of {enum_n[depth]} slices",
                enum_s[depth],
            )
        )
    for depth in (2, 3):
        if depth in peers:
            peer = peers[depth]
            ok = "error" not in peer
            name = f"sliceline depth {depth}" + ("" if ok else f" ({peer['error']})")
            rows.append((f"find_slices depth {depth}", ours_s[depth], name, peer["seconds"] if ok else None))
    for depth in (2, 3):
        rows.append((f"tree_slices depth {depth}", tree_s[depth], "-", None))
    print()
    print(ratio_table(rows))
    for depth, peer in peers.items():
        if "error" not in peer:
            print(f"sliceline at depth {depth} takes {peer['seconds'] / ours_s[depth]:.0f}x as long as ours")

    levels = ours[3].details["levels"]
    print(f"\nfind_slices depth 3: {ours[3].candidates_tested} slices tested; per level: {levels}")
    print(f"find_slices depth 3 summary: {ours[3].summary}")
    print(f"find_slices depth 3 peak traced memory: {memory_mb:.0f} MB")
    for depth, peer in peers.items():
        status = peer.get("error", "ok")
        secs = f"{peer['seconds']:.1f} s fit" if "seconds" in peer else "-"
        wall, peak = peer["wall"], peer["peak_gb"]
        print(f"sliceline depth {depth}: {status}; {secs}, {wall:.1f} s wall, peak RSS {peak:.2f} GB")

    for depth in (2, 3):
        show(f"ours, depth {depth} (top {TOP_K}, ranked by impact):", ours_top(ours[depth]))
        if depth in peers and "slices" in peers[depth]:
            show(f"sliceline, depth {depth} (weight {WEIGHT}):", peer_top(peers[depth]))
    if checks:
        print(f"\nsmall severe slice {SMALL} (0.5% of {args.check_rows} rows at 4x), depth 3:")
        print("\n".join(checks))
    top = ours[3].slices[0]
    assert top.conditions == PLANTED, top.conditions
    print(
        f"\nplanted slice found first: {top.conditions} n={top.n} error={top.error:.4f} "
        f"rest {top.rest_error:.4f} p={top.p_value:.3g} significant={top.significant}"
    )


if __name__ == "__main__":
    main()
