"""A handle on an evaluation job: wait for it, then read its result, slices, report and JUnit.

:class:`Job` (sync) and :class:`AsyncJob` poll the same way; what they decide after each poll
(print progress, stop, fail, give up) is :class:`Waiting`'s, written once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from schemas.jobs import TERMINAL_STATUSES
from schemas.jobs import Job as JobState
from schemas.results import EvaluationResult
from yardstick import calls
from yardstick.errors import JobFailed, YardstickError
from yardstick.frames import DataFrame, slice_frames
from yardstick.progress import ProgressPrinter, poll_delays

if TYPE_CHECKING:
    from yardstick.aio import AsyncClient
    from yardstick.client import Client


class Waiting:
    """The decisions of one ``wait``: show progress, stop at a terminal status, raise on failure or
    when ``timeout`` seconds pass."""

    def __init__(self, *, progress: bool, stream: TextIO | None, timeout: float | None) -> None:
        self.printer = ProgressPrinter(stream or sys.stderr) if progress else None
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def finished(self, state: JobState) -> bool:
        if self.printer:
            self.printer.update(state)
        if state.status in TERMINAL_STATUSES:
            if self.printer:
                self.printer.close()
            if state.status != "succeeded":
                raise JobFailed(state)
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            if self.printer:
                self.printer.close()
            raise YardstickError(f"job {state.id} still {state.status} when the wait timed out")
        return False


class Job:
    """An evaluation job of a :class:`~yardstick.Client`; ``state`` is its status when last read."""

    def __init__(self, client: Client, state: JobState) -> None:
        self._client = client
        self.state = state
        self._result: EvaluationResult | None = None

    @property
    def id(self) -> str:
        return self.state.id

    def refresh(self) -> JobState:
        self.state = self._client._run(calls.get_job(self.id))
        return self.state

    def wait(
        self, *, progress: bool = False, timeout: float | None = None, stream: TextIO | None = None
    ) -> EvaluationResult:
        """Poll until the job ends and return its result; :class:`~yardstick.JobFailed` if it failed
        or was cancelled. ``progress`` writes to ``stream`` (default stderr)."""
        waiting = Waiting(progress=progress, stream=stream, timeout=timeout)
        for delay in poll_delays():
            if waiting.finished(self.refresh()):
                return self.result()
            time.sleep(delay)
        raise AssertionError("poll_delays never ends")

    def result(self) -> EvaluationResult:
        if self._result is None:
            self._result = self._client._run(calls.get_result(self.id))
        return self._result

    def slices(self) -> dict[str, DataFrame]:
        """The result's slice tables as pandas DataFrames (see :func:`yardstick.frames.slice_frames`)."""
        return slice_frames(self.result())

    def report(self, path: str | Path | None = None) -> bytes:
        """The HTML report (``GET /v1/jobs/{id}/report``), saved to ``path`` when given."""
        return calls.saved(self._client._run(calls.get_report(self.id)), path)

    def junit(self, path: str | Path | None = None) -> bytes:
        """The gate report as JUnit XML, saved to ``path`` when given."""
        return calls.saved(self._client._run(calls.get_junit(self.id)), path)


class AsyncJob:
    """:class:`Job` for :class:`~yardstick.AsyncClient`: the same methods, awaited."""

    def __init__(self, client: AsyncClient, state: JobState) -> None:
        self._client = client
        self.state = state
        self._result: EvaluationResult | None = None

    @property
    def id(self) -> str:
        return self.state.id

    async def refresh(self) -> JobState:
        self.state = await self._client._run(calls.get_job(self.id))
        return self.state

    async def wait(
        self, *, progress: bool = False, timeout: float | None = None, stream: TextIO | None = None
    ) -> EvaluationResult:
        waiting = Waiting(progress=progress, stream=stream, timeout=timeout)
        for delay in poll_delays():
            if waiting.finished(await self.refresh()):
                return await self.result()
            await anyio.sleep(delay)
        raise AssertionError("poll_delays never ends")

    async def result(self) -> EvaluationResult:
        if self._result is None:
            self._result = await self._client._run(calls.get_result(self.id))
        return self._result

    async def slices(self) -> dict[str, DataFrame]:
        return slice_frames(await self.result())

    async def report(self, path: str | Path | None = None) -> bytes:
        return calls.saved(await self._client._run(calls.get_report(self.id)), path)

    async def junit(self, path: str | Path | None = None) -> bytes:
        return calls.saved(await self._client._run(calls.get_junit(self.id)), path)
