"""The metric registry: the one place that says what each metric is.

Every engine -- the overall metrics, their bootstrap intervals, the baseline
comparisons and the slice report -- asks this registry for a metric's traits instead
of testing its name:

* what it **needs** (``source``): the confusion matrix of predicted labels, the
  predicted probabilities, or regression values (``needs_scores`` follows);
* its **kind**, which decides the statistics that apply to it:

  ``proportion``
      successes over trials of rows (accuracy, binary precision / recall, the micro
      averages): a Wilson interval, the pooled two-proportion z test between
      independent samples, exact count tests where they apply;
  ``confusion``
      any other function of the confusion matrix (F1, macro / weighted averages,
      balanced accuracy, MCC): a multinomial bootstrap of the confusion cells;
  ``smooth``
      a smooth function of row weights (ROC AUC, average precision, log loss, Brier,
      MAE, RMSE, MAPE, R^2): the delta method (DeLong's variance for ROC AUC), or a
      row bootstrap on small data;
  ``order``
      an order statistic (median / max absolute error): a row bootstrap only;

* its **interval** method (``wilson``, ``bootstrap``, ``delta_method``, ``delong``,
  ``order_statistics``) and the **count tests** reported beside an interval of a
  difference, per pairing (``paired``: McNemar's exact test; ``unpaired``: the
  two-proportion z test; ``expected``: the exact binomial test against a fixed value);
* its **direction** (``greater_is_better``) and **bounds**, hence its perfect value.

A metric computed from the confusion matrix can be added here alone
(:func:`register_metric`): give it ``proportion`` (successes and trials as functions
of the confusion matrices) or ``formula`` (its value), and evaluation, bootstrap
intervals, baseline comparisons and slices compute it through those functions. Score
and value metrics need their own statistics (a ranking, per-row losses, gradients),
so they are added in code, not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

from service.workers.metrics.arithmetic import safe_div

Task = Literal["binary", "multiclass", "regression"]
Source = Literal["confusion", "scores", "values"]
Kind = Literal["proportion", "confusion", "smooth", "order"]
IntervalRule = Literal["wilson", "bootstrap", "delta_method", "delong", "order_statistics"]
Pairing = Literal["paired", "unpaired", "expected"]
Labels = Literal["present", "declared"]

TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")

#: ``(cm, positive) -> value``: ``cm`` of shape (..., K, K) (rows true, columns predicted,
#: float64 counts or weight sums), ``positive`` the positive class code (binary) or None
ConfusionFormula = Callable[[np.ndarray, int | None], np.ndarray]
#: ``(cm, positive) -> (successes, trials)`` of shape (...), or None when the metric is not
#: one proportion for this ``positive`` (binary precision without a positive class)
ProportionParts = Callable[[np.ndarray, int | None], tuple[np.ndarray, np.ndarray] | None]

_UNIT = (0.0, 1.0)
_NON_NEGATIVE = (0.0, math.inf)


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
        Direction, for gates, baseline lift, verdicts and slice flags.
    description : str
        One line with the formula, for humans and the OpenAPI docs.
    source : {"confusion", "scores", "values"}
        What it needs: the confusion matrix of predicted labels, probabilities, or
        regression values. The bootstrap resamples ``confusion`` metrics through the
        confusion-matrix cells.
    kind : {"proportion", "confusion", "smooth", "order"}
        Which statistics apply (see the module docstring).
    interval : {"wilson", "bootstrap", "delta_method", "delong", "order_statistics"}
        How one value's interval is computed without resampling rows when it can be
        (the slice report; the smooth metrics' differences in baseline comparisons).
    count_tests : mapping of pairing to test name
        Tests on counts whose p-value is reported beside the interval of a difference:
        ``paired`` (same rows), ``unpaired`` (independent rows), ``expected`` (against a
        fixed baseline value).
    bounds : (float, float)
        The range of values; intervals are clipped to it.
    ranked : bool
        Computed from the ranking of the scores (a sort), not from per-row losses.
    proportion : callable, optional
        ``(cm, positive) -> (successes, trials)`` for ``kind="proportion"``.
    formula : callable, optional
        ``(cm, positive) -> value`` of a ``confusion`` metric without a built-in formula
        (NaN where undefined).
    """

    name: str
    tasks: frozenset[str]
    greater_is_better: bool
    description: str
    source: Source
    kind: Kind
    interval: IntervalRule
    count_tests: Mapping[str, str] = field(default_factory=dict)
    bounds: tuple[float, float] = _UNIT
    ranked: bool = False
    proportion: ProportionParts | None = field(default=None, repr=False, compare=False)
    formula: ConfusionFormula | None = field(default=None, repr=False, compare=False)

    @property
    def needs_scores(self) -> bool:
        """Needs predicted probabilities, not only predicted labels."""
        return self.source == "scores"

    @property
    def perfect(self) -> float:
        """The best value: the upper bound of a score, the lower bound of a loss or error."""
        return self.bounds[1] if self.greater_is_better else self.bounds[0]

    def count_test(self, pairing: Pairing) -> str | None:
        """The count test reported beside the interval of a difference, if the metric has one."""
        return self.count_tests.get(pairing)


