"""Tracking runs: a training run's params, tags and metric series, and comparisons of runs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from schemas.common import FiniteFloat, ModelRef, Page, ResourceId, WireModel

RunStatus = Literal["running", "finished", "failed", "killed"]

#: A metric or param name: what MLflow accepts (letters, digits, ``_ - . / : space``), 250 chars.
NAME_PATTERN = r"^[A-Za-z0-9_\-./: ]{1,250}$"
#: System metrics share the stream under this prefix (``system/cpu_percent``, ...).
SYSTEM_PREFIX = "system/"
SYSTEM_METRICS = {
    "system/cpu_percent": "CPU utilisation of the training process, 0-100 per core summed.",
    "system/memory_mb": "Resident memory of the training process, MiB.",
    "system/gpu_utilization": "GPU utilisation, 0-100 (one series per GPU: use `worker`).",
    "system/gpu_memory_mb": "GPU memory in use, MiB.",
    "system/samples_per_second": "Training throughput.",
}
#: Points per ``POST /v1/runs/{id}/metrics`` call.
MAX_POINTS_PER_CALL = 50_000


def _iso_text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("a time here is an ISO 8601 string, e.g. 2026-12-05T10:00:00Z")
    return value


#: A time in a request: an ISO 8601 string (a number is not read as a time).
StrictTime = Annotated[datetime, BeforeValidator(_iso_text)]
TagKey = Annotated[str, Field(min_length=1, max_length=250)]
TagValue = Annotated[str, Field(max_length=5000)]
MetricName = Annotated[str, Field(pattern=NAME_PATTERN, examples=["loss", "system/cpu_percent"])]
Worker = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="The rank or replica that logged the point; absent for the run as a whole.",
        examples=["0", "replica-3"],
    ),
]


class RunCreate(WireModel):
    model: ModelRef
    name: str | None = Field(default=None, max_length=250, description="A readable name of the run.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Params and hyperparams, flat or nested ({'optimizer': {'lr': 0.1}}); nested keys "
        "are also addressable with dots (`optimizer.lr`) in filters.",
    )
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, examples=[{"sync": "true", "seed": "3"}])
    source_commit: str | None = Field(default=None, max_length=100, examples=["3f2c1ab"])
    dataset: str | None = Field(
        default=None, max_length=1000, description="A reference to the training data (a URI, a name)."
    )
    started_at: StrictTime | None = Field(default=None, description="Defaults to the time of the request.")


class RunUpdate(WireModel):
    status: RunStatus | None = None
    ended_at: StrictTime | None = Field(
        default=None, description="Set to now when the status leaves `running` and no time is given."
    )
    tags: dict[TagKey, TagValue] | None = Field(default=None, description="Merged into the run's tags.")


class Run(WireModel):
    id: str
    model: ModelRef
    name: str | None
    status: RunStatus
    params: dict[str, Any]
    tags: dict[str, str]
    source_commit: str | None
    dataset: str | None
    started_at: datetime
    ended_at: datetime | None
    metrics: list[str] = Field(default_factory=list, description="Names of the metric series logged.")
    evaluations: list[str] = Field(
        default_factory=list, description="Jobs of evaluations that named this run (`run_id`)."
    )


RunList = Page[Run]


class MetricPoint(WireModel):
    name: MetricName
    step: int = Field(ge=0, le=2**53 - 1, strict=True)
    value: Annotated[FiniteFloat, Field(strict=True)]
    timestamp: StrictTime | Annotated[FiniteFloat, Field(strict=True)] | None = Field(
        default=None, description="ISO 8601, or POSIX seconds; defaults to the time of the request."
    )
    worker: Worker | None = None
    staleness: int | None = Field(
        default=None,
        ge=0,
        le=2**31,
        strict=True,
        description="Async training: updates applied since this gradient's params.",
    )


class ParamPoint(WireModel):
    """A param's value from ``step`` on (a learning-rate schedule)."""

    name: MetricName
    step: int = Field(ge=0, le=2**53 - 1, strict=True)
    value: Annotated[FiniteFloat, Field(strict=True)] | Annotated[str, Field(strict=True)] | bool


