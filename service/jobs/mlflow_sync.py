"""MLflow both ways: a run imported into the run store, an evaluation exported to MLflow.

The calls go through :mod:`service.integrations.mlflow` (REST, outbound-safe); this module joins
them with the store.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.common import ModelRef
from schemas.evaluations import EvaluationCreate
from schemas.results import EvaluationResult, SectionError
from schemas.runs import (
    MAX_POINTS_PER_CALL,
    MetricLog,
    MetricPoint,
    MlflowExport,
    MlflowExported,
    RunCreate,
    RunImport,
    RunImported,
    RunUpdate,
)
from service.errors import FieldIssue, InvalidInput
from service.integrations.mlflow import MAX_RESPONSE_BYTES, Mlflow, MlflowRun, last_value_per_step
from service.integrations.outbound import OutboundBlocked, OutboundError, OutboundPolicy, outbound_client
from service.settings import Settings
from service.store import new_id
from service.store.runs import RunStore

TIMEOUT_SECONDS = 30.0
#: Tag keys longer than ours, or MLflow's own bookkeeping, are not copied.
_MAX_TAG_KEY = 250


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def check_tracking_uri(policy: OutboundPolicy, uri: str, field: str) -> None:
    """A 422 now for a tracking URI the outbound policy refuses (checked again at connect time)."""
    try:
        policy.check_url(uri)
    except (OutboundBlocked, ValueError) as exc:
        fix = FieldIssue(field, "use an http(s) address the outbound policy allows")
        raise InvalidInput(str(exc), [fix]) from exc


async def read_mlflow_run(source_uri: str, run_id: str, policy: OutboundPolicy) -> MlflowRun:
    client = outbound_client(policy, timeout=TIMEOUT_SECONDS, max_response_bytes=MAX_RESPONSE_BYTES)
    async with client:
        return await Mlflow(source_uri, client).read_run(run_id)


def import_mlflow_run(
    runs: RunStore, request: RunImport, policy: OutboundPolicy, now: datetime
) -> RunImported:
    """Copy an MLflow run: params, tags, status and times, and every metric's full history."""
    check_tracking_uri(policy, request.mlflow.tracking_uri, "mlflow.tracking_uri")
    try:
        found = asyncio.run(read_mlflow_run(request.mlflow.tracking_uri, request.mlflow.run_id, policy))
    except OutboundBlocked as exc:
        allowed = FieldIssue("mlflow.tracking_uri", "use an address the outbound policy allows")
        raise InvalidInput(str(exc), [allowed]) from exc
    except OutboundError as exc:
        hint = "check the run id" if exc.status == 404 else "check that the tracking server answers"
        raise InvalidInput(
            f"could not read MLflow run {request.mlflow.run_id!r}: {exc}", [FieldIssue("mlflow", hint)]
        ) from exc
    tags = {k: v for k, v in found.tags.items() if len(k) <= _MAX_TAG_KEY}
    tags["yardstick.imported_from"] = f"{request.mlflow.tracking_uri.rstrip('/')}#{found.run_id}"
    run = runs.create(
        new_id("r"),
        RunCreate(
            model=ModelRef(name=request.model.name, version=request.model.version),
            name=found.name,
            params=dict(found.params),
            tags=tags,
            source_commit=found.tags.get("mlflow.source.git.commit"),
            started_at=_time(found.start_ms),
        ),
        now,
    )
    points: list[MetricPoint] = []
    total = 0
    for name, history in found.histories.items():
        kept = last_value_per_step(history)
        total += len(history)
        points += [
            MetricPoint(name=name, step=step, value=value, timestamp=_time(ms)) for step, value, ms in kept
        ]
    for start in range(0, len(points), MAX_POINTS_PER_CALL):
        runs.log(run.id, MetricLog(points=points[start : start + MAX_POINTS_PER_CALL]), now)
    ended = runs.update(run.id, RunUpdate(status=found.status, ended_at=_time(found.end_ms)), now)
    return RunImported(run=ended, points=len(points), skipped=total - len(points))


