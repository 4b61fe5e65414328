"""The asyncio client: :class:`AsyncClient`, :class:`~yardstick.Client`'s methods awaited.

The requests are the same :mod:`yardstick.calls`; only sending, sleeping and the streamed body
differ. The body's chunks are encoded in a worker thread, so a large upload does not hold the
event loop while it compresses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from schemas.batches import Batch, LabelUpdateResult
from schemas.results import EvaluationResult
from yardstick import calls
from yardstick.client import connection_options
from yardstick.frames import Format
from yardstick.jobs import AsyncJob
from yardstick.retry import RetryPolicy

T = TypeVar("T")


async def _in_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
        yield chunk


class AsyncClient:
    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(transport=transport, **connection_options(url, api_key))

    @property
    def url(self) -> str:
        return str(self._http.base_url)

    async def _run(self, call: calls.Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            content = _in_thread(call.body()) if call.body else None
            outcome: httpx.Response | Exception
            try:
                outcome = await self._http.send(call.request(self._http, content))
            except httpx.TransportError as exc:
                outcome = exc
            delay = self.retry.delay(attempt, outcome)
            if delay is None:
                return call.outcome(outcome)
            await anyio.sleep(delay)

    async def post_batch(
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
        return await self._run(
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

    async def put_labels(self, batch: Batch | str, labels: Any) -> LabelUpdateResult:
        return await self._run(calls.put_labels(batch, labels))

    async def evaluate(self, batch: Batch | str, **sections: Any) -> AsyncJob:
        return AsyncJob(self, await self._run(calls.evaluate(batch, sections)))

    async def job(self, job_id: str) -> AsyncJob:
        return AsyncJob(self, await self._run(calls.get_job(job_id)))

    async def result(self, job_id: str) -> EvaluationResult:
        return await self._run(calls.get_result(job_id))

    async def report(self, job_id: str, path: str | Path | None = None) -> bytes:
        return calls.saved(await self._run(calls.get_report(job_id)), path)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
