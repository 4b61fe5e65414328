"""Calibration worker: against scikit-learn and independent numpy references, on known-calibration data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss

from schemas.calibration import CalibrationResult, ReliabilityDiagram
from service.workers.calibration import apply_recalibration, calibration_report
from service.workers.calibration.binning import BinnedStatistics, assign_bins, bin_edges
from service.workers.calibration.recalibration import (
    EPS,
    PlattMap,
    TemperatureMap,
    fold_ids,
    logit,
    overlapping,
)
from service.workers.calibration.report import _has_finite_fit

# --------------------------------------------------------------------------- data and references


def _binary(seed: int, n: int = 2000, *, sharpen: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true p; the model reports sigmoid(sharpen * logit(p)) (1 = calibrated)."""
    rng = np.random.default_rng(seed)
    p_true = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < p_true).astype(np.int64)
    return y, expit(sharpen * np.log(p_true / (1 - p_true)))


def _multiclass(
    seed: int, n: int = 3000, k: int = 4, *, sharpen: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z); the model reports softmax(sharpen * z) (> 1 = overconfident)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.2, (n, k))
    p_true = np.exp(log_softmax(z, axis=1))
    y = (p_true.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    return y, np.exp(log_softmax(sharpen * z, axis=1))


def _report(y: np.ndarray, s: np.ndarray, **kwargs: Any) -> CalibrationResult:
    k = 2 if s.ndim == 1 else s.shape[1]
    names = [f"c{i}" for i in range(k)]
    positive = 1 if s.ndim == 1 else None
    return calibration_report(y, s, n_classes=k, positive=positive, class_names=names, **kwargs)


def _reference_bins(p: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
    """Row masks per bin, written out: (low, high], the first bin also holds its low edge."""
    masks = []
    for b in range(edges.size - 1):
        above_low = p >= edges[b] if b == 0 else p > edges[b]
        below_high = np.ones(p.size, bool) if b == edges.size - 2 else p <= edges[b + 1]
        masks.append(above_low & below_high)
    return masks


def _reference_ece(p: np.ndarray, hit: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """ECE and MCE by a loop over bins (torchmetrics-style reference)."""
    ece, mce = 0.0, 0.0
    for mask in _reference_bins(p, edges):
        if mask.any():
            gap = abs(hit[mask].mean() - p[mask].mean())
            ece += mask.mean() * gap
            mce = max(mce, gap)
    return ece, mce


def _quantile_edges(p: np.ndarray, bins: int) -> np.ndarray:
    return np.percentile(p, np.linspace(0, 1, bins + 1) * 100)  # sklearn calibration_curve


def _diagram_arrays(d: ReliabilityDiagram) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    full = [b for b in d.bins if b.count]
    return (
        np.array([b.observed for b in full]),
        np.array([b.mean_predicted for b in full]),
        np.array([b.count for b in d.bins]),
    )


# --------------------------------------------------------------------------- binning


@pytest.mark.parametrize("bins", [1, 2, 3, 7, 10, 40, 100])
def test_fast_bin_assignment_equals_searchsorted_on_edges(bins: int) -> None:
    rng = np.random.default_rng(bins)
    uniform = bin_edges(np.empty(0), bins=bins, strategy="uniform")
    near = np.concatenate([uniform, np.nextafter(uniform, 2), np.nextafter(uniform, -1)])
    values = np.clip(np.concatenate([rng.random(5000), near, np.round(rng.random(500), 2)]), 0, 1)
    assert np.array_equal(assign_bins(values, uniform, uniform=True), np.searchsorted(uniform[1:-1], values))
    quantile = bin_edges(values, bins=bins, strategy="quantile")
    assert np.array_equal(
        assign_bins(values, quantile, uniform=False), np.searchsorted(quantile[1:-1], values)
    )


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_binary_diagram_equals_sklearn_calibration_curve(strategy: str, seed: int) -> None:
    y, s = _binary(seed, n=1500 + 250 * seed, sharpen=0.5 + seed)
    if seed % 2:
        s = np.round(s, 2)  # many rows exactly on uniform edges and tied quantiles
    for bins in (5, 10, 23):
        r = _report(y, s, bins=bins, strategy=strategy)
        assert r.reliability is not None and len(r.reliability.bins) == bins
        observed, predicted, counts = _diagram_arrays(r.reliability)
        prob_true, prob_pred = calibration_curve(y, s, n_bins=bins, strategy=strategy)
        np.testing.assert_allclose(observed, prob_true, rtol=0, atol=1e-12)
        np.testing.assert_allclose(predicted, prob_pred, rtol=0, atol=1e-12)
        assert counts.sum() == y.size
        edges = np.array([b.low for b in r.reliability.bins] + [r.reliability.bins[-1].high])
        expected = np.linspace(0, 1, bins + 1) if strategy == "uniform" else _quantile_edges(s, bins)
        np.testing.assert_array_equal(edges, expected)


def test_positive_class_code_zero_is_the_same_report() -> None:
    y, s = _binary(12, n=1000, sharpen=2.0)
    kwargs: dict[str, Any] = {"recalibrate": ["platt", "isotonic"], "bootstrap_samples": 100}
    one = calibration_report(y, s, n_classes=2, positive=1, class_names=["n", "p"], **kwargs)
    zero = calibration_report(1 - y, s, n_classes=2, positive=0, class_names=["p", "n"], **kwargs)
    assert one.model_dump() == zero.model_dump()


def test_empty_bins_are_kept_with_none() -> None:
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.05, 0.07, 0.95, 0.92, 0.99])
    r = _report(y, s, bins=10)
    assert r.reliability is not None
    counts = [b.count for b in r.reliability.bins]
    assert counts == [2, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    empty = r.reliability.bins[4]
    assert (empty.low, empty.high, empty.mean_predicted, empty.observed) == (0.4, 0.5, None, None)
    assert r.mce == pytest.approx(max(abs(0.5 - 0.06), abs(2 / 3 - 0.62)))


# --------------------------------------------------------------------------- scores


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_scores_against_references(strategy: str, seed: int) -> None:
    y, s = _binary(seed, sharpen=[1.0, 2.5, 0.4][seed])
    s[:3] = [0.0, 1.0, 1.0]  # log loss clipping as scikit-learn
    r = _report(y, s, bins=12, strategy=strategy)
    edges = np.linspace(0, 1, 13) if strategy == "uniform" else _quantile_edges(s, 12)
    ece, mce = _reference_ece(s, y == 1, edges)
    assert r.ece == pytest.approx(ece, abs=1e-12)
    assert r.mce == pytest.approx(mce, abs=1e-12)
    assert r.adaptive_ece == pytest.approx(_reference_ece(s, y == 1, _quantile_edges(s, 12))[0], abs=1e-12)
    assert r.brier.brier == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    assert r.log_loss == pytest.approx(log_loss(y, s), abs=1e-12)
    assert r.top_label is r.per_class is r.top_label_ece is r.classwise_ece is None


@pytest.mark.parametrize("k", [2, 3, 5])
def test_multiclass_scores_against_references(k: int) -> None:
    y, s = _multiclass(k, k=k, sharpen=1.8)
    r = _report(y, s, bins=10)
    predicted = s.argmax(axis=1)
    confidence = s.max(axis=1)
    top_ece, top_mce = _reference_ece(confidence, predicted == y, np.linspace(0, 1, 11))
    assert r.ece == r.top_label_ece == pytest.approx(top_ece, abs=1e-12)
    assert r.mce == pytest.approx(top_mce, abs=1e-12)
    adaptive = _reference_ece(confidence, predicted == y, _quantile_edges(confidence, 10))[0]
    assert r.adaptive_ece == pytest.approx(adaptive, abs=1e-12)
    classwise = np.mean([_reference_ece(s[:, c], y == c, np.linspace(0, 1, 11))[0] for c in range(k)])
    assert r.classwise_ece == pytest.approx(classwise, abs=1e-12)
    assert r.brier.brier == pytest.approx(brier_score_loss(y, s, labels=range(k)), abs=1e-12)
    assert r.log_loss == pytest.approx(log_loss(y, s, labels=range(k)), abs=1e-12)
    assert r.reliability is None and r.slope is None and r.intercept is None
    assert r.per_class is not None and list(r.per_class) == [f"c{i}" for i in range(k)]
    for c, diagram in enumerate(r.per_class.values()):
        observed, predicted_mean, _ = _diagram_arrays(diagram)
        prob_true, prob_pred = calibration_curve(y == c, s[:, c], n_bins=10)
        np.testing.assert_allclose(observed, prob_true, rtol=0, atol=1e-12)
        np.testing.assert_allclose(predicted_mean, prob_pred, rtol=0, atol=1e-12)


def _reference_brier_terms(p: np.ndarray, o: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Stephenson et al. (2008), row by row: REL, RES, UNC, WBV, WBC."""
    n, obar = p.size, o.mean()
    terms = np.zeros(5)
    for mask in _reference_bins(p, edges):
        if mask.any():
            f, y = p[mask], o[mask]
            terms += [
                mask.sum() * (f.mean() - y.mean()) ** 2,
                mask.sum() * (y.mean() - obar) ** 2,
                0.0,
                ((f - f.mean()) ** 2).sum(),
                2 * ((y - y.mean()) * (f - f.mean())).sum(),
            ]
    terms /= n
    terms[2] = obar * (1 - obar)
    return terms


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("task", ["binary", "multiclass-2", "multiclass-4"])
def test_brier_decomposition_identity_and_terms(strategy: str, task: str) -> None:
    if task == "binary":
        y, s = _binary(5, sharpen=1.7)
    else:
        y, s = _multiclass(5, k=int(task[-1]), sharpen=0.7)
    d = _report(y, s, bins=8, strategy=strategy).brier
    total = d.reliability - d.resolution + d.uncertainty + d.within_bin_variance - d.within_bin_covariance
    assert d.brier == pytest.approx(total, abs=1e-12)
    columns = [(s, y == 1)] if s.ndim == 1 else [(s[:, c], y == c) for c in range(s.shape[1])]
    expected = np.zeros(5)
    for p, o in columns:
        edges = np.linspace(0, 1, 9) if strategy == "uniform" else _quantile_edges(p, 8)
        expected += _reference_brier_terms(p, o.astype(float), edges)
    if task == "multiclass-2":
        expected /= 2  # brier_score_loss halves 2-column scores
    got = [d.reliability, d.resolution, d.uncertainty, d.within_bin_variance, d.within_bin_covariance]
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_slope_and_intercept_equal_unpenalised_logistic_regression(seed: int) -> None:
    y, s = _binary(seed, n=3000, sharpen=[1.0, 2.0, 0.5][seed])
    s[:2] = [0.0, 1.0]  # clipped to eps like log loss
    r = _report(y, s)
    x = np.log(np.clip(s, EPS, 1 - EPS) / (1 - np.clip(s, EPS, 1 - EPS)))
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    assert r.slope == pytest.approx(ref.coef_[0, 0], rel=1e-6)
    assert r.intercept == pytest.approx(ref.intercept_[0], abs=1e-6)


@pytest.mark.parametrize(("zeros", "ones"), [(0, 0), (3, 0), (0, 4), (5, 2)])
def test_slope_reports_the_clipping_of_exact_zeros_and_ones(zeros: int, ones: int) -> None:
    """Scores of exactly 0 or 1 are clipped to [eps, 1 - eps]; the fit equals scikit-learn's
    unpenalised logistic regression on the clipped logits, and the counts are reported."""
    y, s = _binary(7, n=800, sharpen=1.5)
    rng = np.random.default_rng(zeros * 10 + ones)
    rows = rng.choice(s.size, zeros + ones, replace=False)
    s[rows[:zeros]] = 0.0
    s[rows[zeros:]] = 1.0
    r = _report(y, s)
    eps = np.finfo(np.float64).eps
    assert r.clipped is not None
    assert (r.clipped.at_zero, r.clipped.at_one, r.clipped.epsilon) == (zeros, ones, eps)
    q = np.clip(s, eps, 1 - eps)
    x = np.log(q / (1 - q))
    assert np.abs(x).max() <= 36.05
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    assert r.slope == pytest.approx(ref.coef_[0, 0], rel=1e-6)
    assert r.intercept == pytest.approx(ref.intercept_[0], abs=1e-6)
    # the clipping moves the fit: the same rows with scores one step inside (0, 1) differ
    if zeros or ones:
        inside = s.copy()
        inside[rows[:zeros]] = 1e-6
        inside[rows[zeros:]] = 1 - 1e-6
        moved = _report(y, inside)
        assert moved.clipped is not None and (moved.clipped.at_zero, moved.clipped.at_one) == (0, 0)
        assert moved.slope != pytest.approx(r.slope, rel=1e-3)


def test_clipping_counts_values_below_epsilon_and_is_absent_for_multiclass() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    s = np.array([0.0, 1e-20, EPS, 0.5, 1.0 - 1e-17, 1.0])  # 1 - 1e-17 rounds to 1.0
    r = _report(y, s)
    assert r.clipped is not None and (r.clipped.at_zero, r.clipped.at_one) == (2, 2)
    ym, sm = _multiclass(0, n=200, k=3)
    assert _report(ym, sm).clipped is None


def test_slope_on_many_rows_starts_from_a_subsample_fit() -> None:
    y, s = _binary(3, n=300_000, sharpen=1.5)
    r = _report(y, s)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(np.log(s / (1 - s))[:, None], y)
    assert r.slope == pytest.approx(ref.coef_[0, 0], rel=1e-6)
    assert r.intercept == pytest.approx(ref.intercept_[0], abs=1e-6)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_finite_fit_shortcut_agrees_with_the_overlap_check(strategy: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(2, 14))
        p = rng.choice([0.0, 1e-20, 0.1, 0.35, 0.4, 0.5, 0.9, 1.0 - 1e-17, 1.0], n)
        hit = rng.random(n) < rng.random()
        edges = bin_edges(p, bins=4, strategy=strategy)
        stats = BinnedStatistics.of(p, hit, edges, uniform=strategy == "uniform")
        x = logit(p)
        assert _has_finite_fit(x, hit, stats) == overlapping(x, hit)


def test_slope_is_none_without_a_finite_fit() -> None:
    separated = _report(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.4, 0.9]))
    assert separated.slope is None and separated.intercept is None
    one_class = _report(np.zeros(50, dtype=int), np.linspace(0.1, 0.9, 50))
    assert one_class.slope is None
    overlapping = _report(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.5, 0.9]))
    assert overlapping.slope is not None and np.isfinite(overlapping.slope)


# --------------------------------------------------------------------------- known calibration


def _expected_noise_ece(p: np.ndarray, *, draws: int, seed: int) -> float:
    """Mean ECE of a perfectly calibrated model at this p: labels redrawn from Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, 1, 11)
    cells = np.searchsorted(edges[1:-1], p)
    sum_p = np.bincount(cells, weights=p, minlength=10)
    eces = [
        np.abs(np.bincount(cells, weights=rng.random(p.size) < p, minlength=10) - sum_p).sum() / p.size
        for _ in range(draws)
    ]
    return float(np.mean(eces))


def test_perfectly_calibrated_set() -> None:
    y, s = _binary(0, n=20_000)
    r = _report(y, s, bootstrap_samples=1000, seed=0)
    noise = _expected_noise_ece(s, draws=200, seed=1)
    assert r.ece_interval is not None
    assert r.ece_interval.low <= noise <= r.ece_interval.high
    assert r.ece < 0.02 < 0.05  # far below the default `miscalibrated` tolerance
    assert r.ece_interval.high < 0.05
    assert r.slope == pytest.approx(1.0, abs=0.06)
    assert r.intercept == pytest.approx(0.0, abs=0.06)
    d = r.brier
    assert d.reliability < 1e-3 and d.resolution > 0.05


def test_isotonic_recalibration_halves_the_ece_of_an_overconfident_model() -> None:
    y, s = _binary(1, n=20_000, sharpen=3.0)
    r = _report(y, s, recalibrate=["isotonic", "platt"], seed=0)
    assert r.ece > 0.1 and r.slope == pytest.approx(1 / 3, abs=0.03)
    isotonic, platt = r.recalibration
    assert isotonic.method == "isotonic" and platt.method == "platt"
    assert isotonic.before.ece == r.ece
    assert isotonic.after.ece <= 0.5 * isotonic.before.ece
    assert isotonic.after.brier < isotonic.before.brier and isotonic.after.log_loss < isotonic.before.log_loss
    assert platt.parameters["a"] == pytest.approx(1 / 3, abs=0.03)
    assert platt.parameters["b"] == pytest.approx(0.0, abs=0.05)
    assert platt.after.ece <= 0.5 * platt.before.ece


def test_temperature_of_an_overconfident_multiclass_model() -> None:
    y, s = _multiclass(2, n=6000, k=5, sharpen=2.0)
    r = _report(y, s, recalibrate=["temperature"])
    (t,) = r.recalibration
    temperature = t.parameters["temperature"]
    assert isinstance(temperature, float) and temperature == pytest.approx(2.0, rel=0.1)
    assert t.after.log_loss < t.before.log_loss and t.after.ece < 0.5 * t.before.ece
    # the reference: scipy's scalar minimiser on log T
    logp = np.log(np.clip(s, EPS, 1 - EPS))

    def nll(log_t: float) -> float:
        return float(-log_softmax(logp / np.exp(log_t), axis=1)[np.arange(y.size), y].mean())

    ref = minimize_scalar(nll, bounds=(-3, 3), method="bounded", options={"xatol": 1e-10})
    assert np.log(temperature) == pytest.approx(ref.x, abs=1e-6)


def test_underconfident_binary_temperature_below_one() -> None:
    y, s = _binary(3, n=5000, sharpen=0.5)
    (t,) = _report(y, s, recalibrate=["temperature"]).recalibration
    assert t.parameters["temperature"] == pytest.approx(0.5, rel=0.1)


def test_platt_fit_equals_direct_minimisation_with_smoothed_targets() -> None:
    y, s = _binary(4, n=800, sharpen=1.5)
    fitted = PlattMap.fit(s, y.astype(bool))
    x = np.log(s / (1 - s))
    n_pos = y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (y.size - n_pos + 2))

    def loss(ab: np.ndarray) -> float:
        eta = ab[0] * x + ab[1]
        return float(np.sum(np.logaddexp(0, eta) - t * eta))

    ref = minimize(loss, np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose([fitted.a[0], fitted.b[0]], ref.x, atol=1e-5)


def test_cross_fitting_predicts_each_fold_from_the_others() -> None:
    y, s = _binary(6, n=3000, sharpen=2.0)
    r = _report(y, s, recalibrate=["isotonic"], folds=4, seed=9)
    labels = y == 1
    ids = fold_ids(labels, folds=4, rng=np.random.default_rng(9).spawn(2)[1])
    assert np.bincount(ids).tolist() == [750] * 4
    assert [np.bincount(ids[labels])[k] for k in range(4)] == pytest.approx([labels.sum() / 4] * 4, abs=1)
    out = np.empty_like(s)
    for k in range(4):
        iso = IsotonicRegression(out_of_bounds="clip").fit(s[ids != k], labels[ids != k])
        out[ids == k] = iso.predict(s[ids == k])
    (iso_result,) = r.recalibration
    expected_ece = _reference_ece(out, labels, np.linspace(0, 1, 11))[0]
    assert iso_result.after.ece == pytest.approx(expected_ece, abs=1e-12)
    assert iso_result.after.brier == pytest.approx(brier_score_loss(y, out), abs=1e-12)
    full = IsotonicRegression(out_of_bounds="clip").fit(s, labels)
    assert iso_result.parameters == {"x": full.X_thresholds_.tolist(), "y": full.y_thresholds_.tolist()}


# --------------------------------------------------------------------------- bootstrap


def _row_bootstrap_ece(p: np.ndarray, hit: np.ndarray, edges: np.ndarray, samples: int) -> np.ndarray:
    """The plain row bootstrap: resample rows, rebin with the same edges."""
    rng = np.random.default_rng(123)
    cells = np.searchsorted(edges[1:-1], p)
    out = np.empty(samples)
    for b in range(samples):
        idx = rng.integers(0, p.size, p.size)
        sy = np.bincount(cells[idx], weights=hit[idx], minlength=edges.size - 1)
        sp = np.bincount(cells[idx], weights=p[idx], minlength=edges.size - 1)
        out[b] = np.abs(sy - sp).sum() / p.size
    return out


@pytest.mark.parametrize(("n", "strategy", "sharpen"), [(2000, "uniform", 1.0), (400, "quantile", 2.0)])
def test_ece_bootstrap_matches_the_row_bootstrap(n: int, strategy: str, sharpen: float) -> None:
    y, s = _binary(7, n=n, sharpen=sharpen)
    hit = y == 1
    edges = bin_edges(s, bins=10, strategy=strategy)
    stats = BinnedStatistics.of(s, hit, edges, uniform=strategy == "uniform")
    ours = stats.ece_replicates(samples=3000, rng=np.random.default_rng(0))
    plain = _row_bootstrap_ece(s, hit.astype(float), edges, 3000)
    q = [5, 50, 95]
    np.testing.assert_allclose(np.percentile(ours, q), np.percentile(plain, q), rtol=0.06)
    assert ours.std() == pytest.approx(plain.std(), rel=0.1)


def test_same_seed_same_result_other_seed_differs() -> None:
    y, s = _binary(8, n=3000, sharpen=2.0)
    kwargs = {"bootstrap_samples": 300, "recalibrate": ["platt", "isotonic", "temperature"]}
    a = _report(y, s, seed=5, **kwargs)
    b = _report(y, s, seed=5, **kwargs)
    c = _report(y, s, seed=6, **kwargs)
    assert a.model_dump() == b.model_dump()
    assert a.ece_interval != c.ece_interval
    assert a.recalibration[0].after != c.recalibration[0].after
    # the interval does not depend on whether recalibration was asked for
    assert _report(y, s, seed=5, bootstrap_samples=300).ece_interval == a.ece_interval


def test_multiclass_ece_interval_is_top_label() -> None:
    y, s = _multiclass(3, n=4000, sharpen=1.0)
    r = _report(y, s, bootstrap_samples=500, confidence=0.9)
    assert r.ece_interval is not None and r.ece_interval.low < r.ece_interval.high
    assert r.ece_interval.low < r.top_label_ece + 0.01  # type: ignore[operator]
    assert r.ece_interval.high < 0.06


# --------------------------------------------------------------------------- parameters and edge cases


@pytest.mark.parametrize("method", ["platt", "isotonic", "temperature"])
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_reported_parameters_reproduce_the_full_data_map(method: str, task: str) -> None:
    y, s = _binary(9, sharpen=2.0) if task == "binary" else _multiclass(9, k=3, sharpen=2.0)
    names = ["c0", "c1"] if task == "binary" else ["c0", "c1", "c2"]
    (rec,) = _report(y, s, recalibrate=[method]).recalibration
    applied = apply_recalibration(s, method, rec.parameters, class_names=names)
    assert applied.shape == s.shape
    if task == "multiclass":
        np.testing.assert_allclose(applied.sum(axis=1), 1.0, atol=1e-12)
    labels = y == 1 if task == "binary" else y
    refit = {"platt": PlattMap, "temperature": TemperatureMap}.get(method)
    if refit is not None:
        np.testing.assert_allclose(applied, refit.fit(s, labels).apply(s), atol=1e-12)
    if task == "multiclass" and method == "platt":
        a, b = rec.parameters["a"], rec.parameters["b"]
        assert isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 3
        raw = expit(np.array(a) * np.log(s / (1 - s)) + np.array(b))
        np.testing.assert_allclose(applied, raw / raw.sum(axis=1, keepdims=True), atol=1e-12)
    if task == "multiclass" and method == "isotonic":
        assert sorted(rec.parameters) == ["x.c0", "x.c1", "x.c2", "y.c0", "y.c1", "y.c2"]


def test_apply_recalibration_rejects_bad_parameters() -> None:
    s = np.array([0.2, 0.7])
    with pytest.raises(ValueError, match="lack 'b'"):
        apply_recalibration(s, "platt", {"a": 1.0})
    with pytest.raises(ValueError, match="unknown recalibration method"):
        apply_recalibration(s, "beta", {})
    with pytest.raises(ValueError, match="positive number"):
        apply_recalibration(s, "temperature", {"temperature": -1.0})
    with pytest.raises(ValueError, match="class_names"):
        apply_recalibration(np.full((2, 2), 0.5), "isotonic", {"x": [0.0], "y": [0.0]})
    with pytest.raises(ValueError, match="for 2 columns; scores have 3"):
        apply_recalibration(np.full((2, 3), 1 / 3), "platt", {"a": [1.0, 1.0], "b": [0.0, 0.0]})


def test_degenerate_batches_do_not_crash() -> None:
    every = ["platt", "isotonic", "temperature"]
    one_class = _report(np.zeros(40, dtype=int), np.linspace(0.05, 0.6, 40), recalibrate=every)
    assert one_class.slope is None and len(one_class.recalibration) == 3
    assert one_class.brier.uncertainty == 0.0
    constant = _report(np.array([0, 1] * 20), np.full(40, 0.5), recalibrate=every, bootstrap_samples=50)
    assert constant.ece == 0.0 and constant.slope is None
    assert constant.recalibration[0].parameters["a"] == 0.0
    hard = _report(np.array([0, 1] * 10), np.array([0.0, 1.0] * 10), recalibrate=every)
    assert hard.ece == 0.0 and hard.slope is None
    assert all(np.isfinite(r.after.log_loss) for r in hard.recalibration)
    tiny = _report(np.array([0, 1]), np.array([0.3, 0.6]), recalibrate=every, folds=2)
    assert len(tiny.recalibration) == 3
    y, s = _multiclass(4, n=30, k=6)  # some classes absent from some training folds
    assert len(_report(y, s, recalibrate=every).recalibration) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "kmeans"}, "strategy must be one of"),
        ({"bins": 0}, "bins must be a positive integer"),
        ({"recalibrate": ["platt", "platt"]}, "twice"),
        ({"recalibrate": ["beta"]}, "unknown recalibration"),
        ({"recalibrate": "platt"}, "not the string"),
        ({"folds": 1}, "folds must be"),
        ({"seed": None}, "seed must be an integer"),
        ({"bootstrap_samples": 0}, "samples must be a positive integer"),
        ({"confidence": 1.0}, "confidence must be in"),
        ({"recalibrate": ["platt"], "folds": 20}, "at least 20 labeled rows"),
    ],
)
def test_invalid_options_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    y, s = _binary(0, n=10)
    with pytest.raises(ValueError, match=message):
        _report(y, s, **kwargs)


def test_invalid_data_is_rejected() -> None:
    names = ["a", "b"]
    with pytest.raises(ValueError, match="no"):
        calibration_report(np.array([], dtype=int), np.array([]), n_classes=2, positive=1, class_names=names)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_report(np.array([0, 1]), np.array([0.2, 1.2]), n_classes=2, positive=1, class_names=names)
    with pytest.raises(ValueError, match="shape"):
        calibration_report(np.array([0, 1]), np.full((2, 2), 0.5), n_classes=2, positive=1, class_names=names)
    with pytest.raises(ValueError, match="class_names"):
        calibration_report(np.array([0, 1]), np.array([0.2, 0.5]), n_classes=2, positive=1, class_names=["a"])
    with pytest.raises(ValueError, match="positive"):
        calibration_report(np.array([0, 1]), np.full((2, 3), 0.3), n_classes=3, positive=1, class_names="abc")