def _params_of(request: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """The evaluation request as MLflow params: dotted keys, leaves as JSON text."""
    for key, value in request.items():
        if not prefix and key in ("mlflow", "callback_url"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _params_of(value, f"{name}.")
        else:
            yield name, orjson.dumps(value).decode()


def _metrics_of(result: dict[str, Any], timestamp_ms: int) -> list[dict[str, Any]]:
    """Each metric, and its interval's bounds as ``<metric>.lower`` / ``<metric>.upper``."""
    points = []

    def add(key: str, value: Any) -> None:
        if isinstance(value, int | float) and math.isfinite(value):
            points.append({"key": key, "value": float(value), "timestamp": timestamp_ms, "step": 0})

    for name, value in result.get("metrics", {}).items():
        add(name, value)
        interval = result.get("intervals", {}).get(name)
        if interval:
            add(f"{name}.lower", interval.get("low"))
            add(f"{name}.upper", interval.get("high"))
    return points


async def _export(
    target: MlflowExport,
    *,
    job_id: str,
    request: dict[str, Any],
    result: dict[str, Any],
    report_html: str | None,
    policy: OutboundPolicy,
    now: datetime,
) -> MlflowExported:
    client = outbound_client(policy, timeout=TIMEOUT_SECONDS, max_response_bytes=MAX_RESPONSE_BYTES)
    async with client:
        mlflow = Mlflow(target.tracking_uri, client)
        now_ms = int(now.timestamp() * 1000)
        model = result.get("model", {})
        tags = {
            "yardstick.job_id": job_id,
            "yardstick.batch_id": str(result.get("batch_id", "")),
            "yardstick.model": str(model.get("name", "")),
            "yardstick.model_version": str(model.get("version", "")),
            "yardstick.verdict": str((result.get("verdict") or {}).get("status", "")),
            "yardstick.result": f"/v1/jobs/{job_id}/result",
            "yardstick.report": f"/v1/jobs/{job_id}/report",
        }
        if target.run_id is None:
            experiment_id = await mlflow.experiment_id(target.experiment)
            name = f"yardstick {model.get('name', '')} {model.get('version', '')}".strip()
            run_id = await mlflow.create_run(experiment_id, name=name, start_ms=now_ms, tags={})
        else:
            run_id = target.run_id
        info = await mlflow.run_info(run_id)
        experiment_id = str(info["experiment_id"])
        params = dict(_params_of(request))
        if target.run_id is not None:  # params of a training run are not ours to set: prefix them
            params = {f"yardstick.{k}": v for k, v in params.items()}
        await mlflow.log_batch(run_id, metrics=_metrics_of(result, now_ms), params=params, tags=tags)
        artifacts = info.get("artifact_uri", "")
        await mlflow.upload_artifact(
            artifacts, "yardstick/result.json", orjson.dumps(result), "application/json"
        )
        if report_html is not None:
            await mlflow.upload_artifact(
                artifacts, "yardstick/report.html", report_html.encode(), "text/html; charset=utf-8"
            )
        if target.run_id is None:
            await mlflow.end_run(run_id, end_ms=now_ms)
    return MlflowExported(tracking_uri=target.tracking_uri, experiment_id=experiment_id, run_id=run_id)


def export_evaluation(
    target: MlflowExport,
    *,
    job_id: str,
    request: dict[str, Any],
    result: dict[str, Any],
    report_html: str | None,
    policy: OutboundPolicy,
    now: datetime,
) -> MlflowExported:
    """Log an evaluation to MLflow: metrics with interval bounds, the request as params, tags
    linking back to the job, and the result JSON and HTML report as artifacts. Raises
    OutboundError / OutboundBlocked; the caller records them as the section's error."""
    return asyncio.run(
        _export(
            target,
            job_id=job_id,
            request=request,
            result=result,
            report_html=report_html,
            policy=policy,
            now=now,
        )
    )


def export_result(result: EvaluationResult, request: EvaluationCreate, settings: Settings) -> None:
    """The evaluation job's last step: log ``result`` to the request's MLflow server and say where
    in ``result.mlflow``, or record the failure as the section's error (the job still succeeds)."""
    if request.mlflow is None:
        return
    from service.reports.report import render_report

    policy = OutboundPolicy.from_settings(settings.outbound_allow)
    try:
        result.mlflow = export_evaluation(
            request.mlflow,
            job_id=result.job_id,
            request=request.model_dump(mode="json", exclude_none=True),
            result=result.model_dump(mode="json"),
            report_html=render_report(result),
            policy=policy,
            now=datetime.now(UTC),
        )
    except (OutboundError, OutboundBlocked) as exc:
        result.errors["mlflow"] = SectionError(error=f"MLflow export failed: {exc}")
