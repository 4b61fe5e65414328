"""The baseline panel: closed-form random baselines against simulation, the zero rule,
and model-versus-baseline comparisons with their verdicts."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from schemas.baselines import MetricComparison
from service.workers.baselines import (
    Comparison,
    PreparedSide,
    Side,
    Strategy,
    compare,
    compare_to_expected,
    constant_regression_predictions,
    expected_confusion,
    expected_random_metrics,
    prepare_side,
    prepare_zero_rule,
    resamples_smooth_metrics,
    zero_rule_metrics,
    zero_rule_predictions,
)
from service.workers.bootstrap import classification_replicates
from service.workers.metrics import (
    METRICS,
    ScoreStatistics,
    Task,
    classification_metrics,
    default_metrics,
    regression_metrics,
)
from service.workers.significance import binomial_test, influence_se, score_influence

NINETY_TEN = np.array([0] * 90 + [1] * 10)


def _names(k: int) -> list[str]:
    return [f"c{i}" for i in range(k)]


# --------------------------------------------------------------------------- closed-form random baselines


def test_ninety_negatives_ten_positives() -> None:
    uniform = expected_random_metrics(NINETY_TEN, n_classes=2, positive=1, strategy="uniform")
    prior = expected_random_metrics(NINETY_TEN, n_classes=2, positive=1, strategy="prior")
    assert uniform.metrics["accuracy"] == pytest.approx(0.5, abs=1e-12)
    assert uniform.metrics["f1"] == pytest.approx(1 / 6, abs=1e-12)
    assert prior.metrics["accuracy"] == pytest.approx(0.82, abs=1e-12)
    assert prior.metrics["f1"] == pytest.approx(0.1, abs=1e-12)
    for report in (uniform, prior):
        assert report.metrics["roc_auc"] == 0.5
        assert report.metrics["average_precision"] == pytest.approx(0.1)
        assert report.metrics["mcc"] == pytest.approx(0.0, abs=1e-12)
        assert report.metrics["balanced_accuracy"] == pytest.approx(0.5)
        assert report.undefined == {}
        assert report.confusion_matrix is None  # expected counts are fractional
        assert report.per_class is not None and report.per_class["1"].support == 10
    np.testing.assert_allclose(
        expected_confusion(NINETY_TEN, n_classes=2, strategy="prior"), [[81, 9], [9, 1]], atol=1e-12
    )


@pytest.mark.parametrize("strategy", ["uniform", "prior"])
@pytest.mark.parametrize("k", [2, 3])
def test_constant_probability_losses_equal_sklearn(strategy: Strategy, k: int) -> None:
    rng = np.random.default_rng(k)
    y = rng.choice(k, 5000, p=[0.6, 0.4] if k == 2 else [0.6, 0.3, 0.1])
    positive = 1 if k == 2 else None
    report = expected_random_metrics(
        y,
        n_classes=k,
        positive=positive,
        strategy=strategy,
        metrics=["log_loss", "brier_score", "roc_auc", "average_precision"],
    )
    q = np.full(k, 1 / k) if strategy == "uniform" else np.bincount(y, minlength=k) / y.size
    probas = np.tile(q, (y.size, 1))
    assert report.metrics["log_loss"] == pytest.approx(skm.log_loss(y, probas, labels=range(k)), rel=1e-12)
    if k == 2:
        brier = skm.brier_score_loss(y, probas[:, 1])
        assert report.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y, probas[:, 1]))
        assert report.metrics["average_precision"] == pytest.approx(np.mean(y == 1))
    else:
        brier = skm.brier_score_loss(y, probas, labels=range(k))
        assert report.metrics["roc_auc"] == pytest.approx(0.5)
        # macro mean of one-vs-rest prevalences over the present classes
        assert report.metrics["average_precision"] == pytest.approx(1 / k)
    assert report.metrics["brier_score"] == pytest.approx(brier, rel=1e-12)


def _simulate(y: np.ndarray, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Predictions drawn from q independently of the row."""
    return np.searchsorted(np.cumsum(q), rng.random(y.size), side="right").clip(0, q.size - 1)


@pytest.mark.parametrize("strategy", ["uniform", "prior"])
@pytest.mark.parametrize(
    ("prevalence", "metrics", "positive"),
    [
        ([0.9, 0.1], ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "mcc"], 1),
        (
            [0.5, 0.3, 0.15, 0.05],
            [
                "accuracy",
                "balanced_accuracy",
                "f1_macro",
                "precision_macro",
                "recall_weighted",
                "f1_micro",
                "mcc",
            ],
            None,
        ),
    ],
)
def test_closed_form_matches_a_million_draw_simulation(
    strategy: Strategy, prevalence: list[float], metrics: list[str], positive: int | None
) -> None:
    k = len(prevalence)
    rng = np.random.default_rng(20 + k)
    y = rng.choice(k, 1_000_000, p=prevalence)
    support = np.bincount(y, minlength=k)
    q = np.full(k, 1 / k) if strategy == "uniform" else support / y.size
    closed = expected_random_metrics(
        y, n_classes=k, positive=positive, strategy=strategy, metrics=metrics
    ).metrics
    pred = _simulate(y, q, rng)
    simulated = classification_metrics(
        y, pred, n_classes=k, class_names=_names(k), positive=positive, scores=None, metrics=metrics
    ).metrics
    # standard errors of the simulated values (multinomial bootstrap: milliseconds)
    replicates = classification_replicates(
        y, pred, n_classes=k, positive=positive, scores=None, metrics=metrics, samples=200, seed=0
    )
    for name in metrics:
        value, reference = closed[name], simulated[name]
        assert value is not None and reference is not None
        se = float(np.std(replicates[name]))
        assert abs(value - reference) < 3 * se, (name, value, reference, se)


def test_random_scorer_ranking_metrics_match_simulation() -> None:
    rng = np.random.default_rng(30)
    y = (rng.random(1_000_000) < 0.1).astype(np.int64)
    names = ["roc_auc", "average_precision"]
    closed = expected_random_metrics(y, n_classes=2, positive=1, strategy="prior", metrics=names).metrics
    scores = rng.random(y.size)
    simulated = classification_metrics(
        y, y, n_classes=2, class_names=["0", "1"], positive=1, scores=scores, metrics=names
    ).metrics
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    se_auc = math.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))  # Mann-Whitney under H0
    assert closed["roc_auc"] is not None and simulated["roc_auc"] is not None
    assert abs(closed["roc_auc"] - simulated["roc_auc"]) < 3 * se_auc
    prepared = ScoreStatistics(y, scores, n_classes=2, positive=1, names=names)
    grad = score_influence(y, scores, n_classes=2, positive=1, stats=prepared)["average_precision"]
    assert grad is not None
    ap, ap_simulated = closed["average_precision"], simulated["average_precision"]
    assert ap is not None and ap_simulated is not None
    assert abs(ap - ap_simulated) < 3 * influence_se(grad)


