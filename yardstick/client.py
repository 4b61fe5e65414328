"""The synchronous client: :class:`Client`.

Requests are described in :mod:`yardstick.calls`; this module sends them with ``httpx.Client``,
retrying as :class:`~yardstick.retry.RetryPolicy` says. :mod:`yardstick.aio` does the same with
``httpx.AsyncClient``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from schemas.batches import Batch, LabelUpdateResult
from schemas.results import EvaluationResult
from yardstick import calls
from yardstick.config import DEFAULT_TIMEOUT, auth_headers, service_url
from yardstick.frames import Format
from yardstick.jobs import Job
from yardstick.retry import RetryPolicy

T = TypeVar("T")


def connection_options(url: str | None, api_key: str | None) -> dict[str, Any]:
    """``httpx`` client options for the service at ``url`` (see :mod:`yardstick.config`)."""
    headers = {"user-agent": "yardstick-client"} | auth_headers(api_key)
    return {"base_url": service_url(url), "headers": headers, "timeout": DEFAULT_TIMEOUT}


class Client:
    """A Yardstick service, from a pipeline. See the package docstring for a tour."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(transport=transport, **connection_options(url, api_key))

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    def _run(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            content = call.body() if call.body else None
            outcome: httpx.Response | Exception
            try:
                outcome = self._http.send(call.request(self._http, content))
            except httpx.TransportError as exc:
                outcome = exc
            delay = self.retry.delay(attempt, outcome)
            if delay is None:
                return call.outcome(outcome)
            time.sleep(delay)

    def post_batch(
        self,
        frame: Any,
        *,
        model: str,
        version: str | int,
        task: str,
        positive_class: str | int | None = None,
        classes: Sequence[str | int] | None = None,
        threshold: float | None = None,
        format: Format = "parquet",
    ) -> Batch:
        """Upload a pandas/polars DataFrame or pyarrow Table, streamed as Parquet (or ``format="arrow"``)."""
        return self._run(
            calls.post_batch(
                frame,
                model=model,
                version=version,
                task=task,
                positive_class=positive_class,
                classes=classes,
                threshold=threshold,
                format=format,
            )
        )

    def put_labels(self, batch: Batch | str, labels: Any) -> LabelUpdateResult:
        """Late labels: a frame with ``sample_id`` and ``label``, or a list of such dicts."""
        return self._run(calls.put_labels(batch, labels))

    def evaluate(self, batch: Batch | str, **sections: Any) -> Job:
        """Queue an evaluation; ``sections`` are the fields of ``schemas.evaluations.EvaluationCreate``
        (metrics, bootstrap, gates, baselines, ...), checked here before anything is sent."""
        return Job(self, self._run(calls.evaluate(batch, sections)))

    def job(self, job_id: str) -> Job:
        return Job(self, self._run(calls.get_job(job_id)))

    def result(self, job_id: str) -> EvaluationResult:
        return self._run(calls.get_result(job_id))

    def report(self, job_id: str, path: str | Path | None = None) -> bytes:
        """The job's HTML report, saved to ``path`` when given."""
        return calls.saved(self._run(calls.get_report(job_id)), path)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
