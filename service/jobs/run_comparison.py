"""``POST /v1/runs/compare`` and ``GET /v1/runs/{id}/metrics``: runs' series from the store, read
by the training-curve workers.

Answered within the request (20 runs in well under 200 ms; benchmarks/bench_runs.py), so no
job is queued: this module is the join of the run store and ``service/workers/training``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import numpy as np

from schemas.runs import MetricSeries, RunCompareRequest, RunComparison, RunCurve, RunGroup, Spread, Staleness
from service.errors import FieldIssue, InvalidInput
from service.store.runs import NO_STALENESS, RUN_LEVEL, RunStore, Series
from service.workers.training.curves import summarize_curve
from service.workers.training.downsample import downsample
from service.workers.training.groups import Spread as SpreadFigures
from service.workers.training.groups import compare_groups

UNGROUPED = "(no tag)"


def read_series(
    runs: RunStore,
    run_id: str,
    name: str,
    *,
    worker: str | None,
    max_points: int | None,
    method: str,
) -> MetricSeries:
    series = runs.series(run_id, name, worker)
    kept: slice | np.ndarray = slice(None)
    chosen = "all"
    if max_points is not None and len(series) > max_points:
        kept = downsample(series.steps.astype(np.float64), series.values, max_points, method)
        chosen = method
    staleness = series.staleness[kept]
    return MetricSeries(
        run_id=run_id,
        name=name,
        worker=series.worker,
        total_points=len(series),
        method=chosen,
        step=series.steps[kept].tolist(),
        value=series.values[kept].tolist(),
        timestamp=[datetime.fromtimestamp(s, UTC) for s in series.seconds[kept].tolist()],
        staleness=None
        if bool(np.all(staleness == NO_STALENESS))
        else [None if s == NO_STALENESS else s for s in staleness.tolist()],
    )


def _curve_of(runs: RunStore, run_id: str, request: RunCompareRequest) -> Series:
    """The series a comparison reads: the worker asked for, else the run-level series, else the
    mean over the workers at each step (the earliest time any worker logged that step)."""
    if request.worker is not None:
        return runs.series(run_id, request.metric, request.worker)
    workers = runs.workers(run_id, request.metric)
    if not workers or RUN_LEVEL in workers:
        return runs.series(run_id, request.metric, None)
    parts = [runs.series(run_id, request.metric, w) for w in workers]
    steps = np.concatenate([p.steps for p in parts])
    order = np.argsort(steps, kind="stable")
    unique, starts, counts = np.unique(steps[order], return_index=True, return_counts=True)

    def per_step(column: np.ndarray, reduce: np.ufunc) -> np.ndarray:
        return reduce.reduceat(column[order], starts)

    values = per_step(np.concatenate([p.values for p in parts]), np.add) / counts
    seconds = per_step(np.concatenate([p.seconds for p in parts]), np.minimum)
    staleness = per_step(np.concatenate([p.staleness for p in parts]), np.maximum)
    return Series(request.metric, None, unique, values, seconds, staleness)


def _spread(figures: SpreadFigures) -> Spread:
    return Spread(median=figures.median, q1=figures.q1, q3=figures.q3)


def compare_runs(runs: RunStore, request: RunCompareRequest) -> RunComparison:
    found = runs.many(request.run_ids)
    curves: list[RunCurve] = []
    summaries_by_group: dict[str, list] = defaultdict(list)  # type: ignore[type-arg]
    for index, run_id in enumerate(dict.fromkeys(request.run_ids)):
        run = found[run_id]
        series = _curve_of(runs, run_id, request)
        if len(series) == 0:
            raise InvalidInput(
                f"run {run_id!r} has no points of {request.metric!r}"
                + ("" if request.worker is None else f" from worker {request.worker!r}"),
                [FieldIssue(f"run_ids[{index}]", f"log {request.metric!r} to it, or leave it out")],
            )
        summary = summarize_curve(
            series.steps,
            series.values,
            series.seconds,
            target=request.target,
            direction=request.direction,
            smoothing=request.smoothing,
        )
        logged = series.staleness[series.staleness != NO_STALENESS]
        group = None
        if request.group_by is not None:
            group = run.tags.get(request.group_by, UNGROUPED)
            summaries_by_group[group].append(summary)
        curves.append(
            RunCurve(
                run_id=run_id,
                name=run.name,
                group=group,
                points=summary.points,
                reached=summary.reached,
                steps_to_target=summary.steps_to_target,
                time_to_target_seconds=summary.seconds_to_target,
                best=summary.best,
                best_step=summary.best_step,
                final=summary.final,
                final_step=summary.final_step,
                area=summary.area,
                diverged=summary.diverged,
                plateaued=summary.plateaued,
                staleness=(
                    Staleness(mean=float(logged.mean()), max=int(logged.max())) if len(logged) else None
                ),
            )
        )
    groups = [
        RunGroup(
            key=g.key,
            runs=g.runs,
            reached=g.reached,
            steps_to_target=_spread(g.steps_to_target),
            time_to_target_seconds=_spread(g.seconds_to_target),
            final=_spread(g.final),
            p_value_vs_first=g.p_value_vs_first,
        )
        for g in compare_groups(dict(sorted(summaries_by_group.items())))
    ]
    return RunComparison(
        metric=request.metric,
        direction=request.direction,
        target=request.target,
        smoothing=request.smoothing,
        runs=curves,
        groups=groups,
    )
