"""Significance machinery: exact tests against scipy, gradients against finite differences,
delta-method standard errors and the paired confusion bootstrap against explicit row resampling."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from service.workers.metrics import (
    METRICS,
    RegressionStatistics,
    ScoreStatistics,
    classification_metrics,
    confusion_counts,
    confusion_metric_values,
    perfect_value,
)
from service.workers.significance import (
    binomial_test,
    bootstrap_difference,
    class_constant_paired_se,
    constant_score_class_influence,
    constant_score_influence,
    decide,
    delta_method_difference,
    influence_se,
    interval_verdict,
    mcnemar_exact,
    normal_difference,
    normalized_gain,
    p_value_verdict,
    paired_confusion_replicates,
    paired_influence_se,
    paired_regression_replicates,
    paired_row_replicates,
    regression_influence,
    score_influence,
    two_proportion_z,
)
from service.workers.significance.influence import row_losses as _row_losses

SCORE_METRICS = ["roc_auc", "average_precision", "log_loss", "brier_score"]


def _binary(seed: int, n: int, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    if ties:
        score = np.round(score, 1)  # heavy ties, and exact 0 / 1 probabilities
    y_true = (rng.random(n) < score).astype(np.int64)
    return y_true, (score >= 0.5).astype(np.int64), score


def _multiclass(seed: int, n: int, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probas = rng.dirichlet(np.ones(k), n)
    probas = np.round(probas, 2)
    probas[:, -1] = 1 - probas[:, :-1].sum(axis=1)
    probas = np.clip(probas, 0, 1)
    y_true = (probas.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    return y_true, probas.argmax(axis=1), probas


# --------------------------------------------------------------------------- tests on counts


def _correct_vectors(b: int, c: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    model = np.array([True] * b + [False] * c + [True] * both + [False] * neither)
    base = np.array([False] * b + [True] * c + [True] * both + [False] * neither)
    return model, base


def test_mcnemar_equals_scipy_binomial_test_on_discordant_pairs() -> None:
    rng = np.random.default_rng(0)
    cases = [(0, 0), (0, 1), (1, 0), (3, 3), (0, 25), (40, 2)]
    cases += [tuple(int(v) for v in rng.integers(0, 60, 2)) for _ in range(200)]
    cases += [(int(rng.integers(0, 3000)), int(rng.integers(0, 3000))) for _ in range(20)]
    for b, c in cases:
        model, base = _correct_vectors(b, c, both=7, neither=5)
        result = mcnemar_exact(model, base)
        assert (result.b, result.c) == (b, c)
        expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
        assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300), (b, c)


def test_mcnemar_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="aligned"):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))


def test_binomial_test_is_scipys_and_handles_edges() -> None:
    for x, n, p0 in [(7, 10, 0.5), (820, 1000, 0.82), (0, 50, 0.1), (50, 50, 0.9), (3, 10, 0.0)]:
        assert binomial_test(x, n, p0) == pytest.approx(stats.binomtest(x, n, p0).pvalue, rel=1e-12)
    assert binomial_test(0, 0, 0.5) == 1.0
    with pytest.raises(ValueError, match="p0"):
        binomial_test(1, 2, 1.5)
    with pytest.raises(ValueError, match="successes"):
        binomial_test(3, 2, 0.5)


def test_two_proportion_z_equals_the_chi_square_test_of_the_2x2_table() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n1, n2 = (int(v) for v in rng.integers(5, 500, 2))
        x1, x2 = int(rng.integers(1, n1)), int(rng.integers(1, n2))
        z, p = two_proportion_z(x1, n1, x2, n2)
        assert z is not None and p is not None
        # hand formula
        pooled = (x1 + x2) / (n1 + n2)
        z_hand = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        assert z == pytest.approx(z_hand, rel=1e-12)
        # independent reference: z^2 is Pearson's chi-square without continuity correction
        chi2, p_chi, _, _ = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
        assert z * z == pytest.approx(chi2, rel=1e-9)
        assert p == pytest.approx(p_chi, rel=1e-9)


def test_two_proportion_z_undefined_and_degenerate_cases() -> None:
    assert two_proportion_z(0, 0, 3, 10) == (None, None)
    assert two_proportion_z(10, 10, 5, 5) == (0.0, 1.0)  # both all correct
    assert two_proportion_z(0, 10, 0, 5) == (0.0, 1.0)
    with pytest.raises(ValueError):
        two_proportion_z(11, 10, 1, 5)


def test_normalized_gain() -> None:
    assert normalized_gain(0.9, 0.8, perfect=1.0) == pytest.approx(0.5)
    assert normalized_gain(0.8, 0.8, perfect=1.0) == 0.0
    assert normalized_gain(0.7, 0.8, perfect=1.0) == pytest.approx(-0.5)
    assert normalized_gain(0.1, 0.4, perfect=0.0) == pytest.approx(0.75)  # a loss that fell
    assert normalized_gain(0.9, 1.0, perfect=1.0) is None  # baseline already perfect
    assert normalized_gain(None, 0.5, perfect=1.0) is None
    assert normalized_gain(0.5, float("nan"), perfect=1.0) is None


def test_perfect_value_follows_the_registry_direction() -> None:
    for name, info in METRICS.items():
        assert perfect_value(name) == (1.0 if info.greater_is_better else 0.0)
    assert perfect_value("log_loss") == 0.0 and perfect_value("r2") == 1.0


# --------------------------------------------------------------------------- verdicts and intervals


def test_verdicts_follow_the_metric_direction() -> None:
    up, down, across = (
        normal_difference(0.1, 0.01, confidence=0.95),
        normal_difference(-0.1, 0.01, confidence=0.95),
        normal_difference(0.01, 0.1, confidence=0.95),
    )
    assert interval_verdict(up, greater_is_better=True) == "better"
    assert interval_verdict(up, greater_is_better=False) == "worse"
    assert interval_verdict(down, greater_is_better=False) == "better"
    assert interval_verdict(across, greater_is_better=True) == "no_significant_difference"
    assert interval_verdict(None, greater_is_better=True) == "undefined"
    assert p_value_verdict(0.01, -0.2, alpha=0.05, greater_is_better=True) == "worse"
    assert p_value_verdict(0.2, 0.3, alpha=0.05, greater_is_better=True) == "no_significant_difference"
    assert p_value_verdict(None, 0.3, alpha=0.05, greater_is_better=True) == "undefined"


def test_normal_difference_matches_the_normal_quantiles() -> None:
    d = normal_difference(0.3, 0.1, confidence=0.9)
    assert d.low == pytest.approx(0.3 - 1.6448536 * 0.1, rel=1e-7)
    assert d.p_value == pytest.approx(2 * stats.norm.sf(3.0), rel=1e-9)
    assert normal_difference(0.0, 0.0, confidence=0.95) == (0.0, 0.0, 1.0)
    assert normal_difference(0.2, 0.0, confidence=0.95) == (0.2, 0.2, 0.0)


def test_bootstrap_difference_interval_and_p_value() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(1.0, 0.2, 999)
    out = bootstrap_difference(d, confidence=0.95)
    assert out is not None
    assert out.low == pytest.approx(np.percentile(d, 2.5))
    assert out.p_value == pytest.approx(2 / 1000)  # no replicate at or below 0
    zero = bootstrap_difference(np.zeros(100), confidence=0.95)
    assert zero == (0.0, 0.0, 1.0)
    mostly_nan = np.full(100, np.nan)
    mostly_nan[:40] = 1.0
    assert bootstrap_difference(mostly_nan, confidence=0.95) is None


# --------------------------------------------------------------------------- delta-method gradients


def _finite_difference(
    evaluate: Callable[[np.ndarray], dict[str, float]], n: int, rows: np.ndarray, h: float = 1e-6
) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for k in rows:
        w_plus, w_minus = np.ones(n), np.ones(n)
        w_plus[k] += h
        w_minus[k] -= h
        hi, lo = evaluate(w_plus), evaluate(w_minus)
        for name in hi:
            out.setdefault(name, []).append((hi[name] - lo[name]) / (2 * h))
    return {name: np.array(v) for name, v in out.items()}


@pytest.mark.parametrize(("task", "ties"), [("binary", False), ("binary", True), ("multiclass", True)])
def test_score_gradients_equal_finite_differences(task: str, ties: bool) -> None:
    if task == "binary":
        y, _, s = _binary(3, 300, ties=ties)
        k, positive = 2, 1
    else:
        y, _, s = _multiclass(3, 300)
        k, positive = 3, None
    prepared = ScoreStatistics(y, s, n_classes=k, positive=positive, names=SCORE_METRICS)
    grads = score_influence(y, s, n_classes=k, positive=positive, stats=prepared, ddof=0)
    order = np.arange(y.size) if prepared.row_order is None else prepared.row_order

    def evaluate(w: np.ndarray) -> dict[str, float]:
        return prepared.values(w[order])

    rows = np.random.default_rng(0).choice(y.size, 40, replace=False)
    numeric = _finite_difference(evaluate, y.size, rows)
    for name in SCORE_METRICS:
        g = grads[name]
        assert g is not None
        np.testing.assert_allclose(g[rows], numeric[name], rtol=1e-4, atol=1e-8, err_msg=name)
        assert abs(g.sum()) < 1e-12  # scale invariance: the gradient sums to zero


def test_regression_gradients_equal_finite_differences() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(3, 2, 200)
    yp = y + rng.normal(0, 1, 200)
    names = ["mae", "rmse", "mape", "r2"]
    grads = regression_influence(y, yp, names=names, ddof=0)
    prepared = RegressionStatistics(y, yp, names=names, presort=False)
    rows = np.arange(0, 200, 7)
    numeric = _finite_difference(prepared.values, y.size, rows)
    for name in names:
        g = grads[name]
        assert g is not None
        np.testing.assert_allclose(g[rows], numeric[name], rtol=1e-4, atol=1e-9, err_msg=name)
    assert regression_influence(np.ones(5), np.ones(5) * 2, names=["r2"])["r2"] is None


def test_row_losses_average_to_the_metrics() -> None:
    """The per-row losses behind the log loss / Brier gradients are the metrics' own terms."""
    for y, p, s, k, positive in (
        (*_binary(5, 500, ties=True), 2, 1),
        (*_multiclass(5, 500, k=3), 3, None),
        (*_multiclass(6, 500, k=2), 2, None),
    ):
        report = classification_metrics(
            y,
            p,
            n_classes=k,
            class_names=[str(i) for i in range(k)],
            positive=positive,
            scores=s,
            metrics=["log_loss", "brier_score"],
        )
        losses = _row_losses(y, s, n_classes=k, positive=positive, names=["log_loss", "brier_score"])
        for name, rows in losses.items():
            assert rows.mean() == pytest.approx(report.metrics[name], rel=1e-13), name


