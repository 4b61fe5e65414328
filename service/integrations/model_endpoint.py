"""Calling a model server (KServe v1 protocol) for the robustness tests.

Instances go out in batches of ``batch_size``, ``concurrency`` calls at a time, each with a
timeout; 5xx answers and timeouts are retried with exponential backoff. Every call goes
through the outbound-safety client, so private and loopback addresses are refused unless
``YARDSTICK_OUTBOUND_ALLOW`` names them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from schemas.robustness import Endpoint
from service.integrations.outbound import (
    OutboundBlocked,
    OutboundError,
    OutboundPolicy,
    outbound_client,
    post_json,
)

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
BACKOFF_SECONDS = 0.2


class EndpointError(Exception):
    """The endpoint could not give usable answers; the message says why (never its body)."""


def _retryable(exc: OutboundError) -> bool:
    status = getattr(exc, "status", None)
    return status is None or status >= 500  # no status: a timeout or a dropped connection


async def _call(client: Any, endpoint: Endpoint, chunk: Sequence[dict[str, Any]], start: int) -> list[Any]:
    payload = {"instances": list(chunk)}
    for attempt in range(endpoint.retries + 1):
        try:
            answer = await post_json(client, endpoint.url, payload, max_bytes=MAX_RESPONSE_BYTES)
            break
        except OutboundBlocked:
            raise
        except OutboundError as exc:
            if attempt == endpoint.retries or not _retryable(exc):
                raise EndpointError(
                    f"calling {endpoint.url} for instances {start}..{start + len(chunk) - 1}: {exc}"
                ) from exc
            await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        raise EndpointError(
            f'{endpoint.url} did not answer in the KServe v1 form {{"predictions": [...]}} '
            f"for instances {start}..{start + len(chunk) - 1}"
        )
    predictions: list[Any] = answer["predictions"]
    if len(predictions) != len(chunk):
        raise EndpointError(
            f"{endpoint.url} answered {len(predictions)} predictions for {len(chunk)} instances "
            f"(instances {start}..{start + len(chunk) - 1})"
        )
    return predictions


async def predict_async(
    endpoint: Endpoint,
    instances: Sequence[dict[str, Any]],
    *,
    policy: OutboundPolicy,
    progress: Callable[[float], None] | None = None,
) -> tuple[list[Any], int]:
    """All predictions in instance order, and the number of calls made."""
    chunks = [
        (i, instances[i : i + endpoint.batch_size]) for i in range(0, len(instances), endpoint.batch_size)
    ]
    results: list[list[Any]] = [[] for _ in chunks]
    limit = asyncio.Semaphore(endpoint.concurrency)
    done = 0

    async def run(k: int, start: int, chunk: Sequence[dict[str, Any]]) -> None:
        nonlocal done
        async with limit:
            results[k] = await _call(client, endpoint, chunk, start)
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
