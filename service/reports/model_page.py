"""The page of one model: its primary metric and critical slices across versions and time.

``render_model_page(name, evaluations, capped=...)`` draws two matplotlib figures (inline SVG, see
:mod:`service.reports.figures`) and fills ``templates/model_page.html`` with them and a table of the
evaluations, each linking to its job's report. The page is self-contained like a report: no script,
nothing fetched. Its input is the evaluations' wire shapes (the verdict and the critical slices of
each result), so the page knows nothing of how they are stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num

from schemas.results import Verdict
from schemas.slices import CriticalSliceResult
from service.reports.figures import ACCENT, FAIL, MUTED, PASS, WARN, Plot, figure, plot, short
from service.reports.page import page
from service.reports.templating import render

#: The most evaluations a page reads and draws (the newest); the page says when there are more.
MAX_EVALUATIONS = 200
#: Critical slices drawn as lines; more would be a legend nobody can match to colours.
MAX_SLICE_LINES = 8
_VERDICT_COLOURS = {"pass": PASS, "warn": WARN, "fail": FAIL}
#: One colour and marker per slice line (the marker tells lines apart in print and for colour blindness).
_LINE_STYLES = list(
    zip(
        (ACCENT, "#8250df", "#bf3989", "#1b7c83", "#953800", "#4d2d00", "#6e7781", "#0550ae"),
        "os^DvPX*",
        strict=True,
    )
)


@dataclass(frozen=True)
class ModelEvaluation:
    """One evaluation job of the model as the page shows it."""

    job_id: str
    version: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    #: Succeeded jobs' verdict (None otherwise, and in results stored before verdicts).
    verdict: Verdict | None
    critical: list[CriticalSliceResult]

    @property
    def when(self) -> datetime:
        return self.finished_at or self.created_at

    @property
    def has_report(self) -> bool:
        """Succeeded and failed jobs have a report page; queued, running and cancelled ones not."""
        return self.status in ("succeeded", "failed")


def primary_metric_name(evaluations: list[ModelEvaluation]) -> str | None:
    """The metric most of the evaluations lead with (a request may choose another one)."""
    names = Counter(e.verdict.primary_metric.name for e in evaluations if e.verdict is not None)
    return names.most_common(1)[0][0] if names else None


def _time_axis(ax: Axes) -> None:
    """Dates on the x axis (positions from :func:`_x`), labelled as briefly as their span allows."""
    ax.xaxis_date(tz="UTC")
    # matplotlib.dates has no annotations: hence the ignores.
    locator = AutoDateLocator(tz="UTC")  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz="UTC"))  # type: ignore[no-untyped-call]


def _x(when: datetime) -> float:
    """matplotlib's date position of ``when`` (typed as a float, which the axes accept)."""
    return float(date2num(when))  # type: ignore[no-untyped-call]


def metric_over_time(evaluations: list[ModelEvaluation], metric: str) -> Plot | None:
    """The primary metric of every evaluation that has it, in time, with its interval as whiskers."""
    points = [
        (e, e.verdict.primary_metric)
        for e in sorted(evaluations, key=lambda e: e.when)
        if e.verdict is not None
        and e.verdict.primary_metric.name == metric
        and e.verdict.primary_metric.value is not None
    ]
    if not points:
        return None
    with figure(height=3.4) as fig:
        ax = fig.add_subplot()
        times = [_x(e.when) for e, _ in points]
        values = [float(m.value) for _, m in points if m.value is not None]
        ax.plot(times, values, "-", color=MUTED, linewidth=1, zorder=1)
        for (e, m), when, value in zip(points, times, values, strict=True):
            assert e.verdict is not None
            colour = _VERDICT_COLOURS[e.verdict.status]
            if m.interval is not None:
                below, above = max(value - m.interval.low, 0.0), max(m.interval.high - value, 0.0)
                ax.errorbar([when], [value], yerr=[[below], [above]], color=colour, capsize=3, linewidth=1)
            ax.plot([when], [value], "o", color=colour, markersize=6, zorder=3)
        previous = None
        for (e, m), when, value in zip(points, times, values, strict=True):
            if e.version != previous:  # above the whisker, where nothing else is drawn
                top = max(value, m.interval.high) if m.interval is not None else value
                ax.annotate(
                    short(f"v{e.version}", 14),
                    (when, top),
                    textcoords="offset points",
                    xytext=(0, 5),
                    ha="center",
                    fontsize=8,
                )
            previous = e.version
        ax.margins(x=0.08, y=0.2)
        ax.set_ylabel(metric)
        ax.set_xlabel("evaluation finished (UTC)")
        _time_axis(ax)
        return plot(
            fig,
            title=f"{metric} across versions",
            caption=f"{metric} of each evaluation of this model, oldest on the left; the label above a "
            "point is the version evaluated from there on. Whiskers are the bootstrap interval (when "
            "requested): two versions whose whiskers overlap a lot may not really differ. The colour is "
            "the verdict: green pass, amber warn, red fail.",
        )


