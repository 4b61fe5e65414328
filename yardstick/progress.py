"""What ``job.wait(progress=True)`` writes while a job runs, and how often it asks.

On a terminal, one line redrawn in place (``\\r``) with the stage and a bar; anywhere else (a CI
log, a pipe, a file), one plain line per change of status or stage, because a log shows every
``\\r`` redraw as a line of its own or as garbage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from schemas.jobs import Job

BAR_WIDTH = 24


def poll_delays(first: float = 0.05, factor: float = 1.5, cap: float = 1.0) -> Iterator[float]:
    """Seconds between polls of a job: quick at first (small jobs finish in well under a second),
    then backing off to ``cap`` so a long job costs the server one request a second."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)


def _phase(job: Job) -> str:
    return job.stage if job.status == "running" and job.stage else job.status


class ProgressPrinter:
    """Shows a job's progress on ``stream``: a bar when it is a terminal, else log lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._last: str | None = None
        self._drawn = False

    def update(self, job: Job) -> None:
        phase = _phase(job)
        if self.tty:
            filled = round(job.progress * BAR_WIDTH)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\rjob {job.id} [{bar}] {job.progress * 100:3.0f}% {phase:<12}")
            self._drawn = True
        elif phase != self._last:
            self.stream.write(f"job {job.id}: {phase} ({job.progress * 100:.0f}%)\n")
        self._last = phase
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line, so what follows starts on a line of its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
