"""When to send a request again, and after how long.

Retried: 429 (the server's ``Retry-After`` honoured), 503 (not ready, or shedding load), a
connection that failed before any answer, and the 409 the server gives a retry whose first
attempt is still running. Every other answer is final. The delay grows
exponentially from ``base`` up to ``cap``, with up to ``jitter`` of it drawn at random so that many
pipelines retrying together do not arrive in lockstep. POSTs are safe to repeat because the client
sends them with one ``Idempotency-Key`` across attempts: the server answers a repeat with the first
answer instead of creating a second batch or job.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field

import httpx

RETRYABLE_STATUSES = frozenset({429, 503})
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.25
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), without a server hint."""
        delay = min(self.cap, self.base * 2.0 ** (attempt - 1))
        return delay * (1 - self.jitter * self.rng.random())

    def delay(self, attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """How long to wait before the next attempt, or ``None``: the outcome is final (an answer
        that is not retryable, or the last attempt)."""
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in RETRYABLE_STATUSES and not _first_still_running(outcome):
                return None
        elif not isinstance(outcome, httpx.TransportError):
            return None
        if attempt >= self.attempts:
            return None
        hint = retry_after(outcome) if isinstance(outcome, httpx.Response) else None
        # the server's hint is a floor; the cap still bounds a hint that asks for too long
        return min(self.cap, max(hint, self.backoff(attempt))) if hint is not None else self.backoff(attempt)


def _first_still_running(response: httpx.Response) -> bool:
    """The 409 of a retry that arrived while the first request with its Idempotency-Key still runs
    (say the connection dropped after the server got it): asking again later gets its answer."""
    if response.status_code != 409:
        return False
    try:
        issues = response.json().get("errors") or []
    except ValueError:
        return False
    return any(isinstance(i, dict) and i.get("field") == IDEMPOTENCY_HEADER for i in issues)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