def test_expected_metrics_leave_an_absent_class_out_as_scikit_learn_does() -> None:
    y = np.array([0] * 30 + [1] * 20)  # class 2 has no labeled rows
    report = expected_random_metrics(
        y,
        n_classes=3,
        positive=None,
        strategy="prior",
        metrics=["accuracy", "roc_auc", "average_precision"],
        class_names=["a", "b", "c"],
    )
    # one-vs-rest over the classes with labeled rows: a random scorer's AUC is 1/2 and its AP the
    # class's prevalence; the note names the class left out
    assert report.metrics["roc_auc"] == pytest.approx(0.5)
    assert "'c'" in report.notes["roc_auc"]
    assert report.metrics["average_precision"] == pytest.approx((0.6 + 0.4) / 2)
    assert "average_precision" in report.notes
    assert report.metrics["accuracy"] == pytest.approx(0.6**2 + 0.4**2)


def test_expected_metrics_of_no_rows_are_undefined() -> None:
    report = expected_random_metrics(np.array([], dtype=int), n_classes=2, positive=1, strategy="uniform")
    assert all(v is None for v in report.metrics.values())
    assert "no labeled rows" in report.undefined["accuracy"]


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(ValueError, match="strategy"):
        expected_random_metrics(
            NINETY_TEN,
            n_classes=2,
            positive=1,
            strategy="stratified",  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------- zero rule


def _assert_same_values(a: dict[str, float | None], b: dict[str, float | None]) -> None:
    """Equal up to rounding (weighted pseudo-rows sum in another order than rows do)."""
    assert a.keys() == b.keys()
    for name, value in a.items():
        if value is None or b[name] is None:
            assert value is b[name], name
        else:
            assert value == pytest.approx(b[name], rel=1e-12, abs=1e-15), name


def test_zero_rule_reports_undefined_precision_not_an_error() -> None:
    side = zero_rule_predictions(NINETY_TEN, n_classes=2, positive=1)
    assert set(side.y_pred.tolist()) == {0}
    assert side.scores is not None and np.allclose(side.scores, 0.1)
    names = default_metrics("binary", has_scores=True)
    direct = zero_rule_metrics(NINETY_TEN, n_classes=2, positive=1, metrics=names)
    via_rows = classification_metrics(
        side.y_true,
        side.y_pred,
        n_classes=2,
        class_names=["0", "1"],
        positive=1,
        scores=side.scores,
        metrics=names,
    )
    assert direct.metrics["precision"] is None
    assert "no row is predicted as the positive class" in direct.undefined["precision"]
    assert direct.metrics["accuracy"] == pytest.approx(0.9)
    assert direct.undefined == via_rows.undefined and direct.notes == via_rows.notes
    assert direct.confusion_matrix == via_rows.confusion_matrix
    assert direct.per_class == via_rows.per_class
    _assert_same_values(direct.metrics, via_rows.metrics)


@pytest.mark.parametrize("k", [2, 3])
def test_prepared_zero_rule_values_equal_the_metrics_worker(k: int) -> None:
    """A side with constant probabilities takes a no-sort path; its values stay the worker's."""
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 500)
    positive = 1 if k == 2 else None
    task: Task = "binary" if k == 2 else "multiclass"
    names = default_metrics(task, has_scores=True)
    side = zero_rule_predictions(y, n_classes=k, positive=positive)
    prepared = prepare_side(side, task=task, metrics=names, n_classes=k, positive=positive)
    report = classification_metrics(
        y,
        side.y_pred,
        n_classes=k,
        class_names=_names(k),
        positive=positive,
        scores=side.scores,
        metrics=names,
    )
    values = {m: None if np.isnan(v) else v for m, v in prepared.values.items()}
    _assert_same_values(values, report.metrics)


def test_zero_rule_multiclass_ties_go_to_the_lowest_code() -> None:
    y = np.array([2, 2, 1, 1, 0, 3])
    side = zero_rule_predictions(y, n_classes=4, positive=None)
    assert set(side.y_pred.tolist()) == {1}
    assert side.scores is not None and side.scores.shape == (6, 4)
    np.testing.assert_allclose(side.scores[0], [1 / 6, 2 / 6, 2 / 6, 1 / 6])
    names = default_metrics("multiclass", has_scores=True)
    direct = zero_rule_metrics(y, n_classes=4, positive=None, metrics=names, class_names=_names(4))
    via_rows = classification_metrics(
        y, side.y_pred, n_classes=4, class_names=_names(4), positive=None, scores=side.scores, metrics=names
    )
    assert direct.undefined == via_rows.undefined and direct.notes == via_rows.notes
    _assert_same_values(direct.metrics, via_rows.metrics)


def test_regression_constant_predictions() -> None:
    y = np.array([1.0, 2.0, 4.0, 13.0])
    mean = constant_regression_predictions(y, statistic="mean")
    median = constant_regression_predictions(y, statistic="median")
    assert set(mean.y_pred.tolist()) == {5.0} and set(median.y_pred.tolist()) == {3.0}
    assert regression_metrics(y, mean.y_pred, metrics=["r2"]).metrics["r2"] == pytest.approx(0.0, abs=1e-15)
    # the median has the smaller absolute error, the mean the smaller squared error
    assert regression_metrics(y, mean.y_pred, metrics=["mae"]).metrics["mae"] == pytest.approx(4.0)
    assert regression_metrics(y, median.y_pred, metrics=["mae"]).metrics["mae"] == pytest.approx(3.5)
    empty = constant_regression_predictions(np.array([]), statistic="median")
    assert empty.y_pred.size == 0


# --------------------------------------------------------------------------- comparisons


def _scored(y: np.ndarray, skill: float, rng: np.random.Generator) -> Side:
    """Scores that separate the classes by ``skill``; predictions thresholded at 0.5."""
    s = np.clip(0.5 + skill * (y - 0.5) + rng.normal(0, 0.25, y.size), 0, 1)
    return Side(y, (s >= 0.5).astype(np.int64), s)


def _binary_pair(n: int = 3000, seed: int = 0) -> tuple[Side, Side]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.int64)
    return _scored(y, 0.6, rng), _scored(y, 0.2, rng)


NAMES = default_metrics("binary", has_scores=True)


def _vs(
    model: Side | PreparedSide, baseline: Side, *, paired: bool, primary: str = "f1", **options: Any
) -> Comparison:
    """compare() for the binary task with the default metrics."""
    options.setdefault("metrics", NAMES)
    return compare(
        model,
        baseline,
        task="binary",
        n_classes=2,
        positive=1,
        paired=paired,
        primary_metric=primary,
        **options,
    )


