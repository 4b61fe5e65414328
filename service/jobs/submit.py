"""Accepting an evaluation: everything that can be checked before queueing is checked here,
so a job that gets its 202 fails later only for reasons the request could not show."""

from __future__ import annotations

from schemas.evaluations import PLANNED_SECTIONS, EvaluationCreate
from service.errors import FieldIssue, InvalidInput, NotFound
from service.ingest.canonical import SCORE, SCORE_PREFIX
from service.settings import Settings
from service.store import JobRecord, Store, new_id
from service.store.records import BatchRecord
from service.store.sql import utcnow
from service.workers import metrics as metrics_worker


def _has_scores(batch: BatchRecord) -> bool:
    names = {c["name"] for c in batch.columns}
    return SCORE in names or any(n.startswith(SCORE_PREFIX) for n in names)


def validate_request(request: EvaluationCreate, batch: BatchRecord) -> None:
    issues: list[FieldIssue] = []
    for section in PLANNED_SECTIONS:
        if getattr(request, section) is not None:
            issues.append(
                FieldIssue(section, f"`{section}` is not available in this version of Yardstick yet; remove it")
            )
    has_scores = _has_scores(batch)
    if request.metrics is not None:
        try:
            metrics_worker.validate_metric_names(batch.task, request.metrics, has_scores=has_scores)
        except ValueError as exc:
            issues.append(FieldIssue("metrics", str(exc)))
    computed = set(request.metrics or metrics_worker.default_metrics(batch.task, has_scores=has_scores))
    for i, gate in enumerate(request.gates or []):
        if gate.metric not in computed:
            issues.append(
                FieldIssue(
                    f"gates[{i}].metric",
                    f"{gate.metric!r} is not among the metrics this evaluation computes: {sorted(computed)}",
                )
            )
    if issues:
        raise InvalidInput("; ".join(f"{i.field}: {i.message}" for i in issues), issues)


def submit_evaluation(store: Store, settings: Settings, request: EvaluationCreate) -> JobRecord:
    try:
        batch = store.meta.get_batch(request.batch_id)
    except NotFound as exc:
        raise InvalidInput(
            f"batch {request.batch_id!r} does not exist",
            [FieldIssue("batch_id", "create the batch first with POST /v1/batches and use its id")],
        ) from exc
    validate_request(request, batch)
    job = JobRecord(
        id=new_id("j"),
        batch_id=batch.id,
        model_name=batch.model_name,
        model_version=batch.model_version,
        status="queued",
        progress=0.0,
        request=request.model_dump(mode="json", exclude_none=True),
        error=None,
        attempts=0,
        max_attempts=settings.max_attempts,
        lease_owner=None,
        lease_expires_at=None,
        cancel_requested=False,
        created_at=utcnow(),
        started_at=None,
        finished_at=None,
    )
    store.meta.insert_job(job)
    return job
