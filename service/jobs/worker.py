"""The job worker loop: claim, compute under a lease, store the result exactly once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from service.errors import YardstickError
from service.integrations.outbound import OutboundPolicy
from service.integrations.webhooks import job_payload, notify
from service.jobs.evaluate import run_evaluation
from service.jobs.lease import Lease, LeaseLost
from service.settings import Settings
from service.store import Store
from service.store.records import JobRecord

log = logging.getLogger("yardstick.worker")


def default_worker_id(index: int = 0) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{index}"


class JobWorker:
    def __init__(self, store: Store, settings: Settings, *, worker_id: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id or default_worker_id()

    def run_once(self) -> JobRecord | None:
        """Claim and run one job; return it (as claimed), or None when there was no work."""
        job = self.store.meta.claim_job(self.worker_id, lease_seconds=self.settings.lease_seconds)
        if job is None:
            return None
        self._execute(job)
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
                result = run_evaluation(self.store, job, progress=lease.report, settings=self.settings)
            except LeaseLost:
                log.info("job %s was cancelled or taken over; dropping its work", job.id)
                return
            except YardstickError as exc:
                self._fail(job, str(exc))
                return
            except Exception as exc:
                log.error("job %s failed:\n%s", job.id, traceback.format_exc())
                self._fail(job, f"internal error: {type(exc).__name__}: {exc}")
                return
        if lease.lost or not self.store.meta.complete_job(
            job.id, self.worker_id, result.model_dump(mode="json")
        ):
            log.info("job %s finished but is no longer ours; its result was not stored", job.id)
            return
        self._notify(job, "succeeded", gates_passed=result.gates.passed, error=None)

    def _fail(self, job: JobRecord, error: str) -> None:
        if self.store.meta.fail_job(job.id, self.worker_id, error):
            self._notify(job, "failed", gates_passed=None, error=error)

    def _notify(self, job: JobRecord, status: str, *, gates_passed: bool | None, error: str | None) -> None:
        """Tell the request's callback_url, once the outcome is stored (only the lease holder gets here)."""
        url = job.request.get("callback_url")
        if not url:
            return
        payload = job_payload(
            job.id,
            status,
            job.batch_id,
            model={"name": job.model_name, "version": job.model_version},
            gates_passed=gates_passed,
            error=error,
        )
        notify(url, payload, policy=OutboundPolicy.from_settings(self.settings.outbound_allow))