def _paired_row_bootstrap(
    y: np.ndarray, sa: np.ndarray, sb: np.ndarray, samples: int
) -> dict[str, np.ndarray]:
    """metric(a) - metric(b) under explicit paired row resampling (the reference)."""
    a = ScoreStatistics(y, sa, n_classes=2, positive=1, names=SCORE_METRICS)
    b = ScoreStatistics(y, sb, n_classes=2, positive=1, names=SCORE_METRICS)
    rng = np.random.default_rng(7)
    out: dict[str, list[float]] = {m: [] for m in SCORE_METRICS}
    for _ in range(samples):
        w = np.bincount(rng.integers(0, y.size, y.size), minlength=y.size).astype(float)
        va = a.values(w if a.row_order is None else w[a.row_order])
        vb = b.values(w if b.row_order is None else w[b.row_order])
        for m in SCORE_METRICS:
            out[m].append(va[m] - vb[m])
    return {m: np.array(v) for m, v in out.items()}


def test_delta_method_standard_errors_match_the_paired_bootstrap() -> None:
    y, _, sa = _binary(8, 3000)
    rng = np.random.default_rng(9)
    sb = np.clip(sa + rng.normal(0, 0.25, y.size), 0, 1)
    ga = score_influence(
        y,
        sa,
        n_classes=2,
        positive=1,
        stats=ScoreStatistics(y, sa, n_classes=2, positive=1, names=SCORE_METRICS),
    )
    gb = score_influence(
        y,
        sb,
        n_classes=2,
        positive=1,
        stats=ScoreStatistics(y, sb, n_classes=2, positive=1, names=SCORE_METRICS),
    )
    boot = _paired_row_bootstrap(y, sa, sb, samples=800)
    for m in SCORE_METRICS:
        ga_m, gb_m = ga[m], gb[m]
        assert ga_m is not None and gb_m is not None
        paired = influence_se(ga_m - gb_m)
        assert paired == pytest.approx(boot[m].std(), rel=0.12), m
        # pairing matters: the two scorers are correlated, so the paired SE is smaller
        assert paired < influence_se(ga_m, gb_m), m


