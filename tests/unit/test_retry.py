"""The shared retry rule: which failures retry, jittered waits from a seeded generator, Retry-After
within a cap, the attempt limit and the deadline. Time is faked: nothing here really sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.robustness import Endpoint
from service.integrations.model_endpoint import MAX_RETRY_AFTER_SECONDS, retry_policy
from service.integrations.outbound import OutboundBlocked, OutboundError, OutboundPolicy
from service.integrations.retry import (
    RetryPolicy,
    call_with_retries,
    retry_after_seconds,
    retryable,
)
from service.integrations.webhooks import DEADLINE_SECONDS, RETRY_SECONDS, CallbackDispatcher


def failed(status: int | None, retry_after: float | None = None) -> OutboundError:
    return OutboundError(f"answered {status}", host="h", status=status, retry_after=retry_after)


BLOCKED = OutboundBlocked("refused", host="h", reason="a loopback address")


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (failed(None), True),  # no answer: refused connection, DNS failure, timeout
        (failed(429), True),
        (failed(500), True),
        (failed(503), True),
        (failed(599), True),
        (failed(400), False),
        (failed(404), False),
        (failed(302), False),  # a redirect is not followed, and asking again redirects again
        (failed(200), False),  # answered, but too large or not JSON
        (BLOCKED, False),
        (ValueError("a bug"), False),
    ],
)
def test_which_failures_retry(failure: BaseException, expected: bool) -> None:
    assert retryable(failure) is expected
    policy = RetryPolicy((1.0,))
    assert (policy.next_wait(1, failure, elapsed=0.0, rng=random.Random(0)) is not None) is expected


def test_waits_are_jittered_down_from_the_nominal_wait_and_seeded() -> None:
    policy = RetryPolicy((1.0, 10.0), jitter=0.2)
    draws = [policy.next_wait(2, failed(503), elapsed=0.0, rng=random.Random(seed)) for seed in range(200)]
    assert all(w is not None and 8.0 <= w <= 10.0 for w in draws)
    assert len(set(draws)) == 200  # spread out: callers that failed together come back apart
    again = [policy.next_wait(2, failed(503), elapsed=0.0, rng=random.Random(seed)) for seed in range(200)]
    assert again == draws
    exact = RetryPolicy((1.0, 10.0), jitter=0.0)
    assert exact.next_wait(1, failed(None), elapsed=0.0, rng=random.Random(0)) == 1.0


def test_retry_after_lengthens_the_wait_within_the_cap() -> None:
    policy = RetryPolicy((1.0, 1.0), jitter=0.0, max_retry_after=30.0)
    rng = random.Random(0)
    assert policy.next_wait(1, failed(429, retry_after=7.0), elapsed=0.0, rng=rng) == 7.0
    assert policy.next_wait(1, failed(503, retry_after=30.0), elapsed=0.0, rng=rng) == 30.0
    # shorter than the backoff: the backoff stands
    assert policy.next_wait(1, failed(429, retry_after=0.0), elapsed=0.0, rng=rng) == 1.0
    # longer than the cap: coming back sooner would only earn another 429
    assert policy.next_wait(1, failed(429, retry_after=31.0), elapsed=0.0, rng=rng) is None


def test_attempts_and_deadline_end_the_retries() -> None:
    policy = RetryPolicy((1.0, 2.0), jitter=0.0, deadline=10.0)
    rng = random.Random(0)
    assert policy.max_attempts == 3
    assert policy.next_wait(2, failed(500), elapsed=0.0, rng=rng) == 2.0
    assert policy.next_wait(3, failed(500), elapsed=0.0, rng=rng) is None
    assert policy.next_wait(1, failed(500), elapsed=9.0, rng=rng) == 1.0  # starts at 10 s: allowed
    assert policy.next_wait(1, failed(500), elapsed=9.5, rng=rng) is None
    assert policy.next_wait(1, failed(429, retry_after=5.0), elapsed=6.0, rng=rng) is None
    assert RetryPolicy(()).next_wait(1, failed(500), elapsed=0.0, rng=rng) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"waits": (-1.0,)}, "waits"),
        ({"waits": (float("inf"),)}, "waits"),
        ({"waits": (1.0,), "jitter": 1.5}, "jitter"),
        ({"waits": (1.0,), "max_retry_after": -1.0}, "max_retry_after"),
        ({"waits": (1.0,), "deadline": 0.0}, "deadline"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**kwargs)


def test_exponential_waits() -> None:
    assert RetryPolicy.exponential(4, first=0.2).waits == pytest.approx((0.2, 0.4, 0.8, 1.6))
    assert RetryPolicy.exponential(0, first=0.2).max_attempts == 1


# --- the in-process loop, on a fake clock ------------------------------------------------------


class FakeTime:
    """A clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def scripted(outcomes: list[Any], fake: FakeTime, *, each: float = 0.0) -> Callable[[], Any]:
    """A call that fails or answers as ``outcomes`` says, each attempt taking ``each`` seconds."""
    script: Iterator[Any] = iter(outcomes)
    calls: list[float] = []

    async def call() -> Any:
        calls.append(fake.now)
        fake.now += each
        outcome = next(script)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    call.calls = calls  # type: ignore[attr-defined]
    return call


