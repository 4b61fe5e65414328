"""The metrics worker against scikit-learn, driven by the metric registry.

In the manner of ``sklearn/metrics/tests/test_common.py``: every registry metric
has a reference (a scikit-learn call) in ``REFERENCES``, and named input cases
(random data, ties, a class never predicted, one class only, weights...) run
through every applicable metric. A reference that scikit-learn reports as
undefined (``UndefinedMetricWarning`` / ``nan``, or our documented rule) must be
``None`` with a reason on our side; everything else must agree to 1e-9.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from schemas.metrics import MetricsReport
from service.workers.metrics import (
    METRICS,
    TASKS,
    classification_metrics,
    default_metrics,
    regression_metrics,
    validate_metric_names,
)

TOL = 1e-9


@dataclass(frozen=True)
class Case:
    """One named input: codes for classification, values for regression."""

    name: str
    task: str
    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None = None
    n_classes: int = 0
    positive: int | None = None
    weight: np.ndarray | None = None
    labels: str = "present"

    @property
    def class_names(self) -> list[str]:
        return [f"c{k}" for k in range(self.n_classes)]

    def run(self, metrics: list[str] | None = None, *, order: np.ndarray | None = None) -> MetricsReport:
        take = (lambda a: a) if order is None else (lambda a: None if a is None else a[order])
        if self.task == "regression":
            return regression_metrics(
                take(self.y_true), take(self.y_pred), metrics=metrics, sample_weight=take(self.weight)
            )
        return classification_metrics(
            take(self.y_true),
            take(self.y_pred),
            n_classes=self.n_classes,
            class_names=self.class_names,
            positive=self.positive,
            scores=take(self.scores),
            metrics=metrics,
            sample_weight=take(self.weight),
            labels=self.labels,  # type: ignore[arg-type]
        )

    def repeated(self) -> Case:
        """The same data with every row repeated ``weight`` times (integer weights)."""
        assert self.weight is not None
        reps = self.weight.astype(int)

        def rep(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.repeat(a, reps, axis=0)

        return replace(
            self,
            name=self.name + "-repeated",
            y_true=rep(self.y_true),
            y_pred=rep(self.y_pred),
            scores=rep(self.scores),
            weight=None,
        )


# ----------------------------------------------------------------------------- references


def _quiet(fn: Callable[[], float]) -> float:
    """Call a scikit-learn reference; an UndefinedMetricWarning means undefined (NaN)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(fn())
    if any(issubclass(w.category, skm._classification.UndefinedMetricWarning) for w in caught):
        return math.nan
    return value


def _present(c: Case) -> np.ndarray:
    """Classes with positive (weighted) support."""
    w = np.ones(c.y_true.size) if c.weight is None else c.weight
    return np.flatnonzero(np.bincount(c.y_true, weights=w, minlength=c.n_classes) > 0)


def _binary_probas(c: Case) -> np.ndarray:
    assert c.scores is not None and c.positive is not None
    p = np.empty((c.scores.size, 2), dtype=c.scores.dtype)
    p[:, c.positive] = c.scores
    p[:, 1 - c.positive] = 1 - c.scores
    return p


def _kept(c: Case) -> Case:
    """The rows of positive weight (a row of weight 0 does not make its class occur)."""
    if c.weight is None:
        return c
    keep = c.weight > 0
    return replace(
        c,
        y_true=c.y_true[keep],
        y_pred=c.y_pred[keep],
        scores=None if c.scores is None else c.scores[keep],
        weight=c.weight[keep],
    )


def _prf(fn: Callable[..., float], average: str | None) -> Callable[[Case], float]:
    def ref(c: Case) -> float:
        if average is None:  # binary: the positive class, NaN on zero division
            return _quiet(
                lambda: fn(
                    c.y_true, c.y_pred, pos_label=c.positive, zero_division=np.nan, sample_weight=c.weight
                )
            )
        if c.labels == "present":
            # scikit-learn's default labels: unique_labels(y_true, y_pred)
            k = _kept(c)
            if not k.y_true.size:
                return math.nan
            return _quiet(
                lambda: fn(k.y_true, k.y_pred, average=average, zero_division=0, sample_weight=k.weight)
            )
        return _quiet(
            lambda: fn(
                c.y_true,
                c.y_pred,
                labels=range(c.n_classes),
                average=average,
                zero_division=0,
                sample_weight=c.weight,
            )
        )

    return ref