def test_paired_row_bootstrap_of_score_metrics_matches_explicit_resampling() -> None:
    """Each side keeps its rows sorted by its own scores; the replicates must still resample
    the same rows on both sides, as the explicit reference does."""
    y, _, sa = _binary(8, 3000)
    rng = np.random.default_rng(9)
    sb = np.clip(sa + rng.normal(0, 0.25, y.size), 0, 1)
    a = ScoreStatistics(y, sa, n_classes=2, positive=1, names=SCORE_METRICS)
    b = ScoreStatistics(y, sb, n_classes=2, positive=1, names=SCORE_METRICS)
    assert a.row_order is not None and b.row_order is not None
    assert not np.array_equal(a.row_order, b.row_order)  # different orders: mapping matters
    ours = paired_row_replicates(a, b, n=y.size, metrics=SCORE_METRICS, samples=800, seed=3)
    reference = _paired_row_bootstrap(y, sa, sb, samples=800)
    for m in SCORE_METRICS:
        sd = reference[m].std()
        assert ours[m].std() == pytest.approx(sd, rel=0.12), m
        assert abs(ours[m].mean() - reference[m].mean()) < 4 * sd / math.sqrt(800), m
    # the same scores on both sides: every replicate differs by exactly 0 (same rows drawn)
    same = paired_row_replicates(a, a, n=y.size, metrics=SCORE_METRICS, samples=50, seed=3)
    assert all((v == 0).all() for v in same.values())
    again = paired_row_replicates(a, b, n=y.size, metrics=SCORE_METRICS, samples=800, seed=3)
    assert all(np.array_equal(ours[m], again[m]) for m in SCORE_METRICS)  # seeded


