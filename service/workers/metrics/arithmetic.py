"""Ratios and means without floating-point warnings: NaN marks an undefined value (0/0),
which the reports turn into ``None`` with a reason."""

from __future__ import annotations

import numpy as np


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0, without floating-point warnings."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out: np.ndarray = np.divide(num, den, out=np.full(num.shape, np.nan), where=den != 0)
    return out


def weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    if weights is None:
        return float(np.mean(values)) if values.size else np.nan
    total = float(weights.sum())
    return float(np.dot(values, weights)) / total if total > 0 else np.nan
