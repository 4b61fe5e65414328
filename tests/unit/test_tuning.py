"""Process tuning (service/tuning.py): what each knob reports, and that it is in effect in real
worker processes, spawned the way the pool spawns them."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from threadpoolctl import threadpool_info

from service import tuning


def _blas_threads() -> list[int]:
    """The thread count of every BLAS library of the calling process (numpy's OpenBLAS)."""
    import numpy  # noqa: F401 - loads OpenBLAS (a no-op where it is loaded already)

    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]


def _page_faults_of_a_second_array() -> int:
    """Minor page faults of allocating a 16 MiB array once one of that size was freed."""
    import resource

    import numpy as np

    first = np.ones(2_000_000)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = np.ones(2_000_000)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


def test_keep_freed_memory_reports_false_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert tuning.keep_freed_memory() is False


def test_keep_freed_memory_reports_false_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    """musl (Alpine) has no libc.so.6, and another C library may have no mallopt."""

    def no_glibc(name: str, *args: object, **kwargs: object) -> object:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_glibc)
    assert tuning.keep_freed_memory() is False

    class NoMallopt:
        def __init__(self, name: str) -> None:
            self.name = name

        def __getattr__(self, attribute: str) -> Any:
            raise AttributeError(attribute)

    monkeypatch.setattr(ctypes, "CDLL", NoMallopt)
    assert tuning.keep_freed_memory() is False


def test_keep_freed_memory_reports_false_when_a_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    class RefusingLibc:
        def __init__(self, name: str) -> None:
            pass

        def mallopt(self, option: int, value: int) -> int:
            calls.append((option, value))
            return 0 if option == -1 else 1  # glibc returns 0 for a setting it refuses

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ctypes, "CDLL", RefusingLibc)
    assert tuning.keep_freed_memory() is False
    assert (-3, tuning.MMAP_THRESHOLD) in calls


@pytest.fixture
def two_blas_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spawned children start OpenBLAS with two threads (inherited environment), as they would on
    any machine with two cores or more, so the limit has something to change."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("OpenBLAS never starts more threads than there are cores")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")


@pytest.mark.usefixtures("two_blas_threads")
def test_the_blas_limit_is_in_effect_in_a_spawned_worker_process() -> None:
    spawn = multiprocessing.get_context("spawn")  # how service/jobs/pool.py starts its workers
    with spawn.Pool(1) as untuned:
        assert untuned.apply(_blas_threads) == [2]  # otherwise the next assertion proves nothing
    with spawn.Pool(1, initializer=tuning.tune_worker_process) as tuned:
        assert tuned.apply(_blas_threads) == [1]
        # a worker thread of the process, as the job's own threads are, sees the same limit
        assert tuned.apply(_blas_threads_from_another_thread) == [1]


def _blas_threads_from_another_thread() -> list[int]:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.extend(_blas_threads()))
    thread.start()
    thread.join()
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_a_tuned_process_reuses_freed_memory_without_page_faults() -> None:
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(1) as untuned:
        # glibc's default maps a 16 MiB array afresh and faults its pages in (hundreds of faults
        # where numpy gets huge pages, 4096 of 4 KiB without)
        assert untuned.apply(_page_faults_of_a_second_array) > 100
    with spawn.Pool(1, initializer=tuning.tune_worker_process) as tuned:
        assert tuned.apply(_page_faults_of_a_second_array) < 10


@pytest.mark.usefixtures("two_blas_threads")
def test_yardstick_worker_processes_tune_themselves(tmp_path: Path) -> None:
    """The real ``yardstick worker``: each process it starts logs the tuning in effect."""
    script = Path(sys.executable).parent / "yardstick"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]
    env = os.environ | {"YARDSTICK_DATA_DIR": str(tmp_path), "YARDSTICK_WORKERS": "1"}
    env.pop("YARDSTICK_DATABASE_URL", None)
    proc = subprocess.Popen([*command, "worker"], env=env, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(60, proc.kill)  # a worker that never logs fails the test, not hangs it
    guard.start()
    try:
        assert proc.stderr is not None
        line = next((line for line in proc.stderr if "worker process tuning" in line), "")
    finally:
        guard.cancel()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert "Tuning(blas_threads=1, keeps_freed_memory=True)" in line, line
