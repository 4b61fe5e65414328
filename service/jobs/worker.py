"""The job worker loop: claim, compute under a lease, store the result exactly once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from service.errors import YardstickError
from service.integrations.webhooks import CallbackDispatcher
from service.jobs.evaluate import job_batches, run_evaluation
from service.jobs.lease import Lease, LeaseLost
from service.settings import Settings
from service.store import Store
from service.store.records import JobRecord

log = logging.getLogger("yardstick.worker")


def default_worker_id(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


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
        log.info("worker %s running job %s (attempt %d)", self.worker_id, job.id, job.attempts)
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
                    result = run_evaluation(store, job, progress=lease.report, settings=self.settings)
            except LeaseLost:
                log.info("job %s was cancelled or taken over; dropping its work", job.id)
                return
            except YardstickError as exc:
                self._fail(job, str(exc))
                return
            except Exception as exc:
                log.error("job %s failed:\n%s", job.id, traceback.format_exc())
                # never the exception's text: it may carry server paths (the log has it all)
                self._fail(job, f"internal error ({type(exc).__name__}); the worker's log has the details")
                return
        if lease.lost or not self.store.meta.complete_job(
            job.id, self.worker_id, result.model_dump(mode="json")
        ):
            log.info("job %s finished but is no longer ours; its result was not stored", job.id)

    def _fail(self, job: JobRecord, error: str) -> None:
        if not self.store.meta.fail_job(job.id, self.worker_id, error):
            log.info("job %s failed but is no longer ours; its failure was not stored", job.id)
