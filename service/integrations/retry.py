"""One rule for trying an outbound call again, shared by model-endpoint calls and webhook delivery.

Which failures are retried
    No answer (connection refused, DNS failure, timeout, dropped connection), 429 and 5xx:
    :attr:`OutboundError.retryable <service.integrations.outbound_errors.OutboundError.retryable>`.
    Never a refused address (``OutboundBlocked``), another 4xx, a redirect, or a 2xx that was too
    large or not JSON: asking again would get the same answer.
How long to wait
    ``waits[k]`` is the nominal wait before attempt ``k + 2``. Each wait is drawn uniformly
    between ``(1 - jitter)`` and 1 times it, from an injected ``random.Random``, so that callers
    that failed together (a receiver that was down for everyone) do not come back together.
    A ``Retry-After`` (429 or 503) lengthens the wait to what the server asked, as long as that
    is within ``max_retry_after``; a longer one ends the retries, since coming back sooner would
    only earn another 429.
When to stop
    After ``len(waits) + 1`` attempts, or when the next attempt would start more than
    ``deadline`` seconds after the first.

The model-endpoint client waits in process (:func:`call_with_retries`). Webhook delivery waits in
the callback outbox, so it asks :meth:`RetryPolicy.next_wait` once per failed attempt and stores
the answer as the row's next attempt time. Either way the rule is this one. Retrying means an
endpoint may see the same call more than once: it must be safe to repeat (a prediction is).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from service.integrations.outbound_errors import OutboundError

T = TypeVar("T")


def retryable(failure: BaseException) -> bool:
    """Whether ``failure`` is worth another attempt at all (the module docstring says which are)."""
    return isinstance(failure, OutboundError) and failure.retryable


def retry_after_seconds(
    value: str | None, *, date: str | None = None, now: datetime | None = None
) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (>= 0); None without a usable one.

    ``value`` is either delay-seconds (``"120"``) or an HTTP-date. A date is measured from the
    answer's ``Date`` header (``date``) when it has one, so that a skew between the server's clock
    and ours does not matter, else from ``now`` (default: the current time).

    Examples
    --------
    >>> retry_after_seconds("120")
    120.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", date="Wed, 21 Oct 2015 07:28:00 GMT")
    30.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    target = _http_date(text)
    if target is None:
        return None
    reference = _http_date(date) if date is not None else None
    if reference is None:
        reference = now if now is not None else datetime.now(UTC)
    return max((target - reference).total_seconds(), 0.0)


def _http_date(text: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a failed outbound call again, and after how long.

    Parameters
    ----------
    waits : sequence of float
        Nominal seconds before the 2nd, 3rd, ... attempt; one attempt more than entries.
    jitter : float
        Each wait is drawn in ``[(1 - jitter) * w, w]``; 0 for exact waits. In [0, 1].
    max_retry_after : float
        The longest ``Retry-After`` honoured; a longer one ends the retries.
    deadline : float or None
        No attempt starts later than this many seconds after the first; None for no limit.

    Examples
    --------
    >>> policy = RetryPolicy.exponential(3, first=0.5, jitter=0.0)
    >>> policy.waits, policy.max_attempts
    ((0.5, 1.0, 2.0), 4)
    """

    waits: tuple[float, ...]
    jitter: float = 0.2
    max_retry_after: float = 60.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "waits", tuple(float(w) for w in self.waits))
        if not all(w >= 0 and math.isfinite(w) for w in self.waits):
            raise ValueError(f"waits must be finite and non-negative, got {self.waits!r}.")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter!r}.")
        if not self.max_retry_after >= 0:
            raise ValueError(f"max_retry_after must be non-negative, got {self.max_retry_after!r}.")
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError(f"deadline must be positive or None, got {self.deadline!r}.")

    @classmethod
    def exponential(
        cls,
        retries: int,
        *,
        first: float,
        factor: float = 2.0,
        jitter: float = 0.2,
        max_retry_after: float = 60.0,
        deadline: float | None = None,
    ) -> RetryPolicy:
        """``retries`` waits of ``first``, ``first * factor``, ``first * factor**2``, ..."""
        waits = tuple(first * factor**k for k in range(retries))
        return cls(waits, jitter=jitter, max_retry_after=max_retry_after, deadline=deadline)

    @property
    def max_attempts(self) -> int:
        return len(self.waits) + 1

    def next_wait(
        self, attempt: int, failure: BaseException, *, elapsed: float, rng: random.Random
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        Parameters
        ----------
        attempt : int
            The attempt that just failed, counting from 1.
        failure : BaseException
            How it failed.
        elapsed : float
            Seconds since the first attempt started.
        rng : random.Random
            The source of the jitter (seeded in tests).
        """
        if not retryable(failure) or attempt >= self.max_attempts:
            return None
        wait = self.waits[attempt - 1] * (1.0 - self.jitter * rng.random())
        asked = failure.retry_after if isinstance(failure, OutboundError) else None
        if asked is not None:
            if asked > self.max_retry_after:
                return None
            wait = max(wait, asked)
        if self.deadline is not None and elapsed + wait > self.deadline:
            return None
        return wait


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    rng: random.Random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``await call()`` until it succeeds or ``policy`` gives up; then its last error is raised.

    Only :class:`~service.integrations.outbound_errors.OutboundError` is considered for a retry;
    any other exception (``OutboundBlocked`` included) ends the call at once. ``sleep`` and
    ``clock`` are injectable so that tests run without real waiting.
    """
    started = clock()
    attempt = 1
    while True:
        try:
            return await call()
        except OutboundError as exc:
            wait = policy.next_wait(attempt, exc, elapsed=clock() - started, rng=rng)
            if wait is None:
                raise
        await sleep(wait)
        attempt += 1
