"""Slices: each column's (or cross's) slices as bars with intervals, critical slices over time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from schemas.slices import CriticalSliceResult, SliceGroup
from service.reports.figures import ACCENT, INK, MUTED, Plot, figure, plot, short

#: Bars per figure: the result lists the slices that matter first (those a gate names, the flagged
#: ones, then the worst), so the first ones are kept and the table says how many more there are.
MAX_BARS = 20


def describe(conditions: dict[str, Any], *, limit: int | None = None) -> str:
    """``country = BR & device = ios``: a slice's conditions as a reader writes them; with ``limit``,
    each value cut to that many characters (a tick label keeps every condition visible)."""
    return " & ".join(
        f"{column} = {value if limit is None else short(value, limit)}"
        for column, value in conditions.items()
    )


def slice_bars(group: SliceGroup, *, metric: str, overall: float | None) -> Plot | None:
    """Horizontal bars: the metric in each slice of the group, its interval, minority slices pale."""
    slices = [s for s in group.slices if (m := s.metrics.get(metric)) is not None and m.value is not None][
        :MAX_BARS
    ]
    if not slices:
        return None
    y = np.arange(len(slices))[::-1]
    values = np.array([s.metrics[metric].value for s in slices], dtype=float)
    with figure(height=0.9 + 0.3 * len(slices)) as fig:
        ax = fig.add_subplot()
        colours = [MUTED if s.minority else ACCENT for s in slices]
        ax.barh(y, values, color=colours, hatch=None, height=0.65)
        for yi, s in zip(y, slices, strict=True):
            interval = s.metrics[metric].interval
            if interval is not None:
                ax.plot([interval.low, interval.high], [yi, yi], color=INK, linewidth=1.2)
        if overall is not None:
            ax.axvline(overall, color=INK, linestyle="--", linewidth=1, label=f"whole batch {overall:.4g}")
            ax.legend(loc="lower right", bbox_to_anchor=(1, 1), fontsize=7)
        labels = [describe(s.conditions, limit=14) + (" (minority)" if s.minority else "") for s in slices]
        ax.set_yticks(y, labels)
        ax.set_xlabel(metric)
        ax.grid(axis="y", visible=False)
        return plot(
            fig,
            title=f"{metric} by {' x '.join(group.columns)}",
            caption=f"Each bar is {metric} on the rows of one slice, the black line its confidence interval; "
            "the dashed line is the whole batch. Pale bars marked (minority) rest on few rows (under the "
            "minimum support or 5% of the batch): read their gap with their wide interval in mind.",
        )


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def critical_over_time(
    critical: list[CriticalSliceResult], *, metric: str, version: str, finished_at: datetime
) -> Plot | None:
    """One line per critical slice: its metric in earlier evaluations of the model and in this one,
    evaluations evenly spaced in the order they finished (labelled by version and date)."""
    series: dict[str, dict[tuple[datetime, str], float]] = {}
    for entry in critical:
        points: dict[tuple[datetime, str], float] = {}
        for h in entry.history:
            when, value = _when(h.get("finished_at")), (h.get("metrics") or {}).get(metric)
            if when is not None and isinstance(value, int | float):
                points[(when.astimezone(UTC), str(h.get("version", "")))] = float(value)
        current = entry.metrics.get(metric)
        if current is not None and current.value is not None:
            points[(finished_at.astimezone(UTC), version)] = current.value
        if len(points) >= 2:
            series[entry.name] = points
    if not series:
        return None
    evaluations = sorted({key for points in series.values() for key in points})
    position = {key: i for i, key in enumerate(evaluations)}
    with figure(height=3.2) as fig:
        ax = fig.add_subplot()
        for name, points in series.items():
            keys = sorted(points)
            ax.plot(
                [position[k] for k in keys],
                [points[k] for k in keys],
                "o-",
                linewidth=1.5,
                label=short(name, 30),
            )
        ax.set_xticks(
            range(len(evaluations)), [f"{short(v, 12)}\n{w:%Y-%m-%d}" for w, v in evaluations], fontsize=7
        )
        ax.set_ylabel(metric)
        ax.set_xlabel("model version and evaluation date (oldest first)")
        ax.legend(loc="best", fontsize=7)
        return plot(
            fig,
            title="Critical slices over time",
            caption=f"{metric} of each critical slice in the earlier evaluations of this model (oldest on "
            "the left) and in this one (the last point). A falling line is a slice getting worse across "
            "versions even when the whole batch holds steady.",
        )
