"""Release gates: the request's thresholds and the report of which passed."""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.common import WireModel


class Gate(WireModel):
    """A release gate: the metric must be at least ``min`` and/or at most ``max``."""

    metric: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs `min`, `max` or both")
        return self


class GateResult(WireModel):
    metric: str
    value: float | None
    min: float | None
    max: float | None
    passed: bool
    reason: str | None = None


class GateReport(WireModel):
    passed: bool
    results: list[GateResult] = Field(default_factory=list)
