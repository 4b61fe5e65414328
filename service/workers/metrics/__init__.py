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

Modules
-------
``registry``
    What each metric needs, its kind, interval and test methods, direction and bounds:
    every engine asks it (:data:`METRICS`, :func:`register_metric`).
``checks``
    Input validation shared by the engines.
``confusion``, ``ranking``, ``scores``, ``regression``
    The sufficient statistics and the formulas evaluated from them.
``report``, ``prose``
    The :class:`~schemas.metrics.MetricsReport` and its reasons and notes.

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

from service.workers.metrics.checks import (
    check_classification_inputs,
    check_codes,
    check_regression_inputs,
    check_scores,
    check_weights,
)
from service.workers.metrics.confusion import confusion_counts, confusion_metric_values
from service.workers.metrics.registry import (
    METRICS,
    TASKS,
    Kind,
    Labels,
    MetricInfo,
    Source,
    Task,
    check_labels,
    default_metrics,
    needs_scores,
    perfect_value,
    register_metric,
    unregister_metric,
    validate_metric_names,
)
from service.workers.metrics.regression import RegressionStatistics
from service.workers.metrics.report import (
    classification_metrics,
    classification_report,
    regression_metrics,
    regression_report,
)
from service.workers.metrics.scores import ScoreStatistics

__all__ = [
    "METRICS",
    "TASKS",
    "Kind",
    "Labels",
    "MetricInfo",
    "RegressionStatistics",
    "ScoreStatistics",
    "Source",
    "Task",
    "check_classification_inputs",
    "check_codes",
    "check_labels",
    "check_regression_inputs",
    "check_scores",
    "check_weights",
    "classification_metrics",
    "classification_report",
    "confusion_counts",
    "confusion_metric_values",
    "default_metrics",
    "needs_scores",
    "perfect_value",
    "register_metric",
    "regression_metrics",
    "regression_report",
    "unregister_metric",
    "validate_metric_names",
]
