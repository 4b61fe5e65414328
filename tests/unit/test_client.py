"""The Python client (``yardstick``) against ``httpx.MockTransport``: retries and their
Idempotency-Key, problem documents, local validation, and the progress it prints.

The same scripted server drives the sync and the async client, so both are held to one behaviour."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.batches import Batch, Column
from schemas.common import ModelRef
from schemas.jobs import Job as JobState
from schemas.results import EvaluationResult
from yardstick import AsyncClient, Client, JobFailed, RetryPolicy, YardstickError
from yardstick.errors import ServiceUnreachable
from yardstick.retry import retry_after

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TABLE = pa.table({"sample_id": ["a", "b", "c"], "label": [0, 1, 1], "score": [0.1, 0.8, 0.6]})
PROBLEM = {
    "type": "https://yardstick.dev/problems/invalid-input",
    "title": "Invalid input",
    "status": 422,
    "detail": "1 problem",
    "errors": [{"field": "rows[1].score", "row": 1, "message": "score must be within [0, 1]"}],
}


@dataclass(frozen=True)
class RecordingPolicy(RetryPolicy):
    """The real policy's decisions, recorded; the client then waits 0 s instead of them."""

    delays: list[float | None] = field(default_factory=list, compare=False)

    def delay(self, attempt: int, outcome: httpx.Response | Exception) -> float | None:
        decided = super().delay(attempt, outcome)
        self.delays.append(decided)
        return None if decided is None else 0.0


def batch_json() -> dict[str, Any]:
    return Batch(
        id="b_1",
        model=ModelRef(name="m", version="1"),
        task="binary",
        classes=[0, 1],
        positive_class=1,
        rows=3,
        labeled_rows=3,
        columns=[Column(name="label", type="int64", role="label")],
        created_at=NOW,
    ).model_dump(mode="json")


def job_json(status: str, progress: float = 0.0, stage: str | None = None) -> dict[str, Any]:
    return JobState.model_validate(
        {"id": "j_1", "status": status, "progress": progress, "stage": stage, "batch_id": "b_1",
         "created_at": NOW, "attempts": 1, "error": "worker crashed" if status == "failed" else None}
    ).model_dump(mode="json")  # fmt: skip


def result_json() -> dict[str, Any]:
    return EvaluationResult(
        job_id="j_1", batch_id="b_1", model=ModelRef(name="m", version="1"), task="binary",
        created_at=NOW, finished_at=NOW, rows=3, labeled_rows=3, evaluated_rows=3, metrics={"accuracy": 1.0},
    ).model_dump(mode="json")  # fmt: skip


