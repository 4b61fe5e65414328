"""One evaluation, end to end: read the batch, run the requested workers, build the result.

This is the only place that joins storage and computation: workers get numpy arrays and
options and return result models; the store gets a JSON document back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict, TypeVar

import numpy as np
import pyarrow as pa

from schemas.baselines import BaselineResult
from schemas.common import ModelRef
from schemas.evaluations import EvaluationCreate
from schemas.jobs import stage_progress
from schemas.latency import LatencyResult
from schemas.metrics import Interval, MetricsReport
from schemas.results import Curves, EvaluationResult, Finding, PrimaryMetric, SectionError, Threshold
from schemas.slices import SlicesResult
from service.canonical import DEFAULT_THRESHOLD, LABEL, LATENCY, SAMPLE_ID
from service.errors import YardstickError
from service.expressions import parse
from service.integrations.model_endpoint import EndpointError
from service.integrations.outbound import OutboundBlocked, OutboundError
from service.jobs.baselines import BaselineRunner, labeled_rows
from service.jobs.calibration import run_calibration
from service.jobs.confidence import regression_confidence, run_confidence
from service.jobs.decoding import EvaluationData, evaluation_data, labeled, metric_columns, score_matrix
from service.jobs.gates import check_gates
from service.jobs.mlflow_sync import export_result
from service.jobs.robustness import run_robustness
from service.jobs.slices import codes_of, comparison_paradoxes, run_slices, slice_columns
from service.settings import Settings
from service.store import Store
from service.store.records import BatchRecord, JobRecord
from service.workers import bootstrap as bootstrap_worker
from service.workers import metrics as metrics_worker
from service.workers.baselines import PreparedSide, Side, prepare_side
from service.workers.latency import latency_report
from service.workers.metrics import needs_scores
from service.workers.metrics.curves import binary_curves
from service.workers.primary_metric import (
    PrimaryChoice,
    choose_primary_metric,
    label_primary_metric,
)
from service.workers.sorting import sort_floats
from service.workers.verdict import decide, rank_findings

Progress = Callable[[float], None]
T = TypeVar("T")
_log = logging.getLogger(__name__)


class _BootstrapOptions(TypedDict):
    """The keyword arguments both bootstrap workers take from the request."""

    metrics: list[str]
    samples: int
    confidence: float
    seed: int
    progress: Progress


def baseline_columns(request: EvaluationCreate, *, sample_ids: bool = True) -> list[str]:
    """Extra columns the baselines read: sample ids for joins (when one is needed), and
    the rules' columns."""
    if request.baselines is None:
        return []
    names = {SAMPLE_ID} if sample_ids else set()
    for heuristic in request.baselines.heuristics:
        for rule in heuristic.rules:
            names |= parse(rule.when).columns()
    return sorted(names)


def compute_metrics(data: EvaluationData, batch: BatchRecord, request: EvaluationCreate) -> MetricsReport:
    if batch.task == "regression":
        return metrics_worker.regression_metrics(data.y_true, data.y_pred, metrics=request.metrics)
    classes = batch.classes or []
    positive = batch.positive_code
    return metrics_worker.classification_metrics(
        data.y_true,
        data.y_pred,
        n_classes=len(classes),
        class_names=[str(c) for c in classes],
        positive=positive,
        scores=data.scores,
        metrics=request.metrics,
        labels=request.labels,
    )


def model_metric_names(data: EvaluationData, batch: BatchRecord, request: EvaluationCreate) -> list[str]:
    """The metrics computed for the model: the requested ones, else the task's defaults; and the
    label primary metric when a baseline without scores must be compared on it."""
    has_scores = data.scores is not None
    names = list(request.metrics or metrics_worker.default_metrics(batch.task, has_scores=has_scores))
    # prepare_side tolerates a side without scores (baselines may lack them); the model may not.
    metrics_worker.validate_metric_names(batch.task, names, has_scores=has_scores)
    spec = request.baselines
    scoreless = spec is not None and bool(spec.heuristics or spec.human or spec.existing)
    primary = primary_choice(data, batch, request).name
    if scoreless and needs_scores(primary):
        label = label_primary_choice(data, batch).name
        if label not in names:
            names.append(label)
    return names


