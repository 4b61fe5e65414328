"""ROC and precision-recall curves against scikit-learn's on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from schemas.results import Curves
from service.workers.metrics.curves import MAX_POINTS, binary_curves, spread_along_length


def scored(n: int, *, seed: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(1.2 * (2 * y - 1) + rng.normal(0, 1.5, n))))
    return y, (s.round(decimals) if decimals is not None else s)


CASES = {
    "distinct-100k": scored(100_000, seed=0),
    "ties-100k": scored(100_000, seed=1, decimals=2),
    "small": scored(50, seed=2),
    "few-scores": (np.array([0, 1, 1, 0, 1, 0]), np.array([0.3, 0.3, 0.9, 0.1, 0.9, 0.9])),
}


def curves_of(y: np.ndarray, s: np.ndarray) -> Curves:
    curves = binary_curves(y, s, positive=1)
    assert curves is not None
    return curves


@pytest.mark.parametrize("case", CASES)
def test_roc_points_are_sklearn_points(case: str) -> None:
    y, s = CASES[case]
    roc = curves_of(y, s).roc
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    sk = {(float(f), float(t)): float(th) for f, t, th in zip(fpr, tpr, thresholds, strict=True)}
    assert len(roc.fpr) <= MAX_POINTS
    for f, t, th in zip(roc.fpr, roc.tpr, roc.threshold, strict=True):
        assert (f, t) in sk
        assert (np.inf if th is None else th) == sk[(f, t)]
    assert (roc.fpr[0], roc.tpr[0], roc.fpr[-1], roc.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(roc.fpr) >= 0) and np.all(np.diff(roc.tpr) >= 0)


@pytest.mark.parametrize("case", CASES)
def test_pr_points_are_sklearn_points(case: str) -> None:
    y, s = CASES[case]
    pr = curves_of(y, s).precision_recall
    precision, recall, thresholds = precision_recall_curve(y, s, drop_intermediate=False)
    sk = {(float(r), float(p)): th for r, p, th in zip(recall, precision, [*thresholds, None], strict=True)}
    assert len(pr.recall) <= MAX_POINTS
    for r, p, th in zip(pr.recall, pr.precision, pr.threshold, strict=True):
        assert (r, p) in sk
        assert th == sk[(r, p)]
    # both of scikit-learn's ends: every row predicted positive, and none
    assert (pr.recall[0], pr.precision[0]) == (float(recall[0]), float(precision[0]))
    assert (pr.recall[-1], pr.precision[-1], pr.threshold[-1]) == (0.0, 1.0, None)
    assert np.all(np.diff(pr.recall) <= 0)


@pytest.mark.parametrize("case", ["distinct-100k", "ties-100k"])
def test_reduced_roc_keeps_the_area(case: str) -> None:
    y, s = CASES[case]
    roc = curves_of(y, s).roc
    assert np.trapezoid(roc.tpr, roc.fpr) == pytest.approx(roc_auc_score(y, s), abs=1e-3)


def test_short_curves_keep_every_corner() -> None:
    y, s = CASES["few-scores"]
    roc = curves_of(y, s).roc
    fpr, tpr, _ = roc_curve(y, s)  # drop_intermediate=True: the corners
    assert roc.fpr == fpr.tolist() and roc.tpr == tpr.tolist()


def test_one_class_has_no_curve() -> None:
    assert binary_curves(np.ones(10, dtype=int), np.linspace(0, 1, 10), positive=1) is None
    assert binary_curves(np.zeros(10, dtype=int), np.linspace(0, 1, 10), positive=1) is None


def test_positive_code_zero() -> None:
    """Codes 0/1 with class 0 positive are the same curves as the flipped labels with class 1."""
    y, s = CASES["small"]
    assert binary_curves(1 - y, s, positive=0) == curves_of(y, s)


def test_spread_keeps_ends_and_bounds() -> None:
    x = np.linspace(0, 1, 10_000)
    y = np.sqrt(x)
    kept = spread_along_length(x, y, 50)
    assert kept[0] == 0 and kept[-1] == x.size - 1
    assert kept.size <= 50 and np.all(np.diff(kept) > 0)
    with pytest.raises(ValueError, match="max_points"):
        binary_curves(np.array([0, 1]), np.array([0.2, 0.8]), positive=1, max_points=1)