class Script:
    """A scripted server: answers in order per path, and every request it saw (body read)."""

    def __init__(self, answers: dict[str, list[Callable[[], httpx.Response]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[httpx.Request, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.seen.append((request, body))
        queue = self.answers[request.url.path]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer()

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self(request)

    def requests(self, path: str) -> list[tuple[httpx.Request, bytes]]:
        return [(r, b) for r, b in self.seen if r.url.path == path]


def status(
    code: int, body: Any = None, headers: dict[str, str] | None = None
) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(code, json=body, headers=headers)


def refused() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def client_for(script: Script, policy: RetryPolicy) -> Client:
    return Client("http://yardstick.test", api_key="k", retry=policy, transport=httpx.MockTransport(script))


def test_429_waits_at_least_retry_after_and_reuses_the_idempotency_key() -> None:
    script = Script({"/v1/batches": [status(429, PROBLEM | {"status": 429}, {"Retry-After": "7"}),
                                     status(201, batch_json())]})  # fmt: skip
    policy = RecordingPolicy(base=0.01)
    batch = client_for(script, policy).post_batch(
        TABLE, model="m", version="1", task="binary", positive_class=1
    )
    assert batch.id == "b_1"
    attempts = script.requests("/v1/batches")
    assert len(attempts) == 2
    keys = {r.headers["idempotency-key"] for r, _ in attempts}
    assert len(keys) == 1 and len(keys.pop()) == 36  # one uuid4 for both attempts
    assert policy.delays[0] is not None and policy.delays[0] >= 7  # the hint is a floor
    # the streamed body was written again for the retry, and is the same Parquet file
    first, second = (body for _, body in attempts)
    assert first == second
    assert pq.read_table(io.BytesIO(second)).equals(TABLE)
    request = attempts[0][0]
    assert request.headers["content-type"] == "application/vnd.apache.parquet"
    assert dict(request.url.params) == {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    assert request.headers["authorization"] == "Bearer k"


def test_503_and_connection_errors_are_retried_until_an_answer() -> None:
    script = Script({"/v1/evaluations": [status(503, PROBLEM | {"status": 503}), refused,
                                         status(202, job_json("queued"))]})  # fmt: skip
    job = client_for(script, RecordingPolicy(base=0.01)).evaluate("b_1", metrics=["accuracy"])
    assert job.id == "j_1"
    attempts = script.requests("/v1/evaluations")
    assert len(attempts) == 3
    assert len({r.headers["idempotency-key"] for r, _ in attempts}) == 1
    assert json.loads(attempts[-1][1]) == {"batch_id": "b_1", "metrics": ["accuracy"]}


def test_two_calls_get_two_idempotency_keys() -> None:
    script = Script({"/v1/evaluations": [status(202, job_json("queued"))]})
    client = client_for(script, RecordingPolicy())
    client.evaluate("b_1")
    client.evaluate("b_1")
    assert len({r.headers["idempotency-key"] for r, _ in script.seen}) == 2


@pytest.mark.parametrize(("answer", "raised"), [(status(503, PROBLEM | {"status": 503}), YardstickError),
                                                (refused, ServiceUnreachable)])  # fmt: skip
def test_gives_up_after_the_configured_attempts(answer: Callable[[], httpx.Response], raised: type) -> None:
    script = Script({"/v1/jobs/j_1": [answer]})
    policy = RecordingPolicy(attempts=4, base=0.01)
    with pytest.raises(raised):
        client_for(script, policy).job("j_1")
    assert len(script.seen) == 4
    assert policy.delays[-1] is None and all(d is not None for d in policy.delays[:-1])


def test_a_problem_is_final_and_travels_on_the_exception() -> None:
    script = Script({"/v1/batches": [status(422, PROBLEM)]})
    with pytest.raises(YardstickError) as caught:
        client_for(script, RecordingPolicy()).post_batch(TABLE, model="m", version="1", task="binary")
    assert len(script.seen) == 1
    error = caught.value
    assert error.status == 422 and error.title == "Invalid input" and error.detail == "1 problem"
    assert error.errors == [PROBLEM["errors"][0]]
    assert "rows[1].score" in str(error)


def test_an_error_without_a_problem_document_keeps_its_text() -> None:
    script = Script({"/v1/jobs/j_1": [lambda: httpx.Response(502, text="bad gateway")]})
    with pytest.raises(YardstickError, match="502: bad gateway") as caught:
        client_for(script, RecordingPolicy()).job("j_1")
    assert caught.value.problem is None


@pytest.mark.parametrize(
    ("sections", "field_name"),
    [({"metricz": ["accuracy"]}, "metricz"), ({"bootstrap": {"samples": 3}}, "bootstrap.samples"),
     ({"gates": [{"metric": "roc_auc", "minimum": 0.8}]}, "gates.0.minimum")],
)  # fmt: skip
def test_an_evaluation_request_is_checked_before_anything_is_sent(
    sections: dict[str, Any], field_name: str
) -> None:
    script = Script({"/v1/evaluations": [status(202, job_json("queued"))]})
    with pytest.raises(YardstickError) as caught:
        client_for(script, RecordingPolicy()).evaluate("b_1", **sections)
    assert script.seen == []
    assert field_name in [issue["field"] for issue in caught.value.errors]


def test_labels_from_a_frame_or_a_list() -> None:
    answer = {"batch_id": "b_1", "updated": 2, "labeled_rows": 2, "unmatched_sample_ids": []}
    script = Script({"/v1/batches/b_1/labels": [status(200, answer)]})
    client = client_for(script, RecordingPolicy())
    frame = pa.table({"sample_id": ["a", "b"], "label": [1, 0], "other": [9, 9]})
    assert client.put_labels("b_1", frame).updated == 2
    client.put_labels("b_1", [{"sample_id": "a", "label": 1}])
    bodies = [json.loads(body) for _, body in script.seen]
    assert bodies == [{"columns": {"sample_id": ["a", "b"], "label": [1, 0]}},
                      {"labels": [{"sample_id": "a", "label": 1}]}]  # fmt: skip
    assert all(r.method == "PUT" for r, _ in script.seen)


def test_url_and_api_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YARDSTICK_API_KEY", "from-env")
    monkeypatch.setenv("YARDSTICK_URL", "http://env.test:9000/")
    script = Script({"/v1/jobs/j_1": [status(200, job_json("queued"))]})
    Client(transport=httpx.MockTransport(script)).job("j_1")
    ((request, _),) = script.seen
    assert str(request.url) == "http://env.test:9000/v1/jobs/j_1"
    assert request.headers["authorization"] == "Bearer from-env"


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


RUNNING = [
    status(200, job_json("queued")),
    status(200, job_json("running", 0.01, "reading")),
    status(200, job_json("running", 0.02, "reading")),
    status(200, job_json("running", 0.3, "bootstrap")),
    status(200, job_json("succeeded", 1.0)),
]


def waiting_client() -> tuple[Client, Script]:
    script = Script({"/v1/evaluations": [status(202, job_json("queued"))], "/v1/jobs/j_1": list(RUNNING),
                     "/v1/jobs/j_1/result": [status(200, result_json())]})  # fmt: skip
    return client_for(script, RecordingPolicy()), script


def test_progress_in_a_log_is_one_plain_line_per_stage() -> None:
    client, _ = waiting_client()
    stream = FakeStream(tty=False)
    result = client.evaluate("b_1").wait(progress=True, stream=stream)
    assert result == EvaluationResult.model_validate(result_json())
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == [
        "queued",
        "reading",
        "bootstrap",
        "succeeded",
    ]
    assert all(line.startswith("job j_1: ") for line in lines)


def test_progress_on_a_terminal_is_one_redrawn_bar() -> None:
    client, _ = waiting_client()
    stream = FakeStream(tty=True)
    client.evaluate("b_1").wait(progress=True, stream=stream)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # the bar's line is ended once, at the end
    redraws = text.rstrip("\n").split("\r")[1:]
    assert len(redraws) == len(RUNNING)
    assert "reading" in redraws[1] and "bootstrap" in redraws[3] and "100%" in redraws[-1]


def test_no_progress_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    client, _ = waiting_client()
    client.evaluate("b_1").wait()
    assert capsys.readouterr() == ("", "")


def test_a_failed_job_raises_job_failed_with_its_error() -> None:
    script = Script({"/v1/evaluations": [status(202, job_json("queued"))],
                     "/v1/jobs/j_1": [status(200, job_json("failed", 0.4))]})  # fmt: skip
    with pytest.raises(JobFailed, match="worker crashed") as caught:
        client_for(script, RecordingPolicy()).evaluate("b_1").wait()
    assert caught.value.job.status == "failed"
    assert not script.requests("/v1/jobs/j_1/result")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    future = httpx.Response(429, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert retry_after(future) is not None and retry_after(future) > 1e9  # type: ignore[operator]
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None


def test_backoff_grows_exponentially_within_its_jitter_and_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=5.0, jitter=0.25)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.75 * full <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered


@pytest.mark.anyio
async def test_the_async_client_retries_and_waits_the_same_way() -> None:
    script = Script(
        {
            "/v1/batches": [status(503, PROBLEM | {"status": 503}), refused, status(201, batch_json())],
            "/v1/evaluations": [status(202, job_json("queued"))],
            "/v1/jobs/j_1": list(RUNNING),
            "/v1/jobs/j_1/result": [status(200, result_json())],
        }
    )
    transport = httpx.MockTransport(script.handle_async)
    stream = FakeStream(tty=False)
    async with AsyncClient("http://yardstick.test", retry=RecordingPolicy(), transport=transport) as client:
        batch = await client.post_batch(TABLE, model="m", version="1", task="binary", format="arrow")
        job = await client.evaluate(batch, metrics=["accuracy"])
        result = await job.wait(progress=True, stream=stream)
    assert result == EvaluationResult.model_validate(result_json())
    attempts = script.requests("/v1/batches")
    assert len(attempts) == 3 and len({r.headers["idempotency-key"] for r, _ in attempts}) == 1
    assert attempts[0][1] == attempts[2][1]
    assert pa.ipc.open_stream(attempts[2][1]).read_all().equals(TABLE)
    assert attempts[2][0].headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert "\r" not in stream.getvalue() and stream.getvalue().count("\n") == 4


@pytest.mark.anyio
async def test_the_async_client_checks_requests_before_sending() -> None:
    script = Script({"/v1/evaluations": [status(202, job_json("queued"))]})
    async with AsyncClient(
        "http://yardstick.test", transport=httpx.MockTransport(script.handle_async)
    ) as client:
        with pytest.raises(YardstickError, match="metricz"):
            await client.evaluate("b_1", metricz=["accuracy"])
    assert script.seen == []


def test_the_client_package_imports_the_wire_models_not_the_service() -> None:
    """A pipeline installs the client to speak HTTP: it reads ``schemas`` and never the service's
    internals (which would drag the server, its store and workers into every pipeline)."""
    from tests.unit.test_architecture import ROOT, _imported, _modules

    known = set(_modules())
    broken = [
        f"yardstick/{path.name} (line {line}) imports {target}"
        for path in sorted((ROOT / "yardstick").glob("*.py"))
        for target, line in _imported(f"yardstick.{path.stem}", path, known)
        if target == "service" or target.startswith("service.")
    ]
    assert not broken
    assert any(  # the guard sees imports at all
        target.startswith("schemas.")
        for target, _ in _imported("yardstick.calls", ROOT / "yardstick" / "calls.py", known)
    )


def test_a_409_for_a_key_still_in_progress_is_retried_but_other_409s_are_final() -> None:
    in_progress = PROBLEM | {"status": 409, "errors": [{"field": "Idempotency-Key", "message": "not yet"}]}
    conflict = PROBLEM | {"status": 409, "errors": [{"field": "status", "message": "job already ended"}]}
    script = Script({"/v1/evaluations": [status(409, in_progress), status(202, job_json("queued"))],
                     "/v1/jobs/j_1/cancel": [status(409, conflict)]})  # fmt: skip
    client = client_for(script, RecordingPolicy())
    client.evaluate("b_1")
    assert len(script.requests("/v1/evaluations")) == 2
    policy = RecordingPolicy()
    assert policy.delay(1, httpx.Response(409, json=conflict)) is None
    assert policy.delay(1, httpx.Response(409, text="not json")) is None