@pytest.mark.parametrize("method", ["delta_method", "bootstrap", "auto"])
def test_clearly_better_model_beats_the_baseline_paired(method: str) -> None:
    model, baseline = _binary_pair()
    result = _vs(model, baseline, paired=True, interval_method=method)
    assert isinstance(result, Comparison) and result.beats is True
    sig = result.significance
    assert {m: c.verdict for m, c in sig.items()} == dict.fromkeys(NAMES, "better")
    assert sig["accuracy"].test == "mcnemar_exact"
    assert sig["f1"].test == "paired_bootstrap"
    resampled = method != "delta_method"  # auto: 1000 samples of a small batch are affordable
    assert sig["roc_auc"].test == ("paired_bootstrap" if resampled else "paired_delong")
    assert sig["log_loss"].test == ("paired_bootstrap" if resampled else "paired_delta_method")
    assert sig["log_loss"].lift is not None and sig["log_loss"].lift < 0  # a loss: lower is better
    for name, c in sig.items():
        assert c.model is not None and c.baseline is not None
        assert c.lift == pytest.approx(c.model - c.baseline)
        assert c.difference_interval is not None and c.p_value is not None and c.p_value < 0.05, name
    worse = _vs(baseline, model, paired=True)
    assert worse.beats is False
    assert {c.verdict for c in worse.significance.values()} == {"worse"}


@pytest.mark.parametrize("method", ["delta_method", "bootstrap"])
def test_clearly_better_model_beats_the_baseline_unpaired(method: str) -> None:
    model, _ = _binary_pair(seed=1)
    _, baseline = _binary_pair(n=2000, seed=2)  # other rows, other length
    result = _vs(model, baseline, paired=False, primary="roc_auc", interval_method=method)
    assert result.beats is True
    sig = result.significance
    assert {c.verdict for c in sig.values()} == {"better"}
    assert sig["accuracy"].test == "two_proportion_z"
    assert sig["f1"].test == "unpaired_bootstrap"
    assert sig["roc_auc"].test == ("unpaired_delong" if method == "delta_method" else "unpaired_bootstrap")


def test_identical_model_is_no_significant_difference() -> None:
    model, _ = _binary_pair()
    for paired in (True, False):
        result = _vs(model, model, paired=paired, primary="accuracy")
        assert result.beats is False
        for name, c in result.significance.items():
            assert c.verdict == "no_significant_difference", (paired, name)
            assert c.lift == 0.0 and c.normalized_gain == 0.0
            assert c.difference_interval is not None
            assert c.difference_interval.low <= 0 <= c.difference_interval.high
    assert _vs(model, model, paired=True).significance["accuracy"].p_value == 1.0  # no discordant pair


def test_paired_comparison_is_reproducible_with_a_seed() -> None:
    model, baseline = _binary_pair(n=400)
    a, b, c = (_vs(model, baseline, paired=True, seed=seed) for seed in (5, 5, 6))
    assert a == b
    assert a.significance["f1"].difference_interval != c.significance["f1"].difference_interval
    # 400 rows: ROC AUC is resampled too, seeded
    assert a.significance["roc_auc"].difference_interval != c.significance["roc_auc"].difference_interval
    # the delta-method intervals do not depend on the seed
    d, e = (_vs(model, baseline, paired=True, seed=seed, interval_method="delta_method") for seed in (5, 6))
    assert d.significance["roc_auc"] == e.significance["roc_auc"]


def test_prepared_sides_give_the_same_comparison() -> None:
    model, baseline = _binary_pair(n=500)
    prepared = prepare_side(model, task="binary", n_classes=2, positive=1, metrics=NAMES)
    assert isinstance(prepared, PreparedSide) and prepared.n == 500
    assert _vs(prepared, baseline, paired=True) == _vs(model, baseline, paired=True)
    too_few = prepare_side(model, task="binary", n_classes=2, positive=1, metrics=["accuracy"])
    with pytest.raises(ValueError, match="prepared without metrics"):
        _vs(too_few, baseline, paired=True)
    with pytest.raises(ValueError, match="prepared for task=binary"):
        compare(
            prepared,
            baseline,
            task="multiclass",
            n_classes=2,
            metrics=["accuracy"],
            paired=True,
            primary_metric="accuracy",
        )


def test_model_values_equal_the_metrics_worker() -> None:
    model, _ = _binary_pair(n=500)
    prepared = prepare_side(model, task="binary", n_classes=2, positive=1, metrics=NAMES)
    report = classification_metrics(
        model.y_true,
        model.y_pred,
        n_classes=2,
        class_names=["0", "1"],
        positive=1,
        scores=model.scores,
        metrics=NAMES,
    )
    assert prepared.values == report.metrics


def test_baseline_without_scores_leaves_score_metrics_undefined() -> None:
    model, baseline = _binary_pair(n=500)
    labels_only = Side(baseline.y_true, baseline.y_pred)
    result = _vs(model, labels_only, paired=True, primary="roc_auc")
    assert result.beats is None
    roc = result.significance["roc_auc"]
    assert roc.verdict == "undefined" and roc.baseline is None and roc.lift is None and roc.test is None
    assert result.significance["accuracy"].verdict != "undefined"


def test_zero_rule_comparison_with_undefined_precision() -> None:
    model, _ = _binary_pair(n=1000)
    zero = zero_rule_predictions(model.y_true, n_classes=2, positive=1)
    result = _vs(model, zero, paired=True, primary="precision")
    precision = result.significance["precision"]
    assert precision.verdict == "undefined" and precision.baseline is None and precision.lift is None
    assert result.beats is None
    assert result.significance["roc_auc"].baseline == 0.5
    assert result.significance["roc_auc"].verdict == "better"


def _assert_same_comparison(a: Comparison, b: Comparison) -> None:
    assert a.beats == b.beats
    assert a.significance.keys() == b.significance.keys()
    for name, x in a.significance.items():
        y = b.significance[name].model_dump()
        for key, value in x.model_dump().items():
            if isinstance(value, float | list | tuple | dict):
                assert y[key] == pytest.approx(value, rel=1e-9, abs=1e-15), (name, key)
            else:
                assert y[key] == value, (name, key)


@pytest.mark.parametrize(("k", "positive"), [(2, 1), (2, 0), (3, None), (4, None)])
def test_prepared_zero_rule_compares_as_its_predictions(k: int, positive: int | None) -> None:
    """The zero rule prepared from the model's counts (no n-row arrays) gives the comparison
    of its materialised predictions, metric by metric."""
    rng = np.random.default_rng(30 + k)
    n = 3000
    y = rng.choice(k, size=n, p=np.arange(1, k + 1) / (k * (k + 1) / 2))
    task: Task = "binary" if positive is not None else "multiclass"
    if positive is not None:
        scores = np.clip(0.3 * (y == positive) + 0.7 * rng.random(n), 0, 1)
        pred = np.where(scores > 0.5, positive, 1 - positive)
        names = [
            "accuracy",
            "f1",
            "balanced_accuracy",
            "roc_auc",
            "average_precision",
            "log_loss",
            "brier_score",
        ]
    else:
        scores = rng.dirichlet(np.ones(k), n)
        pred = scores.argmax(axis=1)
        names = ["accuracy", "f1_macro", "roc_auc", "average_precision", "log_loss", "brier_score"]
    options: dict[str, Any] = {"task": task, "metrics": names, "n_classes": k, "positive": positive}
    model = prepare_side(Side(y, pred, scores), **options)
    zero = prepare_zero_rule(model)
    direct = prepare_side(zero_rule_predictions(y, n_classes=k, positive=positive), **options)
    assert zero.values == pytest.approx(direct.values, nan_ok=True)
    assert (zero.confusion == direct.confusion).all()
    compared = {"paired": True, "primary_metric": "accuracy", **options}
    _assert_same_comparison(compare(model, direct, **compared), compare(model, zero, **compared))