def _support(data: EvaluationData, batch: BatchRecord) -> np.ndarray | None:
    if batch.task == "regression":
        return None
    return np.bincount(data.y_true, minlength=len(batch.classes or []))


def _positive(batch: BatchRecord) -> int | None:
    return batch.positive_code


def primary_choice(data: EvaluationData, batch: BatchRecord, request: EvaluationCreate) -> PrimaryChoice:
    """The metric the verdict leads with and "beats" follows (:mod:`service.workers.primary_metric`)."""
    return choose_primary_metric(
        batch.task, requested=request.metrics, support=_support(data, batch), positive=_positive(batch)
    )


def label_primary_choice(data: EvaluationData, batch: BatchRecord) -> PrimaryChoice:
    """The primary metric among the label metrics: what a rule or a person is compared on."""
    return label_primary_metric(batch.task, support=_support(data, batch), positive=_positive(batch))


def prepare_model(
    data: EvaluationData,
    batch: BatchRecord,
    request: EvaluationCreate,
    sorted_scores: tuple[np.ndarray, np.ndarray] | None = None,
) -> PreparedSide:
    """The model's metrics together with what the baseline tests need, from one pass over its scores.

    ``sorted_scores``: binary only, :func:`~service.workers.sorting.sort_floats` of ``data.scores``.
    """
    classes = batch.classes or []
    regression = batch.task == "regression"
    return prepare_side(
        Side(data.y_true, data.y_pred, data.scores, sorted_scores=sorted_scores),
        task=batch.task,
        metrics=model_metric_names(data, batch, request),
        n_classes=None if regression else len(classes),
        positive=batch.positive_code,
        class_names=None if regression else [str(c) for c in classes],
        labels=request.labels,
    )


@dataclass(frozen=True)
class _ModelSection:
    """The batch's rows as read, the model's metrics, and the baselines' results."""

    table: pa.Table
    data: EvaluationData
    report: MetricsReport
    findings: list[Finding]
    baselines: list[BaselineResult]
    baseline_findings: list[Finding]


def _model_section(
    store: Store,
    batch: BatchRecord,
    request: EvaluationCreate,
    settings: Settings,
    progress: Progress,
    *,
    with_baselines: bool = True,
) -> _ModelSection:
    """Read the batch and compute the model's metrics, with the baselines when requested.

    Once this batch is read, the other baseline batches load and the rules are evaluated in the
    job's threads while this batch's labels are decoded.
    """
    with contextlib.ExitStack() as stack:
        runner = None
        if request.baselines is not None and with_baselines:
            runner = stack.enter_context(BaselineRunner(store, batch, request, threads=settings.job_threads))
        ids = runner is not None and runner.needs_sample_ids
        wanted = (
            metric_columns(batch)
            + baseline_columns(request, sample_ids=ids)
            + slice_columns(request, batch)
            + batch.column_names("latency")
        )
        table = store.files.read(batch.data_path, columns=list(dict.fromkeys(wanted)))
        progress(stage_progress("metrics"))
        presorted = None
        if runner is not None:
            runner.start(labeled(table))
        if runner is not None and batch.task == "binary" and table.column(LABEL).null_count == 0:
            # every row is labeled, so these are the model's scores: sorted while labels are decoded
            scores = score_matrix(table, batch)
            presorted = None if scores is None else runner.submit(sort_floats, scores)
        data = evaluation_data(table, batch, threshold=request.threshold)
        if data.y_true.size == 0:
            no_labels = Finding(
                kind="no_labeled_rows",
                severity="critical",
                message="No row has a label, so no metric could be computed.",
                details={"rows": batch.rows, "fix": f"PUT /v1/batches/{batch.id}/labels"},
            )
            report = _no_labels_report(batch, request, data)
            return _ModelSection(table, data, report, [no_labels], [], [])
        if runner is None:
            return _ModelSection(table, data, compute_metrics(data, batch, request), [], [], [])
        # the model is prepared with the baselines' statistics, while the other sides are
        model = (
            runner.submit(prepare_model, data, batch, request)
            if presorted is None
            else runner.after(
                presorted, lambda sorted_scores: prepare_model(data, batch, request, sorted_scores)
            )
        )
        prepared, baselines, baseline_findings = runner.run(
            labeled_rows(table, data),
            model,
            metrics=model_metric_names(data, batch, request),
            primary=primary_choice(data, batch, request).name,
            label_primary=label_primary_choice(data, batch).name,
            progress=lambda f: progress(stage_progress("metrics", f)),
        )
        assert prepared.report is not None
        return _ModelSection(table, data, prepared.report.model_copy(), [], baselines, baseline_findings)


