"""Speed as a metric: per-row inference latency (``latency_ms``) and the job's own cost."""

from __future__ import annotations

from pydantic import Field

from schemas.common import WireModel


class LatencySummary(WireModel):
    rows: int = Field(description="Rows with a latency (null latencies are not counted).")
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    throughput_per_second: float | None = Field(
        description="Rows per second one serving stream sustains at these latencies: 1000 / mean "
        "latency_ms (None when the mean is 0)."
    )


class LatencySlice(WireModel):
    column: str
    value: str = Field(description="The slice's value (numeric columns: its bin label).")
    summary: LatencySummary


class LatencyResult(WireModel):
    """Percentiles are numpy's (linear interpolation, pandas' ``quantile`` default), in ms."""

    overall: LatencySummary
    by_slice: list[LatencySlice] = Field(
        default_factory=list,
        description="Per value of each column of the request's `slices.columns` (slowest p99 first).",
    )


class JobStats(WireModel):
    """What the evaluation itself cost, measured by the worker that ran it."""

    duration_seconds: float
    rows_per_second: float
    peak_memory_mib: float | None = Field(
        description="Peak resident memory of the worker process during the job (Linux: VmHWM after "
        "a reset at job start; elsewhere the process's lifetime peak)."
    )
