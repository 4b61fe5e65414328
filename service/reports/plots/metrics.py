"""Metrics with their intervals, and the baseline panel as a forest plot of lifts."""

from __future__ import annotations

import numpy as np

from schemas.baselines import BaselineResult
from schemas.metrics import Interval
from service.reports.figures import ACCENT, FAIL, INK, MUTED, PASS, Plot, figure, plot, short


def _row_height(rows: int) -> float:
    return 0.8 + 0.32 * rows


def metric_intervals(metrics: dict[str, float | None], intervals: dict[str, Interval]) -> Plot | None:
    """Dot-and-whisker: each metric's value and its bootstrap interval."""
    names = [n for n in metrics if n in intervals and metrics[n] is not None]
    if not names:
        return None
    values = np.array([metrics[n] for n in names], dtype=float)
    low = np.array([intervals[n].low for n in names])
    high = np.array([intervals[n].high for n in names])
    y = np.arange(len(names))[::-1]
    with figure(height=_row_height(len(names))) as fig:
        ax = fig.add_subplot()
        ax.errorbar(
            values, y, xerr=[values - low, high - values], fmt="o", color=ACCENT, ecolor=INK, capsize=3
        )
        ax.set_yticks(y, [short(n) for n in names])
        ax.set_xlabel("value (dot) and confidence interval (whisker)")
        ax.grid(axis="y", visible=False)
        return plot(
            fig,
            title="Metrics with intervals",
            caption="Each dot is a metric's value on this batch; the whisker is its bootstrap confidence "
            "interval. A wide whisker means the batch is too small to pin the metric down. Metrics share "
            "one axis, so compare each one with its own whisker, not with the others.",
        )


def _lift_rows(baselines: list[BaselineResult]) -> list[tuple[str, float, Interval | None, str]]:
    rows: list[tuple[str, float, Interval | None, str]] = []
    for baseline in baselines:
        comparison = baseline.significance.get(baseline.primary_metric)
        lift = baseline.lift.get(baseline.primary_metric)
        if lift is None:
            continue
        interval = comparison.difference_interval if comparison is not None else None
        verdict = comparison.verdict if comparison is not None else "undefined"
        rows.append((f"{baseline.name} ({baseline.primary_metric})", lift, interval, verdict))
    return rows


def baseline_forest(baselines: list[BaselineResult]) -> Plot | None:
    """Forest plot: one row per baseline, the model's lift on the primary metric and its interval."""
    rows = _lift_rows(baselines)
    if not rows:
        return None
    colours = {"better": PASS, "worse": FAIL}
    y = np.arange(len(rows))[::-1]
    with figure(height=_row_height(len(rows))) as fig:
        ax = fig.add_subplot()
        ax.axvline(0.0, color=INK, linewidth=1)
        for yi, (_, lift, interval, verdict) in zip(y, rows, strict=True):
            colour = colours.get(verdict, MUTED)
            if interval is not None:
                ax.plot([interval.low, interval.high], [yi, yi], color=colour, linewidth=2)
            significant = verdict in colours
            ax.plot(
                [lift],
                [yi],
                marker="D" if significant else "o",
                markersize=7,
                color=colour,
                markerfacecolor=colour if significant else "white",
                linestyle="none",
            )
        ax.set_yticks(y, [short(label, 48) for label, *_ in rows])
        ax.set_xlabel("lift: model - baseline on the primary metric")
        ax.grid(axis="y", visible=False)
        return plot(
            fig,
            title="Baseline panel: lifts",
            caption="One row per baseline: the marker is the model's lift over it on the primary metric "
            "(model minus baseline), the bar the confidence interval of that difference. Right of the "
            "zero line the model scores higher (for a loss, left is better). Filled diamonds are "
            "significant: green where the model is better, red where it is worse; hollow circles are not "
            "significantly different from the baseline.",
        )
