"""A stored batch's Arrow table as the arrays the workers take, for every job.

Labels and predictions become class codes in the batch's ``classes`` order (``-1`` for a missing
label where one may be missing), regression values become float64 (NaN for a missing label),
scores become a vector (binary: the positive class) or an ``(n, K)`` matrix (multiclass). The
evaluation, the baselines, robustness and slices all decode here, so another batch's rows
are decoded exactly like the model's. Rows of two batches are matched by sample id with
:func:`service.canonical.join_on_sample_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.batches import ColumnRole
from service.canonical import LABEL, PREDICTION, SCORE, score_column
from service.errors import InvalidInput
from service.store.records import BatchRecord

#: the columns the metrics read: labels, predictions, scores and intervals (not ids or features)
METRIC_ROLES: tuple[ColumnRole, ...] = ("label", "prediction", "score", "interval")


@dataclass(frozen=True)
class EvaluationData:
    """The labeled rows of a batch as arrays the workers take."""

    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None
    rows: int


@dataclass(frozen=True)
class BatchCodes:
    """Every row of a batch in another batch's class order, with which rows are labeled."""

    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None
    labeled: np.ndarray


def metric_columns(batch: BatchRecord) -> list[str]:
    """The columns :func:`evaluation_data` decodes."""
    return batch.column_names(*METRIC_ROLES)


def labeled(table: pa.Table) -> pa.Table:
    """The rows with a label (the table itself when every row has one: no filtered copy)."""
    if table.column(LABEL).null_count == 0:
        return table
    return table.filter(pc.is_valid(table.column(LABEL)))


def evaluation_data(table: pa.Table, batch: BatchRecord, *, threshold: float | None = None) -> EvaluationData:
    """Drop unlabeled rows and turn classification labels into codes in ``classes`` order.

    ``threshold`` (binary with scores): every prediction is ``score >= threshold`` instead of
    the stored one.
    """
    rows = labeled(table)
    if batch.task == "regression":
        return EvaluationData(
            y_true=rows.column(LABEL).to_numpy().astype(np.float64, copy=False),
            y_pred=rows.column(PREDICTION).to_numpy().astype(np.float64, copy=False),
            scores=None,
            rows=table.num_rows,
        )
    classes = pa.array(batch.classes)
    scores = score_matrix(rows, batch)
    if threshold is not None and scores is not None and (positive := batch.positive_code) is not None:
        y_pred = np.where(scores >= threshold, positive, 1 - positive).astype(np.intp)
    else:
        y_pred = class_codes(rows.column(PREDICTION), classes)
    return EvaluationData(
        y_true=class_codes(rows.column(LABEL), classes),
        y_pred=y_pred,
        scores=scores,
        rows=table.num_rows,
    )


def score_matrix(table: pa.Table, batch: BatchRecord) -> np.ndarray | None:
    """Binary: the positive-class probabilities; multiclass: (n, K) in ``classes`` order; else None."""
    if batch.task == "binary" and SCORE in table.column_names:
        probabilities: np.ndarray = table.column(SCORE).to_numpy().astype(np.float64, copy=False)
        return probabilities
    if batch.task == "multiclass":
        names = [score_column(c) for c in batch.classes or []]
        if names and all(n in table.column_names for n in names):
            return np.column_stack([table.column(n).to_numpy() for n in names]).astype(np.float64)
    return None


def class_codes(column: pa.ChunkedArray, classes: pa.Array, *, allow_null: bool = False) -> np.ndarray:
    """Class codes in ``classes`` order; with ``allow_null``, missing values become -1."""
    codes = pc.index_in(column, value_set=classes.cast(column.type))
    missing = codes.null_count - (column.null_count if allow_null else 0)
    if missing:
        # Ingest guarantees every value is a class; this guards against a corrupted file.
        raise InvalidInput("the stored batch has a label or prediction outside its classes")
    out: np.ndarray = pc.fill_null(codes, -1).to_numpy().astype(np.intp, copy=False)
    return out


def label_values(column: pa.ChunkedArray, batch: BatchRecord) -> np.ndarray:
    """Labels of every row: class codes in ``batch``'s order (-1 unlabeled) or regression
    values (NaN unlabeled)."""
    if batch.task == "regression":
        values: np.ndarray = column.to_numpy(zero_copy_only=False).astype(np.float64)
        return values
    return class_codes(column, pa.array(batch.classes), allow_null=True)


def predictions(table: pa.Table, batch: BatchRecord) -> tuple[np.ndarray, np.ndarray | None]:
    """Every row's predictions (and scores) in ``batch``'s class order: another batch's rows
    decoded like the model's."""
    if batch.task == "regression":
        return table.column(PREDICTION).to_numpy().astype(np.float64), None
    column = table.column(PREDICTION)
    codes = range_codes(column, batch.classes or [])
    if codes is None:
        codes = class_codes(column, pa.array(batch.classes))
    return codes, score_matrix(table, batch)


def batch_codes(table: pa.Table, batch: BatchRecord) -> BatchCodes:
    """Another batch's labels, predictions and scores in ``batch``'s class order, every row."""
    labels = table.column(LABEL)
    y_pred, scores = predictions(table, batch)
    return BatchCodes(
        y_true=label_values(labels, batch),
        y_pred=y_pred,
        scores=scores,
        labeled=pc.is_valid(labels).to_numpy(zero_copy_only=False),
    )


def range_codes(column: pa.ChunkedArray, classes: Sequence[object]) -> np.ndarray | None:
    """Integer predictions of classes ``0 .. K-1`` (in that order) are their own codes: no hash
    lookup of every row. None when that shortcut does not apply (the caller looks them up)."""
    k = len(classes)
    if (
        not k
        or not pa.types.is_integer(column.type)
        or column.null_count
        or len(column) == 0
        or any(type(c) is not int or c != i for i, c in enumerate(classes))
    ):
        return None
    values = column.to_numpy()
    if values.min() < 0 or values.max() >= k:
        return None  # the lookup raises the usual error
    codes: np.ndarray = values.astype(np.intp, copy=False)
    return codes
