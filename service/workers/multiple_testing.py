"""Multiple-testing adjustment shared by the slice report, the slice finder and the flagging of slices."""

from __future__ import annotations

import numpy as np
from scipy import stats


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN entries are not tests and stay NaN.

    Rejecting ``q <= alpha`` controls the false discovery rate at ``alpha``:
    ``q_(i) = min_{j >= i} min(1, m p_(j) / j)`` over the ``m`` defined p-values, computed by
    :func:`scipy.stats.false_discovery_control` (``method="bh"``).

    >>> benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5, np.nan])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5, nan]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}.")
    out = np.full(p.shape, np.nan)
    defined = ~np.isnan(p)
    if not defined.any():
        return out
    values = p[defined]
    if values.min() < 0 or values.max() > 1:
        raise ValueError("p_values must lie in [0, 1].")
    out[defined] = stats.false_discovery_control(values, method="bh")
    return out
