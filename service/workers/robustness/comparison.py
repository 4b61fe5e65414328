"""Row-by-row comparison of two answer sets: shared by the perturbation and expectation reports.

Tolerances allow a rounding slack of a few ulps of the values compared, so that 0.50 -> 0.51
with tolerance 0.01 is not beyond the tolerance although ``0.51 - 0.50 > 0.01`` in floats.
Labels are compared by their class identity (:func:`~service.workers.robustness.answers.label_key`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from schemas.robustness import ExampleRow
from service.workers.robustness.answers import Answers, label_key

ArrayLike: TypeAlias = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[Any]

# Rounding slack of tolerance comparisons, in multiples of the float64 epsilon.
_ULPS = 8.0


def as_list(values: ArrayLike | None, n: int, name: str) -> list[Any]:
    if values is None:
        return [None] * n
    out: list[Any]
    if isinstance(values, pa.ChunkedArray | pa.Array):
        out = values.to_pylist()
    elif isinstance(values, np.ndarray):
        out = values.tolist()
    else:
        out = list(values)
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} rows; the answers have {n}.")
    return out


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def check_pair(original: Answers, changed: Answers) -> int:
    if len(original) != len(changed):
        raise ValueError(f"the two answer sets differ in length: {len(original)} vs {len(changed)}.")
    return len(original)


def check_mask(mask: np.ndarray | None, n: int) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"mask must be a boolean array of shape ({n},), got {m.dtype} {m.shape}.")
    return m


def labels_changed(original: Answers, changed: Answers) -> np.ndarray:
    a = [label_key(v) for v in original.predictions.tolist()]
    b = [label_key(v) for v in changed.predictions.tolist()]
    return np.array([x != y for x, y in zip(a, b, strict=True)], dtype=bool)


def regression_values(answers: Answers) -> np.ndarray:
    values = np.asarray(answers.predictions, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("regression predictions must be finite numbers.")
    return values


def beyond_tolerance(d: np.ndarray, tolerance: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|d| > tolerance, allowing the rounding of the inputs (a few ulps of the values compared)."""
    slack = _ULPS * np.finfo(np.float64).eps * np.maximum(np.maximum(np.abs(a), np.abs(b)), tolerance)
    return np.asarray(np.abs(d) > tolerance + slack, dtype=bool)


def probabilities_moved(original: Answers, changed: Answers, tolerance: float) -> np.ndarray:
    """Per row: did any class probability move by more than ``tolerance``? All True without
    probability vectors on both sides (a change of class cannot be judged then)."""
    p, q = original.probabilities, changed.probabilities
    n = len(original)
    if p is None or q is None or p.shape != q.shape:
        return np.ones(n, dtype=bool)
    return np.asarray(beyond_tolerance(q - p, tolerance, p, q).any(axis=1), dtype=bool)


def check_tolerance(tolerance: float) -> float:
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite non-negative number, got {tolerance!r}.")
    return float(tolerance)


def example_row(
    i: int,
    *,
    sample_ids: list[Any],
    before: list[Any],
    after: list[Any],
    original: Answers,
    changed: Answers,
) -> ExampleRow:
    return ExampleRow(
        sample_id=str(sample_ids[i]),
        original=python_value(before[i]),
        changed=python_value(after[i]),
        original_prediction=python_value(original.predictions[i]),
        changed_prediction=python_value(changed.predictions[i]),
        original_score=None if original.scores is None else float(original.scores[i]),
        changed_score=None if changed.scores is None else float(changed.scores[i]),
    )
