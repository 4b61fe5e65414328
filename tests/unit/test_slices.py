"""The slices worker against pandas groupby + scikit-learn per slice, and its intervals and tests.

Every registry metric of every task is compared, slice by slice, with a
scikit-learn call on the rows pandas groups together (``REFERENCES``), to 1e-9.
Undefined values (scikit-learn's ``UndefinedMetricWarning`` / ``nan``, or the
metrics worker's documented rule) must be None. Intervals are checked against
independent formulas (Wilson by solving its quadratic, the delta method against
:mod:`service.workers.significance`'s gradients, order statistics by brute force).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from schemas.slices import SliceGroup
from service.workers.metrics import METRICS, ScoreStatistics
from service.workers.multiple_testing import benjamini_hochberg
from service.workers.significance import influence_se, regression_influence, score_influence
from service.workers.slices import SliceEvaluator, slice_codes, slice_report
from service.workers.slices.codes import group_codes
from service.workers.slices.inference import percentiles
from service.workers.slices.ranking import Ranking, sliced_ranking

TOL = 1e-9
Z95 = 1.959963984540054


# ----------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Rows:
    """The rows of one slice (or a whole case)."""

    task: str
    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None = None
    n_classes: int = 0
    positive: int | None = None

    def take(self, mask: np.ndarray) -> Rows:
        return replace(
            self,
            y_true=self.y_true[mask],
            y_pred=self.y_pred[mask],
            scores=None if self.scores is None else self.scores[mask],
        )


def _quiet(fn: Callable[[], float]) -> float:
    """A scikit-learn reference; an UndefinedMetricWarning means undefined (NaN)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(fn())
    if any(issubclass(w.category, skm._classification.UndefinedMetricWarning) for w in caught):
        return math.nan
    return value


def _present(r: Rows) -> np.ndarray:
    return np.unique(r.y_true)


def _prf(fn: Callable[..., float], average: str | None) -> Callable[[Rows], float]:
    def ref(r: Rows) -> float:
        if average is None:
            return _quiet(lambda: fn(r.y_true, r.y_pred, pos_label=r.positive, zero_division=np.nan))
        # scikit-learn's default: the classes present in labels or predictions
        return _quiet(lambda: fn(r.y_true, r.y_pred, average=average, zero_division=0))

    return ref


def _roc_auc(r: Rows) -> float:
    assert r.scores is not None
    if r.positive is not None:
        if np.unique(r.y_true).size < 2:
            return math.nan
        return _quiet(lambda: skm.roc_auc_score(r.y_true == r.positive, r.scores))
    present = _present(r)
    if present.size < 2:
        return math.nan
    # one-vs-rest over the classes with labeled rows (as scikit-learn takes them from y_true)
    return float(np.mean([skm.roc_auc_score(r.y_true == c, r.scores[:, c]) for c in present]))


def _average_precision(r: Rows) -> float:
    assert r.scores is not None
    if _present(r).size < 2:
        return math.nan  # the metrics worker's rule
    if r.positive is not None:
        return _quiet(lambda: skm.average_precision_score(r.y_true == r.positive, r.scores))
    return float(np.mean([skm.average_precision_score(r.y_true == c, r.scores[:, c]) for c in _present(r)]))


def _log_loss(r: Rows) -> float:
    assert r.scores is not None
    if r.positive is not None:
        probas = np.empty((r.scores.size, 2))
        probas[:, r.positive] = r.scores
        probas[:, 1 - r.positive] = 1 - r.scores
    else:
        probas = r.scores
    return _quiet(lambda: skm.log_loss(r.y_true, probas, labels=range(r.n_classes)))


def _brier(r: Rows) -> float:
    if r.positive is not None:
        return _quiet(lambda: skm.brier_score_loss(r.y_true, r.scores, pos_label=r.positive))
    return _quiet(lambda: skm.brier_score_loss(r.y_true, r.scores, labels=range(r.n_classes)))


def _r2(r: Rows) -> float:
    if r.y_true.min() == r.y_true.max():
        return math.nan
    return _quiet(lambda: skm.r2_score(r.y_true, r.y_pred))


def _plain(fn: Callable[..., float]) -> Callable[[Rows], float]:
    return lambda r: _quiet(lambda: fn(r.y_true, r.y_pred))


