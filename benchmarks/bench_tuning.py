"""Does each performance knob still pay for itself? Each one on and off, same data, same run.

The jobs are bench_baseline_panel's, computed in process (read, compute, result; no HTTP):
the plain metrics job and the same job with the full baseline panel, on 1M binary rows.

- Per process (service/tuning.py): glibc ``mallopt`` (``keep_freed_memory``) and one BLAS
  thread (``single_threaded_blas``). Neither can be undone inside a process, so each
  configuration runs in a fresh process of its own, and the configurations take turns.
- Per job, toggled between runs in the worker configuration: the packed argsort
  (service/workers/sorting.py, against numpy's stable argsort), the sample-id digests in the
  Parquet footers (service/store/batch_files.py, against files without one), the job's
  threads (``job_threads`` 2 against 1) and, in a process without the BLAS limit, the
  baseline panel's own BLAS limit while its threads run.

Every job variant runs once to warm up, then all variants take turns ``--repeat`` times in
each of ``--rounds`` processes per configuration; the table shows the best time (wall or
CPU of the whole process, all threads) and the noise table how far the runs spread.

    .venv/bin/python benchmarks/bench_tuning.py [--rows 1000000] [--rounds 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import PANEL_METRICS, panel_baselines, panel_batches, parquet, ratio_table

#: Process configurations: which of the per-process knobs each one sets.
CONFIGS = {
    "worker": {"blas": True, "mallopt": True},  # as service/jobs/pool.py starts a worker
    "no_mallopt": {"blas": True, "mallopt": False},
    "no_blas_limit": {"blas": False, "mallopt": True},
}
#: The job variants each configuration times (name: job, toggles).
VARIANTS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "worker": {
        "plain": ("plain", ()),
        "panel": ("panel", ()),
        "plain, numpy argsort": ("plain", ("numpy_sort",)),
        "panel, numpy argsort": ("panel", ("numpy_sort",)),
        "panel, no id digests": ("panel", ("no_digests",)),
        "panel, 1 job thread": ("panel", ("one_thread",)),
    },
    "no_mallopt": {"plain": ("plain", ()), "panel": ("panel", ())},
    "no_blas_limit": {"plain": ("plain", ()), "panel": ("panel", ())},
}
Sample = tuple[float, float, int]  # wall seconds, CPU seconds (all threads), minor page faults


# -- one configuration, in its own process ------------------------------------------------------


def _numpy_sort_floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    return order, v[order]


@contextlib.contextmanager
def _patched(toggles: tuple[str, ...], store: object) -> Iterator[None]:
    """The job variant's knobs turned off, restored afterwards (set up outside the timing)."""
    with contextlib.ExitStack() as undo:

        def patch(owner: object, name: str, value: object) -> None:
            old = getattr(owner, name)
            setattr(owner, name, value)
            undo.callback(setattr, owner, name, old)

        if "numpy_sort" in toggles:
            from service.workers import sorting

            # every module that imported the packed sort by name
            for module in list(sys.modules.values()):
                if getattr(module, "__name__", "").startswith("service.") and module is not sorting:
                    if getattr(module, "sort_floats", None) is sorting.sort_floats:
                        patch(module, "sort_floats", _numpy_sort_floats)
                    if getattr(module, "argsort_floats", None) is sorting.argsort_floats:
                        patch(module, "argsort_floats", lambda v: _numpy_sort_floats(v)[0])
        if "no_digests" in toggles:
            files = store.files  # type: ignore[attr-defined]
            footer = files.footer
            patch(files, "footer", lambda path: (footer(path)[0], None))  # as files written without
        yield


