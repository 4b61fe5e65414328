"""The confidence section of one evaluation: how far to trust a prediction.

Classification: how accuracy follows the confidence the scores give each prediction (bins, the
risk-coverage curve, the lowest threshold reaching a target accuracy), from the pure confidence
worker. Regression: the coverage and width of the batch's own
prediction intervals (``lower``/``upper``) on its labeled rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from schemas.calibration import ConfidenceRequest, ConfidenceResult
from service.canonical import LABEL, LOWER, UPPER
from service.jobs.decoding import labeled
from service.workers import confidence as confidence_worker


def run_confidence(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    scores: np.ndarray | None,
    spec: ConfidenceRequest,
) -> ConfidenceResult:
    assert scores is not None
    return confidence_worker.confidence_report(
        y_true, y_pred, scores, bins=spec.bins, target_accuracy=spec.target_accuracy, level=spec.level
    )


def regression_confidence(table: pa.Table, spec: ConfidenceRequest) -> ConfidenceResult:
    """Empirical coverage and width of the batch's prediction intervals, on labeled rows."""
    rows = labeled(table)
    coverage = confidence_worker.interval_coverage(
        rows.column(LABEL).to_numpy().astype(np.float64),
        rows.column(LOWER).to_numpy().astype(np.float64),
        rows.column(UPPER).to_numpy().astype(np.float64),
    )
    return ConfidenceResult(level=spec.level, prediction_intervals=coverage)