def test_prepared_zero_rule_needs_a_classification_side() -> None:
    side = prepare_side(Side(np.array([1.0, 2.0]), np.array([1.5, 2.5])), task="regression", metrics=["mae"])
    with pytest.raises(ValueError, match="classification"):
        prepare_zero_rule(side)


@pytest.mark.parametrize(("k", "positive"), [(2, 1), (3, None)])
def test_side_prepared_paired_with_the_model_compares_the_same(k: int, positive: int | None) -> None:
    """Counting the joint cells while preparing gives the same confusion counts and comparison."""
    rng = np.random.default_rng(40 + k)
    n = 2000
    y = rng.integers(0, k, n)
    task: Task = "binary" if positive is not None else "multiclass"
    names = ["accuracy", "precision" if positive is not None else "f1_macro", "roc_auc"]
    options: dict[str, Any] = {"task": task, "metrics": names, "n_classes": k, "positive": positive}
    a, b = rng.dirichlet(np.ones(k), n), rng.dirichlet(np.ones(k), n)
    sa, sb = (a[:, 1], b[:, 1]) if positive is not None else (a, b)
    model = prepare_side(Side(y, a.argmax(axis=1), sa), **options)
    plain = prepare_side(Side(y.copy(), b.argmax(axis=1), sb), **options)
    joined = prepare_side(Side(y.copy(), b.argmax(axis=1), sb), paired_with=model, **options)
    assert joined.joint is not None and joined.joint_pred is model.side.y_pred
    assert joined.report == plain.report
    assert (joined.confusion == plain.confusion).all() and joined.confusion.dtype == plain.confusion.dtype
    compared = {"paired": True, "primary_metric": "accuracy", **options}
    assert compare(model, joined, **compared) == compare(model, plain, **compared)
    # paired with the model's raw arrays (prepared while the model is): the same counts
    raw = prepare_side(Side(y.copy(), b.argmax(axis=1), sb), paired_with=Side(y, a.argmax(axis=1)), **options)
    assert raw.joint is not None and (raw.joint == joined.joint).all()
    assert compare(model, raw, **compared) == compare(model, plain, **compared)
    # counted against other predictions: compare() must not trust those counts
    other = Side(y, (a.argmax(axis=1) + 1) % k)
    stale = prepare_side(Side(y.copy(), b.argmax(axis=1), sb), paired_with=other, **options)
    assert stale.joint is not None and not (stale.joint == joined.joint).all()
    assert compare(model, stale, **compared) == compare(model, plain, **compared)
    with pytest.raises(ValueError, match="same rows"):
        prepare_side(Side(y[:-1], b.argmax(axis=1)[:-1]), paired_with=model, **options)


def test_auto_resamples_the_smooth_metrics_only_while_it_is_affordable() -> None:
    assert resamples_smooth_metrics("auto", rows=5_000, samples=1000)
    assert not resamples_smooth_metrics("auto", rows=5_001, samples=1000)
    assert resamples_smooth_metrics("auto", rows=50_000, samples=100)
    assert resamples_smooth_metrics("bootstrap", rows=10**6, samples=1000)
    assert not resamples_smooth_metrics("delta_method", rows=10, samples=10)
    with pytest.raises(ValueError, match="interval_method"):
        resamples_smooth_metrics("jackknife", rows=10, samples=10)  # type: ignore[arg-type]


@pytest.mark.parametrize("paired", [True, False])
def test_bootstrap_and_delta_method_intervals_of_score_metrics_agree(paired: bool) -> None:
    """Two routes to the same interval: their widths agree within Monte Carlo error."""
    model, baseline = _binary_pair(n=3000, seed=4)
    names = ["roc_auc", "average_precision", "log_loss", "brier_score", "accuracy"]
    boot, delta = (
        _vs(model, baseline, paired=paired, metrics=names, primary="roc_auc", interval_method=method)
        for method in ("bootstrap", "delta_method")
    )
    for name in names[:4]:
        b, d = boot.significance[name], delta.significance[name]
        assert b.test.endswith("bootstrap") and not d.test.endswith("bootstrap"), name
        assert b.difference_interval is not None and d.difference_interval is not None
        width_b = b.difference_interval.high - b.difference_interval.low
        width_d = d.difference_interval.high - d.difference_interval.low
        assert width_b == pytest.approx(width_d, rel=0.15), name
        assert b.verdict == d.verdict == "better", name


def test_bootstrap_against_a_random_baseline_resamples_the_model_scores() -> None:
    model, _ = _binary_pair(n=2000, seed=6)
    expected = expected_random_metrics(
        model.y_true, n_classes=2, positive=1, strategy="uniform", metrics=NAMES
    )
    options: dict[str, Any] = {"task": "binary", "n_classes": 2, "positive": 1, "metrics": NAMES}
    boot = compare_to_expected(
        model, expected, primary_metric="roc_auc", interval_method="bootstrap", **options
    )
    delta = compare_to_expected(
        model, expected, primary_metric="roc_auc", interval_method="delta_method", **options
    )
    b, d = boot.significance["roc_auc"], delta.significance["roc_auc"]
    assert (b.test, d.test) == ("bootstrap", "delong")
    assert b.baseline == 0.5 and b.lift == pytest.approx(b.model - 0.5)
    assert b.difference_interval is not None and d.difference_interval is not None
    assert b.difference_interval.low == pytest.approx(d.difference_interval.low, abs=0.01)
    assert b.difference_interval.high == pytest.approx(d.difference_interval.high, abs=0.01)


def test_misuse_raises_value_error() -> None:
    model, baseline = _binary_pair(n=300)
    short = Side(baseline.y_true[:200], baseline.y_pred[:200])
    with pytest.raises(ValueError, match="same rows"):
        _vs(model, short, paired=True)
    with pytest.raises(ValueError, match="primary_metric"):
        _vs(model, baseline, paired=True, metrics=["accuracy"])
    with pytest.raises(ValueError, match="positive"):
        compare(
            model,
            baseline,
            task="binary",
            n_classes=2,
            metrics=["accuracy"],
            paired=True,
            primary_metric="accuracy",
        )


