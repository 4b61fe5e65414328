"""Every request the client makes, described once as data; :class:`~yardstick.client.Client` and
:class:`~yardstick.aio.AsyncClient` only differ in how they send a :class:`Call` and wait.

A call says what to send (method, path, query, JSON or a body *factory*, since a streamed body
is consumed by sending it and a retry needs a fresh one) and how to read a success. Arguments
are checked here, before anything is sent, so a typo in an evaluation request fails locally
naming the field instead of after an upload.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from schemas.batches import Batch, LabelUpdateResult
from schemas.evaluations import EvaluationCreate
from schemas.jobs import Job
from schemas.problems import Problem, ProblemIssue
from schemas.results import EvaluationResult
from yardstick.errors import ServiceUnreachable, YardstickError, problem_error
from yardstick.frames import MEDIA_TYPES, Format, encode, to_arrow
from yardstick.retry import IDEMPOTENCY_HEADER

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    decode: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    json: Any = None
    #: a fresh iterator of the body's bytes per attempt (a streamed upload)
    body: Callable[[], Iterator[bytes]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: create calls: one Idempotency-Key for all attempts, so a retry cannot create twice
    idempotency_key: str | None = None

    def request(self, http: httpx.Client | httpx.AsyncClient, content: Any = None) -> httpx.Request:
        headers = dict(self.headers)
        if self.idempotency_key:
            headers[IDEMPOTENCY_HEADER] = self.idempotency_key
        return http.build_request(
            self.method, self.path, params=self.params, json=self.json, content=content, headers=headers
        )

    def outcome(self, outcome: httpx.Response | Exception) -> T:
        """The decoded success, or the exception for a final failure."""
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:
                return self.decode(outcome)
            raise problem_error(outcome)
        if isinstance(outcome, httpx.TransportError):
            where = f"{self.method} {outcome.request.url}" if _has_request(outcome) else self.path
            raise ServiceUnreachable(f"{where}: no answer ({type(outcome).__name__}: {outcome})") from outcome
        raise outcome


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises when the error was made without a request
    except RuntimeError:
        return False
    return True


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def batch_id_of(batch: Batch | str) -> str:
    return batch if isinstance(batch, str) else batch.id


def post_batch(
    frame: Any,
    *,
    model: str,
    version: str | int,
    task: str,
    positive_class: str | int | None = None,
    classes: Sequence[str | int] | None = None,
    threshold: float | None = None,
    format: Format = "parquet",
) -> Call[Batch]:
    """``POST /v1/batches`` with the frame streamed as Parquet (or an Arrow IPC stream)."""
    if format not in MEDIA_TYPES:
        raise ValueError(f"format must be one of {sorted(MEDIA_TYPES)}, not {format!r}")
    table = to_arrow(frame)
    params = {"model": model, "version": str(version), "task": task}
    if positive_class is not None:
        params["positive_class"] = str(positive_class)
    if classes is not None:
        params["classes"] = ",".join(str(c) for c in classes)
    if threshold is not None:
        params["threshold"] = repr(float(threshold))
    return Call(
        "POST",
        "/v1/batches",
        _model(Batch),
        params=params,
        body=lambda: encode(table, format),
        headers={"content-type": MEDIA_TYPES[format]},
        idempotency_key=str(uuid.uuid4()),
    )


def put_labels(batch: Batch | str, labels: Any) -> Call[LabelUpdateResult]:
    """``PUT /v1/batches/{id}/labels`` from a frame with ``sample_id`` and ``label`` columns, or a
    list of ``{"sample_id", "label"}`` dicts."""
    if isinstance(labels, list):
        body: dict[str, Any] = {"labels": labels}
    else:
        table = to_arrow(labels)
        missing = {"sample_id", "label"} - set(table.column_names)
        if missing:
            raise ValueError(f"the labels frame needs sample_id and label columns; missing {sorted(missing)}")
        body = {"columns": {name: table.column(name).to_pylist() for name in ("sample_id", "label")}}
    # PUT replaces the same labels again: safe to retry without a key
    return Call("PUT", f"/v1/batches/{batch_id_of(batch)}/labels", _model(LabelUpdateResult), json=body)


def evaluation_request(batch: Batch | str, sections: Mapping[str, Any]) -> EvaluationCreate:
    """The evaluation request, checked with the service's own model before anything is sent."""
    try:
        return EvaluationCreate.model_validate({**sections, "batch_id": batch_id_of(batch)})
    except ValidationError as exc:
        issues = [
            ProblemIssue(field=".".join(str(p) for p in error["loc"]) or "body", message=error["msg"])
            for error in exc.errors()
        ]
        detail = "; ".join(f"{issue.field}: {issue.message}" for issue in issues)
        problem = Problem(
            type="about:blank", title="Invalid evaluation request", status=422, detail=detail, errors=issues
        )
        raise YardstickError(f"invalid evaluation request: {detail}", problem=problem) from None


def evaluate(batch: Batch | str, sections: Mapping[str, Any]) -> Call[Job]:
    request = evaluation_request(batch, sections)
    return Call(
        "POST",
        "/v1/evaluations",
        _model(Job),
        json=request.model_dump(mode="json", exclude_unset=True),
        idempotency_key=str(uuid.uuid4()),
    )


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{job_id}", _model(Job))


def get_result(job_id: str) -> Call[EvaluationResult]:
    return Call("GET", f"/v1/jobs/{job_id}/result", _model(EvaluationResult))


def get_junit(job_id: str) -> Call[bytes]:
    return Call("GET", f"/v1/jobs/{job_id}/result", _bytes, params={"format": "junit"})


def get_report(job_id: str) -> Call[bytes]:
    return Call("GET", f"/v1/jobs/{job_id}/report", _bytes, headers={"accept": "text/html"})


def saved(content: bytes, path: str | Path | None) -> bytes:
    """``content`` (a report, a JUnit file), written to ``path`` when one is given."""
    if path is not None:
        Path(path).write_bytes(content)
    return content
