"""A job's lease, kept alive by a heartbeat thread while the computation runs.

The computation reports progress through :meth:`Lease.report` (it never goes back; the job's
``stage`` is the band it is in, ``schemas.jobs.STAGES``); the heartbeat thread writes it to the
store and extends the lease. When the store says the job is no longer ours (cancelled, or taken
over after we stalled), the next ``report`` raises :class:`LeaseLost` so the computation stops
instead of finishing work nobody wants.
"""

from __future__ import annotations

import threading
from types import TracebackType

from service.store.base import MetadataStore


class LeaseLost(Exception):
    """The job was cancelled or re-assigned while we worked on it."""


class Lease:
    # Progress reaches the store at most this often; the lease itself is extended every
    # ``heartbeat_seconds``.
    PROGRESS_INTERVAL = 0.5

    def __init__(
        self,
        store: MetadataStore,
        job_id: str,
        worker_id: str,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
    ) -> None:
        self._store = store
        self._job_id = job_id
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._progress: float | None = None
        self._written: float | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def report(self, fraction: float) -> None:
        """Record progress (0..1); raise :class:`LeaseLost` if the job is no longer ours.

        Progress only moves forward: a lower fraction than one reported before is ignored (the
        store also keeps the highest value, across retries of the job)."""
        if self._lost.is_set():
            raise LeaseLost(self._job_id)
        current = self._progress
        self._progress = fraction if current is None else max(current, fraction)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        since_beat = 0.0
        while not self._stop.wait(self.PROGRESS_INTERVAL):
            since_beat += self.PROGRESS_INTERVAL
            progress = self._progress
            if since_beat < self._heartbeat_seconds and progress == self._written:
                continue
            try:
                alive = self._store.heartbeat(
                    self._job_id, self._worker_id, lease_seconds=self._lease_seconds, progress=progress
                )
            except Exception:
                # A transient database error must not kill the job: the lease has slack
                # (lease_seconds > heartbeat_seconds) and the next beat retries.
                continue
            since_beat = 0.0
            self._written = progress
            if not alive:
                self._lost.set()
                return