def _roc_auc(c: Case) -> float:
    assert c.scores is not None
    if c.positive is not None:
        return _quiet(lambda: skm.roc_auc_score(c.y_true == c.positive, c.scores, sample_weight=c.weight))
    if c.labels == "present":
        # the mean of scikit-learn's binary one-vs-rest AUCs over the classes with labeled rows
        present = _present(c)
        if present.size < 2:
            return math.nan
        s = c.scores

        def one_vs_rest(k: int) -> float:
            return _quiet(lambda: skm.roc_auc_score(c.y_true == k, s[:, k], sample_weight=c.weight))

        return float(np.mean([one_vs_rest(k) for k in present]))
    return _quiet(
        lambda: skm.roc_auc_score(
            c.y_true,
            c.scores,
            multi_class="ovr",
            average="macro",
            labels=range(c.n_classes),
            sample_weight=c.weight,
        )
    )


def _average_precision(c: Case) -> float:
    # our rule: undefined unless at least two classes are present (sklearn gives
    # 0.0 with a warning without positives and 1.0 without negatives)
    assert c.scores is not None
    present = _present(c)
    if present.size < 2:
        return math.nan
    if c.positive is not None:
        is_pos = c.y_true == c.positive
        return _quiet(lambda: skm.average_precision_score(is_pos, c.scores, sample_weight=c.weight))
    classes = present if c.labels == "present" else np.arange(c.n_classes)
    onehot = (c.y_true[:, None] == classes[None, :]).astype(int)
    scores = c.scores[:, classes]
    return _quiet(
        lambda: skm.average_precision_score(onehot, scores, average="macro", sample_weight=c.weight)
    )


def _log_loss(c: Case) -> float:
    probas = _binary_probas(c) if c.positive is not None else c.scores
    return _quiet(lambda: skm.log_loss(c.y_true, probas, labels=range(c.n_classes), sample_weight=c.weight))


def _brier(c: Case) -> float:
    if c.positive is not None:
        return _quiet(
            lambda: skm.brier_score_loss(c.y_true, c.scores, pos_label=c.positive, sample_weight=c.weight)
        )
    return _quiet(
        lambda: skm.brier_score_loss(c.y_true, c.scores, labels=range(c.n_classes), sample_weight=c.weight)
    )


def _r2(c: Case) -> float:
    w = np.ones(c.y_true.size) if c.weight is None else c.weight
    kept = c.y_true[w > 0]
    if kept.size == 0 or kept.min() == kept.max():
        return math.nan  # our rule: constant y_true (sklearn force_finite says 0.0 / 1.0)
    return _quiet(lambda: skm.r2_score(c.y_true, c.y_pred, sample_weight=c.weight))


def _max_error(c: Case) -> float:
    # sklearn's max_error takes no weights: the maximum over rows with positive weight
    keep = slice(None) if c.weight is None else c.weight > 0
    return _quiet(lambda: skm.max_error(c.y_true[keep], c.y_pred[keep]))


def _plain(fn: Callable[..., float]) -> Callable[[Case], float]:
    return lambda c: _quiet(lambda: fn(c.y_true, c.y_pred, sample_weight=c.weight))


REFERENCES: dict[str, Callable[[Case], float]] = {
    "accuracy": _plain(skm.accuracy_score),
    "balanced_accuracy": _plain(skm.balanced_accuracy_score),
    "mcc": _plain(skm.matthews_corrcoef),
    "roc_auc": _roc_auc,
    "average_precision": _average_precision,
    "log_loss": _log_loss,
    "brier_score": _brier,
    "mae": _plain(skm.mean_absolute_error),
    "rmse": _plain(skm.root_mean_squared_error),
    "r2": _r2,
    "mape": _plain(skm.mean_absolute_percentage_error),
    "median_ae": _plain(skm.median_absolute_error),
    "max_error": _max_error,
    **{
        base + suffix: _prf(fn, average)
        for base, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        )
        for suffix, average in (
            ("", None),
            ("_macro", "macro"),
            ("_micro", "micro"),
            ("_weighted", "weighted"),
        )
    },
}


