"""Job resource: the durable lifecycle of one evaluation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas.common import Page, WireModel

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class Job(WireModel):
    id: str
    status: JobStatus
    progress: float = Field(ge=0, le=1, description="Fraction of the work done, 0..1.")
    batch_id: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(description="How many times a worker has started this job.")
    error: str | None = None


JobList = Page[Job]