def test_compare_to_expected_uses_the_binomial_test_for_accuracy() -> None:
    model, _ = _binary_pair()
    expected = expected_random_metrics(model.y_true, n_classes=2, positive=1, strategy="prior", metrics=NAMES)
    result = compare_to_expected(
        model,
        expected,
        task="binary",
        n_classes=2,
        positive=1,
        metrics=NAMES,
        primary_metric="accuracy",
        interval_method="delta_method",
    )
    acc = result.significance["accuracy"]
    correct = int(np.sum(model.y_true == model.y_pred))
    assert acc.test == "binomial"
    p0 = expected.metrics["accuracy"]
    assert p0 is not None and acc.p_value == binomial_test(correct, model.y_true.size, p0)
    assert acc.baseline == expected.metrics["accuracy"]
    assert result.beats is True
    assert result.significance["f1"].test == "bootstrap"
    assert result.significance["roc_auc"].test == "delong"
    assert result.significance["brier_score"].test == "delta_method"
    assert {c.verdict for c in result.significance.values()} == {"better"}
    with pytest.raises(ValueError, match="lacks metrics"):
        compare_to_expected(
            model,
            expected,
            task="binary",
            n_classes=2,
            positive=1,
            metrics=["mcc", "f1_macro"],
            primary_metric="mcc",
        )


def test_a_random_model_is_not_better_than_the_random_baseline() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.3).astype(np.int64)
    random_model = Side(y, (rng.random(y.size) < 0.3).astype(np.int64), rng.random(y.size))
    expected = expected_random_metrics(y, n_classes=2, positive=1, strategy="prior", metrics=NAMES)
    result = compare_to_expected(
        random_model, expected, task="binary", n_classes=2, positive=1, metrics=NAMES, primary_metric="f1"
    )
    assert result.beats is False
    for name in ("accuracy", "f1", "mcc", "roc_auc", "average_precision"):
        assert result.significance[name].verdict == "no_significant_difference", name


def test_regression_model_against_the_mean() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(10, 3, 2000)
    model = Side(y, y + rng.normal(0, 1, y.size))
    mean = constant_regression_predictions(y, statistic="mean")
    names = default_metrics("regression", has_scores=False)
    result = compare(
        model, mean, task="regression", metrics=names, paired=True, primary_metric="r2", samples=200
    )
    sig = result.significance
    assert result.beats is True
    assert sig["r2"].baseline == pytest.approx(0.0, abs=1e-12)
    assert sig["r2"].normalized_gain == pytest.approx(sig["r2"].model)  # gain over the mean is R^2 itself
    # 2000 rows x 200 samples: auto resamples the smooth metrics too
    assert sig["mae"].test == "paired_bootstrap" and sig["median_ae"].test == "paired_bootstrap"
    assert {c.verdict for m, c in sig.items() if m != "max_error"} == {"better"}
    unpaired = compare(
        model,
        mean,
        task="regression",
        metrics=["mae", "median_ae"],
        paired=False,
        primary_metric="mae",
        samples=100,
    )
    assert unpaired.significance["median_ae"].test == "unpaired_bootstrap" and unpaired.beats is True


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_metric_of_identical_sides_has_zero_lift(task: str) -> None:
    """Registry-driven: each metric's comparison machinery agrees with itself."""
    rng = np.random.default_rng(5)
    names = [m for m, info in METRICS.items() if task in info.tasks]
    if task == "regression":
        y = rng.normal(0, 1, 300)
        side = Side(y, y + rng.normal(0, 0.5, 300))
        kwargs: dict[str, Any] = {"task": task}
    else:
        k = 2 if task == "binary" else 3
        y = rng.integers(0, k, 300)
        probas = rng.dirichlet(np.ones(k), 300)
        scores = probas[:, 1] if k == 2 else probas
        side = Side(y, probas.argmax(axis=1), scores)
        kwargs = {"task": task, "n_classes": k, "positive": 1 if k == 2 else None}
    result = compare(side, side, metrics=names, paired=True, primary_metric=names[0], samples=50, **kwargs)
    for name in names:
        c: MetricComparison = result.significance[name]
        assert c.lift == 0.0, name
        assert c.verdict == "no_significant_difference", name


# --------------------------------------------------------------------------- prepared reports


def _assert_same_report(prepared: PreparedSide, expected: Any) -> None:
    assert prepared.report is not None
    assert prepared.report == expected
    assert list(prepared.report.metrics) == list(expected.metrics)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_prepared_report_equals_classification_metrics(seed: int, k: int) -> None:
    """The report prepare_side builds from its own sort is the metrics worker's, field by field."""
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.integers(0, k, n)
    if seed == 1:
        y[y == k - 1] = 0  # a class without labeled rows: undefined values and notes
    pred = rng.integers(0, k, n)
    if seed == 2:
        pred[pred == 1] = 0  # a class never predicted: undefined precision
    positive = 1 if k == 2 else None
    task: Task = "binary" if k == 2 else "multiclass"
    if k == 2:
        scores = np.round(rng.random(n), 2)  # ties and exact 0 / 1 (clipped log loss rows)
    else:
        scores = rng.dirichlet(np.ones(k), n)
        scores[:5] = np.eye(k)[(y[:5] + 1) % k]  # probability 0 to the true class
    names = list(default_metrics(task, has_scores=True))
    if k > 2:
        names += ["precision_micro", "recall_weighted", "f1_macro" if "f1_macro" not in names else "f1_micro"]
    prepared = prepare_side(
        Side(y, pred, scores), task=task, metrics=names, n_classes=k, positive=positive, class_names=_names(k)
    )
    expected = classification_metrics(
        y, pred, n_classes=k, class_names=_names(k), positive=positive, scores=scores, metrics=names
    )
    _assert_same_report(prepared, expected)
    assert prepared.report is not None and (prepared.report.undefined or seed == 0)
    assert {m: (None if math.isnan(v) else v) for m, v in prepared.values.items()} == expected.metrics


def test_prepared_report_of_no_rows_equals_classification_metrics() -> None:
    empty = np.array([], dtype=np.int64)
    prepared = prepare_side(
        Side(empty, empty, np.array([])), task="binary", metrics=NAMES, n_classes=2, positive=1
    )
    expected = classification_metrics(
        empty, empty, n_classes=2, class_names=["0", "1"], positive=1, scores=np.array([]), metrics=NAMES
    )
    _assert_same_report(prepared, expected)


@pytest.mark.parametrize("k", [2, 3])
def test_prepared_zero_rule_report_equals_classification_metrics(k: int) -> None:
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 200)
    positive = 1 if k == 2 else None
    task: Task = "binary" if k == 2 else "multiclass"
    side = zero_rule_predictions(y, n_classes=k, positive=positive)
    names = default_metrics(task, has_scores=True)
    prepared = prepare_side(
        side, task=task, metrics=names, n_classes=k, positive=positive, class_names=_names(k)
    )
    expected = classification_metrics(
        y,
        side.y_pred,
        n_classes=k,
        class_names=_names(k),
        positive=positive,
        scores=side.scores,
        metrics=names,
    )
    assert prepared.report is not None
    # the shared probabilities take a closed form: the same values up to rounding
    assert prepared.report.metrics == pytest.approx(expected.metrics, rel=1e-12)
    assert prepared.report.model_copy(update={"metrics": expected.metrics}) == expected


