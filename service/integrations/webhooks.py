"""Job notifications: POST a short summary to the request's ``callback_url`` when a job ends.

Delivery goes through the outbound-safety client (private and loopback addresses refused unless
``YARDSTICK_OUTBOUND_ALLOW`` names them) with retries on 5xx and timeouts. It is best effort:
the result is stored before the call, so a receiver that misses a notification can still poll.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from service.integrations.outbound import (
    OutboundBlocked,
    OutboundError,
    OutboundPolicy,
    outbound_client,
    post_json,
)

log = logging.getLogger("yardstick.webhooks")
TIMEOUT_SECONDS = 10.0
RETRIES = 3
BACKOFF_SECONDS = 0.5


async def notify_async(url: str, payload: dict[str, Any], *, policy: OutboundPolicy) -> str | None:
    """Deliver ``payload``; return None on success, else why it could not be delivered."""
    async with outbound_client(policy, timeout=TIMEOUT_SECONDS, max_response_bytes=1024 * 1024) as client:
        for attempt in range(RETRIES + 1):
            try:
                await post_json(client, url, payload, decode=False)
                return None
            except OutboundBlocked as exc:
                return str(exc)
            except OutboundError as exc:
                if attempt == RETRIES or not exc.retryable:
                    return str(exc)
                await asyncio.sleep(BACKOFF_SECONDS * 2**attempt)
    return "not delivered"  # unreachable: the loop returns


def notify(url: str, payload: dict[str, Any], *, policy: OutboundPolicy) -> str | None:
    """Blocking wrapper for the job worker; logs and returns the failure, never raises."""
    try:
        failure = asyncio.run(notify_async(url, payload, policy=policy))
    except Exception as exc:  # a notification must never fail the job it reports
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        log.warning("callback to %s not delivered: %s", url, failure)
    return failure


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