def _delong_textbook(y: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong, DeLong & Clarke-Pearson (1988), written from the paper: the AUCs of one or
    more scorers on the same rows and their covariance matrix ``S10 / m + S01 / n``.

    With X the m positives' and Y the n negatives' scores and
    ``psi(x, y) = 1 if x > y, 1/2 if x == y, 0 otherwise``, the structural components
    are ``V10(X_i) = mean_j psi(X_i, Y_j)`` and ``V01(Y_j) = mean_i psi(X_i, Y_j)``,
    ``S10[r, s] = sum_i (V10_r(X_i) - A_r)(V10_s(X_i) - A_s) / (m - 1)`` and
    ``S01[r, s] = sum_j (V01_r(Y_j) - A_r)(V01_s(Y_j) - A_s) / (n - 1)``.
    """
    v10s, v01s, aucs = [], [], []
    for s in scores:
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    auc = np.array(aucs)
    v10, v01 = np.array(v10s), np.array(v01s)
    m, n = v10.shape[1], v01.shape[1]
    s10 = (v10 - auc[:, None]) @ (v10 - auc[:, None]).T / (m - 1)
    s01 = (v01 - auc[:, None]) @ (v01 - auc[:, None]).T / (n - 1)
    return auc, s10 / m + s01 / n


def _auc_terms(y: np.ndarray, s: np.ndarray, ddof: int = 1) -> np.ndarray:
    stats = ScoreStatistics(y, s, n_classes=2, positive=1, names=["roc_auc"])
    g = score_influence(y, s, n_classes=2, positive=1, stats=stats, ddof=ddof)["roc_auc"]
    assert g is not None
    return g


@pytest.mark.parametrize(("n", "ties"), [(400, True), (400, False), (25, False), (12, True)])
def test_delong_standard_errors_equal_the_textbook_formulas(n: int, ties: bool) -> None:
    """One AUC and the difference of two correlated AUCs, against DeLong's paper (m - 1, n - 1)."""
    y, _, sa = _binary(10 + n, n, ties=ties)
    rng = np.random.default_rng(n)
    sb = np.clip(sa + rng.normal(0, 0.3, n), 0, 1)
    if ties:
        sb = np.round(sb, 1)
    auc, cov = _delong_textbook(y, sa, sb)
    ga, gb = _auc_terms(y, sa), _auc_terms(y, sb)
    assert influence_se(ga) == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
    assert influence_se(gb) == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-10)
    paired_var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    assert influence_se(ga - gb) == pytest.approx(math.sqrt(paired_var), rel=1e-9)
    assert paired_influence_se(ga, gb) == pytest.approx(math.sqrt(paired_var), rel=1e-9)
    d = delta_method_difference(auc[0] - auc[1], [], confidence=0.95, paired=(ga, gb))
    z = stats.norm.ppf(0.975)
    assert (d.low, d.high) == pytest.approx(
        (auc[0] - auc[1] - z * math.sqrt(paired_var), auc[0] - auc[1] + z * math.sqrt(paired_var)), rel=1e-9
    )
    # the bare gradients give the (m, n)-denominator infinitesimal jackknife: smaller
    assert influence_se(_auc_terms(y, sa, ddof=0)) < influence_se(ga)


def test_delong_variance_matches_a_large_bootstrap() -> None:
    y, _, s = _binary(41, 300)
    stats_ = ScoreStatistics(y, s, n_classes=2, positive=1, names=["roc_auc"])
    rng = np.random.default_rng(3)
    order = stats_.row_order
    assert order is not None
    replicates = []
    for _ in range(4000):
        w = np.bincount(rng.integers(0, y.size, y.size), minlength=y.size).astype(float)
        replicates.append(stats_.values(w[order])["roc_auc"])
    assert influence_se(_auc_terms(y, s)) == pytest.approx(np.std(replicates, ddof=1), rel=0.05)


@pytest.mark.parametrize("n", [8, 30, 500])
def test_delta_method_of_means_uses_the_sample_variance(n: int) -> None:
    """Log loss, Brier score, MAE, MAPE: se = std(per-row loss, ddof=1) / sqrt(n), from explicit losses."""
    y, _, s = _binary(50 + n, n)
    y[:2] = [0, 1]
    stats_ = ScoreStatistics(y, s, n_classes=2, positive=1, names=["log_loss", "brier_score"])
    terms = score_influence(y, s, n_classes=2, positive=1, stats=stats_)
    p_true = np.clip(np.where(y == 1, s, 1 - s), np.finfo(float).eps, 1 - np.finfo(float).eps)
    expected = {"log_loss": -np.log(p_true), "brier_score": (y - s) ** 2}
    for name, rows in expected.items():
        g = terms[name]
        assert g is not None
        assert influence_se(g) == pytest.approx(np.std(rows, ddof=1) / math.sqrt(n), rel=1e-10), name
    rng = np.random.default_rng(n)
    yt = rng.normal(3, 2, n)
    yp = yt + rng.normal(0, 1, n)
    reg = regression_influence(yt, yp, names=["mae", "mape", "rmse", "r2"])
    rows = {"mae": np.abs(yp - yt), "mape": np.abs(yp - yt) / np.abs(yt)}
    for name, values in rows.items():
        g = reg[name]
        assert g is not None
        assert influence_se(g) == pytest.approx(np.std(values, ddof=1) / math.sqrt(n), rel=1e-10), name
    # rmse = sqrt(mse): the delta method on the mean of squared errors, with ddof=1
    sq = (yp - yt) ** 2
    g = reg["rmse"]
    assert g is not None
    expected_rmse = np.std(sq, ddof=1) / math.sqrt(n) / (2 * math.sqrt(sq.mean()))
    assert influence_se(g) == pytest.approx(expected_rmse, rel=1e-10)


