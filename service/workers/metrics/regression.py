"""The regression metrics (MAE, RMSE, R^2, MAPE, median and max absolute error) of one batch
under any row weighting, from per-row errors computed once."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from service.workers.metrics.arithmetic import weighted_mean
from service.workers.metrics.registry import METRICS
from service.workers.sorting import sort_floats


class RegressionStatistics:
    """Per-row errors for the regression metrics, evaluated under any row weighting.

    With ``presort`` (the bootstrap) and ``median_ae`` wanted, rows are stored by
    increasing absolute error so that each weighted median is one cumulative sum
    (``row_order`` then says how to permute weights, as in :class:`ScoreStatistics`).
    Without it a single evaluation takes ``np.median`` (a partition, no sort).

    Notes
    -----
    With weights ``w`` (1 when absent), ``e = y_hat - y`` and ``W = sum w``::

        mae = sum w|e| / W            rmse = sqrt(sum w e^2 / W)
        mape = sum w |e| / max(|y|, eps) / W
        r2 = 1 - sum w e^2 / sum w (y - ybar_w)^2      (undefined if y is constant)
        median_ae: sklearn ``_weighted_percentile(average=True)`` (= np.median for unit weights)
        max_error = max |e| over rows with w > 0
    """

    def __init__(
        self, y_true: np.ndarray, y_pred: np.ndarray, *, names: Iterable[str], presort: bool = True
    ) -> None:
        self.names = [n for n in names if METRICS[n].source == "values"]
        y = np.asarray(y_true, dtype=np.float64)
        abs_err = np.abs(np.asarray(y_pred, dtype=np.float64) - y)
        self.row_order: np.ndarray | None = None
        if presort and "median_ae" in self.names:
            # ties in |e| have equal values, so their order does not change the medians
            self.row_order, abs_err = sort_floats(abs_err)
            y = y[self.row_order]
        self.n_rows = int(y.size)
        self._y = y
        self._abs = abs_err
        self._sq = abs_err * abs_err
        eps = np.finfo(np.float64).eps
        self._ape = abs_err / np.maximum(np.abs(y), eps) if "mape" in self.names else None

    @property
    def n_zero_targets(self) -> int:
        return int(np.count_nonzero(self._y == 0))

    def _median(self, weights: np.ndarray | None) -> float:
        a = self._abs
        if weights is None:
            if self.row_order is None:
                return float(np.median(a))
            m = a.size // 2
            return float(a[m]) if a.size % 2 else float((a[m - 1] + a[m]) / 2)
        if self.row_order is None:
            order, a = sort_floats(a)
            weights = weights[order]
        # sklearn _weighted_percentile(average=True) on rows sorted by |e|: take the
        # first row whose cumulative weight reaches W/2; average it with the next
        # row of positive weight when the CDF hits W/2 exactly.
        cdf = np.cumsum(weights, dtype=np.float64)
        target = 0.5 * cdf[-1]
        i = min(int(np.searchsorted(cdf, target, side="left")), a.size - 1)
        if cdf[i] - target > np.finfo(np.float64).eps:
            return float(a[i])
        j = int(np.searchsorted(cdf, cdf[i], side="right"))
        j = i if j > a.size - 1 else j
        return float((a[i] + a[j]) / 2)

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """The prepared metrics under ``weights`` (in ``row_order``); NaN = undefined."""
        if self.n_rows == 0 or (weights is not None and not weights.sum() > 0):
            return dict.fromkeys(self.names, np.nan)
        out: dict[str, float] = {}
        positive_rows = None if weights is None else weights > 0
        for name in self.names:
            if name == "mae":
                out[name] = weighted_mean(self._abs, weights)
            elif name == "rmse":
                out[name] = float(np.sqrt(weighted_mean(self._sq, weights)))
            elif name == "mape":
                assert self._ape is not None
                out[name] = weighted_mean(self._ape, weights)
            elif name == "median_ae":
                out[name] = self._median(weights)
            elif name == "max_error":
                # sklearn's max_error takes no weights: rows of weight 0 count as absent
                kept = True if positive_rows is None else positive_rows
                out[name] = float(self._abs.max(where=kept, initial=0.0))
            elif name == "r2":
                out[name] = self._r2(weights, positive_rows)
        return out

    def _r2(self, weights: np.ndarray | None, positive_rows: np.ndarray | None) -> float:
        y = self._y
        if positive_rows is None:
            if y.min() == y.max():
                return np.nan
            num = float(np.sum(self._sq))
            den = float(np.sum((y - np.mean(y)) ** 2))
        else:
            assert weights is not None
            if y.min(where=positive_rows, initial=np.inf) == y.max(where=positive_rows, initial=-np.inf):
                return np.nan
            ybar = float(np.dot(weights, y)) / float(weights.sum())
            num = float(np.dot(weights, self._sq))
            den = float(np.dot(weights, (y - ybar) ** 2))
        return 1 - num / den if den > 0 else np.nan
