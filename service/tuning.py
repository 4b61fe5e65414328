"""Process tuning: the settings a worker process makes once, for good, before its first job.

A worker process (:func:`service.jobs.pool.worker_process_main`) calls
:func:`tune_worker_process` before it claims a job; settings that last as long as the
process belong here and nowhere else. Each knob is kept because ``benchmarks/bench_tuning.py``
still shows it paying for itself; its docstring gives the figure (1M binary rows on 2 cores
shared with other work, best of 10-15 runs of each job; the range is over three runs of the
benchmark, which is noisy).

The other speed-ups are not per process and sit next to the code they speed up, each with
its figure: the packed argsort (``service/workers/sorting.py``) and the sample-id digests in
Parquet footers (``service/store/batch_files.py``). The threads of one job
(``Settings.job_threads``, used by the baseline panel) pay too: with two, the job with the
full panel takes 0.58-0.69x the wall time it takes with one, for 0.93-1.08x the CPU time.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MiB = 1 << 20
#: Arrays below this size come from the heap, not from a mapping of their own.
MMAP_THRESHOLD = 64 * _MiB
#: Freed heap memory kept for reuse instead of being returned to the system.
TRIM_THRESHOLD = 256 * _MiB
#: Extra memory asked of the system whenever the heap grows, so growing it is rare.
TOP_PAD = 64 * _MiB


@dataclass(frozen=True)
class Tuning:
    """What :func:`tune_worker_process` changed (for the log and the tests)."""

    blas_threads: int | None
    keeps_freed_memory: bool


def single_threaded_blas() -> int | None:
    """Limit the BLAS libraries loaded in this process to one thread, for good.

    Our BLAS calls are million-row dot products, bound by memory, not by cores. OpenBLAS'
    extra threads spin after each call, taking CPU from the other worker processes and from
    the job's own threads (``YARDSTICK_JOB_THREADS``). With one thread the plain metrics job
    takes 0.61-0.67x the CPU time (0.57-0.97x the wall time) it takes with OpenBLAS' default
    of a thread per core, and the job with the full baseline panel 0.66-0.98x the wall time.

    Returns the BLAS threads in effect afterwards, as the libraries report them (1), or None
    when no BLAS library is loaded.
    """
    import numpy  # noqa: F401 - loads OpenBLAS, so that there is a pool to limit
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    threads = [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(threads) if threads else None


def keep_freed_memory() -> bool:
    """Let a worker process reuse the memory of one job's arrays for the next ones.

    By default glibc gives each array above 128 KiB (a threshold that grows to at most
    32 MiB) its own mapping and returns it to the system when freed, so the next array of
    that size page-faults its memory in again. Serving arrays below 64 MiB from the heap and
    keeping up to 256 MiB of freed heap costs at most that much idle memory, and makes the
    plain metrics job take 0.81-0.89x the time and the job with the full baseline panel
    0.57-0.78x (its page faults: 2,900-4,600 instead of about 12,000).

    Returns True when every setting took, False where there is no glibc (nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        settings = (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (_M_TOP_PAD, TOP_PAD),
        )
        return all(libc.mallopt(option, value) == 1 for option, value in settings)
    except (OSError, AttributeError):
        return False  # musl and other C libraries: no mallopt


def tune_worker_process() -> Tuning:
    """Every per-process setting of a worker process; call it before the first job."""
    return Tuning(blas_threads=single_threaded_blas(), keeps_freed_memory=keep_freed_memory())
