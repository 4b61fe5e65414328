"""Robustness: perturbation, invariance and directional-expectation tests."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from schemas.common import FiniteFloat, ResourceId, Seed, WireModel, exactly_one_of, given_count, json_equal

Expectation = Literal["same", "increase", "decrease"]
#: A column of the batch (ingest caps column names at 200 characters).
ColumnName = Annotated[str, Field(min_length=1, max_length=200)]
#: A value written into a column: a JSON scalar the column's type can hold (NaN and infinity refused).
CellValue = bool | int | FiniteFloat | Annotated[str, Field(max_length=10_000)]
#: A header name is an RFC 9110 token; a value is visible ASCII with inner spaces or tabs. The HTTP
#: client refuses anything else when it calls, so it is refused at submission instead.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$"
HEADER_VALUE = r"^([\x21-\x7e]([\t\x20-\x7e]{0,7998}[\x21-\x7e])?)?$"
#: Headers the client sets itself from the request it sends.
RESERVED_HEADERS = ("connection", "content-length", "content-type", "host", "transfer-encoding")
#: The same, case-insensitively, as a JSON Schema pattern (which has no flags).
_RESERVED_PATTERN = "^({})$".format(
    "|".join("".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in name) for name in RESERVED_HEADERS)
)


class Endpoint(WireModel):
    """A model server speaking the KServe v1 protocol: POST {"instances": [...]} -> {"predictions": [...]}."""

    url: str = Field(
        min_length=1, max_length=2000, examples=["https://model.internal/v1/models/fraud:predict"]
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        max_length=100,
        description="Sent with every call (e.g. auth): names are HTTP tokens, values visible ASCII "
        "(inner spaces and tabs allowed); Host, Content-Length, Content-Type, Transfer-Encoding and "
        "Connection are set by the service.",
        json_schema_extra={
            "propertyNames": {"pattern": HEADER_NAME, "not": {"pattern": _RESERVED_PATTERN}},
            "additionalProperties": {"type": "string", "pattern": HEADER_VALUE},
        },
    )
    batch_size: int = Field(default=64, ge=1, le=10_000, description="Instances per call.")
    concurrency: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, allow_inf_nan=False)
    retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries on no answer, 429 and 5xx, with jittered backoff "
        "(Retry-After honoured up to 30 s).",
    )

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not re.fullmatch(HEADER_NAME, name):
                raise ValueError(f"header name {name[:100]!r} is not an HTTP token")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the service; remove it")
            if not re.fullmatch(HEADER_VALUE, value):
                raise ValueError(
                    f"the value of header {name!r} must be visible ASCII (spaces and tabs only inside)"
                )
        return headers


class Perturbation(WireModel):
    column: ColumnName
    noise: Literal["gaussian", "swap", "typo"] = Field(
        description="gaussian: numeric, scale x the column's std; swap: categorical, another observed value; "
        "typo: strings, one random edit."
    )
    scale: float = Field(default=0.05, gt=0, le=100, allow_inf_nan=False)


class Invariance(WireModel):
    column: ColumnName
    swap: list[CellValue] = Field(
        min_length=2,
        max_length=2,
        json_schema_extra={"uniqueItems": True},
        description="Two different values: rows with one get the other.",
    )

    @model_validator(mode="after")
    def _two_values(self) -> Invariance:
        if json_equal(*self.swap):
            raise ValueError("the two `swap` values are equal: give two different values")
        return self


class Directional(WireModel):
    """Change one column by exactly one of ``add``, ``multiply`` and ``set``."""

    model_config = ConfigDict(json_schema_extra=exactly_one_of("add", "multiply", "set"))

    column: ColumnName
    add: FiniteFloat | None = None
    multiply: FiniteFloat | None = None
    set: CellValue | None = None
    expect: Literal["increase", "decrease"]

    @model_validator(mode="after")
    def _one_change(self) -> Directional:
        if given_count(self, "add", "multiply", "set") != 1:
            raise ValueError("give exactly one of `add`, `multiply`, `set`")
        return self


class PairTest(WireModel):
    name: str = Field(min_length=1, max_length=200)
    original_batch_id: ResourceId
    perturbed_batch_id: ResourceId
    expect: Expectation = "same"


class RobustnessRequest(WireModel):
    """Tests that call a model (perturbation, invariance, directional) need its ``endpoint``."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["endpoint"], "properties": {"endpoint": {"not": {"type": "null"}}}},
                {
                    "properties": {
                        name: {"maxItems": 0} for name in ("perturbation", "invariance", "directional")
                    }
                },
            ]
        }
    )

    endpoint: Endpoint | None = None
    sample_size: int = Field(default=500, ge=1, le=100_000)
    seed: Seed = 0
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
