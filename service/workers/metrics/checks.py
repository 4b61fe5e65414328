"""Input checks shared by every metrics engine: codes, weights, probabilities and values.

Each raises a plain ``ValueError`` that names the argument and the fix, so that misuse
is caught before any computation and never confused with what the data says.
"""

from __future__ import annotations

import numpy as np


def check_codes(y: np.ndarray, *, n_classes: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class codes, got shape {y.shape}.")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer class codes 0..n_classes-1 (map labels with np.unique), "
            f"got dtype {y.dtype}."
        )
    y = y.astype(np.intp, copy=False)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"{name} holds codes outside 0..{n_classes - 1}: "
            f"min {y.min()}, max {y.max()}; encode labels against class_names."
        )
    return y


def check_weights(sample_weight: np.ndarray | None, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},) like y_true, got {w.shape}.")
    if n and not (np.isfinite(w).all() and w.min() >= 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    return w


def check_scores(scores: np.ndarray, *, n: int, n_classes: int, binary: bool) -> np.ndarray:
    # float64 throughout: sklearn would average float32 losses in float32 (~1e-7 off)
    s = np.asarray(scores, dtype=np.float64)
    expected = (n,) if binary else (n, n_classes)
    if s.shape != expected:
        what = "probability of the positive class" if binary else "one probability per class"
        raise ValueError(f"scores must have shape {expected} ({what}), got {s.shape}.")
    # min/max also catch NaN: a comparison with NaN is False
    if n and not (s.min() >= 0 and s.max() <= 1):
        raise ValueError("scores must be probabilities in [0, 1] without NaN.")
    return s


def check_classification_inputs(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    scores: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and normalise classification inputs (codes as intp, scores as float).

    Raises
    ------
    ValueError
        For wrong shapes, codes outside ``0 .. n_classes - 1``, a ``positive`` that
        is not 0 or 1 of a 2-class task, or scores outside [0, 1].
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}.")
    if positive is not None and (n_classes != 2 or positive not in (0, 1)):
        raise ValueError("positive is the code (0 or 1) of the positive class of a 2-class task.")
    yt = check_codes(y_true, n_classes=n_classes, name="y_true")
    yp = check_codes(y_pred, n_classes=n_classes, name="y_pred")
    if yp.shape != yt.shape:
        raise ValueError(f"y_true and y_pred differ in length: {yt.size} vs {yp.size}.")
    if scores is not None:
        scores = check_scores(scores, n=yt.size, n_classes=n_classes, binary=positive is not None)
    return yt, yp, scores


def check_regression_inputs(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate regression inputs: 1-D, equal length, finite; returned as float64."""
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.ndim != 1 or yp.shape != yt.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {yt.shape} and {yp.shape}.")
    if yt.size and not (np.isfinite(yt).all() and np.isfinite(yp).all()):
        raise ValueError("y_true and y_pred must be finite (no NaN or inf); drop unlabeled rows first.")
    return yt, yp
