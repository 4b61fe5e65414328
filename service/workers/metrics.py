"""Overall metrics for classification and regression, equal to scikit-learn's.

Pure computation: arrays in, a :class:`~schemas.metrics.MetricsReport` out; no I/O,
no clock, no randomness.

Why not call scikit-learn directly? Each sklearn metric re-validates its input,
rebuilds a confusion matrix or re-sorts the scores; on 1M binary rows the usual
nine metrics cost ~0.8 s. Here everything comes from sufficient statistics
computed once:

* every label metric (accuracy, precision/recall/F1 and their averages,
  balanced accuracy, MCC) from one ``K x K`` confusion matrix, built with a single
  ``np.bincount(y_true * K + y_pred)``;
* ROC AUC and average precision from one sort per (binary or one-vs-rest) score
  vector, with cumulative sums evaluated at the ends of tied-score groups, which is
  exactly what ``sklearn.metrics._ranking`` does (thresholds at distinct scores);
* log loss and Brier score from one per-row loss vector.

The same building blocks (:func:`confusion_counts`, :func:`confusion_metric_values`,
:class:`ScoreStatistics`, :class:`RegressionStatistics`) serve the bootstrap in
:mod:`service.workers.bootstrap`, so intervals and point estimates share one
implementation.

Undefined values
----------------
A metric that scikit-learn reports through ``UndefinedMetricWarning`` or ``nan``
(precision with nothing predicted positive, recall with no positive label, ROC AUC
with one class, R^2 with constant ``y_true``...) is ``None`` with a reason in
``report.undefined``. Averaged metrics keep scikit-learn's value under
``zero_division=0`` and say in ``report.notes`` which classes were counted as 0.
MCC follows scikit-learn: 0.0 when its denominator is 0 (with a note).

Which classes are averaged (``labels``)
---------------------------------------
``labels="present"`` (the default, scikit-learn's ``labels=None``): a declared
class that never occurs is left out of the macro averages. For the label metrics
a class occurs when it is in ``y_true`` or ``y_pred`` (scikit-learn's
``unique_labels(y_true, y_pred)``); for the one-vs-rest ROC AUC and average
precision, which do not use the predictions, when it has labeled rows (scikit-learn
takes their classes from ``y_true``). Rows of weight 0 do not make a class occur
(so integer weights still equal repeated rows). ``labels="declared"``
(scikit-learn's ``labels=range(K)``) averages over every declared class: one that
never occurs counts as 0 in the macro averages (``zero_division=0``) and makes the
macro ROC AUC undefined. Weighted and micro averages, balanced accuracy and MCC do
not depend on the choice (a class without rows has weight 0 / no counts).
``report.notes`` names the classes left out. Bootstrap replicates apply the same
rule to each resample.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from schemas.metrics import ClassMetrics, ConfusionMatrix, MetricsReport
from service.workers.sorting import sort_floats

Task = Literal["binary", "multiclass", "regression"]
Source = Literal["confusion", "scores", "values"]
Labels = Literal["present", "declared"]

TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
_CLASSIFICATION = frozenset({"binary", "multiclass"})


@dataclass(frozen=True)
class MetricInfo:
    """What the registry knows about one metric.

    Attributes
    ----------
    name : str
        scikit-learn style name; ``*_error``/``*_loss`` are lower-is-better.
    tasks : frozenset of str
        Tasks the metric is defined for (``binary``, ``multiclass``, ``regression``).
    greater_is_better : bool
        Direction, for gates and baseline lift.
    needs_scores : bool
        Needs predicted probabilities, not only predicted labels.
    description : str
        One line with the formula, for humans and the OpenAPI docs.
    source : {"confusion", "scores", "values"}
        The sufficient statistic it is computed from; the bootstrap resamples
        ``confusion`` metrics through the confusion-matrix cells.
    """

    name: str
    tasks: frozenset[str]
    greater_is_better: bool
    needs_scores: bool
    description: str
    source: Source


def _info(
    name: str,
    tasks: Iterable[str],
    description: str,
    *,
    greater_is_better: bool = True,
    source: Source = "confusion",
) -> MetricInfo:
    return MetricInfo(
        name=name,
        tasks=frozenset(tasks),
        greater_is_better=greater_is_better,
        needs_scores=source == "scores",
        description=description,
        source=source,
    )


_BOTH = ("binary", "multiclass")

METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        _info("accuracy", _BOTH, "Fraction of rows whose predicted class is the true class."),
        _info(
            "balanced_accuracy",
            _BOTH,
            "Mean recall over the classes present in y_true (sklearn balanced_accuracy_score).",
        ),
        _info("precision", ["binary"], "TP / (TP + FP) for the positive class."),
        _info("recall", ["binary"], "TP / (TP + FN) for the positive class."),
        _info("f1", ["binary"], "2 TP / (2 TP + FP + FN) for the positive class."),
        *(
            _info(
                f"{base}_{avg}",
                _BOTH,
                f"{base.capitalize()} {how} (sklearn average='{avg}', zero_division=0).",
            )
            for base in ("precision", "recall", "f1")
            for avg, how in (
                ("macro", "averaged over all classes with equal weight"),
                ("micro", "from the summed TP/FP/FN of all classes"),
                ("weighted", "averaged over classes weighted by their true support"),
            )
        ),
        _info(
            "mcc",
            _BOTH,
            "Matthews correlation coefficient (multiclass R_K); 0.0 when undefined, as sklearn.",
        ),
        _info(
            "roc_auc",
            _BOTH,
            "Area under the ROC curve (trapezoids); multiclass: macro mean of one-vs-rest AUCs.",
            source="scores",
        ),
        _info(
            "average_precision",
            _BOTH,
            "sum_n (R_n - R_{n-1}) P_n over score thresholds; multiclass: macro mean one-vs-rest.",
            source="scores",
        ),
        _info(
            "log_loss",
            _BOTH,
            "Mean -log p(true class), p clipped to [eps, 1 - eps] (sklearn log_loss).",
            greater_is_better=False,
            source="scores",
        ),
        _info(
            "brier_score",
            _BOTH,
            "Mean squared error of the probabilities: binary (y - p)^2 in [0, 1]; "
            "multiclass sum_c (y_c - p_c)^2 in [0, 2] (sklearn brier_score_loss).",
            greater_is_better=False,
            source="scores",
        ),
        _info("mae", ["regression"], "Mean |y - y_hat|.", greater_is_better=False, source="values"),
        _info("rmse", ["regression"], "sqrt(mean (y - y_hat)^2).", greater_is_better=False, source="values"),
        _info(
            "r2",
            ["regression"],
            "1 - sum (y - y_hat)^2 / sum (y - mean y)^2; undefined for constant y_true.",
            source="values",
        ),
        _info(
            "mape",
            ["regression"],
            "Mean |y - y_hat| / max(|y|, eps) as a fraction (not percent), as sklearn.",
            greater_is_better=False,
            source="values",
        ),
        _info(
            "median_ae",
            ["regression"],
            "Median |y - y_hat| (weighted: averaged inverted CDF, as sklearn).",
            greater_is_better=False,
            source="values",
        ),
        _info(
            "max_error",
            ["regression"],
            "max |y - y_hat| over rows (with positive weight).",
            greater_is_better=False,
            source="values",
        ),
    ]
}

_DEFAULTS: dict[str, tuple[str, ...]] = {
    "binary": (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "mcc",
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier_score",
    ),
    "multiclass": (
        "accuracy",
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "f1_weighted",
        "mcc",
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier_score",
    ),
    "regression": ("mae", "rmse", "r2", "mape", "median_ae", "max_error"),
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}.")


def check_labels(labels: str) -> Labels:
    """Validate the ``labels`` option: ``"present"`` or ``"declared"`` (see the module docstring)."""
    if labels == "present":
        return "present"
    if labels == "declared":
        return "declared"
    raise ValueError(f"labels must be 'present' or 'declared', got {labels!r}.")


def default_metrics(task: str, *, has_scores: bool) -> list[str]:
    """Metrics computed when a request names none.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    has_scores : bool
        Whether the batch carries probabilities; score metrics are left out otherwise.

    Returns
    -------
    list of str
        Registry names, in report order.
    """
    _check_task(task)
    return [n for n in _DEFAULTS[task] if has_scores or not METRICS[n].needs_scores]


def validate_metric_names(task: str, names: Sequence[str], *, has_scores: bool) -> None:
    """Raise ``ValueError`` naming every requested metric that cannot be computed.

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    names : sequence of str
        Requested metric names.
    has_scores : bool
        Whether the batch carries probabilities (``score`` / ``scores``).

    Raises
    ------
    ValueError
        For unknown names, names of another task, score metrics without scores, or
        duplicates; the message lists the names that are valid for ``task``.
    """
    _check_task(task)
    if isinstance(names, str):
        raise ValueError(f"metrics must be a list of names, not the string {names!r}.")
    valid = [n for n, m in METRICS.items() if task in m.tasks]
    problems: list[str] = []
    seen: set[str] = set()
    for name in names:
        info = METRICS.get(name)
        if name in seen:
            problems.append(f"{name!r} is listed twice")
        seen.add(name)
        if info is None:
            problems.append(f"unknown metric {name!r}")
        elif task not in info.tasks:
            hint = ""
            if task == "multiclass" and name in ("precision", "recall", "f1"):
                hint = f" (it needs a positive class; use {name}_macro, {name}_micro or {name}_weighted)"
            problems.append(f"{name!r} is not defined for {task} tasks{hint}")
        elif info.needs_scores and not has_scores:
            field = "score" if task == "binary" else "scores"
            problems.append(
                f"{name!r} needs predicted probabilities; send '{field}' with the batch or drop it"
            )
    if problems:
        raise ValueError(
            "Cannot compute the requested metrics: "
            + "; ".join(problems)
            + f". Valid metrics for {task}: {', '.join(valid)}."
        )


# --------------------------------------------------------------------------- input checks


def _check_codes(y: np.ndarray, *, n_classes: int, name: str) -> np.ndarray:
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


def _check_weights(sample_weight: np.ndarray | None, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},) like y_true, got {w.shape}.")
    if n and not (np.isfinite(w).all() and w.min() >= 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    return w


def _check_scores(scores: np.ndarray, *, n: int, n_classes: int, binary: bool) -> np.ndarray:
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
    yt = _check_codes(y_true, n_classes=n_classes, name="y_true")
    yp = _check_codes(y_pred, n_classes=n_classes, name="y_pred")
    if yp.shape != yt.shape:
        raise ValueError(f"y_true and y_pred differ in length: {yt.size} vs {yp.size}.")
    if scores is not None:
        scores = _check_scores(scores, n=yt.size, n_classes=n_classes, binary=positive is not None)
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


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0, without floating-point warnings."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out: np.ndarray = np.divide(num, den, out=np.full(num.shape, np.nan), where=den != 0)
    return out


# --------------------------------------------------------------------------- confusion metrics


def confusion_counts(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """The ``K x K`` confusion matrix (rows true, columns predicted) in one bincount.

    Returns int64 counts without weights, float64 weight sums with weights
    (like ``sklearn.metrics.confusion_matrix(..., labels=range(K))``).
    """
    flat = y_true * n_classes
    flat += y_pred
    k2 = n_classes * n_classes
    if sample_weight is None:
        return np.bincount(flat, minlength=k2).reshape(n_classes, n_classes)
    return np.bincount(flat, weights=sample_weight, minlength=k2).reshape(n_classes, n_classes)


@dataclass(frozen=True)
class _ClassRates:
    """Per-class sufficient statistics of a stack of confusion matrices (leading axes kept)."""

    tp: np.ndarray  # (..., K)
    true_sum: np.ndarray  # (..., K) support: TP + FN
    pred_sum: np.ndarray  # (..., K) TP + FP
    total: np.ndarray  # (...)

    @classmethod
    def of(cls, cm: np.ndarray) -> _ClassRates:
        cm = np.asarray(cm, dtype=np.float64)
        true_sum = cm.sum(axis=-1)
        return cls(
            tp=np.diagonal(cm, axis1=-2, axis2=-1),
            true_sum=true_sum,
            pred_sum=cm.sum(axis=-2),
            total=true_sum.sum(axis=-1),
        )

    # sklearn precision_recall_fscore_support: P = tp/pred, R = tp/true, F1 = 2tp/(true+pred)
    def precision(self) -> np.ndarray:
        return _safe_div(self.tp, self.pred_sum)

    def recall(self) -> np.ndarray:
        return _safe_div(self.tp, self.true_sum)

    def f1(self) -> np.ndarray:
        return _safe_div(2.0 * self.tp, self.true_sum + self.pred_sum)

    def score(self, base: str) -> np.ndarray:
        """Per-class ``precision``, ``recall`` or ``f1``; NaN on 0/0."""
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}[base]()

    def pooled(self) -> _ClassRates:
        """All classes summed into one (micro averaging)."""
        return _ClassRates(
            tp=self.tp.sum(axis=-1, keepdims=True),
            true_sum=self.true_sum.sum(axis=-1, keepdims=True),
            pred_sum=self.pred_sum.sum(axis=-1, keepdims=True),
            total=self.total,
        )


def _averaged(per_class: np.ndarray, rates: _ClassRates, average: str, labels: Labels) -> np.ndarray:
    """sklearn's macro/weighted average with zero_division=0 (NaN classes count as 0).

    ``labels="present"``: the macro average is over the classes with rows in y_true or
    y_pred of each matrix (sklearn's default ``unique_labels``); ``"declared"``: over all.
    """
    zeroed = np.nan_to_num(per_class, nan=0.0)
    if average == "macro":
        if labels == "declared":
            mean: np.ndarray = zeroed.mean(axis=-1)
            return mean
        occurs = (rates.true_sum + rates.pred_sum) > 0
        return _safe_div(np.where(occurs, zeroed, 0.0).sum(axis=-1), occurs.sum(axis=-1))
    # weighted by true support: classes without labeled rows have weight 0
    return _safe_div((zeroed * rates.true_sum).sum(axis=-1), rates.true_sum.sum(axis=-1))


def confusion_metric_values(
    cm: np.ndarray, names: Iterable[str], *, positive: int | None, labels: Labels = "present"
) -> dict[str, np.ndarray]:
    """Label metrics of one confusion matrix or a stack of them.

    Parameters
    ----------
    cm : ndarray of shape (..., K, K)
        Confusion matrices (rows true, columns predicted); counts or weight sums.
        A leading axis lets the bootstrap evaluate 1000 replicates at once.
    names : iterable of str
        Registry names whose ``source`` is ``"confusion"``.
    positive : int or None
        Code of the positive class (binary ``precision``, ``recall``, ``f1``).
    labels : {"present", "declared"}, default "present"
        Classes of the macro averages: those with rows in y_true or y_pred of each
        matrix (sklearn's default), or every declared class (sklearn ``labels=range(K)``).

    Returns
    -------
    dict of str to ndarray of shape (...)
        NaN where the metric is undefined (a zero denominator).

    Notes
    -----
    With ``t`` the true-class sums, ``p`` the predicted-class sums, ``c`` the trace
    and ``s`` the total (sklearn ``matthews_corrcoef``)::

        MCC = (c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t)),  0 if the denominator is 0
    """
    labels = check_labels(labels)
    r = _ClassRates.of(cm)
    out: dict[str, np.ndarray] = {}
    for name in names:
        base, _, average = name.partition("_")
        if name == "accuracy":
            out[name] = _safe_div(r.tp.sum(axis=-1), r.total)
        elif name == "balanced_accuracy":
            # sklearn drops classes absent from y_true (their recall is NaN)
            rec = r.recall()
            present = ~np.isnan(rec)
            out[name] = _safe_div(np.where(present, rec, 0.0).sum(axis=-1), present.sum(axis=-1))
        elif name == "mcc":
            c = r.tp.sum(axis=-1)
            s = r.total
            cov_tp = c * s - np.einsum("...k,...k->...", r.true_sum, r.pred_sum)
            cov_pp = s * s - np.einsum("...k,...k->...", r.pred_sum, r.pred_sum)
            cov_tt = s * s - np.einsum("...k,...k->...", r.true_sum, r.true_sum)
            den = cov_pp * cov_tt
            out[name] = np.nan_to_num(_safe_div(cov_tp, np.sqrt(np.maximum(den, 0.0))), nan=0.0)
        elif base in ("precision", "recall", "f1"):
            if average == "micro":
                # pool TP / FP / FN over classes, then the same ratio as for one class
                out[name] = r.pooled().score(base)[..., 0]
                continue
            per_class = r.score(base)
            if average in ("macro", "weighted"):
                out[name] = _averaged(per_class, r, average, labels)
            elif average == "":
                if positive is None:
                    raise ValueError(f"{name!r} needs the positive class code (binary tasks only).")
                out[name] = per_class[..., positive]
            else:
                raise ValueError(f"Unknown metric {name!r}.")
        else:
            raise ValueError(f"{name!r} is not computed from the confusion matrix.")
    return out


# --------------------------------------------------------------------------- score metrics


@dataclass(frozen=True)
class _Curve:
    """One ranking (binary, or one class versus the rest), sorted by decreasing score.

    ``order`` maps the statistics' row order to decreasing score (None: already so);
    ``ends`` are the last positions of the runs of tied scores, i.e. sklearn's
    threshold indices (``np.diff(score) != 0`` plus the last row), or None when
    all scores are distinct (every position is a threshold: no gather needed).
    """

    order: np.ndarray | None
    is_pos: np.ndarray
    ends: np.ndarray | None

    @classmethod
    def of(
        cls,
        is_pos: np.ndarray,
        score: np.ndarray,
        *,
        reorder: bool,
        presorted: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[_Curve, np.ndarray]:
        # Within a run of ties only the run's end is used, and cumulative sums at the end do
        # not depend on the order inside the run; sort_floats is the fast stable argsort.
        ascending, s = sort_floats(score) if presorted is None else presorted
        desc, s = ascending[::-1], s[::-1]
        changes = s[1:] != s[:-1]
        ends: np.ndarray | None = None
        if not changes.all():
            ends = np.append(np.flatnonzero(changes), s.size - 1)
        return cls(order=desc if reorder else None, is_pos=is_pos[desc], ends=ends), desc

    def counts(self, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative (TP, FP) at each threshold, as sklearn's ``confusion_matrix_at_thresholds``.

        Always float64 (exact for counts below 2**53): numpy's integer dot
        products do not use BLAS and are several times slower.
        """
        if weights is None:
            return self.unweighted_counts
        w = np.asarray(weights if self.order is None else weights[self.order], dtype=np.float64)
        tps = np.cumsum(np.where(self.is_pos, w, 0.0))
        # a second cumulative sum, not total - tps, keeps fps exact near 0 (as sklearn)
        fps = np.cumsum(np.where(self.is_pos, 0.0, w))
        if self.ends is None:
            return tps, fps
        return tps[self.ends], fps[self.ends]

    def _distinct_roc_auc_and_ap(self, want: set[str]) -> dict[str, float]:
        """:meth:`roc_auc_and_ap` of distinct scores without weights, with one n-row temporary.

        Every row is a threshold, so ``dTP`` is ``is_pos``, ``dFP`` its negation and
        ``TP + FP`` the depth ``1 .. n``: the area is ``2 sum_neg TP`` (integers, exact)
        and AP the mean of ``TP / depth`` over the positives (``j / d_j`` for the j-th).
        """
        tps = self.unweighted_tps
        n = tps.size
        n_pos = float(tps[-1])
        n_neg = float(n) - n_pos
        if n_pos <= 0 or n_neg <= 0:
            return dict.fromkeys(want, np.nan)
        out: dict[str, float] = {}
        if "roc_auc" in want:
            # the j-th positive sits where TP == j, so the positives' TP sum to P (P + 1) / 2
            # and the negatives' to the rest (integers, exact in float64; no masked pass)
            area = 2.0 * (float(tps.sum()) - n_pos * (n_pos + 1.0) / 2.0)
            out["roc_auc"] = area / (2.0 * n_pos * n_neg)
        if "average_precision" in want:
            # the j-th positive sits at depth d_j where TP == j: AP is the mean of j / d_j,
            # P-row arrays instead of an n-row precision summed under a mask
            precision = np.flatnonzero(self.is_pos) + 1.0
            np.divide(np.arange(1.0, precision.size + 1.0), precision, out=precision)
            out["average_precision"] = max(0.0, float(precision.sum()) / n_pos)
        return out

    @cached_property
    def unweighted_tps(self) -> np.ndarray:
        """Cumulative TP at each threshold without weights, computed once (the delta method reuses it)."""
        tps = np.cumsum(self.is_pos, dtype=np.float64)
        return tps if self.ends is None else tps[self.ends]

    @cached_property
    def unweighted_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`counts` without weights, computed once (distinct scores need only the TP,
        so their n-row FP array is built only when asked for)."""
        tps = self.unweighted_tps
        fps = np.arange(1.0, tps.size + 1.0) if self.ends is None else self.ends + 1.0
        fps -= tps
        return tps, fps

    def roc_auc_and_ap(self, weights: np.ndarray | None, want: set[str]) -> dict[str, float]:
        """ROC AUC and/or average precision of this ranking; NaN when undefined.

        Notes
        -----
        With TP_k, FP_k the cumulative counts at the k-th distinct threshold
        (TP_0 = FP_0 = 0), P = TP_last and N = FP_last::

            AUC = sum_k (FP_k - FP_{k-1}) (TP_k + TP_{k-1}) / (2 P N)     (trapezoids)
            AP  = sum_k (TP_k - TP_{k-1}) / P * TP_k / (TP_k + FP_k)       (sklearn's step sum)
        """
        if weights is None and self.ends is None and self.is_pos.size:
            return self._distinct_roc_auc_and_ap(want)
        tps, fps = self.counts(weights)
        if not tps.size:
            return dict.fromkeys(want, np.nan)
        n_pos, n_neg = tps[-1], fps[-1]
        if n_pos <= 0 or n_neg <= 0:
            # AUC needs both classes; AP is 0/0 without positives and 1.0 whatever
            # the scores without negatives, so neither says anything about the ranking
            return dict.fromkeys(want, np.nan)
        out: dict[str, float] = {}
        # n-row temporaries are costly (fresh pages): differences written in place
        dtp = _steps(tps)
        if "roc_auc" in want:
            dfp = _steps(fps)
            # (TP_k + TP_{k-1}) = 2 TP_k - dTP_k
            area = 2 * np.dot(dfp, tps) - np.dot(dfp, dtp)
            out["roc_auc"] = float(area) / (2.0 * float(n_pos) * float(n_neg))
        if "average_precision" in want:
            predicted = tps + fps
            # nothing predicted yet (zero-weight rows on top) means dTP == 0 there too;
            # those entries of ``predicted`` are already the 0 the precision needs
            precision = np.divide(tps, predicted, out=predicted, where=predicted != 0)
            out["average_precision"] = max(0.0, float(np.dot(dtp, precision)) / float(n_pos))
        return out


def _steps(cumulative: np.ndarray) -> np.ndarray:
    """``np.diff(cumulative, prepend=0)`` with one allocation."""
    out = np.empty_like(cumulative)
    if cumulative.size:
        out[0] = cumulative[0]
        np.subtract(cumulative[1:], cumulative[:-1], out=out[1:])
    return out


def _macro_ranking_value(per_class: np.ndarray, name: str, *, labels: Labels) -> float:
    """Macro mean of one-vs-rest ROC AUCs / APs (NaN: the class has no positives or no negatives).

    With two or more classes present every present class has negatives, so a NaN marks
    a class without labeled rows (or a single present class, when all are NaN).
    ``present``: the mean over the defined classes, undefined below two. ``declared``
    (sklearn ``labels=range(K)``): ROC AUC is NaN as soon as a class is absent; AP counts
    an absent class as 0 and needs two present classes.
    """
    defined = ~np.isnan(per_class)
    count = int(np.count_nonzero(defined))
    if count < 2:
        return np.nan
    if labels == "present":
        return float(per_class[defined].mean())
    if name == "roc_auc":
        return float(per_class.mean())
    return float(np.nan_to_num(per_class, nan=0.0).mean())


def _weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    if weights is None:
        return float(np.mean(values)) if values.size else np.nan
    total = float(weights.sum())
    return float(np.dot(values, weights)) / total if total > 0 else np.nan


class ScoreStatistics:
    """Sorted rankings and per-row losses for the probability metrics.

    Built once per batch; :meth:`values` then evaluates ROC AUC, average
    precision, log loss and Brier score for any row weighting in O(n) without
    sorting again, which is what the bootstrap needs.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        Class codes.
    scores : ndarray, shape (n,) or (n, K)
        Binary: probability of ``positive``. Multiclass: one column per class.
    n_classes : int
    positive : int or None
        Positive class code (binary) or None (multiclass one-vs-rest).
    names : iterable of str
        The score metrics that will be asked for (the rest is not prepared).
    presorted : tuple of ndarray, optional
        Binary only: :func:`~service.workers.sorting.sort_floats` of ``scores``, when the
        caller sorted them already (say, in another thread while it read other data).
    labels : {"present", "declared"}, default "present"
        Multiclass ROC AUC / average precision: the macro mean over the classes with
        labeled rows (of positive weight) under each weighting, or over every declared
        class (an absent class makes ROC AUC undefined and counts as AP 0).

    Attributes
    ----------
    row_order : ndarray or None
        Permutation applied to the rows: weights given to :meth:`values` must be in
        this order (``sample_weight[row_order]``). Binary rows are stored by
        decreasing score so the single ranking needs no gather per call.
    """

    def __init__(
        self,
        y_true: np.ndarray,
        scores: np.ndarray,
        *,
        n_classes: int,
        positive: int | None,
        names: Iterable[str],
        presorted: tuple[np.ndarray, np.ndarray] | None = None,
        labels: Labels = "present",
    ) -> None:
        self.names = [n for n in names if METRICS[n].source == "scores"]
        self.labels = check_labels(labels)
        want = set(self.names)
        self._binary = positive is not None
        self.curves: list[_Curve] = []
        self.row_order: np.ndarray | None = None
        eps = np.finfo(np.float64).eps
        if positive is not None:
            # per-row terms in input order first (the delta method needs them there),
            # then gathered into the ranking's order
            is_pos = y_true == positive
            p_true = np.where(is_pos, scores, 1 - scores)
            brier_rows = None
            if "brier_score" in want:
                brier_rows = is_pos - scores
                brier_rows *= brier_rows
        else:
            if want & {"roc_auc", "average_precision"}:
                columns = np.ascontiguousarray(scores.T)
                self.curves = [_Curve.of(y_true == c, columns[c], reorder=True)[0] for c in range(n_classes)]
            p_true = scores[np.arange(y_true.size), y_true]
            brier_rows = None
            if "brier_score" in want:
                diff = np.array(scores, dtype=np.float64)
                diff[np.arange(y_true.size), y_true] -= 1
                brier_rows = np.einsum("ij,ij->i", diff, diff)
                # sklearn brier_score_loss(scale_by_half="auto") halves only with < 3 columns
                if n_classes < 3:
                    brier_rows *= 0.5
        self.n_clipped = int(np.count_nonzero(p_true <= 0))
        """Rows whose true class got probability 0 (log loss clips them to eps)."""
        log_rows = None
        if "log_loss" in want:
            # sklearn 1.9 clips to [eps, 1 - eps] with the eps of the probabilities'
            # dtype, which is float64 here (see _check_scores)
            log_rows = np.clip(p_true, eps, 1 - eps, out=p_true if positive is not None else None)
            np.log(log_rows, out=log_rows)
            np.negative(log_rows, out=log_rows)
        #: per-row log loss / Brier terms in input order (their means are the metrics)
        self.row_losses: dict[str, np.ndarray] = {}
        if log_rows is not None:
            self.row_losses["log_loss"] = log_rows
        if brier_rows is not None:
            self.row_losses["brier_score"] = brier_rows
        if positive is not None and want & {"roc_auc", "average_precision"}:
            if presorted is not None and presorted[0].shape != scores.shape:
                raise ValueError(f"presorted holds {presorted[0].shape} rows, scores {scores.shape}.")
            curve, desc = _Curve.of(is_pos, scores, reorder=False, presorted=presorted)
            self.curves = [curve]
            self.row_order = desc

    def _losses_in_row_order(self, name: str) -> np.ndarray:
        """Per-row losses in ``row_order`` (gathered once, when weights first ask for them)."""
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_ordered_losses", {})
        if name not in cache:
            rows = self.row_losses[name]
            cache[name] = rows if self.row_order is None else rows[self.row_order]
        return cache[name]

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """The prepared metrics under ``weights`` (in ``row_order``); NaN = undefined."""
        out: dict[str, float] = {}
        want = set(self.names)
        ranked = want & {"roc_auc", "average_precision"}
        if ranked:
            if self._binary:
                out.update(self.curves[0].roc_auc_and_ap(weights, ranked))
            else:
                per_class = [c.roc_auc_and_ap(weights, ranked) for c in self.curves]
                for name in ranked:
                    out[name] = _macro_ranking_value(
                        np.array([c[name] for c in per_class]), name, labels=self.labels
                    )
        # unweighted means do not depend on the row order: no gather needed
        for name in ("log_loss", "brier_score"):
            if name in want:
                rows = self.row_losses[name] if weights is None else self._losses_in_row_order(name)
                out[name] = _weighted_mean(rows, weights)
        return {n: out[n] for n in self.names}


# --------------------------------------------------------------------------- regression


class RegressionStatistics:
    """Per-row errors for the regression metrics, evaluated under any row weighting.

    With ``presort`` (the bootstrap) and ``median_ae`` wanted, rows are stored by
    increasing absolute error so that each weighted median is one cumulative sum
    (``row_order`` then says how to permute weights, as in :class:`ScoreStatistics`).
    Without it a single evaluation takes ``np.median`` (a partition, no sort).

    Notes
    -----
    With weights ``w`` (1 when absent), ``e = y_hat - y`` and ``W = sum w``::

        mae = sum w|e| / W            rmse = sqrt(sum w e^2 / W)
        mape = sum w |e| / max(|y|, eps) / W
        r2 = 1 - sum w e^2 / sum w (y - ybar_w)^2      (undefined if y is constant)
        median_ae: sklearn ``_weighted_percentile(average=True)`` (= np.median for unit weights)
        max_error = max |e| over rows with w > 0
    """

    def __init__(
        self, y_true: np.ndarray, y_pred: np.ndarray, *, names: Iterable[str], presort: bool = True
    ) -> None:
        self.names = [n for n in names if METRICS[n].source == "values"]
        y = np.asarray(y_true, dtype=np.float64)
        abs_err = np.abs(np.asarray(y_pred, dtype=np.float64) - y)
        self.row_order: np.ndarray | None = None
        if presort and "median_ae" in self.names:
            # ties in |e| have equal values, so their order does not change the medians
            self.row_order, abs_err = sort_floats(abs_err)
            y = y[self.row_order]
        self.n_rows = int(y.size)
        self._y = y
        self._abs = abs_err
        self._sq = abs_err * abs_err
        eps = np.finfo(np.float64).eps
        self._ape = abs_err / np.maximum(np.abs(y), eps) if "mape" in self.names else None

    @property
    def n_zero_targets(self) -> int:
        return int(np.count_nonzero(self._y == 0))

    def _median(self, weights: np.ndarray | None) -> float:
        a = self._abs
        if weights is None:
            if self.row_order is None:
                return float(np.median(a))
            m = a.size // 2
            return float(a[m]) if a.size % 2 else float((a[m - 1] + a[m]) / 2)
        if self.row_order is None:
            order, a = sort_floats(a)
            weights = weights[order]
        # sklearn _weighted_percentile(average=True) on rows sorted by |e|: take the
        # first row whose cumulative weight reaches W/2; average it with the next
        # row of positive weight when the CDF hits W/2 exactly.
        cdf = np.cumsum(weights, dtype=np.float64)
        target = 0.5 * cdf[-1]
        i = min(int(np.searchsorted(cdf, target, side="left")), a.size - 1)
        if cdf[i] - target > np.finfo(np.float64).eps:
            return float(a[i])
        j = int(np.searchsorted(cdf, cdf[i], side="right"))
        j = i if j > a.size - 1 else j
        return float((a[i] + a[j]) / 2)

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """The prepared metrics under ``weights`` (in ``row_order``); NaN = undefined."""
        if self.n_rows == 0 or (weights is not None and not weights.sum() > 0):
            return dict.fromkeys(self.names, np.nan)
        out: dict[str, float] = {}
        positive_rows = None if weights is None else weights > 0
        for name in self.names:
            if name == "mae":
                out[name] = _weighted_mean(self._abs, weights)
            elif name == "rmse":
                out[name] = float(np.sqrt(_weighted_mean(self._sq, weights)))
            elif name == "mape":
                assert self._ape is not None
                out[name] = _weighted_mean(self._ape, weights)
            elif name == "median_ae":
                out[name] = self._median(weights)
            elif name == "max_error":
                # sklearn's max_error takes no weights: rows of weight 0 count as absent
                kept = True if positive_rows is None else positive_rows
                out[name] = float(self._abs.max(where=kept, initial=0.0))
            elif name == "r2":
                out[name] = self._r2(weights, positive_rows)
        return out

    def _r2(self, weights: np.ndarray | None, positive_rows: np.ndarray | None) -> float:
        y = self._y
        if positive_rows is None:
            if y.min() == y.max():
                return np.nan
            num = float(np.sum(self._sq))
            den = float(np.sum((y - np.mean(y)) ** 2))
        else:
            assert weights is not None
            if y.min(where=positive_rows, initial=np.inf) == y.max(where=positive_rows, initial=-np.inf):
                return np.nan
            ybar = float(np.dot(weights, y)) / float(weights.sum())
            num = float(np.dot(weights, self._sq))
            den = float(np.dot(weights, (y - ybar) ** 2))
        return 1 - num / den if den > 0 else np.nan


# --------------------------------------------------------------------------- reports


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _plural(items: Sequence[str], one: str, many: str) -> str:
    return one if len(items) == 1 else many


def _to_float(value: float) -> float | None:
    v = float(value)
    return None if np.isnan(v) else v


def classification_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int,
    class_names: Sequence[str],
    positive: int | None,
    scores: np.ndarray | None,
    metrics: Sequence[str] | None = None,
    sample_weight: np.ndarray | None = None,
    labels: Labels = "present",
) -> MetricsReport:
    """Classification metrics equal to scikit-learn's, plus per-class metrics and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : ndarray of int, shape (n,)
        Class codes ``0 .. n_classes - 1`` (labels mapped by the caller, unlabeled
        rows removed).
    n_classes : int
        Number of declared classes; every class appears in ``per_class`` and the
        confusion matrix.
    class_names : sequence of str
        Display names, one per code.
    positive : int or None
        Binary task: the code of the positive class (``n_classes`` must be 2).
        None: multiclass (one-vs-rest for the score metrics).
    scores : ndarray or None
        Binary: shape (n,), probability of ``positive``. Multiclass: shape
        (n, n_classes), rows summing to 1. None when the batch has no scores.
    metrics : sequence of str, optional
        Registry names; default :func:`default_metrics`.
    sample_weight : ndarray of shape (n,), optional
        Non-negative row weights, used by every metric (integer weights equal
        repeating rows). ``support`` and the confusion matrix stay row counts.
    labels : {"present", "declared"}, default "present"
        Classes of the macro averages (and of the multiclass ROC AUC / average
        precision): those that occur (scikit-learn's default, ``labels=None``) or every
        declared class (``labels=range(n_classes)``); see the module docstring.
        ``notes`` names the classes left out.

    Returns
    -------
    MetricsReport
        ``metrics`` in request order; undefined values are None with a reason.

    Raises
    ------
    ValueError
        On misuse (shapes, codes out of range, unknown or inapplicable metrics),
        never because of what the data says.

    Examples
    --------
    >>> import numpy as np
    >>> r = classification_metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), n_classes=2,
    ...     class_names=["no", "yes"], positive=1, scores=None, metrics=["accuracy", "recall"])
    >>> r.metrics
    {'accuracy': 0.75, 'recall': 0.5}
    """
    y_true, y_pred, scores = check_classification_inputs(
        y_true, y_pred, n_classes=n_classes, positive=positive, scores=scores
    )
    labels = check_labels(labels)
    names_list = [str(c) for c in class_names]
    if len(names_list) != n_classes or len(set(names_list)) != n_classes:
        raise ValueError(f"class_names must hold {n_classes} distinct names, got {names_list!r}.")
    task: Task = "binary" if positive is not None else "multiclass"
    n = y_true.size
    w = _check_weights(sample_weight, n)
    names = list(metrics) if metrics is not None else default_metrics(task, has_scores=scores is not None)
    validate_metric_names(task, names, has_scores=scores is not None)

    counts = confusion_counts(y_true, y_pred, n_classes=n_classes)
    cm = counts if w is None else confusion_counts(y_true, y_pred, n_classes=n_classes, sample_weight=w)
    values: dict[str, float] = {}
    n_clipped = 0
    if float(cm.sum()) > 0:
        conf_names = [m for m in names if METRICS[m].source == "confusion"]
        conf_values = confusion_metric_values(cm, conf_names, positive=positive, labels=labels)
        values.update({k: float(v) for k, v in conf_values.items()})
        if scores is not None and any(METRICS[m].source == "scores" for m in names):
            stats = ScoreStatistics(
                y_true, scores, n_classes=n_classes, positive=positive, names=names, labels=labels
            )
            sw = None if w is None else (w if stats.row_order is None else w[stats.row_order])
            values.update(stats.values(sw))
            n_clipped = stats.n_clipped
    return classification_report(
        counts,
        cm=cm,
        names=names,
        class_names=names_list,
        positive=positive,
        values=values,
        n_clipped=n_clipped,
        no_rows_reason="no labeled rows to evaluate" if n == 0 else "every row has sample weight 0",
        labels=labels,
    )


def classification_report(
    counts: np.ndarray,
    *,
    names: Sequence[str],
    class_names: Sequence[str],
    positive: int | None,
    values: dict[str, float],
    n_clipped: int = 0,
    cm: np.ndarray | None = None,
    no_rows_reason: str = "no labeled rows to evaluate",
    labels: Labels = "present",
) -> MetricsReport:
    """The :class:`MetricsReport` of already computed metric values (what
    :func:`classification_metrics` returns), with reasons, notes, per-class metrics
    and the confusion matrix.

    Parameters
    ----------
    counts : ndarray of int, shape (K, K)
        Row-count confusion matrix (:func:`confusion_counts`).
    names : sequence of str
        Metrics in report order; ``values`` must hold each (NaN = undefined) unless
        the matrix is empty.
    class_names : sequence of str
    positive : int or None
    values : dict of str to float
    n_clipped : int
        :attr:`ScoreStatistics.n_clipped` (rows whose true class got probability 0).
    cm : ndarray, optional
        Weighted confusion matrix the values came from (default ``counts``).
    no_rows_reason : str
        Why nothing is defined when the (weighted) matrix is empty.
    labels : {"present", "declared"}, default "present"
        The ``labels`` the values were computed with (for the notes).
    """
    labels = check_labels(labels)
    names_list = [str(c) for c in class_names]
    rates = _ClassRates.of(counts if cm is None else cm)
    undefined: dict[str, str] = {}
    notes: dict[str, str] = {}
    if not rates.total > 0:
        reason = no_rows_reason + "; the metric needs at least one row with ground truth."
        values = dict.fromkeys(names, np.nan)
        undefined = dict.fromkeys(names, reason)
    else:
        wanted = set(names)
        values = {m: v for m, v in values.items() if m in wanted}
        _explain(values, rates, names_list, positive, n_clipped, undefined, notes, labels=labels)

    per_class, per_class_undefined = _per_class(rates, counts, names_list)
    undefined.update(per_class_undefined)
    return MetricsReport(
        metrics={m: _to_float(values[m]) for m in names},
        undefined=undefined,
        notes=notes,
        per_class=per_class,
        confusion_matrix=ConfusionMatrix(labels=names_list, matrix=counts.tolist()),
        intervals={},
    )


def _per_class(
    rates: _ClassRates, counts: np.ndarray, class_names: list[str]
) -> tuple[dict[str, ClassMetrics], dict[str, str]]:
    precision, recall, f1 = rates.precision(), rates.recall(), rates.f1()
    support = counts.sum(axis=1)
    out: dict[str, ClassMetrics] = {}
    undefined: dict[str, str] = {}
    for k, name in enumerate(class_names):
        out[name] = ClassMetrics(
            precision=_to_float(precision[k]),
            recall=_to_float(recall[k]),
            f1=_to_float(f1[k]),
            support=int(support[k]),
        )
        if np.isnan(precision[k]):
            undefined[f"per_class.{name}.precision"] = (
                f"class '{name}' is never predicted, so its precision TP / (TP + FP) is 0/0."
            )
        if np.isnan(recall[k]):
            undefined[f"per_class.{name}.recall"] = (
                f"class '{name}' has no labeled rows, so its recall TP / (TP + FN) is 0/0."
            )
        if np.isnan(f1[k]):
            undefined[f"per_class.{name}.f1"] = (
                f"class '{name}' is neither labeled nor predicted, so its F1 is 0/0."
            )
    return out, undefined


def _explain(
    values: dict[str, float],
    rates: _ClassRates,
    class_names: list[str],
    positive: int | None,
    n_clipped: int,
    undefined: dict[str, str],
    notes: dict[str, str],
    *,
    labels: Labels = "present",
) -> None:
    """Fill the reasons for undefined values and the notes on conventions."""
    absent = [class_names[k] for k in np.flatnonzero(rates.true_sum <= 0)]
    present = [class_names[k] for k in np.flatnonzero(rates.true_sum > 0)]
    occurs = (rates.true_sum + rates.pred_sum) > 0
    # classes neither labeled nor predicted: left out of the macro averages with "present"
    unused = [class_names[k] for k in np.flatnonzero(~occurs)]
    pos = class_names[positive] if positive is not None else None
    for name, value in values.items():
        base, _, average = name.partition("_")
        if np.isnan(value):
            undefined[name] = _reason(name, pos, absent, present)
        elif base in ("precision", "recall", "f1") and average in ("macro", "weighted"):
            counted = occurs if average == "macro" and labels == "present" else np.ones(occurs.size, bool)
            if base == "precision":
                zero = [
                    class_names[k]
                    for k in np.flatnonzero((rates.pred_sum <= 0) & counted)
                    if average == "macro" or rates.true_sum[k] > 0
                ]
                why = _plural(zero, "is never predicted", "are never predicted")
            elif base == "recall":
                zero = [class_names[k] for k in np.flatnonzero((rates.true_sum <= 0) & counted)]
                zero = zero if average == "macro" else []
                why = _plural(zero, "has no labeled rows", "have no labeled rows")
            else:
                zero = [
                    class_names[k]
                    for k in np.flatnonzero((rates.true_sum + rates.pred_sum <= 0) & counted)
                    if average == "macro"
                ]
                why = _plural(zero, "is neither labeled nor predicted", "are neither labeled nor predicted")
            parts = []
            if zero:
                parts.append(
                    f"{_plural(zero, 'class', 'classes')} {_quoted(zero)} {why}: "
                    f"{base} is 0/0 there and counts as 0 in the {average} average "
                    "(scikit-learn zero_division=0)."
                )
            if average == "macro" and labels == "present" and unused:
                parts.append(_left_out(unused, "neither labeled nor predicted", "macro average"))
            if parts:
                notes[name] = " ".join(parts)
        elif name == "balanced_accuracy" and absent:
            notes[name] = (
                f"{_plural(absent, 'class', 'classes')} {_quoted(absent)} "
                f"{_plural(absent, 'has', 'have')} no labeled rows and "
                f"{_plural(absent, 'is', 'are')} left out: the mean recall is over the "
                f"{len(present)} classes present in y_true (as scikit-learn)."
            )
        elif (
            name == "mcc"
            and value == 0.0
            and (np.count_nonzero(rates.true_sum > 0) < 2 or np.count_nonzero(rates.pred_sum > 0) < 2)
        ):
            one = "y_true" if np.count_nonzero(rates.true_sum > 0) < 2 else "y_pred"
            notes[name] = (
                f"{one} holds a single class, so MCC's denominator is 0; reported as 0.0 "
                "like scikit-learn (no better than chance)."
            )
        elif name in ("roc_auc", "average_precision") and positive is None and absent:
            if labels == "present":
                notes[name] = _left_out(absent, "without labeled rows", "one-vs-rest macro average")
            elif name == "average_precision":
                notes[name] = (
                    f"{_plural(absent, 'class', 'classes')} {_quoted(absent)} "
                    f"{_plural(absent, 'has', 'have')} no labeled rows: one-vs-rest average "
                    "precision counts as 0 for it in the macro average (labels='declared', "
                    "as scikit-learn with labels=range(K))."
                )
        elif name == "log_loss" and n_clipped:
            k = n_clipped
            notes[name] = (
                f"{k} row{'s' if k != 1 else ''} give probability 0 to the true class; "
                "clipped to machine epsilon as scikit-learn, each adds about 36 to the summed loss."
            )


def _left_out(classes: list[str], why: str, where: str) -> str:
    return (
        f"{_plural(classes, 'class', 'classes')} {_quoted(classes)} "
        f"({why}) {_plural(classes, 'is', 'are')} left out of the {where} "
        "(labels='present', scikit-learn's default); labels='declared' averages over every declared class."
    )


def _reason(name: str, pos: str | None, absent: list[str], present: list[str]) -> str:
    """A person-readable reason why ``name`` is undefined on this data."""
    if name == "precision":
        return (
            f"no row is predicted as the positive class '{pos}', so precision TP / (TP + FP) is 0/0; "
            "it becomes defined once the model predicts the positive class for some row "
            "(check the threshold or the prediction column)."
        )
    if name == "recall":
        return (
            f"no labeled row has the positive class '{pos}', so recall TP / (TP + FN) is 0/0; "
            "evaluate on rows that include positives (or check positive_class)."
        )
    if name == "f1":
        return (
            f"no row is labeled or predicted as the positive class '{pos}', so F1 "
            "2TP / (2TP + FP + FN) is 0/0; evaluate on rows that include positives."
        )
    if name in ("roc_auc", "average_precision"):
        what = "ROC AUC" if name == "roc_auc" else "average precision"
        if len(present) < 2:
            return (
                f"every labeled row has class {_quoted(present)}, so {what} (how well scores rank "
                "one class above the others) is undefined; it needs labeled rows of at least two classes."
            )
        return (
            f"{_plural(absent, 'class', 'classes')} {_quoted(absent)} "
            f"{_plural(absent, 'has', 'have')} no labeled rows, so the one-vs-rest {what} "
            "is undefined there and so is the macro average over every declared class "
            "(labels='declared'; scikit-learn returns nan); it needs labeled rows of every class, "
            "or labels='present', which leaves such classes out."
        )
    return f"{name} is undefined on this data."


def regression_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    metrics: Sequence[str] | None = None,
    sample_weight: np.ndarray | None = None,
) -> MetricsReport:
    """Regression metrics equal to scikit-learn's.

    Parameters
    ----------
    y_true, y_pred : ndarray of float, shape (n,)
        Targets and predictions (unlabeled rows removed), finite.
    metrics : sequence of str, optional
        Registry names; default :func:`default_metrics`.
    sample_weight : ndarray of shape (n,), optional
        Non-negative row weights. scikit-learn's ``max_error`` takes no weights:
        here it is the maximum over rows with positive weight, which equals
        ``max_error`` on the row-repeated data for integer weights.

    Returns
    -------
    MetricsReport
        ``per_class`` and ``confusion_matrix`` are None.

    Notes
    -----
    Formulas in :class:`RegressionStatistics`. ``r2`` is None for constant
    ``y_true`` (scikit-learn's ``force_finite`` would report 0.0 or 1.0).

    Examples
    --------
    >>> import numpy as np
    >>> regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 3.0]), metrics=["mae"]).metrics
    {'mae': 0.6666666666666666}
    """
    yt, yp = check_regression_inputs(y_true, y_pred)
    w = _check_weights(sample_weight, yt.size)
    names = list(metrics) if metrics is not None else default_metrics("regression", has_scores=False)
    validate_metric_names("regression", names, has_scores=False)

    stats = RegressionStatistics(yt, yp, names=names, presort=False)
    return regression_report(stats, stats.values(w), weights=w)


def regression_report(
    stats: RegressionStatistics, values: dict[str, float], *, weights: np.ndarray | None = None
) -> MetricsReport:
    """The :class:`MetricsReport` of regression values computed from ``stats`` (what
    :func:`regression_metrics` returns), with reasons and notes."""
    w = weights
    names = stats.names
    undefined: dict[str, str] = {}
    notes: dict[str, str] = {}
    for name, value in values.items():
        if not np.isnan(value):
            continue
        if stats.n_rows == 0 or (w is not None and not w.sum() > 0):
            undefined[name] = "no labeled rows (with positive weight) to evaluate."
        elif name == "r2":
            undefined[name] = (
                "y_true is constant on the evaluated rows, so R^2 = 1 - SS_res / SS_tot divides by "
                "SS_tot = 0 (scikit-learn's force_finite would report 0.0 or 1.0); evaluate on rows "
                "with varying targets."
            )
        else:
            undefined[name] = f"{name} is undefined on this data."
    if "mape" in values and not np.isnan(values["mape"]) and stats.n_zero_targets:
        k = stats.n_zero_targets
        notes["mape"] = (
            f"{k} row{'s' if k != 1 else ''} have y_true == 0; MAPE divides their error by machine "
            "epsilon (as scikit-learn), so they dominate the value. Prefer mae there."
        )
    return MetricsReport(
        metrics={m: _to_float(values[m]) for m in names},
        undefined=undefined,
        notes=notes,
        per_class=None,
        confusion_matrix=None,
        intervals={},
    )
