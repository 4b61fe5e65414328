"""Bootstrap intervals: seeded, correct in distribution, and honest in coverage."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm  # type: ignore[import-untyped]

from service.workers.bootstrap import (
    classification_intervals,
    classification_replicates,
    percentile_intervals,
    regression_intervals,
    regression_replicates,
)
from service.workers.metrics import (
    Labels,
    RegressionStatistics,
    ScoreStatistics,
    classification_metrics,
    confusion_counts,
    confusion_metric_values,
    default_metrics,
    regression_metrics,
)


def _binary(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    y_true = (rng.random(n) < score).astype(int)
    return y_true, (score >= 0.5).astype(int), score


def _multiclass(seed: int, k: int = 4, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probas = rng.dirichlet(np.ones(k) * 2, n)
    y_true = (probas.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    return y_true, probas.argmax(axis=1), probas


def _regression(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(5, 2, n)
    return y, y + rng.normal(0, 1, n)


def test_same_seed_same_intervals_other_seed_differs() -> None:
    y, p, s = _binary(0)
    kwargs = {"n_classes": 2, "positive": 1, "scores": s, "samples": 200}
    a = classification_intervals(y, p, seed=3, **kwargs)  # type: ignore[arg-type]
    b = classification_intervals(y, p, seed=3, **kwargs)  # type: ignore[arg-type]
    c = classification_intervals(y, p, seed=4, **kwargs)  # type: ignore[arg-type]
    assert a == b
    assert set(a) == set(default_metrics("binary", has_scores=True))
    assert all(a[m] != c[m] for m in ("accuracy", "roc_auc", "log_loss"))
    ra = regression_intervals(*_regression(0), samples=100, seed=1)
    assert ra == regression_intervals(*_regression(0), samples=100, seed=1)
    assert ra != regression_intervals(*_regression(0), samples=100, seed=2)


def test_interval_of_a_metric_does_not_depend_on_the_other_metrics() -> None:
    y, p, s = _binary(1)
    alone = classification_intervals(
        y, p, n_classes=2, positive=1, scores=s, metrics=["accuracy"], samples=100, seed=0
    )
    together = classification_intervals(
        y, p, n_classes=2, positive=1, scores=s, metrics=["roc_auc", "accuracy"], samples=100, seed=0
    )
    assert alone["accuracy"] == together["accuracy"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_intervals_contain_the_point_estimate(task: str) -> None:
    if task == "regression":
        yt, yp = _regression(2)
        point = regression_metrics(yt, yp).metrics
        intervals = regression_intervals(yt, yp, samples=300, confidence=0.95, seed=0)
    else:
        yt, yp, s = _binary(2) if task == "binary" else _multiclass(2)
        k, positive = (2, 1) if task == "binary" else (4, None)
        point = classification_metrics(
            yt, yp, n_classes=k, class_names=[str(i) for i in range(k)], positive=positive, scores=s
        ).metrics
        intervals = classification_intervals(
            yt, yp, n_classes=k, positive=positive, scores=s, samples=300, confidence=0.95, seed=0
        )
    assert set(intervals) == set(point)
    for name, iv in intervals.items():
        value = point[name]
        assert value is not None
        assert iv.low <= value <= iv.high, (name, iv, value)
        assert iv.low < iv.high, name


def test_multinomial_cells_match_row_resampling() -> None:
    """The confusion-cell shortcut has the distribution of resampling rows."""
    y, p, _ = _multiclass(5, k=3, n=250)
    names = ["accuracy", "f1_macro", "mcc", "balanced_accuracy"]
    shortcut = classification_replicates(
        y, p, n_classes=3, positive=None, scores=None, metrics=names, samples=2000, seed=0
    )
    # explicit row resampling; each resample scored through its own confusion matrix
    rng = np.random.default_rng(123)
    stack = np.empty((2000, 3, 3), dtype=np.int64)
    for b in range(2000):
        idx = rng.integers(0, y.size, y.size)
        stack[b] = confusion_counts(y[idx], p[idx], n_classes=3)
    rows = confusion_metric_values(stack, names, positive=None)
    for name in names:
        a, b = shortcut[name], rows[name]
        se = b.std() / math.sqrt(b.size)
        assert abs(a.mean() - b.mean()) < 4 * math.sqrt(2) * se, name
        assert a.std() == pytest.approx(b.std(), rel=0.1), name
        qa, qb = np.quantile(a, [0.025, 0.5, 0.975]), np.quantile(b, [0.025, 0.5, 0.975])
        assert np.abs(qa - qb).max() < 0.6 * b.std(), name
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name


def test_row_weights_equal_metrics_on_the_resampled_rows() -> None:
    """A score-metric replicate under row counts w equals sklearn on the drawn rows."""
    for y, p, s, k, positive in (
        (*_binary(6, n=200), 2, 1),
        (*_multiclass(6, k=3, n=200), 3, None),
    ):
        names = ["roc_auc", "average_precision", "log_loss", "brier_score"]
        prepared = ScoreStatistics(y, s, n_classes=k, positive=positive, names=names)
        idx = np.random.default_rng(0).integers(0, y.size, y.size)
        order = np.arange(y.size) if prepared.row_order is None else prepared.row_order
        # w in the statistics' row order; the drawn rows in original order
        w = np.bincount(np.argsort(order)[idx], minlength=y.size)
        got = prepared.values(w)
        expected = classification_metrics(
            y[idx],
            p[idx],
            n_classes=k,
            class_names=[str(i) for i in range(k)],
            positive=positive,
            scores=s[idx],
            metrics=names,
        ).metrics
        for name in names:
            assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), name


def test_regression_replicates_equal_metrics_on_the_resampled_rows() -> None:
    yt, yp = _regression(7, n=101)
    reps = regression_replicates(yt, yp, samples=3, seed=9)
    # rebuild the same draws: rows are stored by |error|, the replicate's w indexes that order
    _, row_rng = np.random.default_rng(9).spawn(2)
    order = RegressionStatistics(yt, yp, names=reps).row_order
    assert order is not None
    for b in range(3):
        idx = order[row_rng.integers(0, yt.size, yt.size)]
        expected = regression_metrics(yt[idx], yp[idx]).metrics
        for name, values in reps.items():
            assert values[b] == pytest.approx(expected[name], rel=1e-12, abs=1e-12), name


def test_coverage_is_close_to_nominal() -> None:
    """90% intervals cover the population value about 90% of the time."""
    rng = np.random.default_rng(2024)
    true_accuracy, true_mae = 0.8, math.sqrt(2 / math.pi)  # E|N(0, 1)|
    hits = {"accuracy": 0, "mae": 0}
    trials = 150
    for t in range(trials):
        y = rng.integers(0, 2, 200)
        p = np.where(rng.random(200) < true_accuracy, y, 1 - y)
        iv = classification_intervals(
            y,
            p,
            n_classes=2,
            positive=1,
            scores=None,
            metrics=["accuracy"],
            samples=400,
            confidence=0.9,
            seed=t,
        )["accuracy"]
        hits["accuracy"] += iv.low <= true_accuracy <= iv.high
        yt = rng.normal(size=150)
        ivr = regression_intervals(
            yt, yt + rng.normal(size=150), metrics=["mae"], samples=150, confidence=0.9, seed=t
        )["mae"]
        hits["mae"] += ivr.low <= true_mae <= ivr.high
    for name, h in hits.items():
        # binomial(150, 0.9): sd ~ 0.025; the percentile bootstrap is slightly liberal
        assert 0.8 <= h / trials <= 0.98, (name, h / trials)


def test_metric_undefined_in_most_replicates_gets_no_interval() -> None:
    y = np.zeros(100, dtype=int)
    p = np.r_[np.ones(3, dtype=int), np.zeros(97, dtype=int)]
    s = np.linspace(0, 1, 100)
    iv = classification_intervals(y, p, n_classes=2, positive=1, scores=s, samples=200, seed=0)
    assert "recall" not in iv and "roc_auc" not in iv and "f1" in iv and "accuracy" in iv
    # one positive among 100: ~37% of resamples lack it, so recall still gets an interval
    y1 = y.copy()
    y1[50] = 1
    reps = classification_replicates(y1, p, n_classes=2, positive=1, scores=s, samples=400, seed=0)
    undefined_share = float(np.isnan(reps["recall"]).mean())
    assert 0.25 < undefined_share < 0.5
    assert "recall" in percentile_intervals(reps, confidence=0.9)


def test_constant_regression_target_has_no_r2_interval() -> None:
    iv = regression_intervals(np.full(50, 1.0), np.linspace(0, 2, 50), samples=50, seed=0)
    assert "r2" not in iv and "mae" in iv


def test_progress_is_reported_up_to_one() -> None:
    y, p, s = _binary(8, n=100)
    seen: list[float] = []
    classification_intervals(
        y, p, n_classes=2, positive=1, scores=s, samples=120, seed=0, progress=seen.append
    )
    assert seen == sorted(seen) and seen[-1] == 1.0 and 10 <= len(seen) <= 60
    seen.clear()
    classification_intervals(
        y,
        p,
        n_classes=2,
        positive=1,
        scores=None,
        metrics=["accuracy"],
        samples=50,
        seed=0,
        progress=seen.append,
    )
    assert seen == [1.0]


def test_empty_input_has_no_intervals() -> None:
    empty = np.array([], dtype=int)
    assert classification_intervals(empty, empty, n_classes=2, positive=1, scores=None, seed=0) == {}
    assert regression_intervals(empty.astype(float), empty.astype(float), seed=0) == {}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"samples": 0}, "samples"),
        ({"samples": 2.5}, "samples"),
        ({"confidence": 1.0}, "confidence"),
        ({"seed": None}, "seed"),
        ({"metrics": ["r2"]}, "not defined for binary"),
        ({"metrics": ["roc_auc"], "scores": None}, "needs predicted probabilities"),
    ],
)
def test_misuse_raises_value_error(kwargs: dict[str, object], fragment: str) -> None:
    y, p, s = _binary(9, n=20)
    args: dict[str, object] = {"n_classes": 2, "positive": 1, "scores": s, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        classification_intervals(y, p, **args)  # type: ignore[arg-type]


def _sklearn_quiet(fn: Callable[..., float], *args: Any, **kwargs: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("labels", ["present", "declared"])
def test_replicates_apply_the_labels_rule_to_each_resample(labels: Labels) -> None:
    """Each replicate equals scikit-learn on the resampled rows: default labels (the classes
    occurring in that resample) or ``labels=range(K)``. Class 3 has two rows, so it is missing
    from some resamples; class 4 is declared and never occurs."""

    rng = np.random.default_rng(21)
    k, n = 5, 60
    y = rng.integers(0, 3, n)
    y[:2] = 3
    p = np.where(rng.random(n) < 0.7, y, rng.integers(0, 4, n))
    s = rng.dirichlet(np.ones(k), n)
    names = ["f1_macro", "precision_macro", "recall_macro", "roc_auc", "average_precision"]
    samples, seed = 40, 5
    reps = classification_replicates(
        y, p, n_classes=k, positive=None, scores=s, metrics=names, samples=samples, seed=seed, labels=labels
    )
    cell_rng, row_rng = np.random.default_rng(seed).spawn(2)
    counts = confusion_counts(y, p, n_classes=k)
    draws = cell_rng.multinomial(n, counts.ravel() / n, size=samples).reshape(samples, k, k)
    every = {} if labels == "present" else {"labels": range(k)}
    missing_rare = 0
    for b in range(samples):
        # rows rebuilt from the replicate's confusion cells
        cells = np.repeat(np.arange(k * k), draws[b].ravel())
        yt, yp = np.divmod(cells, k)
        for name in ("f1_macro", "precision_macro", "recall_macro"):
            fn = getattr(skm, name.split("_")[0] + "_score")
            expected = _sklearn_quiet(fn, yt, yp, average="macro", zero_division=0, **every)
            assert reps[name][b] == pytest.approx(expected, rel=1e-12, abs=1e-12), (name, b)
        idx = row_rng.integers(0, n, n)
        ys, ss = y[idx], s[idx]
        present = np.unique(ys)
        missing_rare += 3 not in present
        aucs = [skm.roc_auc_score(ys == c, ss[:, c]) for c in present]
        aps = [skm.average_precision_score(ys == c, ss[:, c]) for c in present]
        if labels == "present":
            assert reps["roc_auc"][b] == pytest.approx(np.mean(aucs), rel=1e-12), b
            assert reps["average_precision"][b] == pytest.approx(np.mean(aps), rel=1e-12), b
        else:  # every declared class: class 4 never has rows, so the macro AUC is undefined
            assert np.isnan(reps["roc_auc"][b])
            assert reps["average_precision"][b] == pytest.approx(np.sum(aps) / k, rel=1e-12), b
    assert missing_rare > 0  # the rare class did vanish from some resamples


def test_intervals_follow_the_labels_option() -> None:
    y, p, s = _multiclass(8, k=3, n=300)
    kwargs = {"n_classes": 4, "positive": None, "samples": 200, "seed": 1}
    s4 = np.column_stack([s, np.zeros(s.shape[0])])  # a declared class that never occurs
    names = ["f1_macro", "roc_auc"]
    present = classification_intervals(y, p, scores=s4, metrics=names, **kwargs)  # type: ignore[arg-type]
    declared = classification_intervals(
        y,
        p,
        scores=s4,
        metrics=names,
        labels="declared",
        **kwargs,  # type: ignore[arg-type]
    )
    point = classification_metrics(
        y, p, n_classes=4, class_names=list("abcd"), positive=None, scores=s4, metrics=names
    ).metrics
    for name in names:
        value = point[name]
        assert value is not None and present[name].low <= value <= present[name].high, name
    assert "roc_auc" not in declared  # undefined in every replicate with class 'd' declared
    assert declared["f1_macro"].high < present["f1_macro"].low  # 'd' counted as 0: a quarter lower