REFERENCES: dict[str, Callable[[Rows], float]] = {
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
    "max_error": _plain(skm.max_error),
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


def _prf_declared(fn: Callable[..., float], average: str | None) -> Callable[[Rows], float]:
    """scikit-learn with ``labels=range(K)``: a declared class without rows counts as 0 in the macro mean."""
    if average is None:
        return _prf(fn, average)

    def ref(r: Rows) -> float:
        return _quiet(
            lambda: fn(r.y_true, r.y_pred, labels=range(r.n_classes), average=average, zero_division=0)
        )

    return ref


def _roc_auc_declared(r: Rows) -> float:
    assert r.scores is not None
    if r.positive is not None or _present(r).size < 2:
        return _roc_auc(r)
    # nan (an UndefinedMetricWarning) as soon as a declared class has no rows
    return _quiet(
        lambda: skm.roc_auc_score(
            r.y_true, r.scores, multi_class="ovr", average="macro", labels=range(r.n_classes)
        )
    )


def _average_precision_declared(r: Rows) -> float:
    assert r.scores is not None
    if r.positive is not None or _present(r).size < 2:
        return _average_precision(r)
    # a class without labeled rows counts as AP 0
    onehot = label_binarize(r.y_true, classes=range(r.n_classes))
    return _quiet(lambda: skm.average_precision_score(onehot, r.scores, average="macro"))


#: the references of ``labels="declared"`` (scikit-learn's ``labels=range(K)``)
DECLARED_REFERENCES: dict[str, Callable[[Rows], float]] = {
    **REFERENCES,
    "roc_auc": _roc_auc_declared,
    "average_precision": _average_precision_declared,
    **{
        base + suffix: _prf_declared(fn, average)
        for base, fn in (
            ("precision", skm.precision_score),
            ("recall", skm.recall_score),
            ("f1", skm.f1_score),
        )
        for suffix, average in (("_macro", "macro"), ("_weighted", "weighted"))
    },
}


def _references(labels: str) -> dict[str, Callable[[Rows], float]]:
    return DECLARED_REFERENCES if labels == "declared" else REFERENCES


def test_every_registry_metric_has_a_reference() -> None:
    assert set(REFERENCES) == set(METRICS) == set(DECLARED_REFERENCES)


# ----------------------------------------------------------------------------- cases


def _metrics_for(task: str) -> list[str]:
    return [n for n, m in METRICS.items() if task in m.tasks]


def _features(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """A categorical column with nulls, a numeric one with NaN, a boolean one."""
    country = rng.choice(
        np.array(["BR", "DE", "IN", "US", "ZA"], dtype=object), n, p=[0.3, 0.25, 0.2, 0.2, 0.05]
    )
    country[rng.random(n) < 0.04] = None
    amount = rng.lognormal(3, 1, n)
    amount[rng.random(n) < 0.03] = np.nan
    return pd.DataFrame({"country": country, "amount": amount, "mobile": rng.random(n) < 0.4})


def _binary(
    seed: int, n: int = 2000, *, positive: int = 1, decimals: int | None = None
) -> tuple[Rows, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    if decimals is not None:
        score = np.round(score, decimals)
    y = np.where(rng.random(n) < score, positive, 1 - positive)
    pred = np.where(score >= 0.5, positive, 1 - positive)
    return Rows("binary", y, pred, score, 2, positive), _features(n, rng)


def _multiclass(
    seed: int, k: int, n: int = 2000, *, prototypes: int | None = None
) -> tuple[Rows, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    if prototypes is None:
        probas = rng.dirichlet(np.ones(k), n)
    else:
        probas = rng.dirichlet(np.ones(k), prototypes)[rng.integers(0, prototypes, n)]
    y = (probas.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, k - 1)
    return Rows("multiclass", y, probas.argmax(axis=1), probas, k, None), _features(n, rng)


def _regression(seed: int, n: int = 2000) -> tuple[Rows, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = rng.normal(3, 2, n)
    y[::17] = 0.0  # y == 0 rows: MAPE's epsilon
    return Rows("regression", y, y + rng.normal(0, 1, n)), _features(n, rng)


CASES: dict[str, Callable[[], tuple[Rows, pd.DataFrame]]] = {
    "binary": lambda: _binary(0),
    "binary-ties-positive0": lambda: _binary(1, positive=0, decimals=1),
    "multiclass3": lambda: _multiclass(2, 3),
    "multiclass4-ties": lambda: _multiclass(3, 4, prototypes=15),
    "regression": lambda: _regression(4),
}


def _codes(frame: pd.DataFrame, column: str, *, bins: int = 4) -> tuple[str, np.ndarray, list[Any]]:
    codes, labels = slice_codes(pa.array(frame[column], from_pandas=True), bins=bins)
    return column, codes, labels


def _run(
    rows: Rows, groups: list[tuple[str, np.ndarray, list[Any]]], **kw: Any
) -> tuple[SliceGroup, list[dict[str, Any]]]:
    kw.setdefault("metrics", _metrics_for(rows.task))
    kw.setdefault("overall", {})
    if rows.task == "regression":
        return slice_report(rows.y_true, rows.y_pred, group_columns=groups, task="regression", **kw)
    return slice_report(
        rows.y_true,
        rows.y_pred,
        group_columns=groups,
        task=rows.task,  # type: ignore[arg-type]
        n_classes=rows.n_classes,
        positive=rows.positive,
        scores=rows.scores,
        **kw,
    )


def _key(value: Any) -> Any:
    """pandas group keys as our conditions: NaN is the null slice (None)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _assert_slices_match(
    rows: Rows, frame: pd.DataFrame, keys: list[str], group: SliceGroup, *, labels: str = "present"
) -> None:
    """Each slice's metrics equal scikit-learn's on the rows pandas groups under the same key
    (``labels``: scikit-learn's default or ``labels=range(K)``, see :func:`_references`)."""
    references = _references(labels)
    index = frame.reset_index(drop=True).assign(_row=np.arange(len(frame)))
    by_conditions = {tuple(s.conditions[c] for c in keys): s for s in group.slices}
    grouped = index.groupby(keys, dropna=False, sort=False)["_row"]
    assert len(by_conditions) == grouped.ngroups
    for key, members in grouped:
        cond = tuple(_key(v) for v in (key if isinstance(key, tuple) else (key,)))
        got = by_conditions[cond]
        mask = np.zeros(len(frame), dtype=bool)
        mask[members.to_numpy()] = True
        part = rows.take(mask)
        assert got.n == mask.sum()
        assert got.share == pytest.approx(mask.mean(), rel=TOL)
        for name in _metrics_for(rows.task):
            expected = references[name](part)
            value = got.metrics[name].value
            if math.isnan(expected):
                assert value is None, f"{cond} {name}: {value}, sklearn says undefined"
                assert got.metrics[name].interval is None and got.metrics[name].p_value is None
            else:
                assert value is not None, f"{cond} {name}: None, sklearn {expected}"
                assert math.isclose(value, expected, rel_tol=TOL, abs_tol=TOL), (
                    f"{cond} {name}: {value} != {expected}"
                )


@pytest.mark.parametrize("case", list(CASES))
def test_categorical_column_with_nulls_equals_groupby_sklearn(case: str) -> None:
    rows, frame = CASES[case]()
    group, _ = _run(rows, [_codes(frame, "country")])
    assert group.columns == ["country"]
    assert [s.conditions["country"] for s in group.slices][-1] is None  # nulls: a slice of their own
    _assert_slices_match(rows, frame, ["country"], group)


@pytest.mark.parametrize("case", list(CASES))
def test_binned_numeric_column_equals_groupby_sklearn(case: str) -> None:
    rows, frame = CASES[case]()
    _, codes, labels = _codes(frame, "amount", bins=4)
    # independent binning: quantile edges, [a, b) with the last bin closed, NaN apart
    x = frame["amount"].to_numpy()
    valid = ~np.isnan(x)
    edges = np.unique(np.quantile(x[valid], np.linspace(0, 1, 5)))
    bin_index = np.digitize(x, edges[1:-1])
    expected = np.where(valid, bin_index, len(edges) - 1)
    np.testing.assert_array_equal(codes, expected)
    assert labels[-1] is None and labels[-2].endswith("]") and labels[0].endswith(")")
    frame = frame.assign(amount_bin=[labels[c] for c in codes])
    group, _ = _run(rows, [("amount_bin", codes, labels)])
    _assert_slices_match(rows, frame, ["amount_bin"], group)


@pytest.mark.parametrize("case", ["binary", "multiclass3", "regression"])
def test_cross_of_two_columns_equals_groupby_sklearn(case: str) -> None:
    rows, frame = CASES[case]()
    group, _ = _run(rows, [_codes(frame, "country"), _codes(frame, "mobile")])
    assert group.columns == ["country", "mobile"]
    assert sum(s.n for s in group.slices) == rows.y_true.size
    # lexicographic order of (country, mobile) label codes
    order = [
        (s.conditions["country"] is None, s.conditions["country"] or "", s.conditions["mobile"])
        for s in group.slices
    ]
    assert len(set(order)) == len(order)
    _assert_slices_match(rows, frame, ["country", "mobile"], group)


def test_slices_where_metrics_are_undefined_are_none_without_warnings() -> None:
    rows, frame = _binary(5, n=600)
    site = np.zeros(600, dtype=np.int64)
    y, pred = rows.y_true.copy(), rows.y_pred.copy()
    site[:100] = 1
    y[:100] = 0  # slice 1: no positive label -> recall, f1?, AUC, AP undefined
    site[100:200] = 2
    pred[100:200] = 0  # slice 2: nothing predicted positive -> precision undefined
    site[200] = 3  # slice 3: one row
    rows = replace(rows, y_true=y, y_pred=pred)
    frame = frame.assign(site=site)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        group, _ = _run(rows, [("site", site, [0, 1, 2, 3])], min_support=1)
    by = {s.conditions["site"]: s for s in group.slices}
    for name in ("recall", "roc_auc", "average_precision"):
        assert by[1].metrics[name].value is None, name
    assert by[1].metrics["balanced_accuracy"].value is not None  # the recall of the class present
    assert by[2].metrics["precision"].value is None
    assert by[3].n == 1 and by[3].metrics["roc_auc"].value is None
    assert by[3].metrics["accuracy"].interval is not None  # Wilson works with one row
    assert by[3].metrics["log_loss"].interval is None  # no variance from one row
    _assert_slices_match(rows, frame, ["site"], group)


def test_regression_constant_slice_r2_undefined() -> None:
    rows, frame = _regression(6, n=400)
    site = (np.arange(400) >= 300).astype(np.int64)
    y = rows.y_true.copy()
    y[300:] = 0.1  # constant targets whose mean is not exactly 0.1 in floating point
    rows = replace(rows, y_true=y)
    group, _ = _run(rows, [("site", site, ["a", "b"])])
    assert group.slices[1].metrics["r2"].value is None
    assert group.slices[0].metrics["r2"].value is not None
    _assert_slices_match(rows, frame.assign(site=np.where(site == 1, "b", "a")), ["site"], group)


# ----------------------------------------------------------------------------- intervals


def _wilson_reference(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The roots p of (x/n - p)^2 = z^2 p (1 - p) / n (the score test's acceptance region)."""
    ph = x / n
    a = 1 + z * z / n
    b = -(2 * ph + z * z / n)
    c = ph * ph
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_wilson_intervals_of_proportion_metrics() -> None:
    rows, frame = _binary(7, n=800)
    group, _ = _run(rows, [_codes(frame, "country")], metrics=["accuracy", "precision", "recall", "f1_micro"])
    for s in group.slices:
        keep = np.array([_key(v) == s.conditions["country"] for v in frame["country"]])
        yt, yp = rows.y_true[keep], rows.y_pred[keep]
        parts = {
            "accuracy": (int(np.sum(yt == yp)), yt.size),
            "f1_micro": (int(np.sum(yt == yp)), yt.size),
            "precision": (int(np.sum((yt == 1) & (yp == 1))), int(np.sum(yp == 1))),
            "recall": (int(np.sum((yt == 1) & (yp == 1))), int(np.sum(yt == 1))),
        }
        for name, (x, n) in parts.items():
            iv = s.metrics[name].interval
            assert iv is not None
            low, high = _wilson_reference(x, n)
            assert iv.low == pytest.approx(low, abs=1e-12) and iv.high == pytest.approx(high, abs=1e-12)


def test_wilson_at_zero_and_one_is_not_a_point() -> None:
    y = np.array([1] * 20 + [0] * 20)
    pred = np.array([1] * 20 + [1] * 20)
    group, _ = slice_report(
        y,
        pred,
        group_columns=[("g", np.repeat([0, 1], 20), ["right", "wrong"])],
        task="binary",
        n_classes=2,
        positive=1,
        metrics=["accuracy"],
        overall={"accuracy": 0.5},
        min_support=1,
    )
    right, wrong = (s.metrics["accuracy"] for s in group.slices)
    assert (
        right.value == 1.0
        and right.interval is not None
        and 0.8 < right.interval.low < 1.0 == right.interval.high
    )
    assert (
        wrong.value == 0.0
        and wrong.interval is not None
        and wrong.interval.low == 0.0 < wrong.interval.high < 0.2
    )
    assert right.difference == 0.5 and wrong.difference == -0.5


@pytest.mark.parametrize("decimals", [None, 1])
@pytest.mark.parametrize("positive", [None, 1])
def test_ranking_intervals_are_the_delta_method_of_significance(
    decimals: int | None, positive: int | None
) -> None:
    rows, frame = _binary(8, decimals=decimals) if positive is not None else _multiclass(8, 3)
    if positive is None and decimals is not None:
        rows, frame = _multiclass(9, 3, prototypes=20)
    group, _ = _run(rows, [_codes(frame, "country")], metrics=["roc_auc", "average_precision"])
    checked = 0
    for s in group.slices:
        keep = np.array([_key(v) == s.conditions["country"] for v in frame["country"]])
        part = rows.take(keep)
        assert part.scores is not None
        stats = ScoreStatistics(
            part.y_true,
            part.scores,
            n_classes=part.n_classes,
            positive=part.positive,
            names=["roc_auc", "average_precision"],
        )
        grads = score_influence(
            part.y_true, part.scores, n_classes=part.n_classes, positive=part.positive, stats=stats
        )
        for name in ("roc_auc", "average_precision"):
            m = s.metrics[name]
            g = grads[name]
            if m.value is None or g is None:
                continue
            se = influence_se(g)
            assert m.interval is not None
            expected = (max(0.0, m.value - Z95 * se), min(1.0, m.value + Z95 * se))
            assert (m.interval.low, m.interval.high) == pytest.approx(expected, abs=1e-9), name
            checked += 1
    assert checked >= 2 * len(group.slices) - 2


@pytest.mark.parametrize("decimals", [None, 2])
def test_rest_auc_is_exact(decimals: int | None) -> None:
    rows, frame = _binary(10, decimals=decimals)
    _, codes, labels = _codes(frame, "country")
    gc = group_codes([(codes, len(labels))], n=codes.size)
    support = np.bincount(gc.codes, minlength=gc.n_groups)
    assert rows.scores is not None
    r = Ranking.of(rows.y_true == 1, rows.scores, placements=True)
    s = sliced_ranking(r, gc.codes.astype(np.intp), support, sort_codes=gc.codes, auc=True, ap=False)
    assert s.rest_auc is not None
    for g in range(gc.n_groups):
        rest = gc.codes != g
        expected = skm.roc_auc_score(rows.y_true[rest] == 1, rows.scores[rest])
        assert s.rest_auc[g] == pytest.approx(expected, rel=1e-12)


def test_regression_intervals() -> None:
    rows, frame = _regression(11, n=1500)
    group, _ = _run(rows, [_codes(frame, "country")])
    for s in group.slices:
        keep = np.array([_key(v) == s.conditions["country"] for v in frame["country"]])
        yt, yp = rows.y_true[keep], rows.y_pred[keep]
        n = yt.size
        # r2: the delta method of significance.regression_influence
        r2 = s.metrics["r2"]
        g = regression_influence(yt, yp, names=["r2"])["r2"]
        assert g is not None and r2.value is not None and r2.interval is not None
        se = influence_se(g)
        assert r2.interval.low == pytest.approx(r2.value - Z95 * se, rel=1e-9)
        # mae: the CLT interval with the sample standard deviation
        err = np.abs(yp - yt)
        mae = s.metrics["mae"]
        assert mae.interval is not None
        half = Z95 * err.std(ddof=1) / math.sqrt(n)
        assert (mae.interval.low, mae.interval.high) == pytest.approx(
            (err.mean() - half, err.mean() + half), rel=1e-9
        )
        # median_ae: order statistics [x_(j), x_(n+1-j)] with the largest j of coverage >= 95%
        med = s.metrics["median_ae"]
        srt = np.sort(err)
        j = max(j for j in range(1, n // 2 + 1) if 1 - 2 * scipy_stats.binom.cdf(j - 1, n, 0.5) >= 0.95)
        assert med.interval is not None
        assert (med.interval.low, med.interval.high) == (srt[j - 1], srt[n - j])
        assert s.metrics["max_error"].interval is None
        assert s.metrics["median_ae"].p_value is None and s.metrics["r2"].p_value is None
        assert s.metrics["mae"].p_value is not None and s.metrics["rmse"].p_value is not None


def test_bootstrap_intervals_are_seeded_and_cover_the_value() -> None:
    rows, frame = _multiclass(12, 3, n=1500)
    groups = [_codes(frame, "country")]
    names = ["balanced_accuracy", "f1_macro", "mcc", "precision_weighted"]
    a, _ = _run(rows, groups, metrics=names, seed=1)
    b, _ = _run(rows, groups, metrics=names, seed=1)
    c, _ = _run(rows, groups, metrics=names, seed=2)
    assert a == b
    assert a != c
    for s in a.slices:
        for name in names:
            m = s.metrics[name]
            assert m.interval is not None and m.value is not None
            assert m.interval.low - 0.05 <= m.value <= m.interval.high + 0.05
            assert m.p_value is not None and 0 <= m.p_value <= 1


def test_percentiles_match_numpy_and_drop_undefined_replicates() -> None:
    rng = np.random.default_rng(0)
    stack = rng.random((101, 3))
    stack[:10, 1] = np.nan
    stack[:60, 2] = np.nan  # mostly undefined: no interval
    got = percentiles(stack, (0.025, 0.975))
    np.testing.assert_allclose(got[:, 0], np.percentile(stack[:, 0], [2.5, 97.5]), rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], np.percentile(stack[10:, 1], [2.5, 97.5]), rtol=1e-12)
    assert np.isnan(got[:, 2]).all()


def test_benjamini_hochberg_matches_the_step_up_rule() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.005, 0.5])
    q = benjamini_hochberg(p)
    defined = p[~np.isnan(p)]
    m = defined.size
    for i, pi in enumerate(p):
        if np.isnan(pi):
            assert np.isnan(q[i])
            continue
        expected = min(min(1.0, m * pj / (np.sum(defined <= pj))) for pj in defined if pj >= pi)
        assert q[i] == pytest.approx(expected)


# ----------------------------------------------------------------------------- minority and findings


def test_minority_flags() -> None:
    n = 2000
    site = np.zeros(n, dtype=np.int64)
    site[:20] = 1  # 20 rows < min_support
    site[20:100] = 2  # 80 rows >= min_support but 4% < 5%
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, n)
    group, _ = slice_report(
        y,
        y,
        group_columns=[("site", site, ["big", "tiny", "rare"])],
        task="binary",
        n_classes=2,
        positive=1,
        metrics=["accuracy"],
        overall={"accuracy": 1.0},
        min_support=30,
    )
    flags = {s.conditions["site"]: s.minority for s in group.slices}
    assert flags == {"big": False, "tiny": True, "rare": True}
    assert [s.n for s in group.slices] == [1900, 20, 80]  # shown, never hidden


def _planted(seed: int, *, bad_error: float) -> tuple[Rows, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 6000
    region = rng.integers(0, 6, n)
    score = rng.random(n)
    y = (rng.random(n) < score).astype(np.int64)
    pred = (score >= 0.5).astype(np.int64)
    bad = region == 3
    flip = bad & (rng.random(n) < bad_error)
    pred[flip] = 1 - pred[flip]
    noisy = np.where(bad & (rng.random(n) < bad_error), rng.random(n), score)
    return Rows("binary", y, pred, noisy, 2, 1), region


def test_planted_underperforming_slice_is_found_and_fair_ones_are_not() -> None:
    rows, region = _planted(14, bad_error=0.5)
    labels = [f"r{k}" for k in range(6)]
    names = ["accuracy", "f1", "roc_auc", "log_loss", "brier_score", "average_precision"]
    overall = {"accuracy": float(np.mean(rows.y_true == rows.y_pred))}
    group, found = _run(rows, [("region", region, labels)], metrics=names, overall=overall)
    assert found, "the degraded region must be flagged"
    assert {f["conditions"]["region"] for f in found} == {"r3"}
    metrics = {f["metric"] for f in found}
    assert {"accuracy", "roc_auc", "log_loss"} <= metrics
    acc = next(f for f in found if f["metric"] == "accuracy")
    assert set(acc) >= {"columns", "conditions", "metric", "value", "overall", "difference", "p_value", "n"}
    assert acc["columns"] == ["region"] and acc["n"] == int(np.sum(region == 3))
    assert acc["difference"] == pytest.approx(acc["value"] - overall["accuracy"])
    assert acc["value"] < acc["rest"] and acc["p_value"] < 1e-6
    slice3 = next(s for s in group.slices if s.conditions["region"] == "r3")
    assert slice3.metrics["accuracy"].p_value == acc["p_value"]
    # a loss is worse when higher
    ll = next(f for f in found if f["metric"] == "log_loss")
    assert ll["value"] > ll["rest"]


def test_fair_model_gets_no_findings() -> None:
    rows, region = _planted(15, bad_error=0.0)
    names = [
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier_score",
    ]
    _, found = _run(rows, [("region", region, [f"r{k}" for k in range(6)])], metrics=names)
    assert found == []


def test_better_slices_and_minority_slices_are_not_flagged() -> None:
    rows, region = _planted(16, bad_error=0.5)
    # region 3 is bad; with min_support above its size it is never flagged
    n3 = int(np.sum(region == 3))
    _, found = _run(
        rows, [("region", region, [f"r{k}" for k in range(6)])], metrics=["accuracy"], min_support=n3 + 1
    )
    assert found == []
    # the other regions are better than the rest (which includes region 3): not findings either
    _, found = _run(rows, [("region", region, [f"r{k}" for k in range(6)])], metrics=["accuracy"])
    assert [f["conditions"]["region"] for f in found] == ["r3"]


def test_correction_none_uses_raw_p_values() -> None:
    rows, region = _planted(17, bad_error=0.12)
    groups = [("region", region, [f"r{k}" for k in range(6)])]
    _, adjusted = _run(rows, groups, metrics=["accuracy", "f1", "log_loss"])
    _, raw = _run(rows, groups, metrics=["accuracy", "f1", "log_loss"], correction="none")
    assert len(raw) >= len(adjusted)
    assert all(f["p_value"] <= 0.05 for f in raw)
    assert all(f["p_adjusted"] >= f["p_value"] for f in adjusted)


# ----------------------------------------------------------------------------- labels: present / declared


def _absent_classes(
    seed: int, n: int = 2000, *, class3_predicted: bool, drop2: bool
) -> tuple[Rows, pd.DataFrame]:
    """Four declared classes; class 3 is never labeled (predicted now and then with
    ``class3_predicted``); with ``drop2`` class 2 is neither labeled nor predicted in the ZA slice."""
    rng = np.random.default_rng(seed)
    probas = rng.dirichlet(np.ones(4), n)
    first3 = probas[:, :3] / probas[:, :3].sum(axis=1, keepdims=True)
    y = (first3.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1).clip(0, 2)
    pred = probas.argmax(axis=1) if class3_predicted else probas[:, :3].argmax(axis=1)
    frame = _features(n, rng)
    if drop2:
        za = (frame["country"] == "ZA").to_numpy()
        y[za & (y == 2)] = 0
        pred[za & (pred == 2)] = 1
    return Rows("multiclass", y, pred, probas, 4, None), frame


def _slice_mask(frame: pd.DataFrame, column: str, condition: Any) -> np.ndarray:
    return np.array([_key(v) == condition for v in frame[column]])


@pytest.mark.parametrize("labels", ["present", "declared"])
def test_macro_metrics_per_slice_equal_sklearn_with_absent_classes(labels: str) -> None:
    """A class never labeled (but predicted), one absent from a slice: every slice's value and the
    rest's equal scikit-learn's with its default labels or ``labels=range(K)``."""
    rows, frame = _absent_classes(30, class3_predicted=True, drop2=True)
    references = _references(labels)
    group, _ = _run(rows, [_codes(frame, "country")], labels=labels)
    _assert_slices_match(rows, frame, ["country"], group, labels=labels)
    za = next(s for s in group.slices if s.conditions["country"] == "ZA")
    if labels == "declared":
        # class 3 has no labeled rows anywhere: the declared macro ROC AUC is undefined everywhere
        assert all(s.metrics["roc_auc"].value is None for s in group.slices)
        assert all(s.metrics["average_precision"].value is not None for s in group.slices)
    else:
        # ZA: the one-vs-rest mean over its two classes with rows
        part = rows.take(_slice_mask(frame, "country", "ZA"))
        assert part.scores is not None
        two = np.mean([skm.roc_auc_score(part.y_true == c, part.scores[:, c]) for c in (0, 1)])
        assert za.metrics["roc_auc"].value == pytest.approx(two, rel=1e-12)
    cross = [_codes(frame, "country"), _codes(frame, "mobile")]
    group, _ = _run(rows, cross, labels=labels)
    _assert_slices_match(rows, frame, ["country", "mobile"], group, labels=labels)
    # the rest of each slice, as tested against it
    ev = SliceEvaluator(
        rows.y_true,
        rows.y_pred,
        task="multiclass",
        n_classes=4,
        scores=rows.scores,
        metrics=_metrics_for("multiclass"),
        min_support=1,
        labels=labels,  # type: ignore[arg-type]
    )
    _, tests = ev.evaluate([_codes(frame, "country")])
    checked = set()
    for t in tests.tests:
        rest = rows.take(~_slice_mask(frame, "country", tests.conditions[t.slice]["country"]))
        assert t.rest == pytest.approx(references[t.metric](rest), rel=TOL, abs=TOL), t
        checked.add(t.metric)
    assert {"f1_macro", "precision_macro", "recall_macro"} <= checked
    assert ("roc_auc" in checked) == (labels == "present")


@pytest.mark.parametrize("labels", ["present", "declared"])
def test_macro_ranking_intervals_with_absent_classes_are_the_delta_method(labels: str) -> None:
    """The macro mean's gradient is over the classes it averages: those with rows ("present") or
    all of them ("declared"), as significance.score_influence with the same labels."""
    rows, frame = _absent_classes(31, class3_predicted=True, drop2=True)
    names = ["roc_auc", "average_precision"]
    group, _ = _run(rows, [_codes(frame, "country")], metrics=names, labels=labels)
    checked = 0
    for s in group.slices:
        part = rows.take(_slice_mask(frame, "country", s.conditions["country"]))
        assert part.scores is not None
        stats = ScoreStatistics(
            part.y_true,
            part.scores,
            n_classes=4,
            positive=None,
            names=names,
            labels=labels,  # type: ignore[arg-type]
        )
        value = stats.values()
        grads = score_influence(part.y_true, part.scores, n_classes=4, positive=None, stats=stats)
        for name in names:
            m = s.metrics[name]
            g = grads[name]
            assert (m.value is None) == math.isnan(value[name]) == (g is None), (s.conditions, name)
            if m.value is None or g is None:
                continue
            assert m.value == pytest.approx(value[name], rel=1e-12)
            se = influence_se(g)
            assert m.interval is not None
            expected = (max(0.0, m.value - Z95 * se), min(1.0, m.value + Z95 * se))
            assert (m.interval.low, m.interval.high) == pytest.approx(expected, abs=1e-9), name
            checked += 1
    assert checked == len(group.slices) * (2 if labels == "present" else 1)


def test_a_class_that_never_occurs_scales_the_macro_metrics_by_three_quarters() -> None:
    """Class 3 is neither labeled nor predicted anywhere (nor in any resample): declared, every
    macro value, interval and rest is 3/4 of the present one (same draws), its p-values equal;
    the other metrics do not change."""
    rows, frame = _absent_classes(32, class3_predicted=False, drop2=False)
    groups = [_codes(frame, "country")]
    present, _ = _run(rows, groups, bootstrap_samples=300)
    assert _run(rows, groups, bootstrap_samples=300, labels="present")[0] == present  # the default
    declared, _ = _run(rows, groups, bootstrap_samples=300, labels="declared")
    _assert_slices_match(rows, frame, ["country"], present)
    _assert_slices_match(rows, frame, ["country"], declared, labels="declared")
    scaled = ("precision_macro", "recall_macro", "f1_macro", "average_precision")
    for p, d in zip(present.slices, declared.slices, strict=True):
        for name in _metrics_for("multiclass"):
            mp, md = p.metrics[name], d.metrics[name]
            if name == "roc_auc":
                assert mp.value is not None and md.value is None
            elif name not in scaled:
                assert mp == md, name
            else:
                assert mp.value is not None and md.value == pytest.approx(0.75 * mp.value, rel=1e-9), name
                assert mp.interval is not None and md.interval is not None
                if mp.interval.low > 0.0 and mp.interval.high < 1.0:  # not clipped
                    assert md.interval.low == pytest.approx(0.75 * mp.interval.low, rel=1e-9), name
                    assert md.interval.high == pytest.approx(0.75 * mp.interval.high, rel=1e-9), name
                if name != "average_precision":  # bootstrap z: both differences scaled
                    assert md.p_value == pytest.approx(mp.p_value, rel=1e-9), name


# ----------------------------------------------------------------------------- evaluator, errors


def test_evaluator_reports_equal_one_shot_reports() -> None:
    rows, frame = _binary(18)
    groups = [
        [_codes(frame, "country")],
        [_codes(frame, "mobile")],
        [_codes(frame, "country"), _codes(frame, "mobile")],
    ]
    names = _metrics_for("binary")
    ev = SliceEvaluator(
        rows.y_true,
        rows.y_pred,
        task="binary",
        n_classes=2,
        positive=1,
        scores=rows.scores,
        metrics=names,
    )
    for g in groups:
        assert ev.report(g) == _run(rows, g)


def test_large_cross_is_compacted() -> None:
    rng = np.random.default_rng(19)
    n = 500
    a = rng.integers(0, 3000, n)
    b = rng.integers(0, 3000, n)
    gc = group_codes([(a, 3000), (b, 3000)], n=n)
    combined = a * 3000 + b
    assert gc.n_groups == np.unique(combined).size
    np.testing.assert_array_equal(gc.members[gc.codes.astype(np.intp)], np.stack([a, b], axis=1))
    y = rng.integers(0, 2, n)
    group, _ = slice_report(
        y,
        y,
        group_columns=[("a", a, list(range(3000))), ("b", b, list(range(3000)))],
        task="binary",
        n_classes=2,
        positive=1,
        metrics=["accuracy"],
    )
    assert sum(s.n for s in group.slices) == n


@pytest.mark.parametrize(
    ("groups", "fragment"),
    [
        ([], "at least one column"),
        ([("a", np.zeros(5, dtype=np.int64), ["x"])], "shape"),
        ([("a", np.full(10, 2), ["x", "y"])], "0..1"),
        ([("a", np.zeros(10), ["x"])], "integers"),
        ([("a", np.zeros(10, dtype=np.int64), ["x"]), ("a", np.zeros(10, dtype=np.int64), ["x"])], "twice"),
    ],
)
def test_bad_group_columns_raise(groups: list[Any], fragment: str) -> None:
    y = np.zeros(10, dtype=np.int64)
    with pytest.raises(ValueError, match=fragment):
        slice_report(y, y, group_columns=groups, task="binary", n_classes=2, positive=1, metrics=["accuracy"])


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"metrics": ["roc_auc"]}, "probabilities"),
        ({"metrics": ["nope"]}, "unknown metric"),
        ({"min_support": 0}, "min_support"),
        ({"alpha": 1.5}, "alpha"),
        ({"confidence": 1.0}, "confidence"),
        ({"bootstrap_samples": 0}, "bootstrap_samples"),
        ({"positive": None}, "positive"),
    ],
)
def test_bad_options_raise(kwargs: dict[str, Any], fragment: str) -> None:
    y = np.zeros(10, dtype=np.int64)
    args: dict[str, Any] = {"task": "binary", "n_classes": 2, "positive": 1, "metrics": ["accuracy"]} | kwargs
    with pytest.raises(ValueError, match=fragment):
        slice_report(y, y, group_columns=[("a", np.zeros(10, dtype=np.int64), ["x"])], **args)


# ----------------------------------------------------------------------------- slice codes


def test_dictionary_codes_are_the_indices() -> None:
    arr = pa.array(["b", "a", None, "b"]).dictionary_encode()
    codes, labels = slice_codes(pa.chunked_array([arr]), bins=5)
    assert labels == ["b", "a", None]
    assert codes.tolist() == [0, 1, 2, 0]


def test_chunks_with_different_dictionaries_are_unified() -> None:
    col = pa.chunked_array(
        [pa.array(["x", "y"]).dictionary_encode(), pa.array(["z", "x", None]).dictionary_encode()]
    )
    codes, labels = slice_codes(col, bins=5)
    assert [labels[c] for c in codes] == ["x", "y", "z", "x", None]


def test_duplicate_and_null_dictionary_entries() -> None:
    arr = pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 2, None, 3], type=pa.int8()), pa.array(["x", "x", None, "y"])
    )
    codes, labels = slice_codes(arr, bins=5)
    assert [labels[c] for c in codes] == ["x", "x", None, None, "y"]


