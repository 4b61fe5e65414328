"""What the store hands out: plain frozen records, never ORM rows or connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.batches import Batch, Column
from schemas.batches import ColumnRole as Role
from schemas.common import ModelRef
from schemas.jobs import Job
from service.canonical import BatchSpec, Label, Task
from service.settings import DEFAULT_PROJECT


@dataclass(frozen=True)
class BatchRecord:
    id: str
    model_name: str
    model_version: str
    task: Task
    classes: list[Label] | None
    positive_class: Label | None
    rows: int
    labeled_rows: int
    columns: list[Column]
    data_path: str
    data_version: int
    created_at: datetime
    #: The tenant: only keys of this project see the batch (service.settings.ApiKey).
    project: str = DEFAULT_PROJECT

    def column_names(self, *roles: Role) -> list[str]:
        """The names of the batch's columns with one of ``roles`` (every column when none is given),
        in file order."""
        return [c.name for c in self.columns if not roles or c.role in roles]

    @property
    def positive_code(self) -> int | None:
        """Binary: the code of ``positive_class`` (its index in ``classes``); otherwise ``None``."""
        if self.task != "binary":
            return None
        if self.positive_class is None:
            raise ValueError("a binary batch without positive_class")  # ingest always resolves it
        return (self.classes or []).index(self.positive_class)

    @property
    def spec(self) -> BatchSpec:
        return BatchSpec(
            model_name=self.model_name,
            model_version=self.model_version,
            task=self.task,
            positive_class=self.positive_class,
            classes=self.classes,
        )

    def to_wire(self) -> Batch:
        return Batch(
            id=self.id,
            model=ModelRef(name=self.model_name, version=self.model_version),
            task=self.task,
            classes=self.classes,
            positive_class=self.positive_class,
            rows=self.rows,
            labeled_rows=self.labeled_rows,
            columns=list(self.columns),
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class JobRecord:
    id: str
    batch_id: str
    model_name: str
    model_version: str
    status: str
    progress: float
    request: dict[str, Any]
    error: str | None
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: The project of its batch; the job reads other batches within it only.
    project: str = DEFAULT_PROJECT

    def to_wire(self) -> Job:
        return Job(
            id=self.id,
            status=self.status,
            progress=self.progress,
            batch_id=self.batch_id,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            attempts=self.attempts,
            error=self.error,
        )


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer to a create request sent with an Idempotency-Key, as replayed."""

    status: int
    body: dict[str, Any]
    location: str | None


@dataclass(frozen=True)
class IdempotencyClaim:
    """This request runs first for its key: ``owner`` holds the key until it stores its answer."""

    project: str
    key: str
    fingerprint: str
    owner: str


@dataclass(frozen=True)
class IdempotencyEntry:
    """Another request took the key first: its fingerprint, and its answer once it has one."""

    fingerprint: str
    answer: StoredAnswer | None


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluation job of a model as the model list and page show it: the job's own columns plus
    the two parts of its result they plot (read out of the stored document by the database, so a
    large result is never shipped whole)."""

    job_id: str
    version: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    #: The result's ``verdict`` (None unless succeeded, or in results stored before verdicts).
    verdict: dict[str, Any] | None
    #: The result's ``slices.critical`` (empty when not read, not requested, or not succeeded).
    critical: list[dict[str, Any]] = field(default_factory=list)
    #: With ``metric=``: the result's ``metrics[metric]`` and ``intervals[metric]`` (None if absent).
    metric_value: float | None = None
    metric_interval: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelRecord:
    """A model name of a project with its evaluation counts and newest succeeded evaluation."""

    name: str
    evaluations: int
    succeeded: int
    #: When its newest evaluation job (any status) was created: the list's order.
    last_created_at: datetime
    latest: EvaluationRecord | None