def test_prepared_report_without_scores_has_undefined_score_metrics() -> None:
    _, baseline = _binary_pair(n=400)
    labels_only = Side(baseline.y_true, baseline.y_pred)
    prepared = prepare_side(
        labels_only, task="binary", metrics=NAMES, n_classes=2, positive=1, class_names=["no", "yes"]
    )
    label_names = [m for m in NAMES if not METRICS[m].needs_scores]
    expected = classification_metrics(
        baseline.y_true,
        baseline.y_pred,
        n_classes=2,
        class_names=["no", "yes"],
        positive=1,
        scores=None,
        metrics=label_names,
    )
    report = prepared.report
    assert report is not None
    assert list(report.metrics) == NAMES
    for name in NAMES:
        if METRICS[name].needs_scores:
            assert report.metrics[name] is None
            assert report.undefined[name] == "this baseline gives predictions without probabilities"
        else:
            assert report.metrics[name] == expected.metrics[name]
    assert {k: v for k, v in report.undefined.items() if k in expected.undefined} == expected.undefined
    assert report.per_class == expected.per_class and report.confusion_matrix == expected.confusion_matrix
    # the metrics worker itself stays strict
    with pytest.raises(ValueError, match="needs predicted probabilities"):
        classification_metrics(
            baseline.y_true,
            baseline.y_pred,
            n_classes=2,
            class_names=["no", "yes"],
            positive=1,
            scores=None,
            metrics=NAMES,
        )


def test_prepared_report_rejects_bad_class_names() -> None:
    model, _ = _binary_pair(n=50)
    with pytest.raises(ValueError, match="class_names"):
        prepare_side(model, task="binary", metrics=NAMES, n_classes=2, positive=1, class_names=["a", "a"])


@pytest.mark.parametrize("case", ["plain", "constant_y", "zero_targets", "empty"])
def test_prepared_regression_report_equals_regression_metrics(case: str) -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(3, 2, 250)
    if case == "constant_y":
        y = np.full(250, 2.0)
    if case == "zero_targets":
        y[:10] = 0.0
    if case == "empty":
        y = np.array([])
    yp = y + rng.normal(0, 1, y.size)
    names = default_metrics("regression", has_scores=False)
    prepared = prepare_side(Side(y, yp), task="regression", metrics=names)
    expected = regression_metrics(y, yp, metrics=names)
    _assert_same_report(prepared, expected)
    assert {m: (None if math.isnan(v) else v) for m, v in prepared.values.items()} == expected.metrics


@pytest.mark.parametrize("flipped", [0, 1, 400])
def test_paired_standard_error_from_dot_products_equals_the_row_differences(flipped: int) -> None:
    """The paired delta-method error of two scored sides, from cached sums and one cross
    product, equals the one of the row differences, down to sides that barely differ."""
    from service.workers.baselines.intervals import _paired_se
    from service.workers.significance import paired_influence_se

    rng = np.random.default_rng(50 + flipped)
    n = 2000
    y = rng.integers(0, 2, n)
    scores = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    other = scores.copy()
    rows = rng.choice(n, size=flipped, replace=False)
    other[rows] = rng.random(flipped)
    names = ["accuracy", "roc_auc", "average_precision", "log_loss", "brier_score"]
    options: dict[str, Any] = {"task": "binary", "metrics": names, "n_classes": 2, "positive": 1}
    model = prepare_side(Side(y, (scores > 0.5).astype(int), scores), **options)
    baseline = prepare_side(Side(y.copy(), (other > 0.5).astype(int), other), **options)
    for name in names[1:]:
        gm, gb = model.gradients[name], baseline.gradients[name]
        assert gm is not None and gb is not None
        expected = paired_influence_se(gm, gb)
        if flipped == 0:
            assert _paired_se(model, baseline, name) == expected == 0.0
        else:
            assert _paired_se(model, baseline, name) == pytest.approx(expected, rel=1e-9), name


@pytest.mark.parametrize(("k", "positive"), [(2, 1), (3, None)])
def test_closed_form_reports_with_known_label_counts_equal_the_counted_ones(
    k: int, positive: int | None
) -> None:
    y = np.random.default_rng(60 + k).integers(0, k, 500)
    counts = np.bincount(y, minlength=k)
    options: dict[str, Any] = {"n_classes": k, "positive": positive, "class_names": _names(k)}
    for strategy in ("uniform", "prior"):
        assert expected_random_metrics(
            y, strategy=strategy, support=counts, **options
        ) == expected_random_metrics(y, strategy=strategy, **options)
    assert zero_rule_metrics(y, support=counts, **options) == zero_rule_metrics(y, **options)
    with pytest.raises(ValueError, match="support"):
        zero_rule_metrics(y, support=np.array([-1] * k), **options)


@pytest.mark.parametrize(
    ("name", "successes"),
    [
        ("accuracy", lambda y, p: (int((y == p).sum()), y.size)),
        ("precision", lambda y, p: (int(((p == 1) & (y == 1)).sum()), int((p == 1).sum()))),
        ("recall", lambda y, p: (int(((p == 1) & (y == 1)).sum()), int((y == 1).sum()))),
    ],
)
def test_unpaired_accuracy_like_metrics_use_the_two_proportion_test(
    name: str, successes: Callable[[np.ndarray, np.ndarray], tuple[int, int]]
) -> None:
    """The pooled z test's p-value is the uncorrected chi-square test of the 2x2 table (z^2 = chi^2)."""
    model, _ = _binary_pair(n=1500, seed=11)
    _, baseline = _binary_pair(n=900, seed=12)
    c = _vs(model, baseline, paired=False, metrics=[name, "f1"], primary=name).significance[name]
    x1, n1 = successes(model.y_true, model.y_pred)
    x2, n2 = successes(baseline.y_true, baseline.y_pred)
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    reference = stats.chi2_contingency(table, correction=False).pvalue
    assert c.test == "two_proportion_z"
    assert c.p_value == pytest.approx(reference, rel=1e-9)
    assert c.model == pytest.approx(x1 / n1) and c.baseline == pytest.approx(x2 / n2)
    assert c.difference_interval is not None  # the bootstrap's interval of the difference
    # paired, only accuracy has a count test (McNemar); precision and recall are bootstrapped
    paired_test = _vs(model, model, paired=True, metrics=[name], primary=name).significance[name].test
    assert paired_test == ("mcnemar_exact" if name == "accuracy" else "paired_bootstrap")


