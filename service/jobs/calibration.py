"""The calibration section of one evaluation: can the scores be read as probabilities?

The labels and scores the job decoded go to the pure calibration worker; a ``miscalibrated``
finding comes back when the expected calibration error exceeds the request's tolerance.
"""

from __future__ import annotations

import numpy as np

from schemas.calibration import CalibrationResult
from schemas.evaluations import EvaluationCreate
from schemas.results import Finding
from service.store.records import BatchRecord
from service.workers import calibration as calibration_worker


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