def child(config: str, data_dir: Path, jobs: dict[str, str], repeat: int) -> dict[str, list[Sample]]:
    knobs = CONFIGS[config]
    from service.tuning import keep_freed_memory, single_threaded_blas

    # first thing, before the big imports, as in a worker process
    if knobs["mallopt"]:
        assert keep_freed_memory()
    if knobs["blas"]:
        single_threaded_blas()
    from service.jobs.evaluate import run_evaluation
    from service.settings import Settings
    from service.store import Store

    settings = Settings(data_dir=data_dir, workers=0)
    one_thread = settings.model_copy(update={"job_threads": 1})
    store = Store.open(settings)
    records = {name: store.meta.get_job(job_id) for name, job_id in jobs.items()}

    def measure(job: str, toggles: tuple[str, ...]) -> Sample:
        chosen = one_thread if "one_thread" in toggles else settings
        with _patched(toggles, store):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            cpu, wall = time.process_time(), time.perf_counter()
            run_evaluation(store, records[job], progress=lambda _f: None, settings=chosen)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        return wall, cpu, faults

    variants = VARIANTS[config]
    for job, toggles in variants.values():
        measure(job, toggles)  # warm-up
    samples: dict[str, list[Sample]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, (job, toggles) in variants.items():
            samples[name].append(measure(job, toggles))
    store.close()
    return samples


# -- the driver ---------------------------------------------------------------------------------


def _set_up(data_dir: Path, rows: int) -> dict[str, str]:
    """Store the panel's batches and queue the two jobs; their ids by name."""
    from schemas.evaluations import EvaluationCreate
    from service.ingest import ingest_body
    from service.jobs.submit import submit_evaluation
    from service.settings import Settings
    from service.store import Store

    settings = Settings(data_dir=data_dir, workers=0)
    store = Store.open(settings)
    spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    ids = {
        name: store.save_batch(ingest_body(parquet(t), "application/vnd.apache.parquet", spec)).id
        for name, t in panel_batches(rows).items()
    }
    plain = {"batch_id": ids["model"], "metrics": PANEL_METRICS}
    requests = {
        "plain": plain,
        "panel": plain | {"baselines": panel_baselines(ids["human"], ids["champion"])},
    }
    jobs = {
        name: submit_evaluation(store, settings, EvaluationCreate.model_validate(r)).id
        for name, r in requests.items()
    }
    store.close()
    return jobs


def _digest_cost(rows: int, repeat: int) -> tuple[float, float, float]:
    """Best times of the id digest a write adds, of the write itself, and of reading the ids the
    digest saves a panel job (one paired batch's)."""
    from service.store.batch_files import sample_id_digest

    table = panel_batches(rows)["model"]
    ids = table.column("sample_id")

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        write = best(lambda: pq.write_table(table, path, compression="snappy", row_group_size=256 * 1024))
        read = best(lambda: pq.read_table(path, columns=["sample_id"]))
    return best(lambda: sample_id_digest(ids)), write, read


def _run_child(config: str, data_dir: Path, jobs: dict[str, str], repeat: int) -> dict[str, list[Sample]]:
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "MALLOC_ARENA_MAX"):
        env.pop(name, None)  # each configuration sets its own knobs, nothing inherited
    done = subprocess.run(
        [sys.executable, __file__, "--child", config, "--data-dir", str(data_dir),
         "--jobs", json.dumps(jobs), "--repeat", str(repeat)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the {config} process failed:\n{done.stderr}")
    samples: dict[str, list[Sample]] = json.loads(done.stdout)
    return samples


def _best(samples: list[Sample], index: int) -> float:
    return min(s[index] for s in samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="processes per configuration, alternated")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each job variant per process")
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=json.loads, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.data_dir, args.jobs, args.repeat)))
        return

    digest, write, read = _digest_cost(args.rows, args.repeat)
    samples: dict[str, dict[str, list[Sample]]] = {c: {} for c in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="yardstick-bench-") as tmp:
        jobs = _set_up(Path(tmp), args.rows)
        for _ in range(args.rounds):
            for config in CONFIGS:
                for name, runs in _run_child(config, Path(tmp), jobs, args.repeat).items():
                    samples[config].setdefault(name, []).extend(runs)

    w, nm, nb = samples["worker"], samples["no_mallopt"], samples["no_blas_limit"]
    wall, cpu = 0, 1
    rows: list[tuple[str, float, str, float | None]] = []
    for job in ("plain", "panel"):
        rows.append((f"mallopt: {job} job, wall", _best(w[job], wall), "without", _best(nm[job], wall)))
    for job in ("plain", "panel"):
        for what, i in (("wall", wall), ("CPU", cpu)):
            rows.append(
                (f"one BLAS thread per process: {job} job, {what}", _best(w[job], i), "without",
                 _best(nb[job], i))
            )  # fmt: skip
    for what, i in (("wall", wall), ("CPU", cpu)):
        rows.append(
            (f"2 job threads: panel job, {what}", _best(w["panel"], i), "1 job thread",
             _best(w["panel, 1 job thread"], i))
        )  # fmt: skip
    rows.append(
        ("id digests: panel job, wall", _best(w["panel"], wall), "without",
         _best(w["panel, no id digests"], wall))
    )  # fmt: skip
    rows.append(("id digest: cost on each batch write", digest, "the Parquet write", write))
    rows.append(("id digest: cost on each batch write", digest, "reading the ids it saves", read))
    for job in ("plain", "panel"):
        rows.append(
            (f"packed argsort: {job} job, wall", _best(w[job], wall), "numpy stable argsort",
             _best(w[f"{job}, numpy argsort"], wall))
        )  # fmt: skip

    runs = args.rounds * args.repeat
    print(f"\n{args.rows:,} binary rows; best of {runs} runs ({args.rounds} processes x {args.repeat});")
    print("ours = with the knob, reference = without; below 1x the knob pays\n")
    print(ratio_table(rows))
    print("\nminor page faults per job (median): ", end="")
    print(", ".join(
        f"{config} {job} {statistics.median(s[2] for s in samples[config][job]):,.0f}"
        for config in ("worker", "no_mallopt") for job in ("plain", "panel")
    ))  # fmt: skip
    print("\nnoise: wall time of each variant, best / median / worst of its runs\n")
    print("| configuration | variant | best (s) | median (s) | worst (s) | worst/best |")
    print("|---|---|---:|---:|---:|---:|")
    for config, variants in samples.items():
        for name, runs_of in variants.items():
            times = sorted(s[wall] for s in runs_of)
            print(
                f"| {config} | {name} | {times[0]:.3f} | {statistics.median(times):.3f} | "
                f"{times[-1]:.3f} | {times[-1] / times[0]:.2f} |"
            )


if __name__ == "__main__":
    main()