def batches_read(request: EvaluationCreate) -> list[str]:
    """Every batch an evaluation reads: its own, the human and existing baselines', and both
    sides of each robustness pair. A worker pins them all when the job starts."""
    ids = [request.batch_id]
    if request.baselines is not None:
        if request.baselines.human is not None:
            ids.append(request.baselines.human.batch_id)
        ids += [existing.batch_id for existing in request.baselines.existing]
    if request.robustness is not None:
        for pair in request.robustness.pairs:
            ids += [pair.original_batch_id, pair.perturbed_batch_id]
    return list(dict.fromkeys(ids))


def job_batches(job: JobRecord) -> list[str]:
    """:func:`batches_read` of a queued job's request."""
    return batches_read(EvaluationCreate.model_validate(job.request))


def run_evaluation(
    store: Store, job: JobRecord, *, progress: Progress, settings: Settings | None = None
) -> EvaluationResult:
    """Evaluate ``job`` on one version of each batch it reads: ``store`` is a job's view
    (:meth:`Store.pinned`), or the batches are pinned here for the length of the call."""
    settings = settings or Settings()
    request = EvaluationCreate.model_validate(job.request)
    if store.pins is None:
        with store.pinned(job.id, job.attempts, batches_read(request)) as pinned:
            return run_evaluation(pinned, job, progress=progress, settings=settings)
    batch = store.batch(request.batch_id)
    errors: dict[str, SectionError] = {}
    try:
        model = _model_section(store, batch, request, settings, progress)
    except Exception as error:
        if request.baselines is None:
            raise
        # the baselines failed (a baseline batch deleted meanwhile): everything else still runs
        errors["baselines"] = SectionError(error=section_error(error))
        model = _model_section(store, batch, request, settings, progress, with_baselines=False)
    table, data, report = model.table, model.data, model.report
    findings: list[Finding] = list(model.findings)
    has_labels = data.y_true.size > 0
    if request.bootstrap is not None and has_labels:
        progress(stage_progress("bootstrap"))
        report.intervals = _bootstrap(data, batch, request, report, progress)
    sections = _Sections(errors, findings)
    calibration = confidence = robustness = slices = None
    scores, confidence_spec = data.scores, request.confidence
    if request.calibration is not None and has_labels and scores is not None:
        progress(stage_progress("calibration"))
        calibration = sections.run(
            "calibration", lambda: run_calibration(data.y_true, scores, batch, request)
        )
    if confidence_spec is not None and has_labels:
        progress(stage_progress("calibration"))
        if batch.task == "regression":
            confidence = sections.run(
                "confidence", lambda: (regression_confidence(table, confidence_spec), [])
            )
        else:
            confidence = sections.run(
                "confidence",
                lambda: (run_confidence(data.y_true, data.y_pred, scores, confidence_spec), []),
            )
    if request.robustness is not None:
        progress(stage_progress("robustness"))
        robustness = sections.run(
            "robustness",
            lambda: run_robustness(
                store, settings, batch, request, progress=lambda f: progress(stage_progress("robustness", f))
            ),
        )
    findings += model.baseline_findings
    if request.slices is not None and has_labels:
        progress(stage_progress("slices"))
        slices = sections.run(
            "slices",
            lambda: _slices(store, batch, job, request, table, data, report, progress, settings),
        )
    progress(stage_progress("finishing"))
    latency = _latency(table, request)
    if 0 < batch.labeled_rows < batch.rows:
        findings.append(
            Finding(
                kind="unlabeled_rows",
                severity="info",
                impact=1 - batch.labeled_rows / batch.rows,
                message=f"{batch.rows - batch.labeled_rows} of {batch.rows} rows have no label yet "
                "and were left out of the metrics.",
                details={"rows": batch.rows, "labeled_rows": batch.labeled_rows},
            )
        )
    ranked = rank_findings(findings)
    limit = request.findings.max
    result = EvaluationResult(
        job_id=job.id,
        batch_id=batch.id,
        model=ModelRef(name=batch.model_name, version=batch.model_version),
        task=batch.task,
        created_at=job.created_at,
        finished_at=datetime.now(UTC),
        rows=batch.rows,
        labeled_rows=batch.labeled_rows,
        evaluated_rows=int(data.y_true.size),
        metrics=report.metrics,
        undefined=report.undefined,
        notes=report.notes,
        intervals=report.intervals,
        per_class=report.per_class,
        confusion_matrix=report.confusion_matrix,
        curves=_curves(batch, data),
        baselines=model.baselines,
        calibration=calibration,
        confidence=confidence,
        robustness=robustness,
        slices=slices,
        threshold=_threshold(batch, request, data),
        latency=latency,
        findings=ranked[:limit],
        findings_omitted=max(0, len(ranked) - limit),
        errors=errors,
    )
    result.gates = check_gates(request.gates or [], result)
    choice = primary_choice(data, batch, request)
    interval = report.intervals.get(choice.name)
    result.verdict = decide(
        gates=result.gates,
        findings=ranked,
        errors=errors,
        primary=PrimaryMetric(
            name=choice.name,
            value=report.metrics.get(choice.name),
            interval=Interval.model_validate(interval) if interval is not None else None,
            chosen_because=choice.reason,
        ),
        rows=batch.rows,
        labeled_rows=batch.labeled_rows,
    )
    if request.mlflow is not None:
        export_result(result, request, settings)
        if "mlflow" in result.errors:  # the verdict names the section that could not finish
            result.verdict = decide(
                gates=result.gates,
                findings=ranked,
                errors=result.errors,
                primary=result.verdict.primary_metric,
                rows=batch.rows,
                labeled_rows=batch.labeled_rows,
            )
    return result


