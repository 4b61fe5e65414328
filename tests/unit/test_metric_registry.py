"""The metric registry: every trait said once, and a metric added in one place reaches every engine.

A binary ``specificity`` (TN / (TN + FP), a proportion of the negative rows) and Youden's
``youden_j`` (recall + specificity - 1, a formula of the confusion matrix) are registered by
a fixture and removed afterwards; evaluation, bootstrap intervals, baseline comparisons and
the slice report must compute them, each value checked against scikit-learn or scipy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from service.workers.baselines import Side, compare, compare_to_expected, expected_random_metrics
from service.workers.bootstrap import classification_intervals
from service.workers.metrics import (
    METRICS,
    classification_metrics,
    confusion_metric_values,
    default_metrics,
    register_metric,
    unregister_metric,
    validate_metric_names,
)
from service.workers.metrics.registry import proportion_value
from service.workers.slices import slice_report


def _specificity(cm: np.ndarray, positive: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    if positive is None:
        return None
    negative = 1 - positive
    return cm[..., negative, negative], cm[..., negative, :].sum(axis=-1)


def _youden_j(cm: np.ndarray, positive: int | None) -> np.ndarray:
    assert positive is not None
    negative = 1 - positive
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = cm[..., positive, positive] / cm[..., positive, :].sum(axis=-1)
        tnr = cm[..., negative, negative] / cm[..., negative, :].sum(axis=-1)
    return np.asarray(tpr + tnr - 1.0)


@pytest.fixture
def added() -> Iterator[None]:
    register_metric("specificity", ["binary"], "TN / (TN + FP).", proportion=_specificity)
    register_metric(
        "youden_j", ["binary"], "recall + specificity - 1.", formula=_youden_j, bounds=(-1.0, 1.0)
    )
    try:
        yield
    finally:
        unregister_metric("specificity")
        unregister_metric("youden_j")


def _predictions(n: int, seed: int, hit: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(np.intp)
    pred = np.where(rng.random(n) < hit, y, 1 - y)
    return y, pred


def _sk_specificity(y: np.ndarray, pred: np.ndarray) -> float:
    return float(skm.recall_score(y, pred, pos_label=0))


# --------------------------------------------------------------------------- the registry itself


def test_every_trait_is_consistent() -> None:
    for name, info in METRICS.items():
        low, high = info.bounds
        assert low < high and info.perfect in (low, high), name
        assert info.needs_scores == (info.source == "scores"), name
        if name.endswith(("_loss", "_error", "_score")) and name != "balanced_accuracy":
            assert not info.greater_is_better, name  # sklearn's naming carries the direction
        if info.kind == "proportion":
            assert info.source == "confusion" and info.proportion is not None and info.interval == "wilson"
            assert info.count_test("unpaired") == "two_proportion_z", name
        if info.kind == "smooth":
            assert info.source in ("scores", "values") and info.interval in ("delta_method", "delong"), name
        if info.ranked:
            assert info.source == "scores" and info.kind == "smooth", name
    assert METRICS["roc_auc"].interval == "delong"
    assert METRICS["accuracy"].count_tests == {
        "paired": "mcnemar_exact", "unpaired": "two_proportion_z", "expected": "binomial"
    }  # fmt: skip
    assert {m for m, i in METRICS.items() if i.kind == "order"} == {"median_ae", "max_error"}


@pytest.mark.parametrize("positive", [0, 1, None])
def test_proportions_of_the_registry_equal_the_built_in_formulas(positive: int | None) -> None:
    """The successes and trials the tests use give exactly the value the metrics worker reports."""
    rng = np.random.default_rng(4)
    k = 2 if positive is not None else 4
    stack = rng.integers(0, 30, size=(50, k, k))
    stack[0] = 0  # an empty matrix: undefined everywhere
    task = "binary" if positive is not None else "multiclass"
    names = [m for m, i in METRICS.items() if i.kind == "proportion" and task in i.tasks]
    assert names
    values = confusion_metric_values(stack, names, positive=positive)
    for name in names:
        parts = METRICS[name].proportion(stack, positive)  # type: ignore[misc]
        assert parts is not None
        np.testing.assert_allclose(proportion_value(parts), values[name], rtol=1e-15, err_msg=name)


def test_registration_is_refused_for_what_the_engines_cannot_compute() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("accuracy", ["binary"], "again", proportion=_specificity)
    with pytest.raises(ValueError, match="confusion"):
        register_metric("auc_2", ["regression"], "no", formula=_youden_j)
    with pytest.raises(ValueError, match="exactly one"):
        register_metric("both", ["binary"], "no", proportion=_specificity, formula=_youden_j)
    with pytest.raises(ValueError, match="not a registered metric that can be removed"):
        unregister_metric("accuracy")
    assert "both" not in METRICS and "auc_2" not in METRICS


def test_the_fixture_leaves_the_registry_as_it_found_it(added: None) -> None:
    assert METRICS["specificity"].kind == "proportion" and METRICS["youden_j"].kind == "confusion"
    assert "specificity" not in default_metrics("binary", has_scores=True)
    validate_metric_names("binary", ["specificity", "youden_j"], has_scores=False)
    with pytest.raises(ValueError, match="not defined for multiclass"):
        validate_metric_names("multiclass", ["specificity"], has_scores=False)


# --------------------------------------------------------------------------- the engines


def test_evaluation_computes_a_registered_metric(added: None) -> None:
    y, pred = _predictions(700, seed=1, hit=0.8)
    report = classification_metrics(
        y, pred, n_classes=2, class_names=["no", "yes"], positive=1, scores=None,
        metrics=["accuracy", "specificity", "youden_j"],
    )  # fmt: skip
    assert report.metrics["specificity"] == pytest.approx(_sk_specificity(y, pred), rel=1e-12)
    youden = skm.balanced_accuracy_score(y, pred, adjusted=True)
    assert report.metrics["youden_j"] == pytest.approx(youden, rel=1e-12)
    # weighted rows: integer weights equal repeated rows
    w = np.random.default_rng(2).integers(0, 4, y.size)
    weighted = classification_metrics(
        y, pred, n_classes=2, class_names=["no", "yes"], positive=1, scores=None,
        metrics=["specificity"], sample_weight=w,
    )  # fmt: skip
    sk = skm.recall_score(y, pred, pos_label=0, sample_weight=w)
    assert weighted.metrics["specificity"] == pytest.approx(sk, rel=1e-12)
    # no negative row: undefined, with a reason
    positives = classification_metrics(
        np.ones(5, np.intp), np.ones(5, np.intp), n_classes=2, class_names=["no", "yes"], positive=1,
        scores=None, metrics=["specificity"],
    )  # fmt: skip
    assert positives.metrics["specificity"] is None and "specificity" in positives.undefined


def test_bootstrap_intervals_of_a_registered_metric(added: None) -> None:
    y, pred = _predictions(1500, seed=3, hit=0.75)
    iv = classification_intervals(
        y,
        pred,
        n_classes=2,
        positive=1,
        scores=None,
        metrics=["specificity", "youden_j"],
        samples=600,
        seed=5,
    )
    # the same resampled confusion matrices as recall of the negative class
    as_recall = classification_intervals(
        y, pred, n_classes=2, positive=0, scores=None, metrics=["recall"], samples=600, seed=5
    )
    assert iv["specificity"] == as_recall["recall"]
    # an independent row bootstrap with scikit-learn agrees within its Monte Carlo error
    rng = np.random.default_rng(9)
    rows = [rng.integers(0, y.size, y.size) for _ in range(600)]
    reference = {
        "specificity": [_sk_specificity(y[r], pred[r]) for r in rows],
        "youden_j": [skm.balanced_accuracy_score(y[r], pred[r], adjusted=True) for r in rows],
    }
    for name, values in reference.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert iv[name].low == pytest.approx(low, abs=0.012), name
        assert iv[name].high == pytest.approx(high, abs=0.012), name


def test_baseline_comparisons_of_a_registered_metric(added: None) -> None:
    y, good = _predictions(1200, seed=6, hit=0.85)
    poor = np.where(np.random.default_rng(8).random(y.size) < 0.6, y, 1 - y)
    names = ["accuracy", "specificity", "youden_j"]
    options = {
        "task": "binary",
        "n_classes": 2,
        "positive": 1,
        "metrics": names,
        "primary_metric": "specificity",
    }
    paired = compare(Side(y, good), Side(y, poor), paired=True, **options)  # type: ignore[arg-type]
    spec = paired.significance["specificity"]
    lift = _sk_specificity(y, good) - _sk_specificity(y, poor)
    assert spec.lift == pytest.approx(lift, rel=1e-12)
    assert spec.test == "paired_bootstrap" and spec.verdict == "better" and paired.beats is True
    assert spec.difference_interval is not None and spec.difference_interval.low > 0
    youden = paired.significance["youden_j"]
    sk_lift = skm.balanced_accuracy_score(y, good, adjusted=True) - skm.balanced_accuracy_score(
        y, poor, adjusted=True
    )
    assert youden.lift == pytest.approx(sk_lift, rel=1e-12) and youden.test == "paired_bootstrap"

    # unpaired: the registry's successes and trials feed the two-proportion z test (= chi-square)
    y2, other = _predictions(900, seed=10, hit=0.7)
    unpaired = compare(Side(y, good), Side(y2, other), paired=False, **options)  # type: ignore[arg-type]
    c = unpaired.significance["specificity"]
    x1, n1 = int(np.sum((y == 0) & (good == 0))), int(np.sum(y == 0))
    x2, n2 = int(np.sum((y2 == 0) & (other == 0))), int(np.sum(y2 == 0))
    reference = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False).pvalue
    assert c.test == "two_proportion_z" and c.p_value == pytest.approx(reference, rel=1e-9)
    assert c.baseline == pytest.approx(_sk_specificity(y2, other), rel=1e-12)
    assert unpaired.significance["youden_j"].test == "unpaired_bootstrap"

    # a random baseline in closed form: specificity is the rate of predicting the negative class
    for strategy, expected in (("uniform", 0.5), ("prior", float(np.mean(y == 0)))):
        report = expected_random_metrics(y, n_classes=2, positive=1, strategy=strategy, metrics=names)
        assert report.metrics["specificity"] == pytest.approx(expected, rel=1e-12)
        assert report.metrics["youden_j"] == pytest.approx(0.0, abs=1e-12)
        vs = compare_to_expected(Side(y, good), report, **options)  # type: ignore[arg-type]
        assert vs.significance["specificity"].verdict == "better"
        assert vs.significance["specificity"].lift == pytest.approx(_sk_specificity(y, good) - expected)


def test_slices_of_a_registered_metric(added: None) -> None:
    y, pred = _predictions(2000, seed=12, hit=0.8)
    site = np.random.default_rng(13).integers(0, 3, y.size)
    pred = np.where(site == 2, 1, pred)  # site c predicts positive everywhere: no specificity
    group, found = slice_report(
        y, pred, group_columns=[("site", site, ["a", "b", "c"])], task="binary", n_classes=2, positive=1,
        metrics=["specificity", "youden_j"], min_support=30, bootstrap_samples=300,
    )  # fmt: skip
    for code, s in enumerate(group.slices):
        rows, rest = site == code, site != code
        m = s.metrics["specificity"]
        assert m.value == pytest.approx(_sk_specificity(y[rows], pred[rows]), abs=1e-12)
        tn, negatives = int(np.sum(rows & (y == 0) & (pred == 0))), int(np.sum(rows & (y == 0)))
        wilson = stats.binomtest(tn, negatives).proportion_ci(0.95, method="wilson")
        assert m.interval is not None
        assert m.interval.low == pytest.approx(wilson.low, abs=1e-12)
        assert m.interval.high == pytest.approx(wilson.high, abs=1e-12)
        rtn, rneg = int(np.sum(rest & (y == 0) & (pred == 0))), int(np.sum(rest & (y == 0)))
        table = [[tn, negatives - tn], [rtn, rneg - rtn]]
        assert m.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
        j = s.metrics["youden_j"]
        sk = skm.balanced_accuracy_score(y[rows], pred[rows], adjusted=True)
        assert j.value == pytest.approx(sk, abs=1e-12)
        assert j.interval is not None and j.interval.low <= sk <= j.interval.high
    # the slice that never predicts the negative class is flagged on specificity (lower is worse)
    flagged = {(f["conditions"]["site"], f["metric"]) for f in found}
    assert ("c", "specificity") in flagged