def test_delta_method_of_average_precision_and_r2_uses_the_sample_variance_of_the_influence() -> None:
    """The influence function n dT/dw_k by finite differences of scikit-learn's weighted
    metrics; Var = np.var(IF, ddof=1) / n."""
    from sklearn import metrics as skm  # type: ignore[import-untyped]

    y, _, s = _binary(60, 80)
    h = 1e-6

    def numeric_if(fn: Callable[[np.ndarray], float], n: int) -> np.ndarray:
        out = np.empty(n)
        for k in range(n):
            up, down = np.ones(n), np.ones(n)
            up[k] += h
            down[k] -= h
            out[k] = n * (fn(up) - fn(down)) / (2 * h)
        return out

    ap_if = numeric_if(lambda w: skm.average_precision_score(y, s, sample_weight=w), y.size)
    stats_ = ScoreStatistics(y, s, n_classes=2, positive=1, names=["average_precision"])
    g = score_influence(y, s, n_classes=2, positive=1, stats=stats_)["average_precision"]
    assert g is not None
    expected = math.sqrt(np.var(ap_if, ddof=1) / y.size)
    assert influence_se(g) == pytest.approx(expected, rel=1e-5)
    rng = np.random.default_rng(61)
    yt = rng.normal(3, 2, 60)
    yp = yt + rng.normal(0, 1, 60)
    r2_if = numeric_if(lambda w: skm.r2_score(yt, yp, sample_weight=w), yt.size)
    g = regression_influence(yt, yp, names=["r2"])["r2"]
    assert g is not None
    assert influence_se(g) == pytest.approx(math.sqrt(np.var(r2_if, ddof=1) / yt.size), rel=1e-5)


def test_influence_terms_are_the_gradients_times_the_finite_sample_factors() -> None:
    y, _, s = _multiclass(12, 200)
    y[:3] = [0, 1, 2]
    stats_ = ScoreStatistics(y, s, n_classes=3, positive=None, names=SCORE_METRICS)
    bare = score_influence(y, s, n_classes=3, positive=None, stats=stats_, ddof=0)
    terms = score_influence(y, s, n_classes=3, positive=None, stats=stats_)
    n = y.size
    for name in ("average_precision", "log_loss", "brier_score"):
        g0, g1 = bare[name], terms[name]
        assert g0 is not None and g1 is not None
        np.testing.assert_allclose(g1, g0 * math.sqrt(n / (n - 1)), rtol=1e-12, err_msg=name)
    # macro AUC: the mean of the per-class DeLong terms, each scaled by its own class counts
    expected = np.zeros(n)
    for c in range(3):
        is_c = (y == c).astype(int)
        expected += _auc_terms(is_c, np.ascontiguousarray(s[:, c])) / 3
    g = terms["roc_auc"]
    assert g is not None
    np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-15)
    with pytest.raises(ValueError, match="ddof"):
        regression_influence(np.arange(3.0), np.arange(3.0), names=["mae"], ddof=2)


@pytest.mark.parametrize("labels", ["present", "declared"])
@pytest.mark.parametrize("case", ["binary", "multiclass", "multiclass_absent_class"])
def test_constant_scores_need_no_sort(case: str, labels: str) -> None:
    """The shortcut for probabilities shared by all rows equals the general gradients."""
    rng = np.random.default_rng(15)
    if case == "binary":
        y, k, positive, row = rng.integers(0, 2, 400), 2, 1, np.array([0.3])
        scores = np.full(y.size, 0.3)
    else:
        k, positive = 4, None
        y = rng.integers(0, 3 if case.endswith("absent_class") else 4, 400)
        row = np.array([0.1, 0.2, 0.3, 0.4])
        scores = np.tile(row, (y.size, 1))
    general = score_influence(
        y,
        scores,
        n_classes=k,
        positive=positive,
        stats=ScoreStatistics(
            y,
            scores,
            n_classes=k,
            positive=positive,
            names=SCORE_METRICS,
            labels=labels,  # type: ignore[arg-type]
        ),
    )
    shortcut = constant_score_influence(
        y,
        row,
        n_classes=k,
        positive=positive,
        names=SCORE_METRICS,
        labels=labels,  # type: ignore[arg-type]
    )
    assert general.keys() == shortcut.keys()
    for name, g in general.items():
        s = shortcut[name]
        if g is None:
            assert s is None, name
        else:
            assert s is not None, name
            np.testing.assert_allclose(s, g, rtol=1e-9, atol=1e-15, err_msg=name)
    if case == "multiclass_absent_class":
        # declared: the absent class makes the macro AUC undefined; present: it is left out
        assert (shortcut["roc_auc"] is None) == (labels == "declared")
        assert shortcut["average_precision"] is not None


