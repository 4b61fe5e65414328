"""The one shape every decoded batch takes before it is stored.

A :class:`CanonicalBatch` is an Arrow table plus the batch spec with its
classes and positive class resolved. Column layout (fixed, other modules rely on it):

``sample_id``      string, non-null, unique (generated as "0".."n-1" when absent)
``label``          classification: int64 or string, nullable; regression: float64, nullable
``prediction``     classification: same type as ``label``, non-null; regression: float64, non-null
``score``          binary only, optional: float64 probability of ``positive_class``, non-null, in [0, 1]
``score__<class>`` multiclass only, optional: one float64 column per class, in ``classes`` order,
                   each row summing to 1 within 1e-6
``lower``/``upper`` regression only, optional: float64 prediction-interval bounds
everything else    feature / slice / metadata columns, kept with their Arrow types
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

Task = Literal["binary", "multiclass", "regression"]
Label = int | str
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")

SAMPLE_ID = "sample_id"
LABEL = "label"
PREDICTION = "prediction"
SCORE = "score"
SCORE_PREFIX = "score__"
LOWER = "lower"
UPPER = "upper"
#: binary predictions missing from a batch are ``score >= threshold``, by default this one
DEFAULT_THRESHOLD = 0.5
#: Arrow field metadata of a prediction column derived (in part) from the scores
DERIVED_THRESHOLD_KEY = b"yardstick.threshold"
DERIVED_ROWS_KEY = b"yardstick.derived_rows"
RESERVED_COLUMNS = frozenset({SAMPLE_ID, LABEL, PREDICTION, SCORE, LOWER, UPPER, "scores", "features"})


@dataclass(frozen=True)
class BatchSpec:
    """What the client said about the batch (query parameters or the JSON envelope)."""

    model_name: str
    model_version: str
    task: Task
    positive_class: Label | None = None
    classes: list[Label] | None = None


@dataclass(frozen=True)
class CanonicalBatch:
    """A validated batch: ``spec`` has ``classes`` (and, for binary, ``positive_class``) resolved."""

    spec: BatchSpec
    table: pa.Table
    feature_columns: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        rows: int = self.table.num_rows
        return rows

    @property
    def labeled_rows(self) -> int:
        return (
            self.table.num_rows - self.table.column(LABEL).null_count
            if LABEL in self.table.column_names
            else 0
        )


def score_column(cls: Label) -> str:
    """Name of the multiclass score column for ``cls``."""
    return f"{SCORE_PREFIX}{cls}"
