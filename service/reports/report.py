"""The HTML report of one evaluation: the result document as one page a person reads top down.

``render_report(result)`` draws every figure the result has data for (matplotlib, inline SVG; see
:mod:`service.reports.plots`) and fills ``templates/report.html``: the verdict and gates first,
then metrics, baselines, curves, the confusion matrix, calibration, confidence, slices, robustness,
critical slices over time and the findings. A section the result has no data for is left out.
``render_failed(job, model)`` is the short page of a job that failed. Both pages are self-contained
(no script, no stylesheet or font to fetch) and the same input gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.common import ModelRef
from schemas.jobs import Job
from schemas.results import EvaluationResult, Finding
from schemas.slices import SliceGroup
from service.reports.figures import Plot
from service.reports.junit import gate_name
from service.reports.page import page
from service.reports.plots.calibration import reliability, risk_coverage
from service.reports.plots.classification import confusion_heatmap, per_class_bars, roc_and_pr
from service.reports.plots.metrics import baseline_forest, metric_intervals
from service.reports.plots.robustness import robustness_rates
from service.reports.plots.slices import MAX_BARS, critical_over_time, describe, slice_bars
from service.reports.templating import render

#: Rows of each robustness test's examples shown (the result document holds them all).
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class SliceFigure:
    group: SliceGroup
    plot: Plot | None
    not_drawn: int


def primary_metric(result: EvaluationResult) -> str | None:
    """The metric the verdict leads with (older results without a verdict: the first metric)."""
    if result.verdict is not None:
        return result.verdict.primary_metric.name
    return next(iter(result.metrics), None)


def _slice_metric(result: EvaluationResult, primary: str | None) -> str | None:
    """The metric the slice bars show: the primary one when the slices have it."""
    assert result.slices is not None
    names: list[str] = []
    for group in result.slices.groups:
        for item in group.slices:
            names += [n for n in item.metrics if n not in names]
    for entry in result.slices.critical:
        names += [n for n in entry.metrics if n not in names]
    return primary if primary in names else next(iter(names), None)


def _slice_figures(result: EvaluationResult, metric: str | None) -> list[SliceFigure]:
    assert result.slices is not None
    if metric is None:
        return []
    overall = result.metrics.get(metric)
    return [
        SliceFigure(
            group, slice_bars(group, metric=metric, overall=overall), max(0, len(group.slices) - MAX_BARS)
        )
        for group in result.slices.groups
    ]


def _figures(result: EvaluationResult, primary: str | None) -> dict[str, Any]:
    """Every figure of the report by section; None where the result has nothing to draw."""
    threshold = result.threshold.value if result.threshold is not None else None
    calibration = result.calibration
    diagram, what = None, "score"
    if calibration is not None:
        diagram = calibration.reliability or calibration.top_label
        what = "score" if calibration.reliability is not None else "confidence"
    slice_metric = _slice_metric(result, primary) if result.slices is not None else None
    return {
        "intervals": metric_intervals(result.metrics, result.intervals),
        "forest": baseline_forest(result.baselines),
        "curves": roc_and_pr(result.curves, metrics=result.metrics, threshold=threshold)
        if result.curves is not None
        else None,
        "per_class": per_class_bars(result.per_class)
        if result.per_class is not None and result.task == "multiclass"
        else None,
        "confusion": confusion_heatmap(result.confusion_matrix)
        if result.confusion_matrix is not None
        else None,
        "reliability": reliability(
            diagram,
            recalibration=calibration.recalibration if calibration.reliability is not None else [],
            what=what,
        )
        if calibration is not None and diagram is not None
        else None,
        "risk_coverage": risk_coverage(result.confidence) if result.confidence is not None else None,
        "slices": _slice_figures(result, slice_metric) if result.slices is not None else [],
        "slice_metric": slice_metric,
        "critical": critical_over_time(
            result.slices.critical,
            metric=slice_metric,
            version=result.model.version,
            finished_at=result.finished_at,
        )
        if result.slices is not None and slice_metric is not None
        else None,
        "robustness": robustness_rates(result.robustness) if result.robustness is not None else None,
    }


def _simpson(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.kind == "simpsons_paradox"]


def render_report(result: EvaluationResult) -> str:
    """The whole report page of a succeeded evaluation."""
    primary = primary_metric(result)
    body = render(
        "report.html",
        result=result,
        primary=primary,
        figures=_figures(result, primary),
        gate_name=gate_name,
        describe=describe,
        simpson=_simpson(result.findings),
        max_examples=MAX_EXAMPLES,
    )
    title = f"{result.model.name} {result.model.version}: evaluation {result.job_id}"
    return page(title, body)


def render_failed(job: Job, model: ModelRef) -> str:
    """The page of a job that failed: what it was, when, and its error."""
    body = render("failed.html", job=job, model=model)
    return page(f"{model.name} {model.version}: evaluation {job.id} failed", body)
