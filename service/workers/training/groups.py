"""Groups of runs compared on steps and time to a target (sync vs async SGD over several seeds).

Each group's steps-to-target and seconds-to-target are summarised by their median and
interquartile range over the runs that reached the target, with the count that did not. Two
groups are compared with the two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``) on
steps-to-target, a run that never reached the target counting as infinitely slow: the test uses
ranks only, so that is exact, and a group that rarely reaches the target is not flattered by
leaving its failures out. A rank test because a handful of seeds per group is the usual case
and steps-to-target is skewed. With more than two groups each other group is tested against the
first (in ``group_by`` value order), with no adjustment: say so if you read many of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from service.workers.training.curves import CurveSummary


@dataclass(frozen=True)
class Spread:
    median: float | None
    q1: float | None
    q3: float | None


@dataclass(frozen=True)
class GroupSummary:
    key: str
    runs: int
    reached: int
    steps_to_target: Spread
    seconds_to_target: Spread
    final: Spread
    p_value_vs_first: float | None
    """Two-sided Mann-Whitney U p-value of steps-to-target against the first group (None for it)."""


def spread(values: Sequence[float]) -> Spread:
    if not values:
        return Spread(None, None, None)
    q1, median, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return Spread(float(median), float(q1), float(q3))


def _steps_or_inf(summary: CurveSummary) -> float:
    return float(summary.steps_to_target) if summary.steps_to_target is not None else math.inf


def compare_groups(groups: dict[str, list[CurveSummary]]) -> list[GroupSummary]:
    """One summary per group, in the dict's order; the first group is the reference."""
    out: list[GroupSummary] = []
    reference: list[float] | None = None
    for key, runs in groups.items():
        steps = [_steps_or_inf(r) for r in runs]
        p_value: float | None = None
        if reference is None:
            reference = steps
        elif len(reference) and len(steps):
            finite = [s for s in reference + steps if math.isfinite(s)]
            if finite and len(set(reference + steps)) > 1:
                p_value = float(stats.mannwhitneyu(reference, steps, alternative="two-sided").pvalue)
            else:
                p_value = 1.0
        reached = [r for r in runs if r.reached]
        out.append(
            GroupSummary(
                key=key,
                runs=len(runs),
                reached=len(reached),
                steps_to_target=spread([float(r.steps_to_target or 0) for r in reached]),
                seconds_to_target=spread([float(r.seconds_to_target or 0.0) for r in reached]),
                final=spread([r.final for r in runs]),
                p_value_vs_first=p_value,
            )
        )
    return out
