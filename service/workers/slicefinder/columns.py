"""The slice finder's inputs: per-row errors and coded slice columns, validated once.

Columns come coded (numeric ones binned) by :func:`service.workers.slices.codes.slice_codes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# A slice column as callers pass it: name, integer codes (one per row), the label of each code.
ColumnInput = tuple[str, np.ndarray, Sequence[Any]]


@dataclass(frozen=True)
class SliceColumns:
    """Validated slice columns: ``codes[j]`` are ``intp`` in ``[0, cards[j])``, one per row."""

    names: tuple[str, ...]
    codes: tuple[np.ndarray, ...]
    labels: tuple[tuple[Any, ...], ...]

    @property
    def cards(self) -> tuple[int, ...]:
        return tuple(len(labels) for labels in self.labels)

    def label(self, column: int, code: int) -> Any:
        return self.labels[column][code]


def _plain(value: Any) -> Any:
    """numpy scalars to Python ones, so conditions serialise as JSON."""
    return value.item() if isinstance(value, np.generic) else value


def check_errors(errors: np.ndarray) -> np.ndarray:
    """Per-row errors as float64: 1-D, finite, non-negative (0/1 errors or losses)."""
    e = np.asarray(errors)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"errors must be a non-empty 1-D array, got shape {e.shape}.")
    if not (np.issubdtype(e.dtype, np.number) or e.dtype == np.bool_):
        raise ValueError(f"errors must be numeric, got dtype {e.dtype}.")
    e = e.astype(np.float64, copy=False)
    if not np.isfinite(e).all():
        raise ValueError("errors has NaN or infinite values.")
    if e.min() < 0:
        raise ValueError("errors has negative values; pass 0/1 errors or non-negative losses.")
    return e


def check_columns(columns: Sequence[ColumnInput], *, n: int) -> SliceColumns:
    """Validate ``(name, codes, labels)`` triples against ``n`` rows."""
    if len(columns) == 0:
        raise ValueError("need at least one slice column.")
    names: list[str] = []
    codes: list[np.ndarray] = []
    labels: list[tuple[Any, ...]] = []
    for item in columns:
        if len(item) != 3:
            raise ValueError("each slice column is a (name, codes, labels) triple.")
        name, raw, column_labels = item
        if name in names:
            raise ValueError(f"slice column {name!r} is given twice.")
        c = np.asarray(raw)
        if c.ndim != 1 or c.size != n:
            raise ValueError(f"slice column {name!r} has shape {c.shape}; expected ({n},), one code per row.")
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"slice column {name!r} codes must be integers, got dtype {c.dtype}.")
        if len(column_labels) == 0:
            raise ValueError(f"slice column {name!r} has no labels.")
        if c.min() < 0 or c.max() >= len(column_labels):
            raise ValueError(
                f"slice column {name!r} has codes outside [0, {len(column_labels)}): "
                "every code must index its labels."
            )
        names.append(name)
        codes.append(c.astype(np.intp, copy=False))
        labels.append(tuple(_plain(v) for v in column_labels))
    return SliceColumns(tuple(names), tuple(codes), tuple(labels))
