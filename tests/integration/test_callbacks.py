"""Job callbacks through the outbox, against a real HTTP receiver on loopback: every ending is
notified (cancelled, and failed by the reaper after the last attempt), a slow receiver never delays
the next job, and a failing receiver is retried, then given up with its attempts recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.integrations.outbound import OutboundPolicy
from service.integrations.webhooks import CallbackDispatcher
from service.store import SqlStore
from tests.integration.conftest import Server, alive, children_of, wait_until
from tests.integration.test_robustness_endpoint import credit_body
from tests.store.test_store_contract import batch, job

pytestmark = pytest.mark.integration
N = 60


@dataclass
class Hook:
    path: str
    body: dict[str, Any]
    received_at: datetime
    answered_at: datetime | None = None


class Receiver:
    """Webhook receivers (``/hooks/ok`` answers 204, ``/hooks/slow`` after 5 s, ``/hooks/error`` 500)
    and a model endpoint that does not answer until released (to keep a job running)."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.hooks: list[Hook] = []
        self.predict_calls = 0
        self.released = False
        app = Starlette(
            routes=[
                Route("/hooks/{kind}", self._hook, methods=["POST"]),
                Route("/v1/models/hang:predict", self._hang, methods=["POST"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def of(self, job_id: str) -> list[Hook]:
        return [h for h in self.hooks if h.body.get("job_id") == job_id]

    async def _hook(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        hook = Hook(kind, await request.json(), datetime.now(UTC))
        self.hooks.append(hook)
        if kind == "slow":
            await asyncio.sleep(5)
        hook.answered_at = datetime.now(UTC)
        return Response(status_code=500 if kind == "error" else 204)

    async def _hang(self, request: Request) -> Response:
        self.predict_calls += 1
        deadline = time.monotonic() + 120
        while not self.released and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return JSONResponse({"error": "released"}, status_code=503)

    def __enter__(self) -> Receiver:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=20, what="the receiver")
        return self

    def __exit__(self, *exc: object) -> None:
        self.released = True
        self._server.should_exit = True
        self._thread.join(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def post_batch(client: httpx.Client) -> str:
    response = client.post("/v1/batches", json=credit_body(N, name="hooked"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def hanging_job(client: httpx.Client, receiver: Receiver, batch_id: str) -> str:
    """A job that stays running: its robustness endpoint does not answer."""
    request = {
        "batch_id": batch_id,
        "metrics": ["accuracy"],
        "robustness": {
            "endpoint": {
                "url": f"{receiver.url}/v1/models/hang:predict",
                "timeout_seconds": 120,
                "retries": 0,
            },
            "invariance": [{"column": "gender", "swap": ["F", "M"]}],
        },
        "callback_url": f"{receiver.url}/hooks/ok",
    }
    response = client.post("/v1/evaluations", json=request)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    wait_until(lambda: receiver.predict_calls > 0, timeout=60, what="the job to call its endpoint")
    return job_id


def start(servers: Callable[..., Server], **env: str) -> Server:
    return servers(extra_env={"YARDSTICK_OUTBOUND_ALLOW": "127.0.0.1", **env}).start()


def test_a_cancelled_job_is_notified(servers: Callable[..., Server], receiver: Receiver) -> None:
    server = start(servers)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = hanging_job(client, receiver, post_batch(client))
        assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        # delivered by the worker process' dispatcher while its job thread is still stuck
        wait_until(lambda: bool(receiver.of(job_id)), timeout=30, what="the cancel to be notified")
        receiver.released = True
    [hook] = receiver.of(job_id)
    assert hook.body["status"] == "cancelled" and hook.body["result_url"] is None
    assert hook.body["job_url"] == f"/v1/jobs/{job_id}" and hook.body["error"] is None


def worker_processes(server: Server) -> list[int]:
    assert server.proc is not None
    return [
        pid
        for pid in children_of(server.proc.pid)
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_a_job_failed_after_its_last_attempt_is_notified(
    servers: Callable[..., Server], receiver: Receiver
) -> None:
    # one attempt: when its worker dies, the next worker to look fails the job (the store's reaper)
    server = start(servers, YARDSTICK_MAX_ATTEMPTS="1")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        job_id = hanging_job(client, receiver, post_batch(client))
        [worker] = worker_processes(server)
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: not alive(worker), timeout=10, what="the worker to die")
        receiver.released = True
        wait_until(lambda: bool(receiver.of(job_id)), timeout=60, what="the reaped job to be notified")
        status = client.get(f"/v1/jobs/{job_id}").json()
    [hook] = receiver.of(job_id)
    assert status["status"] == "failed" and status["attempts"] == 1
    assert hook.body["status"] == "failed" and hook.body["error"] == status["error"]
    assert "stopped responding" in hook.body["error"]


def test_a_slow_receiver_does_not_delay_the_next_job(
    servers: Callable[..., Server], receiver: Receiver
) -> None:
    server = start(servers)  # one worker process
    with httpx.Client(base_url=server.url, timeout=30) as client:
        batch_id = post_batch(client)
        slow = client.post(
            "/v1/evaluations", json={"batch_id": batch_id, "callback_url": f"{receiver.url}/hooks/slow"}
        ).json()
        after = client.post("/v1/evaluations", json={"batch_id": batch_id}).json()

        def done(job_id: str) -> bool:
            return bool(client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded")

        wait_until(lambda: done(slow["id"]) and done(after["id"]), timeout=60, what="both jobs")
        wait_until(
            lambda: any(h.answered_at for h in receiver.of(slow["id"])),
            timeout=60,
            what="the slow receiver to answer",
        )
        finished = datetime.fromisoformat(client.get(f"/v1/jobs/{after['id']}").json()["finished_at"])
    [hook] = receiver.of(slow["id"])
    assert hook.answered_at is not None and hook.body["status"] == "succeeded"
    # the next job finished while the receiver still held the first job's callback
    assert finished < hook.answered_at


def test_a_failing_receiver_is_retried_then_given_up(tmp_path: Path, receiver: Receiver) -> None:
    sql = SqlStore.from_url(f"sqlite:///{tmp_path / 'yardstick.db'}")
    sql.create_schema()
    sql.insert_batch(batch(0))
    request = {"batch_id": "b_0000", "callback_url": f"{receiver.url}/hooks/error"}
    sql.insert_job(replace(job(1), request=request))
    assert sql.claim_job("w1", lease_seconds=30) is not None
    assert sql.complete_job("j_0001", "w1", {"gates": {"passed": True}})
    pending = sql.get_callback("j_0001")
    assert pending is not None and (pending.state, pending.attempts) == ("pending", 0)

    dispatcher = CallbackDispatcher(
        sql, OutboundPolicy.from_settings(["127.0.0.1"]), retry_seconds=(0.05, 0.1), poll_seconds=0.02
    )
    stop = threading.Event()
    thread = dispatcher.start(stop)
    try:
        wait_until(
            lambda: (r := sql.get_callback("j_0001")) is not None and r.state != "pending",
            timeout=30,
            what="the callback to be given up",
        )
    finally:
        stop.set()
        thread.join(10)
    record = sql.get_callback("j_0001")
    assert record is not None
    assert (record.state, record.attempts) == ("failed", 3)
    assert record.last_error is not None and "500" in record.last_error
    hooks = receiver.of("j_0001")
    assert len(hooks) == 3 and {h.body["status"] for h in hooks} == {"succeeded"}
    assert hooks[0].body["gates_passed"] is True
    sql.dispose()
