"""Training-curve computation: downsampling, smoothing, per-run summary, group comparison.

References: an independent loop-by-loop LTTB written from the thesis' description, pandas'
``ewm(adjust=True)`` for the bias-corrected EMA, pandas ``groupby`` for per-bucket extremes,
``scipy.integrate.trapezoid`` and ``scipy.stats.mannwhitneyu``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from service.workers.training.curves import smooth, summarize_curve
from service.workers.training.downsample import downsample, lttb, min_max
from service.workers.training.groups import compare_groups


def _reference_lttb(x: list[float], y: list[float], threshold: int) -> list[int]:
    """Steinarsson's algorithm, one point and one bucket at a time."""
    n = len(x)
    every = (n - 2) / (threshold - 2)
    kept, a = [0], 0
    for i in range(threshold - 2):
        start, stop = math.floor(i * every) + 1, math.floor((i + 1) * every) + 1
        nstart, nstop = stop, min(math.floor((i + 2) * every) + 1, n)
        if i == threshold - 3:
            nstart, nstop = n - 1, n
        cx = sum(x[nstart:nstop]) / (nstop - nstart)
        cy = sum(y[nstart:nstop]) / (nstop - nstart)
        best, best_area = start, -1.0
        for j in range(start, stop):
            area = abs((x[a] - cx) * (y[j] - y[a]) - (x[a] - x[j]) * (cy - y[a]))
            if area > best_area:
                best, best_area = j, area
        kept.append(best)
        a = best
    return [*kept, n - 1]


@pytest.mark.parametrize(("n", "threshold"), [(1000, 50), (997, 101), (5000, 7), (100, 99)])
def test_lttb_keeps_the_reference_points(n: int, threshold: int) -> None:
    rng = np.random.default_rng(n)
    x = np.cumsum(rng.random(n) + 0.1)
    y = np.sin(x / 5) + rng.normal(0, 0.3, n)
    ours = lttb(x, y, threshold).tolist()
    assert ours == _reference_lttb(x.tolist(), y.tolist(), threshold)


def test_lttb_keeps_a_single_spike_that_striding_would_miss() -> None:
    x = np.arange(100_000, dtype=np.float64)
    y = np.zeros_like(x)
    y[54_321] = 10.0
    kept = lttb(x, y, 1000)
    assert 54_321 in kept.tolist()
    assert 54_321 not in range(0, 100_000, 100)


def test_min_max_keeps_every_buckets_extremes() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=10_001)
    kept = set(min_max(y, 202).tolist())
    assert {0, 10_000} <= kept and len(kept) <= 202
    edges = np.linspace(1, 10_000, 101).astype(int)
    inner = pd.Series(y[1:-1], index=np.arange(1, 10_000))
    buckets = pd.cut(inner.index, edges, right=False, labels=False)
    grouped = inner.groupby(buckets)
    assert set(grouped.idxmin()) <= kept and set(grouped.idxmax()) <= kept


def test_short_series_come_back_whole_and_bad_sizes_are_refused() -> None:
    x = np.arange(10, dtype=np.float64)
    assert downsample(x, x, 50).tolist() == list(range(10))
    assert downsample(x, x, 50, "min_max").tolist() == list(range(10))
    with pytest.raises(ValueError, match="at least 3"):
        lttb(x, x, 2)
    with pytest.raises(ValueError, match="unknown downsampling method 'mean'"):
        downsample(x, x, 5, "mean")


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.99])
def test_smoothing_is_the_bias_corrected_ema(weight: float) -> None:
    values = np.random.default_rng(2).normal(size=500).cumsum()
    expected = pd.Series(values).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()
    np.testing.assert_allclose(smooth(values, weight), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="smoothing must be in"):
        smooth(values, 1.0)


def _loss_curve(n: int, seed: int, *, blow_up: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.arange(n, dtype=np.int64) * 10
    values = 0.3 + np.exp(-steps / 800) + rng.normal(0, 0.02, n)
    if blow_up:
        values[n // 2 :] += np.linspace(0, 5, n - n // 2)
    seconds = np.cumsum(rng.random(n) * 0.1)
    return steps, values, seconds


def test_summary_reads_the_crossing_on_the_smoothed_curve() -> None:
    steps, values, seconds = _loss_curve(400, 3)
    target = 0.5
    summary = summarize_curve(steps, values, seconds, target=target, direction="min", smoothing=0.6)
    smoothed = pd.Series(values).ewm(alpha=0.4, adjust=True).mean().to_numpy()
    first = int(np.argmax(smoothed <= target))
    assert summary.reached and summary.steps_to_target == steps[first]
    assert summary.seconds_to_target == pytest.approx(seconds[first] - seconds[0])
    # the raw curve dips below the target earlier than the smoothed one: the smoothing matters
    assert int(np.argmax(values <= target)) < first
    assert summary.best == values.min() and summary.best_step == steps[values.argmin()]
    assert summary.final == values[-1] and summary.final_step == steps[-1]
    expected_area = integrate.trapezoid(values, steps) / (steps[-1] - steps[0])
    assert summary.area == pytest.approx(expected_area, rel=1e-12)
    assert not summary.diverged


def test_summary_of_an_accuracy_curve_and_of_one_that_never_arrives() -> None:
    steps, values, seconds = _loss_curve(200, 4)
    accuracy = 1.0 - values
    summary = summarize_curve(steps, accuracy, seconds, target=0.6, direction="max")
    smoothed = pd.Series(accuracy).ewm(alpha=0.4, adjust=True).mean().to_numpy()
    assert summary.steps_to_target == steps[int(np.argmax(smoothed >= 0.6))]
    never = summarize_curve(steps, values, seconds, target=0.0, direction="min")
    assert not never.reached and never.steps_to_target is None and never.seconds_to_target is None


def test_divergence_and_plateau_flags() -> None:
    steps, values, seconds = _loss_curve(400, 5, blow_up=True)
    assert summarize_curve(steps, values, seconds, target=None, direction="min").diverged
    flat_steps, flat, flat_seconds = _loss_curve(2000, 6)  # long past its knee at step 800
    assert summarize_curve(flat_steps, flat, flat_seconds, target=None, direction="min").plateaued
    short_steps, short, short_seconds = _loss_curve(60, 7)  # still falling steeply
    still = summarize_curve(short_steps, short, short_seconds, target=None, direction="min")
    assert not still.plateaued and not still.diverged


def test_groups_are_compared_with_mann_whitney_counting_misses_as_slowest() -> None:
    def run(steps_to: int | None) -> object:
        steps = np.arange(100, dtype=np.int64)
        target_at = steps_to if steps_to is not None else 10_000
        values = np.where(steps >= target_at, 0.1, 1.0)
        return summarize_curve(steps, values, steps * 0.5, target=0.2, direction="min", smoothing=0.0)

    sync = [run(s) for s in (10, 12, 11, 13, 9)]
    asgd = [run(s) for s in (30, 41, None, 35, 28)]
    first, second = compare_groups({"sync": sync, "async": asgd})  # type: ignore[dict-item]
    assert (first.runs, first.reached, second.reached) == (5, 5, 4)
    assert first.p_value_vs_first is None
    expected = stats.mannwhitneyu([10, 12, 11, 13, 9], [30, 41, math.inf, 35, 28], alternative="two-sided")
    assert second.p_value_vs_first == pytest.approx(expected.pvalue, rel=1e-12)
    assert first.steps_to_target.median == 11.0
    assert second.steps_to_target.median == np.median([30, 41, 35, 28])
    assert first.seconds_to_target.median == 5.5
