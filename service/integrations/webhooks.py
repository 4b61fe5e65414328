"""Job notifications: POST a short summary to the request's ``callback_url`` when a job ends.

Every ending is put in the callback outbox (the ``callbacks`` table) by the transaction that ends
the job: a result stored, a failure, a cancel (from the API), or the store's reaper failing a job
whose workers kept dying. :class:`CallbackDispatcher` runs in a thread of each worker process and
delivers due callbacks, several at a time, off the path of the jobs: a slow or dead receiver never
delays the next job. A callback whose receiver does not answer, answers 429 or 5xx is tried again
after about 1, 5, 30, 120 and 600 seconds (6 attempts over about 13 minutes; each wait jittered, a
receiver's Retry-After honoured up to 600 s), then given up; another 4xx or a refused address is
given up at once. The rule is the model-endpoint client's too (:mod:`service.integrations.retry`);
here the waits are kept in the outbox row, not slept through. The row keeps the state
(``delivered`` or ``failed``), the attempts and the last error. Delivery goes through the
outbound-safety client (private and loopback addresses refused unless
``YARDSTICK_OUTBOUND_ALLOW`` names them). The result is stored before the notification, so a
receiver that misses one can still poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from service.integrations.outbound import (
    OutboundBlocked,
    OutboundClient,
    OutboundError,
    OutboundPolicy,
    outbound_client,
    post_json,
)
from service.integrations.retry import RetryPolicy
from service.store.sql import CallbackRecord

log = logging.getLogger("yardstick.webhooks")
TIMEOUT_SECONDS = 10.0
#: Waits before the 2nd, 3rd, ... attempt (each drawn in 80-100 % of it); one more attempt than entries.
RETRY_SECONDS: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0)
#: The longest Retry-After a receiver may ask for (the longest scheduled wait); longer gives up.
MAX_RETRY_AFTER_SECONDS = 600.0
#: No retry is scheduled later than this after the job ended: a notification that late tells the
#: receiver nothing polling would not, and the outbox row should come to rest.
DEADLINE_SECONDS = 3600.0
#: Callbacks one worker process delivers at once.
CONCURRENCY = 8
#: How often an idle dispatcher looks for due callbacks (a job ending in its process wakes it).
POLL_SECONDS = 0.5


class CallbackOutbox(Protocol):
    """What the dispatcher needs of the store (:class:`service.store.sql.SqlStore`)."""

    def claim_callbacks(self, *, limit: int, hold_seconds: float) -> list[CallbackRecord]: ...
    def finish_callback(
        self, job_id: str, attempt: int, *, error: str | None, retry_at: datetime | None
    ) -> bool: ...


def job_payload(
    job_id: str,
    status: str,
    batch_id: str,
    *,
    model: dict[str, str],
    gates_passed: bool | None,
    error: str | None,
) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "status": status,
        "batch_id": batch_id,
        "model": model,
        "gates_passed": gates_passed,
        "error": error,
        "job_url": f"/v1/jobs/{job_id}",
        "result_url": f"/v1/jobs/{job_id}/result" if status == "succeeded" else None,
    }


def callback_payload(record: CallbackRecord) -> dict[str, Any]:
    return job_payload(
        record.job_id,
        record.status,
        record.batch_ref,
        model={"name": record.model_name, "version": record.model_version},
        gates_passed=record.gates_passed if record.status == "succeeded" else None,
        error=record.error if record.status == "failed" else None,
    )


async def send_once(client: OutboundClient, url: str, payload: dict[str, Any]) -> Exception | None:
    """One delivery attempt: None when delivered, else how it failed."""
    try:
        await post_json(client, url, payload, decode=False)
    except Exception as exc:  # a notification must never take its deliverer down
        return exc
    return None


def _describe(failure: Exception) -> str:
    if isinstance(failure, OutboundBlocked | OutboundError):
        return str(failure)  # written to name the host and the cause, never the body
    return f"{type(failure).__name__}: {failure}"


class CallbackDispatcher:
    """Delivers the callback outbox with retries; :meth:`start` runs it in a daemon thread."""

    def __init__(
        self,
        outbox: CallbackOutbox,
        policy: OutboundPolicy,
        *,
        retry_seconds: Sequence[float] = RETRY_SECONDS,
        timeout: float = TIMEOUT_SECONDS,
        concurrency: int = CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.policy = policy
        self.retry = RetryPolicy(
            tuple(retry_seconds), max_retry_after=MAX_RETRY_AFTER_SECONDS, deadline=DEADLINE_SECONDS
        )
        #: the jitter's source: seeded in tests, never the global generator
        self.rng = rng if rng is not None else random.Random()
        self.timeout = timeout
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        # a claimed row is due again after this long (its deliverer died mid-attempt)
        self.hold_seconds = timeout + 30.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    @property
    def max_attempts(self) -> int:
        return self.retry.max_attempts

    def wake(self) -> None:
        """Look for due callbacks now (a job just ended in this process); safe from any thread."""
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(woken.set)

    def deliver_due(self) -> int:
        """One round, in the calling thread: attempt every due callback (up to ``concurrency``)
        and record the outcomes; return how many were attempted."""

        async def round_() -> int:
            async with self._client() as client:
                records = await asyncio.to_thread(
                    self.outbox.claim_callbacks, limit=self.concurrency, hold_seconds=self.hold_seconds
                )
                await asyncio.gather(*(self._deliver(client, r) for r in records))
                return len(records)

        return asyncio.run(round_())

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run_until, args=(stop,), name="callbacks", daemon=True)
        thread.start()
        return thread

    def run_until(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set, each callback in its own task: a slow receiver holds
        one of the ``concurrency`` places, not the others."""
        asyncio.run(self._run(stop))

    async def _run(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._woken = asyncio.Event()
        in_flight: set[asyncio.Task[None]] = set()
        try:
            async with self._client() as client:
                while not stop.is_set():
                    self._woken.clear()
                    room = self.concurrency - len(in_flight)
                    records: list[CallbackRecord] = []
                    if room > 0:
                        try:
                            records = await asyncio.to_thread(
                                self.outbox.claim_callbacks, limit=room, hold_seconds=self.hold_seconds
                            )
                        except Exception:  # the database may be briefly away: try again later
                            log.exception("could not read the callback outbox")
                    for record in records:
                        task = asyncio.create_task(self._deliver(client, record))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                        task.add_done_callback(lambda _t: self._woken.set() if self._woken else None)
                    if records and len(records) == room:
                        continue  # more may be due
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), self.poll_seconds)
                for task in in_flight:
                    task.cancel()
                await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            self._loop = self._woken = None

    def _client(self) -> OutboundClient:
        return outbound_client(self.policy, timeout=self.timeout, max_response_bytes=1024 * 1024)

    async def _deliver(self, client: OutboundClient, record: CallbackRecord) -> None:
        failure = await send_once(client, record.url, callback_payload(record))
        attempt = record.attempts
        error = None if failure is None else _describe(failure)
        retry_at = None
        if failure is None:
            log.info("callback of job %s delivered (attempt %d)", record.job_id, attempt)
        else:
            now = datetime.now(UTC)
            elapsed = (now - record.created_at).total_seconds()
            wait = self.retry.next_wait(attempt, failure, elapsed=elapsed, rng=self.rng)
            if wait is not None:
                retry_at = now + timedelta(seconds=wait)
                log.info(
                    "callback of job %s not delivered (%s); retrying in %.3g s", record.job_id, error, wait
                )
            else:
                log.warning(
                    "callback of job %s to %s given up after %d attempts: %s",
                    record.job_id,
                    record.url,
                    attempt,
                    error,
                )
        try:
            await asyncio.to_thread(
                self.outbox.finish_callback, record.job_id, attempt, error=error, retry_at=retry_at
            )
        except Exception:  # the row stays claimed and is retried once its hold runs out
            log.exception("could not record the callback of job %s", record.job_id)