def test_strings_and_booleans_are_categorical() -> None:
    codes, labels = slice_codes(pa.array(["u", None, "v", "u"]), bins=2)
    assert [labels[c] for c in codes] == ["u", None, "v", "u"]
    codes, labels = slice_codes(pa.array([True, False, None, True]), bins=2)
    assert [labels[c] for c in codes] == [True, False, None, True]


def test_numeric_bins_and_labels() -> None:
    codes, labels = slice_codes(pa.array([1.0, 2.0, 3.0, 4.0, None, float("nan")]), bins=2)
    assert labels == ["[1, 2.5)", "[2.5, 4]", None]
    assert codes.tolist() == [0, 0, 1, 1, 2, 2]
    # tied quantiles merge: a skewed column gets fewer bins
    codes, labels = slice_codes(pa.array([0] * 90 + list(range(1, 11))), bins=4)
    assert labels == ["[0, 10]"]
    assert codes.tolist() == [0] * 100


def test_few_distinct_numbers_stay_values() -> None:
    codes, labels = slice_codes(pa.chunked_array([pa.array([3, 1, None, 3, 2])]), bins=5)
    assert labels == [1, 2, 3, None]
    assert [labels[c] for c in codes] == [3, 1, None, 3, 2]


def test_close_edges_get_more_digits() -> None:
    x = np.concatenate([np.full(50, 1.0000001), np.full(50, 1.0000002), np.full(50, 1.0000003), [5.0, 6.0]])
    _, labels = slice_codes(pa.array(x), bins=3)
    texts = [lab for lab in labels if lab is not None]
    assert len(set(texts)) == len(texts)
    assert "1.0000002" in " ".join(texts)