# ----------------------------------------------------------------------------- cases


def _binary(name: str, seed: int, n: int = 300, *, positive: int = 1, decimals: int | None = None) -> Case:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    if decimals is not None:
        score = np.round(score, decimals)  # ties
    y_true = np.where(rng.random(n) < score, positive, 1 - positive)
    y_pred = np.where(score >= 0.5, positive, 1 - positive)
    return Case(name, "binary", y_true, y_pred, score, 2, positive)


def _multiclass(name: str, seed: int, k: int, n: int = 300, *, prototypes: int | None = None) -> Case:
    rng = np.random.default_rng(seed)
    if prototypes is None:
        probas = rng.dirichlet(np.ones(k), n)
    else:  # rows drawn from a few distinct probability vectors: many ties
        probas = rng.dirichlet(np.ones(k), prototypes)[rng.integers(0, prototypes, n)]
    y_true = (probas.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    return Case(name, "multiclass", y_true, probas.argmax(axis=1), probas, k, None)


def _regression(name: str, seed: int, n: int = 300) -> Case:
    rng = np.random.default_rng(seed)
    y_true = rng.normal(3, 2, n)
    return Case(name, "regression", y_true, y_true + rng.normal(0, 1, n))


def _with_weights(c: Case, seed: int) -> Case:
    w = np.random.default_rng(seed).integers(0, 4, c.y_true.size).astype(float)
    return replace(c, name=c.name + "-weighted", weight=w)


def _never_predicted(c: Case, klass: int) -> Case:
    """Predictions re-routed so that ``klass`` is never predicted."""
    y_pred = np.where(c.y_pred == klass, (klass + 1) % c.n_classes, c.y_pred)
    return replace(c, name=f"{c.name}-never-predicts-{klass}", y_pred=y_pred)


def _only(c: Case, klass: int) -> Case:
    """Only the rows whose true class is ``klass``."""
    keep = c.y_true == klass
    return replace(
        c,
        name=f"{c.name}-only-{klass}",
        y_true=c.y_true[keep],
        y_pred=c.y_pred[keep],
        scores=None if c.scores is None else c.scores[keep],
    )


def _drop(c: Case, klass: int) -> Case:
    """Rows of class ``klass`` removed from y_true (the class stays declared)."""
    keep = c.y_true != klass
    return replace(
        c,
        name=f"{c.name}-without-{klass}",
        y_true=c.y_true[keep],
        y_pred=c.y_pred[keep],
        scores=c.scores[keep] if c.scores is not None else None,
    )


def _cases() -> list[Case]:
    b = [_binary(f"binary-{s}", s) for s in (0, 1, 2)]
    m = [_multiclass(f"multiclass{k}-{s}", s, k) for s, k in ((0, 3), (1, 4), (2, 5))]
    r = [_regression(f"regression-{s}", s) for s in (0, 1, 2)]
    cases = [
        *b,
        _binary("binary-positive0", 3, positive=0),
        _binary("binary-ties", 4, decimals=1),
        _binary("binary-small", 5, n=7),
        _never_predicted(b[0], 1),
        _only(b[1], 0),
        _only(b[1], 1),
        _only(_never_predicted(b[2], 1), 0),
        *m,
        _multiclass("multiclass-ties", 6, 4, prototypes=12),
        _never_predicted(m[0], 2),
        _drop(m[1], 3),
        _only(m[2], 1),
        _drop(_never_predicted(m[1], 0), 0),
        *r,
        replace(r[0], name="regression-constant", y_true=np.full(50, 2.5), y_pred=r[0].y_pred[:50]),
        replace(r[1], name="regression-zeros", y_true=np.where(np.arange(300) % 10 == 0, 0.0, r[1].y_true)),
        replace(r[2], name="regression-one-row", y_true=r[2].y_true[:1], y_pred=r[2].y_pred[:1]),
        replace(r[2], name="regression-even", y_true=r[2].y_true[:10], y_pred=r[2].y_pred[:10]),
    ]
    weighted = [_with_weights(c, 100 + i) for i, c in enumerate(cases) if c.y_true.size > 1]
    return cases + weighted


CASES = _cases()


def _metrics_for(c: Case) -> list[str]:
    task = c.task
    return [n for n, m in METRICS.items() if task in m.tasks and (c.scores is not None or not m.needs_scores)]


def _assert_matches(c: Case, report: MetricsReport, ref_case: Case | None = None) -> None:
    ref_case = ref_case or c
    for name in _metrics_for(c):
        expected = REFERENCES[name](ref_case)
        got = report.metrics[name]
        if math.isnan(expected):
            assert got is None, f"{c.name}: {name} = {got}, sklearn says undefined"
            assert report.undefined.get(name), f"{c.name}: {name} is None without a reason"
        else:
            why = report.undefined.get(name)
            assert got is not None, f"{c.name}: {name} is None ({why}), sklearn {expected}"
            close = math.isclose(got, expected, rel_tol=TOL, abs_tol=TOL)
            assert close, f"{c.name}: {name} {got} != {expected}"
            assert name not in report.undefined


# ----------------------------------------------------------------------------- the suite


def test_every_registry_metric_has_a_reference() -> None:
    assert set(REFERENCES) == set(METRICS)
    for info in METRICS.values():
        assert info.tasks and info.tasks <= set(TASKS)
        lower_is_better = {"log_loss", "brier_score", "mae", "rmse", "mape", "median_ae", "max_error"}
        assert info.greater_is_better == (info.name not in lower_is_better), info.name
        assert info.needs_scores == (info.source == "scores")


@pytest.mark.parametrize("labels", ["present", "declared"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_equals_sklearn(case: Case, labels: str) -> None:
    """``present``: scikit-learn's default labels; ``declared``: ``labels=range(K)``."""
    case = replace(case, labels=labels)
    _assert_matches(case, case.run(_metrics_for(case)))


@pytest.mark.parametrize("labels", ["present", "declared"])
@pytest.mark.parametrize("case", [c for c in CASES if c.weight is not None], ids=lambda c: c.name)
def test_integer_weights_equal_repeated_rows(case: Case, labels: str) -> None:
    case = replace(case, labels=labels)
    repeated = case.repeated()
    ours_weighted = case.run(_metrics_for(case))
    ours_repeated = repeated.run(_metrics_for(case))
    _assert_matches(case, ours_weighted, ref_case=repeated)
    for name, value in ours_weighted.metrics.items():
        other = ours_repeated.metrics[name]
        assert (value is None) == (other is None), name
        if value is not None and other is not None:
            assert math.isclose(value, other, rel_tol=TOL, abs_tol=TOL), name


@pytest.mark.parametrize("case", [c for c in CASES if c.task != "regression"], ids=lambda c: c.name)
def test_per_class_and_confusion_matrix_equal_sklearn(case: Case) -> None:
    report = case.run(_metrics_for(case))
    labels = range(case.n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = skm.precision_recall_fscore_support(
            case.y_true, case.y_pred, labels=labels, zero_division=np.nan, sample_weight=case.weight
        )
    expected_cm = skm.confusion_matrix(case.y_true, case.y_pred, labels=labels)
    assert report.confusion_matrix is not None and report.per_class is not None
    assert report.confusion_matrix.labels == case.class_names
    assert report.confusion_matrix.matrix == expected_cm.tolist()
    for k, name in enumerate(case.class_names):
        got = report.per_class[name]
        assert got.support == int(expected_cm[k].sum())
        for metric, ref in (("precision", p[k]), ("recall", r[k]), ("f1", f[k])):
            value = getattr(got, metric)
            if np.isnan(ref):
                assert value is None
                assert name in report.undefined[f"per_class.{name}.{metric}"]
            else:
                assert value is not None and math.isclose(value, ref, rel_tol=TOL, abs_tol=TOL)


@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: c.name)
def test_invariant_to_row_order(case: Case) -> None:
    order = np.random.default_rng(7).permutation(case.y_true.size)
    a, b = case.run(), case.run(order=order)
    assert a.undefined == b.undefined and a.notes == b.notes
    for name, value in a.metrics.items():
        other = b.metrics[name]
        if value is None or other is None:
            assert value is None and other is None, name
        else:
            assert math.isclose(value, other, rel_tol=1e-12, abs_tol=1e-12), name


def test_float32_scores_are_computed_in_float64() -> None:
    c = CASES[0]
    assert c.scores is not None
    as32 = replace(c, scores=c.scores.astype(np.float32))
    ref = replace(c, scores=as32.scores.astype(np.float64))  # type: ignore[union-attr]
    _assert_matches(as32, as32.run(_metrics_for(as32)), ref_case=ref)


def test_string_labels_via_np_unique() -> None:
    rng = np.random.default_rng(11)
    classes = np.array(["bird", "cat", "dog"])
    probas = rng.dirichlet(np.ones(3), 200)
    y_true_str = classes[(probas.cumsum(axis=1) < rng.random((200, 1))).sum(axis=1).clip(0, 2)]
    y_pred_str = classes[probas.argmax(axis=1)]
    names, codes = np.unique(np.concatenate([classes, y_true_str, y_pred_str]), return_inverse=True)
    y_true, y_pred = codes[3:203], codes[203:]
    report = classification_metrics(
        y_true, y_pred, n_classes=3, class_names=list(names), positive=None, scores=probas
    )
    f1_macro = skm.f1_score(y_true_str, y_pred_str, average="macro")
    assert report.metrics["f1_macro"] == pytest.approx(f1_macro, rel=TOL)
    assert report.metrics["mcc"] == pytest.approx(skm.matthews_corrcoef(y_true_str, y_pred_str), rel=TOL)
    log_loss = skm.log_loss(y_true_str, probas, labels=classes)
    assert report.metrics["log_loss"] == pytest.approx(log_loss, rel=TOL)
    assert report.confusion_matrix is not None
    expected_cm = skm.confusion_matrix(y_true_str, y_pred_str, labels=classes)
    assert report.confusion_matrix.matrix == expected_cm.tolist()
    # binary with string labels: positive is "yes"
    yes_no = np.array(["no", "yes"])
    score = rng.random(100)
    yt_str = yes_no[(rng.random(100) < score).astype(int)]
    yp_str = yes_no[(score >= 0.5).astype(int)]
    _, codes = np.unique(np.concatenate([yes_no, yt_str, yp_str]), return_inverse=True)
    report = classification_metrics(
        codes[2:102], codes[102:], n_classes=2, class_names=["no", "yes"], positive=1, scores=score
    )
    assert report.metrics["f1"] == pytest.approx(skm.f1_score(yt_str, yp_str, pos_label="yes"), rel=TOL)
    assert report.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(yt_str == "yes", score), rel=TOL)


# ----------------------------------------------------------------------------- undefined values and notes


def test_binary_undefined_values_have_actionable_reasons() -> None:
    y = np.zeros(20, dtype=int)
    report = classification_metrics(
        y, y, n_classes=2, class_names=["ok", "fraud"], positive=1, scores=np.full(20, 0.1)
    )
    m = report.metrics
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["accuracy"] == 1.0 and m["mcc"] == 0.0
    assert "'fraud'" in report.undefined["precision"] and "predicted" in report.undefined["precision"]
    assert "'fraud'" in report.undefined["recall"]
    assert "two classes" in report.undefined["roc_auc"]
    assert "mcc" in report.notes
    assert report.per_class is not None and report.per_class["fraud"].support == 0
    assert "per_class.fraud.recall" in report.undefined


def test_macro_average_notes_name_the_zeroed_class() -> None:
    y_true = np.array([0, 1, 2, 0, 1, 2])
    y_pred = np.array([0, 1, 1, 0, 1, 0])
    report = classification_metrics(
        y_true,
        y_pred,
        n_classes=3,
        class_names=["a", "b", "c"],
        positive=None,
        scores=None,
        metrics=["precision_macro", "precision_weighted", "recall_macro", "f1_macro"],
    )
    assert report.metrics["precision_macro"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert "'c'" in report.notes["precision_macro"] and "zero_division=0" in report.notes["precision_macro"]
    assert "'c'" in report.notes["precision_weighted"]
    assert "recall_macro" not in report.notes and "f1_macro" not in report.notes
    assert report.undefined == {"per_class.c.precision": report.undefined["per_class.c.precision"]}


def test_multiclass_auc_with_absent_class_is_undefined_and_ap_noted_when_declared() -> None:
    c = replace(_drop(_multiclass("m", 0, 4), 3), labels="declared")
    report = c.run(["roc_auc", "average_precision", "balanced_accuracy"])
    assert report.metrics["roc_auc"] is None and "'c3'" in report.undefined["roc_auc"]
    assert report.metrics["average_precision"] is not None and "'c3'" in report.notes["average_precision"]
    assert "'c3'" in report.notes["balanced_accuracy"]


def test_multiclass_ranking_metrics_leave_an_absent_class_out_by_default() -> None:
    c = _drop(_multiclass("m", 0, 4), 3)
    assert c.scores is not None
    report = c.run(["roc_auc", "average_precision"])
    expected_auc = np.mean([skm.roc_auc_score(c.y_true == k, c.scores[:, k]) for k in range(3)])
    expected_ap = np.mean([skm.average_precision_score(c.y_true == k, c.scores[:, k]) for k in range(3)])
    assert report.metrics["roc_auc"] == pytest.approx(expected_auc, rel=TOL)
    assert report.metrics["average_precision"] == pytest.approx(expected_ap, rel=TOL)
    for name in ("roc_auc", "average_precision"):
        assert "'c3'" in report.notes[name] and "left out" in report.notes[name], name


def test_a_class_that_never_occurs_is_left_out_of_macro_averages_unless_declared() -> None:
    """Class 'd' is declared but neither labeled nor predicted; class 'c' is only predicted."""
    y_true = np.array([0, 0, 1, 1, 1, 0, 1, 0])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 0, 0])
    names = [f"{b}_{a}" for b in ("precision", "recall", "f1") for a in ("macro", "weighted", "micro")]
    kwargs: dict[str, Any] = {"n_classes": 4, "class_names": ["a", "b", "c", "d"], "positive": None}
    present = classification_metrics(y_true, y_pred, scores=None, metrics=names, **kwargs)
    declared = classification_metrics(y_true, y_pred, scores=None, metrics=names, labels="declared", **kwargs)
    for name in names:
        base, _, average = name.partition("_")
        fn = getattr(skm, f"{base}_score")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            default = fn(y_true, y_pred, average=average, zero_division=0)
            every = fn(y_true, y_pred, average=average, zero_division=0, labels=range(4))
        assert present.metrics[name] == pytest.approx(default, rel=TOL, abs=TOL), name
        assert declared.metrics[name] == pytest.approx(every, rel=TOL, abs=TOL), name
    # the macro averages differ: 'd' counts as 0 only when declared
    declared_f1 = declared.metrics["f1_macro"]
    assert declared_f1 is not None
    assert present.metrics["f1_macro"] == pytest.approx(4 / 3 * declared_f1)
    for name in ("precision_macro", "recall_macro", "f1_macro"):
        assert "'d'" in present.notes[name] and "left out" in present.notes[name], name
        assert "left out" not in declared.notes.get(name, ""), name
    # 'c' occurs (it is predicted): it stays in the macro average, its recall 0/0 counted as 0
    assert "'c'" in present.notes["recall_macro"] and "zero_division=0" in present.notes["recall_macro"]
    assert "left out" not in present.notes.get("f1_weighted", "")
    assert present.per_class is not None and set(present.per_class) == {"a", "b", "c", "d"}


def test_labels_option_is_validated() -> None:
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(
            np.array([0, 1]),
            np.array([0, 1]),
            n_classes=2,
            class_names=["a", "b"],
            positive=1,
            scores=None,
            labels="all",  # type: ignore[arg-type]
        )


def test_regression_undefined_and_notes() -> None:
    report = regression_metrics(np.full(5, 3.0), np.arange(5.0))
    assert report.metrics["r2"] is None and "constant" in report.undefined["r2"]
    assert report.metrics["mae"] == pytest.approx(skm.mean_absolute_error(np.full(5, 3.0), np.arange(5.0)))
    report = regression_metrics(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.0, 2.5]), metrics=["mape"])
    assert "y_true == 0" in report.notes["mape"]
    assert report.per_class is None and report.confusion_matrix is None