@pytest.mark.parametrize("labels", ["present", "declared"])
@pytest.mark.parametrize("case", ["binary", "multiclass", "multiclass_absent_class"])
def test_constant_scores_per_class_gradients_gather_to_the_row_gradients(case: str, labels: str) -> None:
    """One value per class, equal to every row's constant-score gradient of that class; the
    paired standard error against them equals the row-by-row one."""
    rng = np.random.default_rng(16)
    if case == "binary":
        y, k, positive, row = rng.integers(0, 2, 500), 2, 1, np.array([0.3])
    else:
        k, positive = 4, None
        y = rng.integers(0, 3 if case.endswith("absent_class") else 4, 500)
        row = np.array([0.1, 0.2, 0.3, 0.4])
    options: dict[str, Any] = {"n_classes": k, "positive": positive, "names": SCORE_METRICS, "labels": labels}
    rows = constant_score_influence(y, row, **options)
    support = np.bincount(y, minlength=k)
    per_class = constant_score_class_influence(support, row, **options)
    assert rows.keys() == per_class.keys()
    for name, g in rows.items():
        c = per_class[name]
        if g is None:
            assert c is None, name
            continue
        assert c is not None and c.shape == (k,), name
        np.testing.assert_allclose(c[y], g, rtol=1e-12, atol=1e-18, err_msg=name)
        model = rng.normal(size=y.size) / y.size
        class_sums = np.bincount(y, weights=model, minlength=k)
        se = class_constant_paired_se(float(model.sum()), float(model @ model), class_sums, support, c)
        assert se == pytest.approx(paired_influence_se(model, g), rel=1e-9), name


def test_constant_scores_per_class_gradients_without_rows() -> None:
    out = constant_score_class_influence(
        np.zeros(2), np.array([0.5]), n_classes=2, positive=1, names=SCORE_METRICS
    )
    assert out == dict.fromkeys(SCORE_METRICS)
    assert class_constant_paired_se(0.0, 0.0, np.zeros(2), np.zeros(2), np.zeros(2)) == 0.0


def test_undefined_rankings_have_no_gradient() -> None:
    y = np.zeros(20, dtype=np.int64)
    s = np.linspace(0, 1, 20)
    g = score_influence(
        y,
        s,
        n_classes=2,
        positive=1,
        stats=ScoreStatistics(y, s, n_classes=2, positive=1, names=SCORE_METRICS),
    )
    assert g["roc_auc"] is None and g["average_precision"] is None
    assert g["log_loss"] is not None


def test_delta_method_set_is_the_smooth_metrics() -> None:
    delta_method_metrics = {m for m, info in METRICS.items() if info.kind == "smooth"}
    assert delta_method_metrics == {
        "roc_auc", "average_precision", "log_loss", "brier_score", "mae", "rmse", "mape", "r2"
    }  # fmt: skip
    assert {"median_ae", "max_error"}.isdisjoint(delta_method_metrics)
    assert all(METRICS[m].source in ("scores", "values") for m in delta_method_metrics)


# --------------------------------------------------------------------------- paired bootstrap