def test_temporal_columns_are_binned_with_dates() -> None:
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in range(30)]
    codes, labels = slice_codes(pa.array(days), bins=3)
    assert labels[0].startswith("[2024-01-01, ") and labels[-1].endswith("2024-01-30]")
    assert np.bincount(codes).tolist() == [10, 10, 10]


def test_unsupported_types_and_bins_raise() -> None:
    with pytest.raises(ValueError, match="bins"):
        slice_codes(pa.array([1, 2]), bins=1)
    with pytest.raises(ValueError, match="cannot slice"):
        slice_codes(pa.array([[1], [2]]), bins=3)


def test_max_error_without_median_and_zero_rows() -> None:
    rows, frame = _regression(20, n=500)
    group, _ = _run(rows, [_codes(frame, "country")], metrics=["max_error", "r2"])
    _assert_slices_match_subset(rows, frame, group, ["max_error", "r2"])
    empty = np.zeros(0)
    group, found = slice_report(
        empty,
        empty,
        group_columns=[("a", np.zeros(0, dtype=np.int64), ["x"])],
        task="regression",
        metrics=["mae", "median_ae"],
    )
    assert group.slices == [] and found == []
    codes = np.zeros(0, dtype=np.int64)
    group, found = slice_report(
        codes,
        codes,
        group_columns=[("a", codes, ["x"])],
        task="binary",
        n_classes=2,
        positive=1,
        scores=np.zeros(0),
        metrics=_metrics_for("binary"),
    )
    assert group.slices == [] and found == []


def _assert_slices_match_subset(rows: Rows, frame: pd.DataFrame, group: SliceGroup, names: list[str]) -> None:
    for s in group.slices:
        keep = np.array([_key(v) == s.conditions["country"] for v in frame["country"]])
        part = rows.take(keep)
        for name in names:
            expected = REFERENCES[name](part)
            value = s.metrics[name].value
            assert value is not None and math.isclose(value, expected, rel_tol=TOL, abs_tol=TOL), name
