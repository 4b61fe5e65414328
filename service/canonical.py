"""The canonical batch: the one layout every batch is stored in, and the words for it.

Ingest produces it, the store writes and describes it, jobs read it back: this module is what
they share, so that none of them imports another for a column name (data flows one way,
api -> ingest -> store). It lives beside them, not in ``schemas/``, because it is not the wire
contract: it holds Arrow tables and the Arrow metadata of stored files.

A :class:`CanonicalBatch` is an Arrow table plus the batch spec with its classes and positive
class resolved. Column layout (fixed, other modules rely on it):

``sample_id``      string, non-null, unique (generated as "0".."n-1" when absent)
``label``          classification: int64 or string, nullable; regression: float64, nullable
``prediction``     classification: same type as ``label``, non-null; regression: float64, non-null
``score``          binary only, optional: float64 probability of ``positive_class``, non-null, in [0, 1]
``score__<class>`` multiclass only, optional: one float64 column per class, in ``classes`` order,
                   each row summing to 1 within 1e-6
``lower``/``upper`` regression only, optional: float64 prediction-interval bounds
``latency_ms``     optional: float64 inference latency of the row in milliseconds, >= 0, nullable
everything else    feature / slice / metadata columns, kept with their Arrow types
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import get_args

import pyarrow as pa
import pyarrow.compute as pc

from schemas.batches import Column, ColumnRole, DerivedPrediction, Task
from schemas.batches import LabelValue as Label

__all__ = [
    "DEFAULT_THRESHOLD",
    "DERIVED_ROWS_KEY",
    "DERIVED_THRESHOLD_KEY",
    "LABEL",
    "LATENCY",
    "LOWER",
    "PREDICTION",
    "RESERVED_COLUMNS",
    "SAMPLE_ID",
    "SCORE",
    "SCORE_PREFIX",
    "TASKS",
    "UPPER",
    "BatchSpec",
    "CanonicalBatch",
    "Label",
    "LabelMerge",
    "SampleJoin",
    "Task",
    "describe_columns",
    "join_on_sample_id",
    "score_column",
]

TASKS: tuple[Task, ...] = get_args(Task)

SAMPLE_ID = "sample_id"
LABEL = "label"
PREDICTION = "prediction"
SCORE = "score"
SCORE_PREFIX = "score__"
LATENCY = "latency_ms"
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


@dataclass(frozen=True)
class LabelMerge:
    """A batch with late labels applied, how many rows they touched and the ids not found: what
    ingest's merge hands the store's label update to write."""

    batch: CanonicalBatch
    updated: int
    unmatched_sample_ids: list[str]


def score_column(cls: Label) -> str:
    """Name of the multiclass score column for ``cls``."""
    return f"{SCORE_PREFIX}{cls}"


def describe_columns(schema: pa.Schema) -> list[Column]:
    """Each column's name, Arrow type and role, as a Batch shows them (roles follow the layout)."""
    roles: dict[str, ColumnRole] = {
        SAMPLE_ID: "sample_id",
        LABEL: "label",
        PREDICTION: "prediction",
        SCORE: "score",
    }
    out = []
    for fld in schema:
        role: ColumnRole | None = roles.get(fld.name)
        if role is None:
            if fld.name.startswith(SCORE_PREFIX):
                role = "score"
            elif fld.name in (LOWER, UPPER):
                role = "interval"
            elif fld.name == LATENCY:
                role = "latency"
            else:
                role = "feature"
        metadata = fld.metadata or {}
        derived = None
        if role == "prediction" and DERIVED_THRESHOLD_KEY in metadata:
            derived = DerivedPrediction(
                threshold=float(metadata[DERIVED_THRESHOLD_KEY]),
                rows=int(metadata.get(DERIVED_ROWS_KEY, b"0")),
            )
        out.append(Column(name=fld.name, type=str(fld.type), role=role, derived=derived))
    return out


@dataclass(frozen=True)
class SampleJoin:
    """Rows of a ``left`` table matched to the rows of a ``right`` one with the same sample id.

    Sample ids are unique within a batch (ingest refuses duplicates), so each left row has at
    most one partner. ``matched`` marks the left rows that have one; ``right_rows`` are their
    partners' positions, in left order: ``left.filter(matched)`` and ``right.take(right_rows)``
    are the shared rows, aligned.
    """

    #: for each left row, the position of its partner in ``right``; null when it has none
    position: pa.ChunkedArray | pa.Array
    matched: pa.ChunkedArray | pa.Array
    right_rows: pa.ChunkedArray | pa.Array

    @property
    def shared(self) -> int:
        return len(self.right_rows)


def join_on_sample_id(left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array) -> SampleJoin:
    """Match ``left`` sample ids to ``right`` ones: one hash lookup of each left id."""
    value_set = right.combine_chunks() if isinstance(right, pa.ChunkedArray) else right
    position = pc.index_in(left, value_set=value_set)
    return SampleJoin(position=position, matched=pc.is_valid(position), right_rows=position.drop_null())
