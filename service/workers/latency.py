"""Inference latency as a metric: percentiles, single-stream throughput, and latency per slice.

Pure numpy on the batch's ``latency_ms`` column. Percentiles are numpy's default (linear
interpolation between order statistics, as pandas' ``quantile``). Throughput is what one serving
stream sustains at these latencies, ``1000 / mean(latency_ms)`` rows per second: a batch of
per-row latencies says nothing about concurrency, so that is the one throughput it can state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas.latency import LatencyResult, LatencySlice, LatencySummary

PERCENTILES = (50.0, 90.0, 99.0)


def summarize(latency_ms: npt.NDArray[np.float64]) -> LatencySummary | None:
    """Percentiles, max, mean and throughput of the measured (non-NaN) latencies; None if none."""
    values = latency_ms[~np.isnan(latency_ms)]
    if values.size == 0:
        return None
    p50, p90, p99 = np.percentile(values, PERCENTILES)
    mean = float(values.mean())
    return LatencySummary(
        rows=int(values.size),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        max=float(values.max()),
        mean=mean,
        throughput_per_second=1000.0 / mean if mean > 0 else None,
    )


def latency_report(
    latency_ms: npt.NDArray[np.float64],
    columns: Sequence[tuple[str, npt.NDArray[np.integer[Any]], list[Any]]] = (),
) -> LatencyResult | None:
    """The batch's latency and, per slice column ``(name, codes, labels)``, each value's: slowest
    p99 first. Codes index ``labels``; a negative code is a row without a value (left out)."""
    overall = summarize(latency_ms)
    if overall is None:
        return None
    slices = []
    for name, codes, labels in columns:
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
        for start, stop in zip(starts, [*starts[1:], len(order)], strict=True):
            code = int(sorted_codes[start])
            if code < 0:
                continue
            summary = summarize(latency_ms[order[start:stop]])
            if summary is not None:
                slices.append(LatencySlice(column=name, value=str(labels[code]), summary=summary))
    slices.sort(key=lambda s: (-s.summary.p99, s.column, s.value))
    return LatencyResult(overall=overall, by_slice=slices)