class _Sections:
    """Runs optional sections so that one that fails records its error and the job goes on."""

    def __init__(self, errors: dict[str, SectionError], findings: list[Finding]) -> None:
        self._errors, self._findings = errors, findings

    def run(self, name: str, compute: Callable[[], tuple[T, list[Finding]]]) -> T | None:
        try:
            value, findings = compute()
        except Exception as error:
            self._errors[name] = SectionError(error=section_error(error))
            return None
        self._findings += findings
        return value


def section_error(error: Exception) -> str:
    """What a section's failure says in the result: our own errors' messages (they name the field
    or batch and say how to fix it); for anything else only its type, since its text may carry
    server paths or a remote body. The worker's log has the whole traceback."""
    if isinstance(error, YardstickError | EndpointError | OutboundBlocked | OutboundError):
        return str(error)
    _log.exception("an evaluation section failed")
    return f"internal error ({type(error).__name__}); the server log has the details"


def _slices(
    store: Store,
    batch: BatchRecord,
    job: JobRecord,
    request: EvaluationCreate,
    table: pa.Table,
    data: EvaluationData,
    report: MetricsReport,
    progress: Progress,
    settings: Settings,
) -> tuple[SlicesResult, list[Finding]]:
    rows = labeled(table)
    slices, findings = run_slices(
        store,
        batch,
        job,
        request,
        rows,
        data.y_true,
        data.y_pred,
        data.scores,
        report,
        progress=lambda f: progress(stage_progress("slices", f)),
        max_per_group=settings.max_slices_per_group,
        max_per_result=settings.max_slices_per_result,
    )
    if batch.task != "regression":
        findings += comparison_paradoxes(store, batch, request, rows, data.y_true == data.y_pred)
    return slices, findings