def test_paired_confusion_replicates_are_seeded() -> None:
    y, pa, _ = _multiclass(11, 300)
    pb = np.roll(pa, 5)
    names = ["accuracy", "f1_macro", "mcc"]

    def draw(other: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        return paired_confusion_replicates(
            y, pa, other, n_classes=3, positive=None, metrics=names, samples=200, seed=seed
        )

    a, b, c = draw(pb, 1), draw(pb, 1), draw(pb, 2)
    for m in names:
        np.testing.assert_array_equal(a[m], b[m])
        assert not np.array_equal(a[m], c[m])
    same = draw(pa, 1)
    assert all(np.all(same[m] == 0) for m in names)


def test_paired_confusion_replicates_match_paired_row_resampling() -> None:
    """Joint multinomial cells have the distribution of resampling the same rows for both sides."""
    y, pa, _ = _binary(12, 400)
    rng = np.random.default_rng(0)
    pb = np.where(rng.random(y.size) < 0.3, 1 - pa, pa)
    names = ["accuracy", "f1", "mcc", "precision"]
    shortcut = paired_confusion_replicates(
        y, pa, pb, n_classes=2, positive=1, metrics=names, samples=3000, seed=0
    )
    stack_a = np.empty((3000, 2, 2))
    stack_b = np.empty((3000, 2, 2))
    for i in range(3000):
        idx = rng.integers(0, y.size, y.size)
        stack_a[i] = confusion_counts(y[idx], pa[idx], n_classes=2)
        stack_b[i] = confusion_counts(y[idx], pb[idx], n_classes=2)
    va = confusion_metric_values(stack_a, names, positive=1)
    vb = confusion_metric_values(stack_b, names, positive=1)
    for m in names:
        ref, got = va[m] - vb[m], shortcut[m]
        assert got.mean() == pytest.approx(ref.mean(), abs=4 * ref.std() / math.sqrt(3000) * math.sqrt(2)), m
        assert got.std() == pytest.approx(ref.std(), rel=0.08), m
        assert stats.ks_2samp(got, ref).pvalue > 1e-3, m


def test_paired_confusion_replicates_draw_in_blocks_for_many_cells() -> None:
    """Many classes: non-empty joint cells only, drawn in blocks, still one seeded stream."""
    rng = np.random.default_rng(13)
    k = 30
    y, pa, pb = rng.integers(0, k, 2000), rng.integers(0, k, 2000), rng.integers(0, k, 2000)
    out = paired_confusion_replicates(
        y, pa, pb, n_classes=k, positive=None, metrics=["accuracy"], samples=2500, seed=0
    )["accuracy"]
    assert out.shape == (2500,) and np.isfinite(out).all()
    ref = (y == pa).mean() - (y == pb).mean()
    assert abs(out.mean() - ref) < 4 * out.std() / math.sqrt(out.size)


def test_paired_regression_replicates_use_the_same_rows() -> None:
    rng = np.random.default_rng(14)
    y = rng.normal(0, 1, 300)
    a = RegressionStatistics(y, y + rng.normal(0, 0.5, 300), names=["median_ae", "max_error"])
    same = paired_regression_replicates(a, a, metrics=["median_ae", "max_error"], samples=50, seed=0)
    assert all(np.all(v == 0) for v in same.values())
    b = RegressionStatistics(y, y + rng.normal(0, 1.0, 300), names=["median_ae", "max_error"])
    d = paired_regression_replicates(a, b, metrics=["median_ae"], samples=200, seed=0)["median_ae"]
    assert (d < 0).all()  # a's errors are half of b's, on every resample of the same rows


@pytest.mark.parametrize("n", [2, 7, 300])
def test_distinct_score_gradients_equal_the_tied_group_formula(n: int) -> None:
    """Without ties the fast path equals the general formula with every row its own group."""
    from service.workers.significance.ranking_influence import ranking_gradients as _ranking_gradients

    rng = np.random.default_rng(n)
    for p in (0.2, 0.5, 0.9):
        is_pos = rng.random(n) < p
        want = {"roc_auc", "average_precision"}
        fast = _ranking_gradients(is_pos, None, want)
        general = _ranking_gradients(is_pos, np.arange(n), want)
        if general is None:
            assert fast is None
            continue
        assert fast is not None
        for name in want:
            np.testing.assert_allclose(fast[name], general[name], rtol=1e-12, atol=1e-15, err_msg=name)
        # the cumulative counts ScoreStatistics already holds give the same gradients
        tp = np.cumsum(is_pos, dtype=np.float64)
        reused = _ranking_gradients(is_pos, None, want, tp)
        assert reused is not None
        for name in want:
            np.testing.assert_array_equal(reused[name], fast[name])


def test_score_statistics_row_losses_are_the_row_terms_in_input_order() -> None:
    for y, _, s, k, positive in (
        (*_binary(8, 400, ties=True), 2, 1),
        (*_binary(9, 400), 2, 1),
        (*_multiclass(8, 400, k=3), 3, None),
        (*_multiclass(9, 400, k=2), 2, None),
    ):
        stats = ScoreStatistics(y, s, n_classes=k, positive=positive, names=SCORE_METRICS)
        reference = _row_losses(y, s, n_classes=k, positive=positive, names=SCORE_METRICS)
        assert set(stats.row_losses) == set(reference)
        for name, rows in reference.items():
            np.testing.assert_array_equal(stats.row_losses[name], rows, err_msg=name)
        p_true = np.where(y == positive, s, 1 - s) if positive is not None else s[np.arange(y.size), y]
        assert stats.n_clipped == int(np.count_nonzero(p_true <= 0))


@pytest.mark.parametrize("n", [0, 1, 5, 70_000, 200_001])
def test_paired_influence_se_equals_the_se_of_the_difference(n: int) -> None:
    from service.workers.significance import paired_influence_se

    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n) / max(n, 1), rng.normal(size=n) / max(n, 1)
    assert paired_influence_se(a, b) == pytest.approx(influence_se(a - b), rel=1e-9, abs=1e-300)
    assert paired_influence_se(a, a) == 0.0
    with pytest.raises(ValueError, match="shape"):
        paired_influence_se(a, np.zeros(n + 1))