def test_log_loss_notes_clipped_rows() -> None:
    y = np.array([0, 1, 1, 0])
    report = classification_metrics(
        y,
        y,
        n_classes=2,
        class_names=["n", "p"],
        positive=1,
        scores=np.array([0.2, 0.0, 0.7, 0.1]),
        metrics=["log_loss"],
    )
    assert "1 row give" in report.notes["log_loss"]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_no_rows_gives_all_undefined(task: str) -> None:
    empty = np.array([], dtype=int)
    if task == "regression":
        report = regression_metrics(empty.astype(float), empty.astype(float))
    else:
        k, positive = (2, 1) if task == "binary" else (3, None)
        scores = np.empty((0,)) if task == "binary" else np.empty((0, 3))
        report = classification_metrics(
            empty,
            empty,
            n_classes=k,
            class_names=[str(i) for i in range(k)],
            positive=positive,
            scores=scores,
        )
    assert report.metrics and all(v is None for v in report.metrics.values())
    assert set(report.undefined) >= set(report.metrics)


def test_all_zero_weights_gives_all_undefined() -> None:
    c = _binary("b", 0, n=20)
    report = replace(c, weight=np.zeros(20)).run()
    assert all(v is None for v in report.metrics.values())
    assert "weight 0" in report.undefined["accuracy"]