def test_multiclass_micro_averages_are_tested_as_the_accuracy_they_equal() -> None:
    rng = np.random.default_rng(13)
    y_a, y_b = rng.integers(0, 3, 800), rng.integers(0, 3, 600)
    a = Side(y_a, np.where(rng.random(800) < 0.7, y_a, (y_a + 1) % 3))
    b = Side(y_b, np.where(rng.random(600) < 0.5, y_b, (y_b + 1) % 3))
    names = ["accuracy", "f1_micro", "precision_micro", "recall_micro", "f1_macro"]
    sig = compare(
        a, b, task="multiclass", n_classes=3, metrics=names, paired=False, primary_metric="accuracy"
    ).significance
    for name in names[1:4]:
        assert sig[name].test == "two_proportion_z" and sig[name].p_value == sig["accuracy"].p_value, name
    assert sig["f1_macro"].test == "unpaired_bootstrap"


# --------------------------------------------------------------------------- labels: present / declared

#: class 3 of four is declared but never labeled nor predicted
DECLARED_K = 4
LABELS_NAMES = [
    "accuracy",
    "balanced_accuracy",
    "mcc",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "f1_micro",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier_score",
]
#: the metrics whose value over classes 0..2 is scaled by 3/4 when class 3 is declared
SCALED = ("precision_macro", "recall_macro", "f1_macro", "average_precision")
#: the metrics that do not depend on labels
UNCHANGED = (
    "accuracy",
    "balanced_accuracy",
    "mcc",
    "precision_weighted",
    "f1_micro",
    "log_loss",
    "brier_score",
)


def _never_occurring_class(seed: int, n: int = 1500, skill: float = 0.5) -> Side:
    """Labels in 0..2, predictions in 0..2, probabilities over four classes (class 3 gets mass)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    scores = (1 - skill) * rng.dirichlet(np.ones(DECLARED_K), n) + skill * np.eye(DECLARED_K)[y]
    pred = scores[:, :3].argmax(axis=1)
    assert set(np.unique(y)) == set(np.unique(pred)) == {0, 1, 2}
    return Side(y, pred, scores)


def _quiet(fn: Callable[[], float]) -> float:
    """A scikit-learn value; an UndefinedMetricWarning (ROC AUC of a class without rows) means NaN."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(fn())
    if any(issubclass(w.category, skm._classification.UndefinedMetricWarning) for w in caught):
        return math.nan
    return value


def _sklearn_values(side: Side, names: list[str], labels: str) -> dict[str, float]:
    """scikit-learn on the side: its default (``labels=None``) or ``labels=range(K)`` (declared).

    The one-vs-rest ROC AUC / AP of the default are the means over the classes with labeled
    rows (scikit-learn takes the classes from y_true; it refuses a score column without them).
    """
    y, pred, s = side.y_true, side.y_pred, side.scores
    assert s is not None
    k = s.shape[1]
    declared = labels == "declared"
    kw: dict[str, Any] = {"labels": range(k)} if declared else {}
    present = np.unique(y)
    out: dict[str, float] = {}
    for name in names:
        base, _, average = name.partition("_")
        if name == "accuracy":
            out[name] = skm.accuracy_score(y, pred)
        elif name == "balanced_accuracy":
            out[name] = skm.balanced_accuracy_score(y, pred)
        elif name == "mcc":
            out[name] = skm.matthews_corrcoef(y, pred)
        elif base in ("precision", "recall", "f1"):
            fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[base]
            out[name] = fn(y, pred, average=average, zero_division=0, **kw)
        elif name == "roc_auc":
            if declared:
                out[name] = _quiet(lambda: skm.roc_auc_score(y, s, multi_class="ovr", labels=range(k)))
            else:
                out[name] = float(np.mean([skm.roc_auc_score(y == c, s[:, c]) for c in present]))
        elif name == "average_precision":
            if declared:
                onehot = label_binarize(y, classes=range(k))
                out[name] = _quiet(partial(skm.average_precision_score, onehot, s, average="macro"))
            else:
                out[name] = float(np.mean([skm.average_precision_score(y == c, s[:, c]) for c in present]))
        elif name == "log_loss":
            out[name] = skm.log_loss(y, s, labels=range(k))
        elif name == "brier_score":
            out[name] = skm.brier_score_loss(y, s, labels=range(k))
    return out


def _assert_equals_sklearn(values: dict[str, float | None], expected: dict[str, float]) -> None:
    for name, reference in expected.items():
        got = values[name]
        if math.isnan(reference):
            assert got is None or math.isnan(got), f"{name}: {got}, scikit-learn says undefined"
        else:
            assert got is not None and got == pytest.approx(reference, rel=1e-9, abs=1e-12), name


def _declared_options(labels: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"task": "multiclass", "metrics": LABELS_NAMES, "n_classes": DECLARED_K}
    if labels is not None:
        options["labels"] = labels
    return options


@pytest.mark.parametrize("labels", [None, "present", "declared"])
def test_prepared_report_with_a_never_occurring_class_equals_sklearn(labels: str | None) -> None:
    """declared: scikit-learn with labels=range(K); the default: scikit-learn's default."""
    side = _never_occurring_class(50)
    prepared = prepare_side(side, class_names=_names(DECLARED_K), **_declared_options(labels))
    assert prepared.labels == (labels or "present")
    assert prepared.report is not None
    _assert_equals_sklearn(prepared.report.metrics, _sklearn_values(side, LABELS_NAMES, labels or "present"))
    # and the metrics worker's report, field by field (notes included)
    expected = classification_metrics(
        side.y_true,
        side.y_pred,
        n_classes=DECLARED_K,
        class_names=_names(DECLARED_K),
        positive=None,
        scores=side.scores,
        metrics=LABELS_NAMES,
        labels=labels or "present",  # type: ignore[arg-type]
    )
    _assert_same_report(prepared, expected)
    if labels == "declared":
        assert prepared.report.metrics["roc_auc"] is None and "roc_auc" in prepared.report.undefined
    else:
        assert prepared.report.metrics["roc_auc"] is not None
        assert "'c3'" in prepared.report.notes["f1_macro"]  # the class left out


