"""The calibration and confidence sections of one evaluation (arrays in, result models out)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.calibration import CalibrationResult, ConfidenceRequest, ConfidenceResult
from schemas.evaluations import EvaluationCreate
from schemas.results import Finding
from service.ingest.canonical import LABEL, LOWER, UPPER
from service.store.records import BatchRecord
from service.workers import calibration as calibration_worker
from service.workers import confidence as confidence_worker


def run_calibration(
    y_true: np.ndarray, scores: np.ndarray, batch: BatchRecord, request: EvaluationCreate
) -> tuple[CalibrationResult, list[Finding]]:
    spec = request.calibration
    assert spec is not None
    classes = batch.classes or []
    boot = request.bootstrap
    result = calibration_worker.calibration_report(
        y_true,
        scores,
        n_classes=len(classes),
        positive=batch.positive_code,
        class_names=[str(c) for c in classes],
        bins=spec.bins,
        strategy=spec.strategy,
        recalibrate=tuple(spec.recalibrate),
        folds=spec.folds,
        seed=spec.seed,
        bootstrap_samples=boot.samples if boot else None,
        confidence=boot.confidence if boot else 0.95,
    )
    findings = []
    if result.ece > spec.ece_tolerance:
        findings.append(
            Finding(
                kind="miscalibrated",
                severity="warning",
                impact=float(result.ece),
                message=f"Expected calibration error {result.ece:.4f} exceeds "
                f"the tolerance {spec.ece_tolerance:g}: "
                "the scores should not be read as probabilities without recalibration.",
                details={
                    "ece": result.ece,
                    "tolerance": spec.ece_tolerance,
                    "ece_interval": result.ece_interval.model_dump() if result.ece_interval else None,
                    "mce": result.mce,
                    "slope": result.slope,
                    "intercept": result.intercept,
                },
            )
        )
    return result, findings


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
    labeled = table.filter(pc.is_valid(table.column(LABEL)))
    coverage = confidence_worker.interval_coverage(
        labeled.column(LABEL).to_numpy().astype(np.float64),
        labeled.column(LOWER).to_numpy().astype(np.float64),
        labeled.column(UPPER).to_numpy().astype(np.float64),
    )
    return ConfidenceResult(level=spec.level, prediction_intervals=coverage)