def critical_slices_over_time(evaluations: list[ModelEvaluation], metric: str) -> Plot | None:
    """One line per critical slice (by name): its metric in each evaluation that measured it."""
    lines: dict[str, list[tuple[float, float]]] = {}
    for e in sorted(evaluations, key=lambda e: e.when):
        for entry in e.critical:
            measured = entry.metrics[metric].value if metric in entry.metrics else None
            if measured is not None:
                lines.setdefault(entry.name, []).append((_x(e.when), float(measured)))
    if not lines:
        return None
    overall = [
        (_x(e.when), float(e.verdict.primary_metric.value))
        for e in sorted(evaluations, key=lambda e: e.when)
        if e.verdict is not None
        and e.verdict.primary_metric.name == metric
        and e.verdict.primary_metric.value is not None
        and e.critical
    ]
    shown = sorted(lines, key=lambda name: -len(lines[name]))[:MAX_SLICE_LINES]
    with figure(height=3.4) as fig:
        ax = fig.add_subplot()
        if overall:
            xs, ys = [p[0] for p in overall], [p[1] for p in overall]
            ax.plot(xs, ys, "--", color=MUTED, linewidth=1.2, label="whole batch")
        for name, (colour, marker) in zip(shown, _LINE_STYLES, strict=False):
            xs, ys = [p[0] for p in lines[name]], [p[1] for p in lines[name]]
            ax.plot(
                xs, ys, "-", marker=marker, color=colour, linewidth=1.5, markersize=4, label=short(name, 30)
            )
        ax.margins(x=0.08, y=0.15)
        ax.set_ylabel(metric)
        ax.set_xlabel("evaluation finished (UTC)")
        _time_axis(ax)
        ax.legend(loc="best", fontsize=7)
        more = len(lines) - len(shown)
        return plot(
            fig,
            title="Critical slices across versions",
            caption=f"{metric} of each critical slice (named in the evaluation requests) in every "
            "evaluation that measured it, oldest on the left; the dashed line is the whole batch. A slice "
            "whose line falls while the whole batch holds steady is getting worse across versions."
            + (f" {more} more slices with fewer points are not drawn." if more > 0 else ""),
        )


def render_model_page(
    name: str,
    evaluations: list[ModelEvaluation],
    *,
    capped: bool,
    limit: int = MAX_EVALUATIONS,
    base: str = "/",
) -> str:
    """The whole HTML page of model ``name``; ``evaluations`` newest first, ``capped`` when the model
    has more than these ``limit``. Report links start with ``base`` (relative, so the page works
    behind a path prefix)."""
    metric = primary_metric_name(evaluations)
    figures = []
    if metric is not None:
        figures = [
            f
            for f in (metric_over_time(evaluations, metric), critical_slices_over_time(evaluations, metric))
            if f
        ]
    latest = next((e for e in evaluations if e.verdict is not None), None)
    body = render(
        "model_page.html",
        name=name,
        metric=metric,
        evaluations=evaluations,
        latest=latest,
        versions=len({e.version for e in evaluations}),
        figures=figures,
        has_critical=any(e.critical for e in evaluations),
        capped=capped,
        limit=limit,
        base=base,
    )
    return page(f"{name} — Yardstick model", body)
