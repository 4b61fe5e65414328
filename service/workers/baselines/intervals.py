"""Intervals of ``model - baseline`` for the comparison engine: from bootstrap replicates, or
DeLong's / the delta method's normal interval from the prepared sides' influence terms (their
sums cached on the prepared model, which every baseline of a panel reuses)."""

from __future__ import annotations

import math

import numpy as np

from service.workers.baselines.sides import PreparedSide
from service.workers.metrics import METRICS
from service.workers.significance import (
    DifferenceInterval,
    bootstrap_difference,
    class_constant_paired_se,
    delta_method_difference,
    normal_difference,
    paired_influence_se,
)


def difference_interval(
    name: str,
    m: PreparedSide,
    b: PreparedSide,
    replicates: dict[str, np.ndarray],
    *,
    paired: bool,
    confidence: float,
) -> tuple[DifferenceInterval | None, str]:
    if name in replicates:
        return bootstrap_difference(replicates[name], confidence=confidence), "bootstrap"
    info = METRICS[name]
    if info.kind != "smooth":
        return None, "bootstrap"
    test = info.interval  # DeLong for ROC AUC, the delta method for the other smooth metrics
    difference = m.values[name] - b.values[name]
    if paired and b.class_gradients is not None:
        gm, per_class = m.gradients.get(name), b.class_gradients.get(name)
        if gm is None or per_class is None:
            return None, test
        return normal_difference(
            difference, _class_constant_se(m, name, per_class), confidence=confidence
        ), test
    gm, gb = m.gradients.get(name), b.gradients.get(name)
    if gm is None or gb is None:
        return None, test
    if paired:
        return normal_difference(difference, _paired_se(m, b, name), confidence=confidence), test
    return delta_method_difference(difference, [gm, gb], confidence=confidence), test


def _class_constant_se(m: PreparedSide, name: str, per_class: np.ndarray) -> float:
    """Paired standard error of the model's gradient minus a per-class constant one, from
    the model's gradient sums per class (cached on ``m``: every such baseline reuses them)."""
    cache: dict[str, np.ndarray] = m.__dict__.setdefault("_class_sums", {})
    total, squares = _gradient_sums(m, name)
    if name not in cache:
        assert m.n_classes is not None
        g = m.gradients[name]
        assert g is not None
        sums: np.ndarray
        if m.positive is not None and m.n_classes == 2:
            on_positive = float(np.dot(g, _positive_weights(m)))
            sums = np.empty(2)
            sums[m.positive], sums[1 - m.positive] = on_positive, total - on_positive
        else:
            sums = np.bincount(m.side.y_true, weights=g, minlength=m.n_classes)
        cache[name] = sums
    sums = cache[name]
    assert m.confusion is not None
    return class_constant_paired_se(total, squares, sums, m.confusion.sum(axis=1), per_class)


def _paired_se(m: PreparedSide, b: PreparedSide, name: str) -> float:
    """:func:`paired_influence_se` of the two sides' gradients of ``name`` from dot products
    (each side's sums cached, one cross product): no pass forming the n row differences.

    ``sum (gm - gb)^2 = gm.gm + gb.gb - 2 gm.gb`` loses digits when the sides' gradients
    nearly coincide; then the differences are formed row by row as before."""
    gm, gb = m.gradients[name], b.gradients[name]
    assert gm is not None and gb is not None
    if gm.shape != gb.shape or not gm.size:
        return paired_influence_se(gm, gb)
    total_m, squares_m = _gradient_sums(m, name)
    total_b, squares_b = _gradient_sums(b, name)
    squares = squares_m + squares_b - 2.0 * float(np.dot(gm, gb))
    if not squares > 1e-6 * (squares_m + squares_b):
        return paired_influence_se(gm, gb)
    total = total_m - total_b
    return math.sqrt(max(0.0, squares - total * total / gm.size))


def _gradient_sums(m: PreparedSide, name: str) -> tuple[float, float]:
    """Sum and sum of squares of the model's gradient of ``name``, computed once."""
    cache: dict[str, tuple[float, float]] = m.__dict__.setdefault("_gradient_sums", {})
    if name not in cache:
        g = m.gradients[name]
        assert g is not None
        cache[name] = (float(g.sum()), float(np.dot(g, g)))
    return cache[name]


def _positive_weights(m: PreparedSide) -> np.ndarray:
    """``y_true == positive`` of a prepared binary side as 0/1 floats (a BLAS dot), computed once."""
    if "_positive_weights" not in m.__dict__:
        m.__dict__["_positive_weights"] = (m.side.y_true == m.positive).astype(np.float64)
    weights: np.ndarray = m.__dict__["_positive_weights"]
    return weights


def shifted_interval(
    name: str, m: PreparedSide, constant: float, replicates: dict[str, np.ndarray], *, confidence: float
) -> tuple[DifferenceInterval | None, str]:
    """Interval of the model's metric minus a constant baseline value."""
    test = "bootstrap"
    smooth = METRICS[name].kind == "smooth"
    if smooth and name not in replicates:
        test = METRICS[name].interval
    if np.isnan(constant) or np.isnan(m.values[name]):
        return None, test
    if name in replicates:
        return bootstrap_difference(replicates[name] - constant, confidence=confidence), test
    if not smooth:
        return None, test
    gm = m.gradients.get(name)
    if gm is None:
        return None, test
    # influence_se(gm) from the sums cached on the model (every closed-form baseline asks)
    total, squares = _gradient_sums(m, name)
    se = math.sqrt(max(0.0, squares - total * total / gm.size)) if gm.size else 0.0
    return normal_difference(m.values[name] - constant, se, confidence=confidence), test