def test_the_slices_finite_sample_factor_is_the_one_of_the_influence_terms() -> None:
    from service.workers.slices.inference import unbiased_factor

    counts = np.array([0, 1, 2, 3, 10, 1000])
    expected = [1.0, 1.0, 2.0, 1.5, 10 / 9, 1000 / 999]
    np.testing.assert_allclose(unbiased_factor(counts), expected, rtol=1e-15)
    # a mean of losses: sum of squared terms = var(ddof=1) / n
    rows = np.random.default_rng(0).random(10)
    g = (rows - rows.mean()) / rows.size
    assert float(g @ g) * unbiased_factor(np.array(10))[()] == pytest.approx(np.var(rows, ddof=1) / 10)


# --------------------------------------------------------------------------- verdicts beside intervals


def _consistent(c: Any, *, greater_is_better: bool = True) -> None:
    """The verdict never contradicts the printed interval of model - baseline."""
    iv = c.difference_interval
    if iv is None:
        assert c.decided_by in (None, "p_value")
        return
    assert c.decided_by == "interval" and c.interval_method is not None
    up, down = iv.low > 0, iv.high < 0
    better_side = up if greater_is_better else down
    worse_side = down if greater_is_better else up
    expected = "better" if better_side else "worse" if worse_side else "no_significant_difference"
    assert c.verdict == expected, (c.verdict, iv)


def test_mcnemar_and_the_bootstrap_interval_disagree_and_the_interval_decides() -> None:
    """5 rows only the model gets right, none only the baseline: McNemar's exact p = 2 / 2^5 =
    0.0625 is not significant, while the paired bootstrap interval of the accuracy difference
    excludes 0 (a resample without any of the 5 rows has probability ~e^-5 < 2.5%)."""
    from service.workers.baselines import Side, compare

    n = 200
    y = np.tile([0, 1], n // 2)
    model = y.copy()
    baseline = y.copy()
    baseline[:5] = 1 - y[:5]  # the 5 discordant rows: the model right, the baseline wrong
    model[100:130] = 1 - y[100:130]  # both wrong here: concordant
    baseline[100:130] = 1 - y[100:130]
    result = compare(
        Side(y, model),
        Side(y, baseline),
        task="binary",
        metrics=["accuracy"],
        paired=True,
        primary_metric="accuracy",
        n_classes=2,
        positive=1,
        samples=2000,
        seed=0,
    )
    c = result.significance["accuracy"]
    assert c.test == "mcnemar_exact" and c.interval_method == "paired_bootstrap"
    assert c.p_value == pytest.approx(stats.binomtest(5, 5, 0.5).pvalue, rel=1e-12)
    assert c.p_value is not None and c.p_value > 0.05
    assert c.difference_interval is not None and c.difference_interval.low > 0  # they disagree
    _consistent(c)
    assert c.verdict == "better" and c.decided_by == "interval"
    assert c.note is not None and "mcnemar_exact" in c.note and "follows the interval" in c.note
    assert result.beats is True


@pytest.mark.parametrize("seed", range(12))
def test_verdicts_never_contradict_their_intervals(seed: int) -> None:
    from service.workers.baselines import Side, compare

    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    y = rng.integers(0, 2, n)
    s = np.clip(0.5 * y + 0.5 * rng.random(n), 0, 1)
    sb = np.clip(s + rng.normal(0, 0.2, n), 0, 1)
    names = ["accuracy", "f1", "roc_auc", "log_loss"]
    for paired in (True, False):
        result = compare(
            Side(y, (s >= 0.5).astype(int), s),
            Side(y, (sb >= 0.5).astype(int), sb),
            task="binary",
            metrics=names,
            paired=paired,
            primary_metric="accuracy",
            n_classes=2,
            positive=1,
            samples=300,
            seed=seed,
        )
        for name, c in result.significance.items():
            _consistent(c, greater_is_better=METRICS[name].greater_is_better)
            if c.note is not None:
                assert c.decided_by == "interval"


def test_decide_without_an_interval_uses_the_p_value() -> None:
    d = decide(
        0.1,
        p_value=0.01,
        interval=None,
        greater_is_better=True,
        alpha=0.05,
        test="binomial",
        interval_method=None,
    )
    assert d == ("better", "p_value", None)
    assert decide(
        0.1, p_value=None, interval=None, greater_is_better=True, alpha=0.05, test=None, interval_method=None
    ) == ("undefined", None, None)
    # the test significant, the interval across 0: no "better" beside an interval containing 0
    across = normal_difference(0.02, 0.02, confidence=0.95)
    d = decide(
        0.02,
        p_value=0.001,
        interval=across,
        greater_is_better=True,
        alpha=0.05,
        test="mcnemar_exact",
        interval_method="paired_bootstrap",
    )
    assert d.verdict == "no_significant_difference" and d.decided_by == "interval"
    assert d.note is not None and "includes 0" in d.note