def test_degenerate_inputs_emit_no_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for c in CASES:
            c.run(_metrics_for(c))
        classification_metrics(
            np.zeros(3, dtype=int),
            np.ones(3, dtype=int),
            n_classes=2,
            class_names=["a", "b"],
            positive=0,
            scores=np.array([0.0, 1.0, 0.5]),
        )


# ----------------------------------------------------------------------------- registry and misuse


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("has_scores", [True, False])
def test_default_metrics_are_valid(task: str, has_scores: bool) -> None:
    names = default_metrics(task, has_scores=has_scores)
    validate_metric_names(task, names, has_scores=has_scores)
    assert all(task in METRICS[n].tasks for n in names)
    assert has_scores or not any(METRICS[n].needs_scores for n in names)


@pytest.mark.parametrize(
    ("task", "names", "has_scores", "fragment"),
    [
        ("binary", ["accuracy", "acuracy"], True, "unknown metric 'acuracy'"),
        ("multiclass", ["f1"], True, "use f1_macro"),
        ("regression", ["accuracy"], False, "not defined for regression"),
        ("binary", ["roc_auc"], False, "send 'score'"),
        ("multiclass", ["log_loss"], False, "send 'scores'"),
        ("binary", ["f1", "f1"], False, "listed twice"),
    ],
)
def test_validate_metric_names_is_actionable(
    task: str, names: list[str], has_scores: bool, fragment: str
) -> None:
    with pytest.raises(ValueError, match="Valid metrics for") as info:
        validate_metric_names(task, names, has_scores=has_scores)
    assert fragment in str(info.value)