def _latency(table: pa.Table, request: EvaluationCreate) -> LatencyResult | None:
    """The batch's ``latency_ms`` (every row, labeled or not), per value of each slice column."""
    if LATENCY not in table.column_names:
        return None
    latency = table.column(LATENCY).to_numpy(zero_copy_only=False).astype(np.float64)
    spec = request.slices
    columns = [codes_of(table, name, bins=spec.bins) for name in spec.columns] if spec is not None else []
    return latency_report(latency, columns)


def _curves(batch: BatchRecord, data: EvaluationData) -> Curves | None:
    """Binary with scores: the ROC and precision-recall curves the report draws."""
    if batch.task != "binary" or data.scores is None or batch.positive_code is None:
        return None
    return binary_curves(data.y_true, data.scores, positive=batch.positive_code)


def _threshold(batch: BatchRecord, request: EvaluationCreate, data: EvaluationData) -> Threshold | None:
    """Binary batches with scores: the threshold that turned scores into predictions."""
    if batch.task != "binary" or data.scores is None:
        return None
    if request.threshold is not None:
        return Threshold(value=request.threshold, source="request", derived_rows=int(data.y_true.size))
    derived = next((c.derived for c in batch.columns if c.role == "prediction"), None)
    if derived is not None:
        return Threshold(
            value=derived.threshold,
            source="batch" if derived.threshold != DEFAULT_THRESHOLD else "default",
            derived_rows=derived.rows,
        )
    return Threshold(value=DEFAULT_THRESHOLD, source="default", derived_rows=0)


def _no_labels_report(batch: BatchRecord, request: EvaluationCreate, data: EvaluationData) -> MetricsReport:
    names = request.metrics or metrics_worker.default_metrics(batch.task, has_scores=data.scores is not None)
    reason = f"no labeled rows; send ground truth with PUT /v1/batches/{batch.id}/labels"
    return MetricsReport(
        metrics=dict.fromkeys(names),
        undefined=dict.fromkeys(names, reason),
        notes={},
        per_class=None,
        confusion_matrix=None,
        intervals={},
    )


def _bootstrap(
    data: EvaluationData,
    batch: BatchRecord,
    request: EvaluationCreate,
    report: MetricsReport,
    progress: Progress,
) -> dict[str, Interval]:
    assert request.bootstrap is not None
    names = [name for name, value in report.metrics.items() if value is not None]

    def scaled(fraction: float) -> None:
        progress(stage_progress("bootstrap", fraction))

    options: _BootstrapOptions = {
        "metrics": names,
        "samples": request.bootstrap.samples,
        "confidence": request.bootstrap.confidence,
        "seed": request.bootstrap.seed,
        "progress": scaled,
    }
    if batch.task == "regression":
        return bootstrap_worker.regression_intervals(data.y_true, data.y_pred, **options)
    classes = batch.classes or []
    return bootstrap_worker.classification_intervals(
        data.y_true,
        data.y_pred,
        n_classes=len(classes),
        positive=batch.positive_code,
        scores=data.scores,
        labels=request.labels,
        **options,
    )