async def _run(call: Callable[[], Any], policy: RetryPolicy, fake: FakeTime, seed: int = 0) -> Any:
    return await call_with_retries(call, policy, rng=random.Random(seed), sleep=fake.sleep, clock=fake.clock)


@pytest.mark.anyio
async def test_retries_until_an_answer_honouring_retry_after() -> None:
    fake = FakeTime()
    outcomes = [failed(503), failed(429, retry_after=3.0), failed(None), "answer"]
    call = scripted(outcomes, fake)
    policy = RetryPolicy((0.5, 0.5, 0.5), jitter=0.2)
    assert await _run(call, policy, fake) == "answer"
    first, second, third = fake.slept
    assert 0.4 <= first <= 0.5 and second == 3.0 and 0.4 <= third <= 0.5
    assert len(call.calls) == 4  # type: ignore[attr-defined]
    # the same seed gives the same waits
    again = FakeTime()
    await _run(
        scripted([failed(503), failed(429, retry_after=3.0), failed(None), "answer"], again), policy, again
    )
    assert again.slept == fake.slept


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [failed(404), failed(200), BLOCKED, failed(429, retry_after=3600.0)])
async def test_a_failure_not_worth_retrying_is_raised_at_once(failure: BaseException) -> None:
    fake = FakeTime()
    call = scripted([failure, "answer"], fake)
    with pytest.raises(type(failure)) as caught:
        await _run(call, RetryPolicy((0.5, 0.5)), fake)
    assert caught.value is failure
    assert fake.slept == [] and len(call.calls) == 1  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_the_last_failure_is_raised_when_attempts_run_out() -> None:
    fake = FakeTime()
    last = failed(502)
    call = scripted([failed(500), failed(503), last, "never"], fake)
    with pytest.raises(OutboundError) as caught:
        await _run(call, RetryPolicy((1.0, 2.0), jitter=0.0), fake)
    assert caught.value is last
    assert fake.slept == [1.0, 2.0]


@pytest.mark.anyio
async def test_the_deadline_counts_the_attempts_time_too() -> None:
    fake = FakeTime()
    call = scripted([failed(None), failed(None), "late"], fake, each=4.0)  # each attempt times out at 4 s
    with pytest.raises(OutboundError):
        await _run(call, RetryPolicy((1.0, 1.0), jitter=0.0, deadline=8.0), fake)
    assert call.calls == [0.0, 5.0]  # type: ignore[attr-defined]  # a third would start at 10 s > 8 s


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("120", None, 120.0),
        (" 0 ", None, 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", "Wed, 21 Oct 2015 07:28:00 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:30 GMT", 0.0),  # in the past
        ("Wed, 21 Oct 2015 07:28:30 GMT", "not a date", 90.0),  # a bad Date: measured from now
        (None, None, None),
        ("soon", None, None),
        ("-5", None, None),
        ("1.5", None, None),  # delay-seconds is a whole number
    ],
)
def test_retry_after_values(value: str | None, date: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 27, tzinfo=UTC)
    assert retry_after_seconds(value, date=date, now=now) == expected


# --- both callers use the same rule ------------------------------------------------------------


def test_model_endpoint_retries_within_what_its_settings_allow() -> None:
    endpoint = Endpoint(url="https://model.example/predict", retries=3, timeout_seconds=10)
    policy = retry_policy(endpoint)
    assert policy.max_attempts == 4
    assert policy.waits == pytest.approx((0.2, 0.4, 0.8))
    assert policy.deadline == pytest.approx(4 * 10 + 1.4)
    assert policy.max_retry_after == MAX_RETRY_AFTER_SECONDS
    assert retry_policy(Endpoint(url="https://model.example/predict", retries=0)).max_attempts == 1


def test_webhook_delivery_uses_the_same_rule() -> None:
    dispatcher = CallbackDispatcher(outbox=None, policy=OutboundPolicy(), rng=random.Random(0))  # type: ignore[arg-type]
    assert dispatcher.retry.waits == RETRY_SECONDS and dispatcher.max_attempts == 6
    assert dispatcher.retry.deadline == DEADLINE_SECONDS
    for failure, expected in [
        (failed(429), True),
        (failed(None), True),
        (failed(404), False),
        (BLOCKED, False),
    ]:
        wait = dispatcher.retry.next_wait(1, failure, elapsed=0.0, rng=dispatcher.rng)
        assert (wait is not None) is expected
