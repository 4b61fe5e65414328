"""Overall metrics for classification and regression, equal to scikit-learn's, as a
:class:`~schemas.metrics.MetricsReport` with reasons, notes, per-class metrics and the
confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from schemas.metrics import ClassMetrics, ConfusionMatrix, MetricsReport
from service.workers.metrics.checks import check_classification_inputs, check_regression_inputs, check_weights
from service.workers.metrics.confusion import ClassRates, confusion_counts, confusion_metric_values
from service.workers.metrics.prose import explain, regression_reasons
from service.workers.metrics.registry import (
    METRICS,
    Labels,
    Task,
    check_labels,
    default_metrics,
    validate_metric_names,
)
from service.workers.metrics.regression import RegressionStatistics
from service.workers.metrics.scores import ScoreStatistics


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
    w = check_weights(sample_weight, n)
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
    rates = ClassRates.of(counts if cm is None else cm)
    undefined: dict[str, str] = {}
    notes: dict[str, str] = {}
    if not rates.total > 0:
        reason = no_rows_reason + "; the metric needs at least one row with ground truth."
        values = dict.fromkeys(names, np.nan)
        undefined = dict.fromkeys(names, reason)
    else:
        wanted = set(names)
        values = {m: v for m, v in values.items() if m in wanted}
        explain(values, rates, names_list, positive, n_clipped, undefined, notes, labels=labels)

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
    rates: ClassRates, counts: np.ndarray, class_names: list[str]
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
    w = check_weights(sample_weight, yt.size)
    names = list(metrics) if metrics is not None else default_metrics("regression", has_scores=False)
    validate_metric_names("regression", names, has_scores=False)

    stats = RegressionStatistics(yt, yp, names=names, presort=False)
    return regression_report(stats, stats.values(w), weights=w)


def regression_report(
    stats: RegressionStatistics, values: dict[str, float], *, weights: np.ndarray | None = None
) -> MetricsReport:
    """The :class:`MetricsReport` of regression values computed from ``stats`` (what
    :func:`regression_metrics` returns), with reasons and notes."""
    names = stats.names
    no_rows = stats.n_rows == 0 or (weights is not None and not weights.sum() > 0)
    # counting zero targets is a pass over the rows: only MAPE's note needs it
    zero_targets = stats.n_zero_targets if "mape" in values else 0
    undefined, notes = regression_reasons(values, no_rows=no_rows, zero_targets=zero_targets)
    return MetricsReport(
        metrics={m: _to_float(values[m]) for m in names},
        undefined=undefined,
        notes=notes,
        per_class=None,
        confusion_matrix=None,
        intervals={},
    )
