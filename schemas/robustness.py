"""Robustness: perturbation, invariance and directional-expectation tests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from schemas.common import WireModel

Expectation = Literal["same", "increase", "decrease"]


class Endpoint(WireModel):
    """A model server speaking the KServe v1 protocol: POST {"instances": [...]} -> {"predictions": [...]}."""

    url: str = Field(examples=["https://model.internal/v1/models/fraud:predict"])
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every call (e.g. auth).")
    batch_size: int = Field(default=64, ge=1, le=10_000, description="Instances per call.")
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retries: int = Field(default=3, ge=0, le=10, description="Retries on 5xx and timeouts, with backoff.")


class Perturbation(WireModel):
    column: str
    noise: Literal["gaussian", "swap", "typo"] = Field(
        description="gaussian: numeric, scale x the column's std; swap: categorical, another observed value; "
        "typo: strings, one random edit."
    )
    scale: float = Field(default=0.05, gt=0, le=100)


class Invariance(WireModel):
    column: str
    swap: list[Any] = Field(min_length=2, max_length=2, description="Rows with one value get the other.")


class Directional(WireModel):
    column: str
    add: float | None = None
    multiply: float | None = None
    set: Any = None
    expect: Literal["increase", "decrease"]

    @model_validator(mode="after")
    def _one_change(self) -> Directional:
        given = [k for k in ("add", "multiply", "set") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `add`, `multiply`, `set`")
        return self


class PairTest(WireModel):
    name: str = Field(min_length=1, max_length=200)
    original_batch_id: str
    perturbed_batch_id: str
    expect: Expectation = "same"


class RobustnessRequest(WireModel):
    endpoint: Endpoint | None = None
    sample_size: int = Field(default=500, ge=1, le=100_000)
    seed: int = 0
    perturbation: list[Perturbation] = Field(default_factory=list)
    invariance: list[Invariance] = Field(default_factory=list)
    directional: list[Directional] = Field(default_factory=list)
    pairs: list[PairTest] = Field(default_factory=list)
    score_tolerance: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Score changes up to this much are not violations, even when the predicted class "
        "flips: with scores on both sides, a score hovering at the decision threshold (0.50 -> 0.495 "
        "turning `yes` into `no`) moved by no more than the tolerance and is not an invariance or "
        "directional violation (counted in `details.label_changes_within_tolerance`). Multiclass "
        "invariance: a flip is tolerated only when every class probability moved by at most this "
        "much. Without scores, labels decide: any changed label violates `same`.",
    )
    max_flip_rate: float = Field(
        default=0.05, ge=0, le=1, description="`fragile_to_perturbation` above this."
    )
    max_violation_rate: float = Field(
        default=0.0, ge=0, le=1, description="`invariance_violation` / `directional_violation` above this."
    )

    @model_validator(mode="after")
    def _endpoint_when_needed(self) -> RobustnessRequest:
        if (self.perturbation or self.invariance or self.directional) and self.endpoint is None:
            raise ValueError("perturbation, invariance and directional tests call a model: give `endpoint`")
        return self


class ExampleRow(WireModel):
    sample_id: str
    original: Any = Field(description="The column's value before the change.")
    changed: Any
    original_prediction: Any
    changed_prediction: Any
    original_score: float | None = None
    changed_score: float | None = None


class PerturbationResult(WireModel):
    column: str
    noise: str
    scale: float
    rows: int
    flip_rate: float = Field(description="Share of rows whose predicted class changed.")
    mean_abs_score_change: float | None
    metric_drop: dict[str, float | None] = Field(
        default_factory=dict,
        description="Metric on original answers minus on perturbed answers (labeled rows).",
    )
    examples: list[ExampleRow] = Field(default_factory=list)


class ExpectationResult(WireModel):
    """An invariance, directional or pair test."""

    name: str
    kind: Literal["invariance", "directional", "pair"]
    expect: Expectation
    rows: int
    violations: int = Field(
        description="Tested rows against the expectation: with scores, a score change beyond "
        "`score_tolerance` (in the wrong direction for increase/decrease), whether or not the "
        "predicted class changed; without scores, a changed (or wrongly moved) label."
    )
    violation_rate: float | None
    mean_score_change: float | None = None
    examples: list[ExampleRow] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)


class RobustnessResult(WireModel):
    sampled_rows: int
    calls: int = Field(description="Requests made to the endpoint.")
    perturbation: list[PerturbationResult] = Field(default_factory=list)
    invariance: list[ExpectationResult] = Field(default_factory=list)
    directional: list[ExpectationResult] = Field(default_factory=list)
    pairs: list[ExpectationResult] = Field(default_factory=list)
