"""The slices section of one evaluation: slice metrics, critical slices with their history,
Simpson's paradox checks and the slice finder. Arrays go to the pure workers; findings come back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.evaluations import EvaluationCreate
from schemas.metrics import MetricsReport
from schemas.results import Finding
from schemas.slices import (
    CriticalSliceResult,
    ExplainedSlice,
    SliceFinderResult,
    SliceFlagging,
    SliceMetric,
    SlicesResult,
)
from service.canonical import LABEL, PREDICTION, SAMPLE_ID, join_on_sample_id
from service.errors import NotFound
from service.expressions import evaluate as evaluate_expression
from service.expressions import parse
from service.jobs import decoding
from service.store import Store
from service.store.records import BatchRecord, JobRecord
from service.workers import metrics as metrics_worker
from service.workers import simpsons, slicefinder
from service.workers import slices as slice_worker
from service.workers.metrics import Labels
from service.workers.primary_metric import choose_primary_metric
from service.workers.slices.flagging import FlaggedSlice, describe_conditions, flag_slices
from service.workers.slices.report import select_slices

Progress = Callable[[float], None]
Column = tuple[str, np.ndarray, list[Any]]


def slice_columns(request: EvaluationCreate, batch: BatchRecord) -> list[str]:
    """Every column the slices section reads from the batch file."""
    spec = request.slices
    if spec is None:
        return []
    names = set(spec.columns) | {c for cross in spec.crosses for c in cross}
    for critical in spec.critical:
        names |= parse(critical.where).columns()
    if spec.finder is not None:
        names |= set(spec.finder.columns or batch.column_names("feature"))
    return sorted(names | {SAMPLE_ID})


def codes_of(table: pa.Table, name: str, *, bins: int) -> Column:
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        # Parquet hands back one dictionary per row group: unify them so codes mean one thing.
        column = column.unify_dictionaries()
    codes, labels = slice_worker.slice_codes(column, bins=bins)
    return name, codes, labels


def run_slices(
    store: Store,
    batch: BatchRecord,
    job: JobRecord,
    request: EvaluationCreate,
    labeled: pa.Table,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    report: MetricsReport,
    *,
    progress: Progress,
    max_per_group: int | None = None,
    max_per_result: int | None = None,
) -> tuple[SlicesResult, list[Finding]]:
    """The slices section. ``max_per_group`` and ``max_per_result`` cap the slices listed in
    ``groups`` (``select_slices`` says which are kept); every slice is still tested and flagged."""
    spec = request.slices
    assert spec is not None
    classes = batch.classes or []
    task = batch.task
    metrics = [m for m, v in report.metrics.items()]
    common: dict[str, Any] = {
        "task": task,
        "n_classes": None if task == "regression" else len(classes),
        "positive": batch.positive_code,
        "scores": scores,
        "metrics": metrics,
        "overall": report.metrics,
        "min_support": spec.min_support,
        "alpha": spec.alpha,
        "labels": request.labels,
    }
    boot = request.bootstrap
    if boot is not None:
        common |= {
            "bootstrap_samples": min(boot.samples, 1000),
            "seed": boot.seed,
            "confidence": boot.confidence,
        }
    result = SlicesResult()
    findings: list[Finding] = []
    cache: dict[str, Column] = {}

    def column(name: str) -> Column:
        if name not in cache:
            cache[name] = codes_of(labeled, name, bins=spec.bins)
        return cache[name]

    groups = [[c] for c in spec.columns] + [list(cross) for cross in spec.crosses]
    # Prepared once (scores sorted, per-row losses computed), then one evaluation per column or cross.
    evaluator = slice_worker.SliceEvaluator(y_true, y_pred, **common) if groups else None
    gated = [g.slice.conditions for g in request.gates or [] if g.slice is not None and g.slice.conditions]
    by_class = None if task == "regression" else np.bincount(y_true, minlength=len(classes))
    rank_by = choose_primary_metric(
        task, requested=request.metrics, support=by_class, positive=common["positive"]
    ).name
    evaluated = []
    for i, names in enumerate(groups):
        assert evaluator is not None
        evaluated.append(
            evaluator.evaluate_group(
                [column(n) for n in names], limit=max_per_group, rank_by=rank_by, keep=gated
            )
        )
        progress(0.5 * (i + 1) / max(len(groups), 1))
    tests = [g.tests for g in evaluated]
    if tests:
        flags = flag_slices(
            tests, alpha=spec.alpha, min_effect=spec.min_effect, binary_errors=task != "regression"
        )
        # Result models only for the slices listed: building them is most of a large cross's cost.
        kept = select_slices(
            evaluated,
            rank_by=rank_by,
            flagged=[(f.columns, f.conditions, f.impact) for f in flags.flagged],
            keep=gated,
            per_group=max_per_group,
            per_result=max_per_result,
        )
        result.groups = [g.build(k) for g, k in zip(evaluated, kept, strict=True)]
        result.omitted_slices = sum(g.omitted for g in result.groups)
        if result.omitted_slices:
            total = sum(g.size for g in evaluated)
            result.omitted_reason = (
                f"{result.omitted_slices} of {total} slices are not listed: each column or cross lists at "
                f"most {max_per_group} and the result at most {max_per_result} "
                "(YARDSTICK_MAX_SLICES_PER_GROUP, YARDSTICK_MAX_SLICES_PER_RESULT). Listed first: slices a "
                f"gate names, flagged slices, then the worst on {rank_by} among those of at least "
                f"{spec.min_support} rows and 5% of the batch, then the smaller ones. Every slice was "
                "tested; `flagging` counts them all."
            )
        result.flagging = SliceFlagging(
            tests=flags.tests,
            significant=flags.significant,
            below_min_effect=flags.below_min_effect,
            flagged=len(flags.flagged),
            explained=[
                ExplainedSlice(conditions=e.conditions, explained_by=e.by, reason=e.reason)
                for e in flags.explained
            ],
            alpha=flags.alpha,
            min_effect=flags.min_effect,
        )
        findings += [_underperforming(f, task) for f in flags.flagged]

    result.critical = [
        _critical(
            store, batch, job, c.name, c.where, labeled, y_true, y_pred, scores, metrics, request.labels
        )
        for c in spec.critical
    ]
    errors = _row_errors(y_true, y_pred, task)
    if spec.finder is not None:
        finder = spec.finder
        names = finder.columns or batch.column_names("feature")
        finder_columns = [codes_of(labeled, n, bins=finder.bins) for n in names]
        support = finder.min_support or spec.min_support
        result.finder = slicefinder.find_slices(
            errors,
            finder_columns,
            max_conditions=finder.max_conditions,
            top_k=finder.top_k,
            min_support=support,
            alpha=finder.alpha,
            min_effect=spec.min_effect,
            error_weight=finder.error_weight,
        )
        result.tree = slicefinder.tree_slices(
            errors,
            finder_columns,
            max_depth=finder.max_conditions,
            top_k=finder.top_k,
            min_support=support,
            alpha=finder.alpha,
            min_effect=spec.min_effect,
        )
        reported = [f.details["conditions"] for f in findings if f.kind == "underperforming_slice"]
        findings += _found(result.finder, len(errors), task, reported=reported)
    progress(0.8)
    findings += _trend_reversals(
        labeled,
        errors,
        [column(n) for n in spec.columns],
        spec.min_support,
        features=batch.column_names("feature"),
    )
    return result, findings


def _found(
    result: SliceFinderResult, rows: int, task: str, *, reported: list[dict[str, Any]]
) -> list[Finding]:
    """The finder's qualified slices (significant, min_effect worse, not explained by another slice
    or a trend) and the numeric trends it saw, as findings; a slice already reported as an
    ``underperforming_slice`` is not reported twice."""
    findings = []
    error = "absolute error" if task == "regression" else "error rate"
    for found in result.slices:
        if not found.significant or found.explained_by_trend or found.conditions in reported:
            continue
        share = found.n / rows if rows else 0.0
        relative = found.relative_effect
        findings.append(
            Finding(
                kind="problem_slice",
                severity="warning",
                impact=share * relative if relative is not None else share,
                message=f"The slice finder found {describe_conditions(found.conditions)} ({found.n} rows, "
                f"{share:.1%}): {error} {found.error:.3g} vs {found.baseline_error or found.rest_error:.3g}"
                f" (q = {found.q_value if found.q_value is not None else found.p_value:.2g}).",
                details=found.model_dump(mode="json"),
            )
        )
    for trend in result.trends:
        findings.append(
            Finding(
                kind="error_trend",
                severity="info",
                message=f"The {error} is {trend.direction} along {trend.column} overall "
                f"({trend.error[0]:.3g} in its first bin, {trend.error[-1]:.3g} in its last; "
                f"p = {trend.p_value:.2g}): "
                "a base-rate effect, reported apart from the slices.",
                details=trend.model_dump(mode="json"),
            )
        )
    return findings


def _row_errors(y_true: np.ndarray, y_pred: np.ndarray, task: str) -> np.ndarray:
    errors: np.ndarray
    if task == "regression":
        errors = np.abs(y_true - y_pred)
        return errors
    errors = (y_true != y_pred).astype(np.float64)
    return errors


def _underperforming(flagged: FlaggedSlice, task: str) -> Finding:
    """One finding per flagged slice, with every metric on which it is materially worse."""
    where = describe_conditions(flagged.conditions)
    shown = ", ".join(f"{m.metric} {m.value:.4g} vs {m.rest:.4g}" for m in flagged.metrics[:4])
    more = f" and {len(flagged.metrics) - 4} more metrics" if len(flagged.metrics) > 4 else ""
    error = "absolute error" if task == "regression" else "error rate"
    ratio = (
        f"; {error} {flagged.error_rate:.3g} vs {flagged.rest_error_rate:.3g}"
        if np.isfinite(flagged.error_rate) and np.isfinite(flagged.rest_error_rate)
        else ""
    )
    explains = (
        " It also accounts for "
        + "; ".join(describe_conditions(e["conditions"]) for e in flagged.explains)
        + " looking worse."
        if flagged.explains
        else ""
    )
    lead = flagged.metrics[0]
    return Finding(
        kind="underperforming_slice",
        severity="warning",
        impact=flagged.impact,
        message=f"Where {where} ({flagged.n} rows, {flagged.share:.1%} of the batch) the model is worse than "
        f"on the rest: {shown}{more}{ratio} (adjusted p = {lead.p_adjusted:.2g}).{explains}",
        details={
            "columns": flagged.columns,
            "conditions": flagged.conditions,
            "n": flagged.n,
            "share": flagged.share,
            "error_rate": _finite(flagged.error_rate),
            "rest_error_rate": _finite(flagged.rest_error_rate),
            "relative_gap": max(m.relative_gap for m in flagged.metrics),
            "p_adjusted": lead.p_adjusted,
            "metrics": [
                {
                    "metric": m.metric,
                    "value": m.value,
                    "rest": m.rest,
                    "overall": m.overall,
                    "difference": None if m.overall is None else m.value - m.overall,
                    "relative_gap": m.relative_gap,
                    "p_value": m.p_value,
                    "p_adjusted": m.p_adjusted,
                }
                for m in flagged.metrics
            ],
            "explains": flagged.explains,
        },
    )


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _critical(
    store: Store,
    batch: BatchRecord,
    job: JobRecord,
    name: str,
    where: str,
    labeled: pa.Table,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    metrics: list[str],
    labels: Labels,
) -> CriticalSliceResult:
    mask = evaluate_expression(parse(where), labeled)
    n = int(mask.sum())
    values: dict[str, SliceMetric] = {}
    if n > 0:
        if batch.task == "regression":
            sub = metrics_worker.regression_metrics(y_true[mask], y_pred[mask], metrics=metrics)
        else:
            classes = batch.classes or []
            sub = metrics_worker.classification_metrics(
                y_true[mask],
                y_pred[mask],
                n_classes=len(classes),
                class_names=[str(c) for c in classes],
                positive=batch.positive_code,
                scores=None if scores is None else scores[mask],
                metrics=metrics,
                labels=labels,
            )
        values = {m: SliceMetric(value=v) for m, v in sub.metrics.items()}
    history = []
    for job_id, version, finished_at, earlier in store.meta.earlier_results(
        batch.model_name, before=job.created_at
    ):
        for entry in (earlier.get("slices") or {}).get("critical", []):
            if entry.get("name") == name:
                history.append(
                    {
                        "job_id": job_id,
                        "version": version,
                        "finished_at": finished_at.isoformat(),
                        "where": entry.get("where"),
                        "n": entry.get("n"),
                        "metrics": {m: v.get("value") for m, v in entry.get("metrics", {}).items()},
                    }
                )
    return CriticalSliceResult(
        name=name, where=where, n=n, share=n / max(len(y_true), 1), metrics=values, history=history
    )


def _trend_reversals(
    labeled: pa.Table, errors: np.ndarray, columns: list[Column], min_support: int, *, features: list[str]
) -> list[Finding]:
    """Per model: a numeric feature whose trend with the error reverses inside another column's slices.

    Only feature columns: the label, prediction and scores make the error by definition, so a
    "trend" of the error with them says nothing about the data."""
    numeric = [
        name
        for name in features
        if name in labeled.column_names
        and (
            pa.types.is_integer(labeled.column(name).type) or pa.types.is_floating(labeled.column(name).type)
        )
    ]
    findings = []
    for x_name in numeric:
        x = labeled.column(x_name).to_numpy(zero_copy_only=False).astype(np.float64)
        for strata_name, codes, labels in columns:
            if strata_name == x_name:
                continue
            details = simpsons.trend_reversal(
                x, errors, codes, labels, x_name=x_name, strata_name=strata_name, min_support=min_support
            )
            if details is not None:
                findings.append(
                    Finding(
                        kind="simpsons_paradox",
                        severity="warning",
                        message=f"The error rate's trend with {x_name} reverses "
                        f"inside every {strata_name} slice.",
                        details=details,
                    )
                )
    return findings


def comparison_paradoxes(
    store: Store,
    batch: BatchRecord,
    request: EvaluationCreate,
    labeled: pa.Table,
    model_correct: np.ndarray,
) -> list[Finding]:
    """For each existing/human baseline: does the comparison reverse between slices and aggregate?"""
    spec, baselines = request.slices, request.baselines
    if spec is None or baselines is None or not spec.columns:
        return []
    others = [("human", baselines.human.batch_id)] if baselines.human else []
    others += [(e.name, e.batch_id) for e in baselines.existing]
    findings = []
    for name, other_id in others:
        try:
            other = store.batch(other_id)
        except NotFound:
            continue  # deleted before the job read it: the baselines section reports it
        present = set(other.column_names())
        wanted = [c for c in spec.columns if c in present]
        table = store.files.read(other.data_path, columns=[SAMPLE_ID, LABEL, PREDICTION, *wanted])
        other_correct, other_rows = _correctness(table, labeled, model_correct)
        for column_name in wanted:
            model_values = _values(labeled, column_name)
            other_values = _values(other_rows, column_name)
            labels = sorted(set(model_values.tolist()) | set(other_values.tolist()), key=repr)
            index = {v: i for i, v in enumerate(labels)}
            details = simpsons.comparison_paradox(
                column_name,
                model_correct,
                np.array([index[v] for v in model_values.tolist()], dtype=np.intp),
                other_correct,
                np.array([index[v] for v in other_values.tolist()], dtype=np.intp),
                labels,
                min_support=spec.min_support,
            )
            if details is not None:
                details["baseline"] = name
                # "reversed": the pooled effect is significant the other way; "confounded": the crude
                # gap is not there once the slices are accounted for (it may have no direction at all)
                reversed_ = details.get("status") == "reversed"
                driver = details.get("driver") or {}
                findings.append(
                    Finding(
                        kind="simpsons_paradox",
                        severity="warning" if reversed_ else "info",
                        impact=float(driver.get("share", 0.0) or 0.0) * abs(_crude_gap(details)),
                        message=f"Against {name}, the comparison on {column_name} "
                        f"{'reverses' if reversed_ else 'does not hold within slices'}: "
                        f"{details.get('explanation', '')}",
                        details=details,
                    )
                )
    return findings


def _crude_gap(details: dict[str, Any]) -> float:
    crude = details.get("crude") or {}
    value = crude.get("difference")
    return float(value) if isinstance(value, int | float) else 0.0


def _values(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return np.asarray(column.to_pylist(), dtype=object)


def _correctness(
    other: pa.Table, labeled: pa.Table, model_correct: np.ndarray
) -> tuple[np.ndarray, pa.Table]:
    """The other side's per-row correctness: on its own labeled rows when it has labels,
    else on the model's rows it shares (ground truth from the model's batch)."""
    if other.column(LABEL).null_count < other.num_rows:
        own = decoding.labeled(other)
        correct = _equal(own.column(LABEL), own.column(PREDICTION))
        return correct, own
    join = join_on_sample_id(other.column(SAMPLE_ID), labeled.column(SAMPLE_ID))
    shared = other.filter(join.matched)
    truth = labeled.column(LABEL).take(join.right_rows)
    return _equal(truth, shared.column(PREDICTION)), shared


def _equal(a: pa.ChunkedArray, b: pa.ChunkedArray) -> np.ndarray:
    left = a.cast(pa.string()) if a.type != b.type else a
    right = b.cast(pa.string()) if a.type != b.type else b
    equal: np.ndarray = pc.equal(left, right).to_numpy(zero_copy_only=False).astype(bool)
    return equal