@pytest.mark.parametrize("labels", ["present", "declared"])
def test_zero_rule_and_random_baselines_follow_labels(labels: str) -> None:
    side = _never_occurring_class(51)
    y = side.y_true
    options = _declared_options(labels)
    model = prepare_side(side, **options)
    zero = prepare_zero_rule(model)
    assert zero.labels == labels
    rule = zero_rule_predictions(y, n_classes=DECLARED_K, positive=None)
    direct = prepare_side(rule, **options)
    assert zero.values == pytest.approx(direct.values, nan_ok=True)
    _assert_equals_sklearn(
        {m: None if math.isnan(v) else v for m, v in zero.values.items()},
        _sklearn_values(rule, LABELS_NAMES, labels),
    )
    closed = zero_rule_metrics(
        y,
        n_classes=DECLARED_K,
        positive=None,
        metrics=LABELS_NAMES,
        class_names=_names(DECLARED_K),
        labels=labels,
    )
    _assert_equals_sklearn(closed.metrics, _sklearn_values(rule, LABELS_NAMES, labels))
    # random baselines: scikit-learn on the expected confusion matrix's pseudo-rows (uniform
    # predicts class 3 too, so it occurs; the prior never does)
    kw: dict[str, Any] = {"labels": range(DECLARED_K)} if labels == "declared" else {}
    for strategy in ("uniform", "prior"):
        report = expected_random_metrics(
            y,
            n_classes=DECLARED_K,
            positive=None,
            strategy=strategy,
            metrics=LABELS_NAMES,
            labels=labels,
        )
        weight = expected_confusion(y, n_classes=DECLARED_K, strategy=strategy).ravel()
        keep = weight > 0
        true_code, pred_code = np.divmod(np.arange(DECLARED_K**2), DECLARED_K)
        for name, fn in (("f1_macro", skm.f1_score), ("precision_macro", skm.precision_score)):
            reference = fn(
                true_code[keep],
                pred_code[keep],
                sample_weight=weight[keep],
                average="macro",
                zero_division=0,
                **kw,
            )
            assert report.metrics[name] == pytest.approx(reference, rel=1e-12), (strategy, name)
        # constant scores: AUC 1/2 for each class with rows, undefined when one is declared without
        assert report.metrics["roc_auc"] == (None if labels == "declared" else pytest.approx(0.5))


def _scaled(a: Any, b: Any, factor: float) -> None:
    """``b == factor * a`` for numbers or (low, high) intervals."""
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert y == pytest.approx(factor * x, rel=1e-9, abs=1e-12)
    else:
        assert b == pytest.approx(factor * a, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", ["delta_method", "bootstrap"])
@pytest.mark.parametrize("paired", [True, False])
def test_compare_follows_the_sides_labels(paired: bool, method: str) -> None:
    """Every replicate and influence term follows the sides' labels: with class 3 declared but
    absent from every row (and resample), the macro differences and their intervals are 3/4 of
    the present ones (the same draws); the metrics that do not depend on labels are unchanged."""
    model_side = _never_occurring_class(52, skill=0.6)
    # paired: the same seed draws the same labels (other probabilities); unpaired: other rows
    baseline_side = _never_occurring_class(52 if paired else 53, skill=0.3, n=1500 if paired else 1200)
    if paired:
        assert np.array_equal(baseline_side.y_true, model_side.y_true)
    options: dict[str, Any] = {
        "paired": paired,
        "primary_metric": "f1_macro",
        "samples": 300,
        "seed": 5,
        "interval_method": method,
    }
    result: dict[str, Comparison] = {}
    for labels in ("present", "declared"):
        m = prepare_side(model_side, **_declared_options(labels))
        b = prepare_side(baseline_side, **_declared_options(labels))
        c = compare(m, b, **_declared_options(None), **options)
        result[labels] = c
        for name, s in c.significance.items():
            mv, bv = m.values[name], b.values[name]
            assert s.model == (None if math.isnan(mv) else mv), name
            assert s.baseline == (None if math.isnan(bv) else bv), name
        _assert_equals_sklearn(
            {n: s.model for n, s in c.significance.items()}, _sklearn_values(model_side, LABELS_NAMES, labels)
        )
        # raw sides compared with the labels, or a raw side next to a prepared one, give the same
        raw = compare(model_side, baseline_side, **_declared_options(labels), **options)
        _assert_same_comparison(c, raw)
        _assert_same_comparison(c, compare(m, baseline_side, **_declared_options(None), **options))
    present, declared = result["present"].significance, result["declared"].significance
    for name in SCALED:
        p, d = present[name], declared[name]
        assert p.difference_interval is not None and d.difference_interval is not None, name
        _scaled(p.lift, d.lift, 0.75)
        _scaled(
            (p.difference_interval.low, p.difference_interval.high),
            (d.difference_interval.low, d.difference_interval.high),
            0.75,
        )
    for name in UNCHANGED:
        assert declared[name] == present[name], name
    assert present["roc_auc"].verdict != "undefined" and present["roc_auc"].model is not None
    assert declared["roc_auc"].verdict == "undefined" and declared["roc_auc"].model is None


def test_compare_refuses_sides_prepared_with_different_labels() -> None:
    side = _never_occurring_class(54)
    present = prepare_side(side, **_declared_options("present"))
    declared = prepare_side(side, **_declared_options("declared"))
    options: dict[str, Any] = {"paired": True, "primary_metric": "accuracy", **_declared_options(None)}
    for m, b in ((present, declared), (declared, present)):
        with pytest.raises(ValueError, match="different labels"):
            compare(m, b, **options)
    with pytest.raises(ValueError, match="different labels"):
        compare(declared, declared, labels="present", **options)
    with pytest.raises(ValueError, match="different labels"):
        compare(declared, side, labels="present", **options)
    with pytest.raises(ValueError, match="labels must be"):
        compare(side, side, labels="all", **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="labels must be"):
        prepare_side(side, **_declared_options("all"))
    expected = expected_random_metrics(
        side.y_true, n_classes=DECLARED_K, positive=None, strategy="prior", metrics=LABELS_NAMES
    )
    with pytest.raises(ValueError, match="different labels"):
        compare_to_expected(
            declared, expected, labels="present", primary_metric="accuracy", **_declared_options(None)
        )
    # regression sides have no classes to average: their labels are not compared
    reg = Side(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.5]))
    a = prepare_side(reg, task="regression", metrics=["mae"], labels="declared")
    b = prepare_side(reg, task="regression", metrics=["mae"])
    assert compare(a, b, task="regression", metrics=["mae"], paired=True, primary_metric="mae").beats is False


def test_compare_to_expected_resamples_the_model_with_its_labels() -> None:
    """The model's replicates follow its labels: (interval + baseline) scales by 3/4 for the macro
    label metrics, the baseline value being the closed form with the same labels."""
    side = _never_occurring_class(55, skill=0.6)
    shifted: dict[str, dict[str, tuple[float, float]]] = {}
    for labels in ("present", "declared"):
        model = prepare_side(side, **_declared_options(labels))
        expected = expected_random_metrics(
            side.y_true,
            n_classes=DECLARED_K,
            positive=None,
            strategy="prior",
            metrics=LABELS_NAMES,
            labels=labels,
        )
        c = compare_to_expected(
            model, expected, primary_metric="f1_macro", samples=300, seed=3, **_declared_options(None)
        )
        shifted[labels] = {}
        for name in ("f1_macro", "precision_macro", "recall_macro"):
            s = c.significance[name]
            assert s.model == pytest.approx(model.values[name]) and s.baseline == expected.metrics[name]
            assert s.difference_interval is not None and s.baseline is not None
            low, high = s.difference_interval.low, s.difference_interval.high
            shifted[labels][name] = (low + s.baseline, high + s.baseline)
        assert (c.significance["roc_auc"].verdict == "undefined") == (labels == "declared")
    for name, interval in shifted["present"].items():
        _scaled(interval, shifted["declared"][name], 0.75)
