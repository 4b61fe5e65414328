"""Worker processes: CPU-bound evaluation never runs on the API's event loop.

``serve`` starts a pool next to the API; ``yardstick worker`` runs a pool alone. Each
process runs :class:`JobWorker` against the shared store, and a thread delivering the
callback outbox (:class:`~service.integrations.webhooks.CallbackDispatcher`). A supervisor
thread restarts processes that die (for example killed for memory); the job they held is
retried once its lease runs out. Children die with their parent (``PR_SET_PDEATHSIG`` on Linux, and a
parent-pid check elsewhere), so ``kill -9`` of the server leaves no orphan holding work.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.process import BaseProcess

from service.logs import configure_logging
from service.settings import Settings
from service.tuning import tune_worker_process

log = logging.getLogger("yardstick.pool")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def worker_process_main(settings_json: str, index: int, parent_pid: int) -> None:
    _die_with_parent()
    # Imported here so the parent (the API process) does not pay for the worker modules.
    from service.integrations.outbound import OutboundPolicy
    from service.integrations.webhooks import CallbackDispatcher
    from service.jobs.worker import JobWorker, default_worker_id
    from service.store import SqlStore, Store

    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings.log_format)
    log.info("worker process tuning: %s", tune_worker_process())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_parent() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    store = Store.open(settings)
    # Callbacks go out from their own thread (and database connections): a slow receiver never
    # holds up the jobs (service/integrations/webhooks.py).
    outbox = SqlStore.from_url(settings.resolved_database_url)
    callbacks = CallbackDispatcher(outbox, OutboundPolicy.from_settings(settings.outbound_allow))
    delivering = callbacks.start(stop)
    worker = JobWorker(store, settings, worker_id=default_worker_id(index), callbacks=callbacks)
    try:
        worker.run_until(stop)
    finally:
        stop.set()
        callbacks.wake()
        delivering.join(5)
        outbox.dispose()
        store.close()


class WorkerPool:
    def __init__(self, settings: Settings, size: int) -> None:
        self.settings = settings
        self.size = size
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self._procs = [self._spawn(i) for i in range(self.size)]
        self._supervisor = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)
        self._supervisor.start()

    def _spawn(self, index: int) -> BaseProcess:
        proc = self._ctx.Process(
            target=worker_process_main,
            args=(self.settings.model_dump_json(), index, os.getpid()),
            name=f"yardstick-worker-{index}",
            daemon=True,
        )
        proc.start()
        return proc

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self._procs):
                if not proc.is_alive() and not self._stopping.is_set():
                    log.warning(
                        "worker process %s exited with %s; starting a new one", proc.name, proc.exitcode
                    )
                    self._procs[i] = self._spawn(i)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: finish the current claim check and exit
        for proc in self._procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def wait(self) -> None:
        """Block until a signal stops the pool (``yardstick worker``)."""
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        self.stop()