def proportion_value(parts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``successes / trials`` with NaN where there are no trials (no warning)."""
    return safe_div(parts[0], parts[1])


# ------------------------------------------------------------------- built-in proportions


def _correct_rows(cm: np.ndarray, positive: int | None) -> tuple[np.ndarray, np.ndarray]:
    # single-label predictions: the micro averages pool every class into the accuracy
    return np.trace(cm, axis1=-2, axis2=-1).astype(np.float64), cm.sum(axis=(-2, -1)).astype(np.float64)


def _positive_cell(cm: np.ndarray, positive: int) -> np.ndarray:
    return np.asarray(cm[..., positive, positive], dtype=np.float64)


def _precision_parts(cm: np.ndarray, positive: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    if positive is None:
        return None
    return _positive_cell(cm, positive), cm[..., :, positive].sum(axis=-1).astype(np.float64)


def _recall_parts(cm: np.ndarray, positive: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    if positive is None:
        return None
    return _positive_cell(cm, positive), cm[..., positive, :].sum(axis=-1).astype(np.float64)


# ------------------------------------------------------------------- the registry


def _info(
    name: str,
    tasks: Iterable[str],
    description: str,
    *,
    kind: Kind,
    greater_is_better: bool = True,
    source: Source = "confusion",
    interval: IntervalRule | None = None,
    count_tests: Mapping[str, str] | None = None,
    bounds: tuple[float, float] = _UNIT,
    ranked: bool = False,
    proportion: ProportionParts | None = None,
    formula: ConfusionFormula | None = None,
) -> MetricInfo:
    """A registry entry with the defaults of its kind: proportions get a Wilson interval and the
    unpaired two-proportion z test, other label metrics and order statistics the bootstrap,
    smooth metrics the delta method."""
    default_interval: dict[Kind, IntervalRule] = {
        "proportion": "wilson",
        "confusion": "bootstrap",
        "smooth": "delta_method",
        "order": "bootstrap",
    }
    tests = dict(count_tests) if count_tests is not None else {}
    if kind == "proportion":
        tests.setdefault("unpaired", "two_proportion_z")
    return MetricInfo(
        name=name,
        tasks=frozenset(tasks),
        greater_is_better=greater_is_better,
        description=description,
        source=source,
        kind=kind,
        interval=interval or default_interval[kind],
        count_tests=MappingProxyType(tests),
        bounds=bounds,
        ranked=ranked,
        proportion=proportion,
        formula=formula,
    )


_BOTH = ("binary", "multiclass")
_MICRO_PROPORTIONS = ("precision", "recall", "f1")

METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        _info(
            "accuracy",
            _BOTH,
            "Fraction of rows whose predicted class is the true class.",
            kind="proportion",
            proportion=_correct_rows,
            count_tests={"paired": "mcnemar_exact", "unpaired": "two_proportion_z", "expected": "binomial"},
        ),
        _info(
            "balanced_accuracy",
            _BOTH,
            "Mean recall over the classes present in y_true (sklearn balanced_accuracy_score).",
            kind="confusion",
        ),
        _info(
            "precision",
            ["binary"],
            "TP / (TP + FP) for the positive class.",
            kind="proportion",
            proportion=_precision_parts,
        ),
        _info(
            "recall",
            ["binary"],
            "TP / (TP + FN) for the positive class.",
            kind="proportion",
            proportion=_recall_parts,
        ),
        _info("f1", ["binary"], "2 TP / (2 TP + FP + FN) for the positive class.", kind="confusion"),
        *(
            _info(
                f"{base}_{avg}",
                _BOTH,
                f"{base.capitalize()} {how} (sklearn average='{avg}', zero_division=0).",
                # micro averages of single-label predictions are the accuracy: one proportion
                kind="proportion" if avg == "micro" and base in _MICRO_PROPORTIONS else "confusion",
                proportion=_correct_rows if avg == "micro" else None,
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
            kind="confusion",
            bounds=(-1.0, 1.0),
        ),
        _info(
            "roc_auc",
            _BOTH,
            "Area under the ROC curve (trapezoids); multiclass: macro mean of one-vs-rest AUCs.",
            source="scores",
            kind="smooth",
            interval="delong",
            ranked=True,
        ),
        _info(
            "average_precision",
            _BOTH,
            "sum_n (R_n - R_{n-1}) P_n over score thresholds; multiclass: macro mean one-vs-rest.",
            source="scores",
            kind="smooth",
            ranked=True,
        ),
        _info(
            "log_loss",
            _BOTH,
            "Mean -log p(true class), p clipped to [eps, 1 - eps] (sklearn log_loss).",
            greater_is_better=False,
            source="scores",
            kind="smooth",
            bounds=_NON_NEGATIVE,
        ),
        _info(
            "brier_score",
            _BOTH,
            "Mean squared error of the probabilities: binary (y - p)^2 in [0, 1]; "
            "multiclass sum_c (y_c - p_c)^2 in [0, 2] (sklearn brier_score_loss).",
            greater_is_better=False,
            source="scores",
            kind="smooth",
            bounds=(0.0, 2.0),
        ),
        _info(
            "mae",
            ["regression"],
            "Mean |y - y_hat|.",
            greater_is_better=False,
            source="values",
            kind="smooth",
            bounds=_NON_NEGATIVE,
        ),
        _info(
            "rmse",
            ["regression"],
            "sqrt(mean (y - y_hat)^2).",
            greater_is_better=False,
            source="values",
            kind="smooth",
            bounds=_NON_NEGATIVE,
        ),
        _info(
            "r2",
            ["regression"],
            "1 - sum (y - y_hat)^2 / sum (y - mean y)^2; undefined for constant y_true.",
            source="values",
            kind="smooth",
            bounds=(-math.inf, 1.0),
        ),
        _info(
            "mape",
            ["regression"],
            "Mean |y - y_hat| / max(|y|, eps) as a fraction (not percent), as sklearn.",
            greater_is_better=False,
            source="values",
            kind="smooth",
            bounds=_NON_NEGATIVE,
        ),
        _info(
            "median_ae",
            ["regression"],
            "Median |y - y_hat| (weighted: averaged inverted CDF, as sklearn).",
            greater_is_better=False,
            source="values",
            kind="order",
            interval="order_statistics",
            bounds=_NON_NEGATIVE,
        ),
        _info(
            "max_error",
            ["regression"],
            "max |y - y_hat| over rows (with positive weight).",
            greater_is_better=False,
            source="values",
            kind="order",
            bounds=_NON_NEGATIVE,
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


def register_metric(
    name: str,
    tasks: Iterable[str],
    description: str,
    *,
    greater_is_better: bool = True,
    proportion: ProportionParts | None = None,
    formula: ConfusionFormula | None = None,
    bounds: tuple[float, float] = _UNIT,
) -> MetricInfo:
    """Add a metric of the confusion matrix; every engine computes it from then on.

    Parameters
    ----------
    name : str
        A name not yet registered.
    tasks : iterable of {"binary", "multiclass"}
    description : str
    greater_is_better : bool, default True
    proportion : callable, optional
        ``(cm, positive) -> (successes, trials)``: the metric is a proportion of rows
        (kind ``proportion``: Wilson intervals, two-proportion z tests).
    formula : callable, optional
        ``(cm, positive) -> value`` otherwise (kind ``confusion``: bootstrap intervals).
        ``cm`` has shape (..., K, K) so that a stack of bootstrap replicates or of slices is
        evaluated at once; return NaN where the metric is undefined.
    bounds : (float, float), default (0, 1)

    Returns
    -------
    MetricInfo
        The entry; :func:`unregister_metric` removes it.

    Examples
    --------
    >>> def specificity(cm, positive):
    ...     negative = 1 - positive
    ...     return cm[..., negative, negative], cm[..., negative, :].sum(axis=-1)
    >>> register_metric("specificity", ["binary"], "TN / (TN + FP).", proportion=specificity).kind
    'proportion'
    >>> unregister_metric("specificity")
    """
    if name in METRICS:
        raise ValueError(f"metric {name!r} is already registered.")
    task_set = frozenset(tasks)
    if not task_set or not task_set <= {"binary", "multiclass"}:
        raise ValueError(
            f"tasks must be binary and/or multiclass, got {sorted(task_set)}: only metrics of the confusion "
            "matrix can be registered (score and value metrics need their own statistics in code)."
        )
    if (proportion is None) == (formula is None):
        raise ValueError("give exactly one of proportion (successes, trials) or formula (the value).")
    info = _info(
        name,
        task_set,
        description,
        kind="proportion" if proportion is not None else "confusion",
        greater_is_better=greater_is_better,
        bounds=bounds,
        proportion=proportion,
        formula=formula,
    )
    METRICS[name] = info
    return info


def unregister_metric(name: str) -> None:
    """Remove a metric added by :func:`register_metric` (built-in metrics stay)."""
    if name not in METRICS or name in _BUILT_IN:
        raise ValueError(f"{name!r} is not a registered metric that can be removed.")
    del METRICS[name]


_BUILT_IN = frozenset(METRICS)


def needs_scores(name: str) -> bool:
    """Does a metric need scores (so a rule or a person, who give only labels, cannot have it)?"""
    return METRICS[name].needs_scores


def perfect_value(name: str) -> float:
    """The best value of a registry metric: 1 for scores (all bounded by 1), 0 for losses/errors."""
    return METRICS[name].perfect


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; expected one of {', '.join(TASKS)}.")


def check_labels(labels: str) -> Labels:
    """Validate the ``labels`` option: ``"present"`` or ``"declared"`` (see the package docstring)."""
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
            if task == "multiclass" and f"{name}_macro" in METRICS:
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