class MetricLog(WireModel):
    points: list[MetricPoint] = Field(default_factory=list, max_length=MAX_POINTS_PER_CALL)
    params: list[ParamPoint] = Field(default_factory=list, max_length=MAX_POINTS_PER_CALL)

    @field_validator("points")
    @classmethod
    def _steps_go_forward(cls, points: list[MetricPoint]) -> list[MetricPoint]:
        last: dict[tuple[str, str | None], tuple[int, int]] = {}
        for i, point in enumerate(points):
            key = (point.name, point.worker)
            if key in last and point.step <= last[key][0]:
                raise ValueError(
                    f"points[{i}]: step {point.step} of {point.name!r}"
                    f"{'' if point.worker is None else f' (worker {point.worker!r})'} does not come after "
                    f"step {last[key][0]} of points[{last[key][1]}]; send each series in increasing steps"
                )
            last[key] = (point.step, i)
        return points


class MetricLogResult(WireModel):
    accepted: int = Field(description="Points (and param points) stored by this call.")
    unchanged: int = Field(description="Points already stored with the same value (a retried call).")


class MetricSeries(WireModel):
    run_id: str
    name: str
    worker: str | None
    total_points: int
    method: Literal["all", "lttb", "min_max"] = Field(description="How the points were chosen.")
    step: list[int]
    value: list[float]
    timestamp: list[datetime]
    staleness: list[int | None] | None = None


class RunCompareRequest(WireModel):
    run_ids: list[ResourceId] = Field(min_length=1, max_length=200)
    metric: MetricName
    target: FiniteFloat | None = None
    direction: Literal["min", "max"] = Field(default="min", description="`min` for a loss.")
    group_by: str | None = Field(default=None, description="A tag key: runs are grouped by its value.")
    smoothing: float = Field(
        default=0.6, ge=0, lt=1, description="Weight of the bias-corrected moving average (TensorBoard's)."
    )
    worker: Worker | None = Field(
        default=None,
        description="Read this worker's series; by default the run-level series, or the mean over "
        "workers at each step when only per-worker points exist.",
    )


class Staleness(WireModel):
    mean: float
    max: int


class RunCurve(WireModel):
    run_id: str
    name: str | None
    group: str | None
    points: int
    reached: bool
    steps_to_target: int | None
    time_to_target_seconds: float | None
    best: float
    best_step: int
    final: float
    final_step: int
    area: float = Field(description="Mean level of the curve: trapezoid area over the step range.")
    diverged: bool
    plateaued: bool
    staleness: Staleness | None = None


class Spread(WireModel):
    median: float | None
    q1: float | None
    q3: float | None


class RunGroup(WireModel):
    key: str
    runs: int
    reached: int
    steps_to_target: Spread
    time_to_target_seconds: Spread
    final: Spread
    p_value_vs_first: float | None = Field(
        description="Two-sided Mann-Whitney U test of steps-to-target against the first group "
        "(runs that never reach the target count as slowest)."
    )


class RunComparison(WireModel):
    metric: str
    direction: Literal["min", "max"]
    target: float | None
    smoothing: float
    runs: list[RunCurve]
    groups: list[RunGroup] = Field(default_factory=list)


class MlflowSource(WireModel):
    tracking_uri: str = Field(
        min_length=1,
        max_length=2000,
        examples=["http://mlflow.internal:5000"],
        description="The MLflow tracking server (http or https); obeys YARDSTICK_OUTBOUND_ALLOW.",
    )
    run_id: str = Field(min_length=1, max_length=100, description="The MLflow run to copy.")


class RunImport(WireModel):
    mlflow: MlflowSource
    model: ModelRef = Field(description="The model the run trains (MLflow runs do not say).")


class RunImported(WireModel):
    run: Run
    points: int = Field(description="Metric points copied (one per metric and step: the latest).")
    skipped: int = Field(description="Points left out: non-finite values, or older values of a step.")


class MlflowExport(WireModel):
    """Where an evaluation is logged in MLflow (the evaluation request's ``mlflow``)."""

    tracking_uri: str = Field(min_length=1, max_length=2000, examples=["http://mlflow.internal:5000"])
    experiment: str = Field(
        default="yardstick", min_length=1, max_length=500, description="Created when it does not exist."
    )
    run_id: str | None = Field(
        default=None,
        max_length=100,
        description="Log into this existing MLflow run (e.g. the training run); absent: a new run, "
        "named after the model and version, ended when the evaluation is logged.",
    )


class MlflowExported(WireModel):
    tracking_uri: str
    experiment_id: str
    run_id: str