def test_validate_rejects_unknown_task() -> None:
    with pytest.raises(ValueError, match="Unknown task"):
        default_metrics("ranking", has_scores=False)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"y_pred": np.array([0, 1, 2])}, "outside 0..1"),
        ({"y_pred": np.array([0, 1])}, "differ in length"),
        ({"y_true": np.array([0.0, 1.0, 1.0])}, "integer class codes"),
        ({"scores": np.array([0.1, 1.2, 0.3])}, r"\[0, 1\]"),
        ({"scores": np.array([0.1, np.nan, 0.3])}, r"\[0, 1\]"),
        ({"scores": np.ones((3, 2)) / 2}, "shape"),
        ({"sample_weight": np.array([1.0, -1.0, 1.0])}, "non-negative"),
        ({"sample_weight": np.ones(4)}, "shape"),
        ({"positive": 2}, "positive"),
        ({"class_names": ["a", "a"]}, "distinct"),
        ({"n_classes": 1, "positive": None, "scores": None}, "at least 2"),
    ],
)
def test_classification_misuse_raises_value_error(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {
        "y_true": np.array([0, 1, 1]),
        "y_pred": np.array([0, 1, 0]),
        "n_classes": 2,
        "class_names": ["a", "b"],
        "positive": 1,
        "scores": np.array([0.1, 0.9, 0.4]),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        classification_metrics(**args)  # type: ignore[arg-type]


def test_regression_misuse_raises_value_error() -> None:
    with pytest.raises(ValueError, match="finite"):
        regression_metrics(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="equal length"):
        regression_metrics(np.array([1.0, 2.0]), np.array([1.0]))
