"""Both outbound callers retry a 429 the same way, against a real HTTP server on loopback: the model
endpoint client (which waits in process) and webhook delivery (which waits in the outbox). Each
honours the server's ``Retry-After: 1``, longer than any backoff they would pick themselves."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.robustness import Endpoint
from service.integrations.model_endpoint import predict_async
from service.integrations.outbound import OutboundPolicy
from service.integrations.webhooks import CallbackDispatcher
from service.store import SqlStore
from tests.integration.model_server import ModelServer
from tests.store.test_store_contract import batch, job

pytestmark = pytest.mark.integration
ALLOW = OutboundPolicy.from_settings(["127.0.0.1"])


@pytest.mark.anyio
async def test_the_model_endpoint_client_retries_a_429_after_its_retry_after(
    model_server: ModelServer,
) -> None:
    before = model_server.calls["busy"]
    endpoint = Endpoint(url=model_server.endpoint("busy"), batch_size=10, retries=1)
    started = time.monotonic()
    predictions, chunks = await predict_async(
        endpoint, [{"amount": 250.0}, {"amount": 750.0}], policy=ALLOW, rng=random.Random(0)
    )
    assert (predictions, chunks) == ([0.25, 0.75], 1)
    assert model_server.calls["busy"] - before == 2  # a 429, then the answer
    assert time.monotonic() - started >= 1.0  # the backoff alone would be 0.2 s at most


def test_webhook_delivery_retries_a_429_after_its_retry_after(
    tmp_path: Path, model_server: ModelServer
) -> None:
    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'yardstick.db'}")
    sql.create_schema()
    sql.insert_batch(batch(0))
    request = {"batch_id": "b_0000", "callback_url": f"{model_server.url}/hooks/busy"}
    sql.insert_job(replace(job(1), request=request))
    assert sql.claim_job("w1", lease_seconds=30) is not None
    assert sql.complete_job("j_0001", "w1", {"gates": {"passed": True}})
    del model_server.busy_hooks[:]
    dispatcher = CallbackDispatcher(sql, ALLOW, retry_seconds=(0.05,), rng=random.Random(0))
    try:
        before = datetime.now(UTC)
        assert dispatcher.deliver_due() == 1
        first = sql.get_callback("j_0001")
        assert first is not None and (first.state, first.attempts) == ("pending", 1)
        assert first.last_error is not None and "429" in first.last_error
        # due again after the server's Retry-After (1 s), not the 0.05 s backoff
        assert first.next_attempt_at is not None
        assert (first.next_attempt_at - before).total_seconds() >= 1.0
        assert dispatcher.deliver_due() == 0  # not yet due
        deadline = time.monotonic() + 10
        while dispatcher.deliver_due() == 0:
            assert time.monotonic() < deadline, "the retry never came due"
            time.sleep(0.05)
        done = sql.get_callback("j_0001")
        assert done is not None and (done.state, done.attempts) == ("delivered", 2)
    finally:
        sql.dispose()
    (t1, body1), (t2, body2) = model_server.busy_hooks
    assert body1 == body2 and body1["job_id"] == "j_0001" and body1["status"] == "succeeded"
    assert t2 - t1 >= 1.0
