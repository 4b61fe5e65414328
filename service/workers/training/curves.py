"""What one training curve says: when it reached a target, how good it got, whether it stalled.

A run's metric (a loss, an accuracy) is a noisy series over steps. "Steps to target" on the raw
series rewards a lucky minibatch, so the crossing is read on a smoothed curve:

**Smoothing.** The exponential moving average with bias correction that TensorBoard's smoothing
slider uses: ``m_t = w * m_{t-1} + (1 - w) * v_t`` from ``m_0 = 0``, reported as
``m_t / (1 - w^(t+1))`` so the first points are not pulled towards zero. ``w = 0`` is no smoothing;
the default 0.6 is TensorBoard's. Points are weighted by position, not by step gaps.

**Target.** The first logged step at which the smoothed value is at or below the target
(direction ``min``, a loss) or at or above it (``max``); its time is that point's timestamp minus
the run's first timestamp. A run that never crosses has neither (``reached`` false).

**Area under the curve.** The trapezoid rule over the raw values against steps, divided by the
step range: the curve's mean level, lower is better for a loss. Two runs are compared on it only
over the same steps.

**Divergence.** The smoothed curve ends worse than it started (by the direction), or its last
smoothed value is more than ``diverge_factor`` times as far from its best as the whole
improvement was (a loss that fell and then blew up).

**Plateau.** Over the last quarter of the run, the least-squares line through the raw values
improves by less than ``plateau_share`` (default 1%) of the run's whole improvement (first to
best smoothed value): more steps would not help. A fitted line rather than first-vs-best, so
that noise alone does not read as progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Direction = Literal["min", "max"]

DEFAULT_SMOOTHING = 0.6
DEFAULT_PLATEAU_SHARE = 0.01
DEFAULT_DIVERGE_FACTOR = 1.0


def smooth(values: FloatArray, weight: float = DEFAULT_SMOOTHING) -> FloatArray:
    """The bias-corrected exponential moving average of ``values`` with weight ``weight``.

    Examples
    --------
    >>> smooth(np.array([1.0, 1.0, 1.0]), 0.9).tolist()
    [1.0, 1.0, 1.0]
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError("smoothing must be in [0, 1): 0 is none, 0.6 is TensorBoard's default.")
    if weight == 0.0 or len(values) == 0:
        return values.astype(np.float64, copy=True)
    from scipy.signal import lfilter

    # m_t = w m_{t-1} + (1 - w) v_t as a first-order filter, then the bias correction
    averaged: FloatArray = lfilter([1.0 - weight], [1.0, -weight], values.astype(np.float64))
    correction = 1.0 - weight ** np.arange(1, len(values) + 1, dtype=np.float64)
    return averaged / correction


@dataclass(frozen=True)
class CurveSummary:
    points: int
    reached: bool
    steps_to_target: int | None
    seconds_to_target: float | None
    best: float
    best_step: int
    final: float
    final_step: int
    area: float
    diverged: bool
    plateaued: bool


def _better(a: FloatArray | float, b: float, direction: Direction) -> npt.NDArray[np.bool_] | bool:
    return np.asarray(a) <= b if direction == "min" else np.asarray(a) >= b


def summarize_curve(
    steps: npt.NDArray[np.int64],
    values: FloatArray,
    seconds: FloatArray,
    *,
    target: float | None,
    direction: Direction,
    smoothing: float = DEFAULT_SMOOTHING,
    plateau_share: float = DEFAULT_PLATEAU_SHARE,
    diverge_factor: float = DEFAULT_DIVERGE_FACTOR,
) -> CurveSummary:
    """Summarise one run's series, sorted by step; ``seconds`` are elapsed since the run's start.

    Parameters
    ----------
    steps, values, seconds : arrays of shape (n,), n >= 1
    target : float or None
        The value to reach; None reports no crossing.
    direction : "min" or "max"
        Whether lower (a loss) or higher (an accuracy) is better.
    """
    if len(values) == 0:
        raise ValueError("the series has no points")
    sign = 1.0 if direction == "min" else -1.0
    smoothed = smooth(values, smoothing)
    reached = False
    steps_to: int | None = None
    seconds_to: float | None = None
    if target is not None:
        crossed = np.flatnonzero(_better(smoothed, target, direction))
        if len(crossed):
            first = int(crossed[0])
            reached, steps_to, seconds_to = True, int(steps[first]), float(seconds[first] - seconds[0])
    best_at = int(np.argmin(sign * values))
    span = float(steps[-1] - steps[0])
    area = float(np.trapezoid(values, steps) / span) if span > 0 else float(values[0])

    start, end, best_smoothed = smoothed[0], smoothed[-1], float(np.min(sign * smoothed)) * sign
    improvement = sign * (start - best_smoothed)
    diverged = bool(sign * (end - start) > 0) or bool(
        improvement > 0 and sign * (end - best_smoothed) > diverge_factor * improvement
    )
    plateaued = False
    tail = slice(int(len(values) * 0.75), None)
    tail_steps = steps[tail].astype(np.float64)
    if improvement > 0 and len(values) >= 8 and tail_steps[-1] > tail_steps[0]:
        slope = float(np.polyfit(tail_steps, values[tail], 1)[0])
        tail_gain = -sign * slope * (tail_steps[-1] - tail_steps[0])
        plateaued = tail_gain < plateau_share * improvement
    return CurveSummary(
        points=len(values),
        reached=reached,
        steps_to_target=steps_to,
        seconds_to_target=seconds_to,
        best=float(values[best_at]),
        best_step=int(steps[best_at]),
        final=float(values[-1]),
        final_step=int(steps[-1]),
        area=area,
        diverged=diverged,
        plateaued=plateaued,
    )
