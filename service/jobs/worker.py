"""The job worker loop: claim, compute under a lease, store the result exactly once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from schemas.latency import JobStats
from schemas.results import EvaluationResult
from service.errors import NotFound, YardstickError
from service.integrations.webhooks import CallbackDispatcher
from service.jobs.evaluate import job_batches, run_evaluation
from service.jobs.lease import Lease, LeaseLost
from service.jobs.peak_memory import peak_mib, reset_peak
from service.settings import Settings
from service.store import Store
from service.store.records import JobRecord

log = logging.getLogger("yardstick.worker")

#: What a job does; every job is an evaluation today, and the log lines say so for when not.
JOB_KIND = "evaluation"


def default_worker_id(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


def job_stats(rows: int, seconds: float) -> JobStats:
    """What the evaluation cost this worker: its time, rows per second, and peak memory so far
    in the job (reset at its start: service/jobs/peak_memory.py)."""
    peak = peak_mib()
    return JobStats(
        duration_seconds=round(seconds, 6),
        rows_per_second=rows / seconds if seconds > 0 else 0.0,
        peak_memory_mib=None if peak is None else round(peak, 1),
    )


class JobWorker:
    """Runs jobs. Their callbacks are not sent here: the store queues them when a job ends and a
    :class:`CallbackDispatcher` delivers them (``callbacks``: this process's one, woken when a job
    of this worker ends; see ``service.jobs.pool``)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        worker_id: str | None = None,
        callbacks: CallbackDispatcher | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()
        self.callbacks = callbacks

    def run_once(self) -> JobRecord | None:
        """Claim and run one job; return it (as claimed), or None when there was no work."""
        job = self.store.meta.claim_job(self.worker_id, lease_seconds=self.settings.lease_seconds)
        if job is None:
            return None
        self._execute(job)
        if self.callbacks is not None:
            self.callbacks.wake()  # its callback, if any, is in the outbox now
        return job

    def run_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                job = self.run_once()
            except Exception:
                # The database may be briefly unavailable (restart, failover): back off, keep going.
                log.exception("worker %s could not claim a job", self.worker_id)
                job = None
            if job is None:
                stop.wait(self.settings.poll_seconds)

    def _execute(self, job: JobRecord) -> None:
        """Run ``job`` between a start and an end log line (see :meth:`_log_end`)."""
        rows = self._rows(job)
        log.info(
            "job started",
            extra={
                "job_id": job.id,
                "kind": JOB_KIND,
                "batch_id": job.batch_id,
                "rows": rows,
                "attempt": job.attempts,
                "worker_id": self.worker_id,
            },
        )
        reset_peak()
        started = time.perf_counter()
        status, result = self._run(job)
        if result is not None and result.verdict is not None:
            rows = result.verdict.rows
        self._log_end(job, status, rows, time.perf_counter() - started)

    def _run(self, job: JobRecord) -> tuple[str, EvaluationResult | None]:
        """Compute and store ``job``; return how it ended (``succeeded``, ``failed`` or ``dropped``:
        cancelled or taken over meanwhile) and its result."""
        lease = Lease(
            self.store.meta,
            job.id,
            self.worker_id,
            lease_seconds=self.settings.lease_seconds,
            heartbeat_seconds=self.settings.heartbeat_seconds,
        )
        with lease:
            try:
                # One version of every batch the job reads, from start to end; unpinned when it ends.
                with self.store.for_project(job.project).pinned(
                    job.id, job.attempts, job_batches(job)
                ) as store:
                    started = time.perf_counter()
                    result = run_evaluation(store, job, progress=lease.report, settings=self.settings)
                    result.job = job_stats(result.rows, time.perf_counter() - started)
            except LeaseLost:
                log.info("job %s was cancelled or taken over; dropping its work", job.id)
                return "dropped", None
            except YardstickError as exc:
                # the job's own input is at fault (a batch deleted meanwhile): no traceback needed
                log.warning("job failed", extra={"job_id": job.id, "error": str(exc)})
                return self._fail(job, str(exc)), None
            except Exception as exc:
                # never the exception's text: it may carry server paths (the log has it all)
                error = f"internal error ({type(exc).__name__}); the worker's log has the details"
                log.error("job failed", exc_info=True, extra={"job_id": job.id, "error": error})
                return self._fail(job, error), None
        if lease.lost or not self.store.meta.complete_job(
            job.id, self.worker_id, result.model_dump(mode="json")
        ):
            log.info("job %s finished but is no longer ours; its result was not stored", job.id)
            return "dropped", None
        return "succeeded", result

    def _rows(self, job: JobRecord) -> int | None:
        """The rows of the job's batch for its start line; None when the batch is gone."""
        try:
            return self.store.meta.get_batch(job.batch_id).rows
        except NotFound:
            return None

    def _log_end(self, job: JobRecord, status: str, rows: int | None, seconds: float) -> None:
        """The job's end line: how long it took and the most memory this process held meanwhile
        (service/jobs/peak_memory.py), the figure to size worker machines by."""
        peak = peak_mib()
        log.info(
            "job finished",
            extra={
                "job_id": job.id,
                "kind": JOB_KIND,
                "status": status,
                "rows": rows,
                "duration_seconds": round(seconds, 3),
                "peak_memory_mib": None if peak is None else round(peak, 1),
                "attempt": job.attempts,
                "worker_id": self.worker_id,
            },
        )

    def _fail(self, job: JobRecord, error: str) -> str:
        if not self.store.meta.fail_job(job.id, self.worker_id, error):
            log.info("job %s failed but is no longer ours; its failure was not stored", job.id)
            return "dropped"
        return "failed"
