"""Job resource: the durable lifecycle of one evaluation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from schemas.common import Page, WireModel

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

JobStage = Literal["reading", "metrics", "bootstrap", "calibration", "robustness", "slices", "finishing"]
#: The stages of an evaluation in order, each with the progress at which it starts: a running job's
#: ``stage`` is the one its progress is in. A section the request does not ask for is skipped.
STAGES: tuple[tuple[JobStage, float], ...] = (
    ("reading", 0.0),  # the batch's file
    ("metrics", 0.05),  # the model's metrics and the baseline panel
    ("bootstrap", 0.2),
    ("calibration", 0.6),  # calibration and confidence
    ("robustness", 0.65),
    ("slices", 0.8),
    ("finishing", 0.95),  # findings, gates and the verdict; then the result is stored
)


def stage_progress(stage: JobStage, fraction: float = 0.0) -> float:
    """The job's progress when ``fraction`` (0..1) of ``stage`` is done: within the stage's band,
    short of the next stage's start."""
    names = [name for name, _ in STAGES]
    i = names.index(stage)
    start = STAGES[i][1]
    end = STAGES[i + 1][1] if i + 1 < len(STAGES) else 1.0
    return min(start + (end - start) * min(max(fraction, 0.0), 1.0), end - 1e-6)


def stage_of(progress: float) -> JobStage:
    """The stage whose band holds ``progress``."""
    current = STAGES[0][0]
    for name, start in STAGES:
        if progress >= start:
            current = name
    return current


_BANDS = ", ".join(f"{name} ({start:g})" for name, start in STAGES)


class Job(WireModel):
    id: str
    status: JobStatus
    progress: float = Field(
        ge=0, le=1, description="Fraction of the work done, 0..1. It never decreases, even across retries."
    )
    stage: JobStage | None = Field(
        default=None,
        description=f"While the job runs, the step its progress is in; each starts at the progress shown: "
        f"{_BANDS}. metrics includes the baseline panel, calibration the confidence section; steps the "
        "request does not ask for are skipped. A retried job keeps the furthest progress an attempt "
        "reached, so its stage is where the work got to. None unless the job is running.",
    )
    batch_id: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(description="How many times a worker has started this job.")
    error: str | None = None

    @model_validator(mode="after")
    def _stage_from_progress(self) -> Job:
        if self.stage is None and self.status == "running":
            self.stage = stage_of(self.progress)
        return self


JobList = Page[Job]
