"""Calling a model server (KServe v1 protocol) for the robustness tests.

Instances go out in batches of ``batch_size``, ``concurrency`` calls at a time, each with a
timeout. A call that gets no answer, a 429 or a 5xx is tried again (``Endpoint.retries`` times at
most) under the shared rule of :mod:`service.integrations.retry`, so an endpoint may receive the
same instances more than once. Every call goes through the outbound-safety client, so private and
loopback addresses are refused unless ``YARDSTICK_OUTBOUND_ALLOW`` names them. The protocol's
request and answer shapes live in :mod:`service.integrations.kserve`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from schemas.robustness import Endpoint
from service.integrations import kserve
from service.integrations.outbound import (
    OutboundBlocked,
    OutboundClient,
    OutboundError,
    OutboundPolicy,
    outbound_client,
    post_json,
)
from service.integrations.retry import RetryPolicy, call_with_retries

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: The first wait before a retry; each further wait doubles (0.2, 0.4, 0.8 s, ...).
FIRST_WAIT_SECONDS = 0.2
#: The longest Retry-After a model server may ask for; a longer one fails the call.
MAX_RETRY_AFTER_SECONDS = 30.0

Sleep = Callable[[float], Awaitable[None]]


class EndpointError(Exception):
    """The endpoint could not give usable answers; the message says why (never its body)."""


def retry_policy(endpoint: Endpoint) -> RetryPolicy:
    """The retries of one call to ``endpoint``.

    The deadline is what the endpoint's settings would take at worst without a Retry-After (every
    attempt timing out, plus the nominal waits): a server asking to be called later can move the
    waits around within that, never make a call take longer than its settings promise.
    """
    waits = RetryPolicy.exponential(endpoint.retries, first=FIRST_WAIT_SECONDS).waits
    deadline = endpoint.timeout_seconds * (endpoint.retries + 1) + sum(waits)
    return RetryPolicy(waits, max_retry_after=MAX_RETRY_AFTER_SECONDS, deadline=deadline)


async def _call(
    client: OutboundClient,
    endpoint: Endpoint,
    chunk: Sequence[dict[str, Any]],
    start: int,
    *,
    rng: random.Random,
    sleep: Sleep,
) -> list[Any]:
    instances = f"instances {start}..{start + len(chunk) - 1}"
    body = kserve.request_body(chunk)
    try:
        answer = await call_with_retries(
            lambda: post_json(client, endpoint.url, body, max_bytes=MAX_RESPONSE_BYTES),
            retry_policy(endpoint),
            rng=rng,
            sleep=sleep,
        )
    except OutboundError as exc:
        raise EndpointError(f"calling {endpoint.url} for {instances}: {exc}") from exc
    try:
        return kserve.predictions_of(answer, instances=len(chunk))
    except ValueError as exc:
        raise EndpointError(f"{endpoint.url} {exc} ({instances})") from None


async def predict_async(
    endpoint: Endpoint,
    instances: Sequence[dict[str, Any]],
    *,
    policy: OutboundPolicy,
    progress: Callable[[float], None] | None = None,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
) -> tuple[list[Any], int]:
    """All predictions in instance order, and the number of chunks sent.

    ``rng`` draws the retries' jitter (default: a generator of its own, never the global one);
    ``sleep`` waits between attempts (tests pass a fake).
    """
    rng = rng if rng is not None else random.Random()
    chunks = [
        (i, instances[i : i + endpoint.batch_size]) for i in range(0, len(instances), endpoint.batch_size)
    ]
    results: list[list[Any]] = [[] for _ in chunks]
    limit = asyncio.Semaphore(endpoint.concurrency)
    done = 0

    async def run(k: int, start: int, chunk: Sequence[dict[str, Any]]) -> None:
        nonlocal done
        async with limit:
            results[k] = await _call(client, endpoint, chunk, start, rng=rng, sleep=sleep)
        done += 1
        if progress is not None:
            progress(done / len(chunks))

    async with outbound_client(
        policy, timeout=endpoint.timeout_seconds, max_response_bytes=MAX_RESPONSE_BYTES
    ) as client:
        client.headers.update(endpoint.headers)
        tasks = [asyncio.create_task(run(k, start, chunk)) for k, (start, chunk) in enumerate(chunks)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    return [p for chunk in results for p in chunk], len(chunks)


def predict(
    endpoint: Endpoint,
    instances: Sequence[dict[str, Any]],
    *,
    policy: OutboundPolicy,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[Any], int]:
    """Blocking wrapper for the job worker (which has no event loop of its own)."""
    try:
        return asyncio.run(predict_async(endpoint, instances, policy=policy, progress=progress))
    except OutboundBlocked as exc:
        raise EndpointError(str(exc)) from exc
