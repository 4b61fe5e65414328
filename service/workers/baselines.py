"""The baseline panel: what a model is compared with, and whether it beats it.

Pure computation: arrays in, :class:`~schemas.metrics.MetricsReport` /
:class:`~schemas.baselines.MetricComparison` out; randomness only from ``seed``.
Loading batches, joining by ``sample_id``, heuristic rules and findings belong to
the caller.

Baselines
---------
* ``random_uniform`` / ``random_prior`` (:func:`expected_random_metrics`): the
  expected metrics of predicting a class at random, uniformly or with the label
  distribution, in closed form. A predictor that draws its class from ``q``
  independently of the row has expected confusion matrix ``E[C_ij] = n_i q_j``;
  the label metrics are those of that matrix (computed by the metrics worker's
  confusion code, so exactly the model's formulas), the score metrics those of the
  constant probabilities ``q``: ROC AUC 0.5, average precision = prevalence, and
  the log loss / Brier score of always predicting ``q``. Ratios such as F1 are
  evaluated at the expected counts (their expectation differs by O(1/n)).
* ``zero_rule`` (:func:`zero_rule_predictions`, :func:`zero_rule_metrics`): always
  the most frequent class (ties: the lowest code) with the label prior as scores;
  regression: the mean (:func:`constant_regression_predictions`, also the median).
* ``human`` / ``existing`` / ``heuristic``: other predictions, compared with
  :func:`compare` (paired on shared rows, unpaired otherwise).

Significance
------------
:func:`compare` and :func:`compare_to_expected` test every metric; see
:mod:`service.workers.significance` for the tests and why score metrics use the
delta method (DeLong for ROC AUC) rather than a row bootstrap.

Which classes are averaged
--------------------------
``labels`` (``"present"``, the default, or ``"declared"``) is the option of
:mod:`service.workers.metrics`: the macro averages (and the multiclass ROC AUC /
average precision) over the classes that occur, as scikit-learn's default, or over
every declared class, as scikit-learn's ``labels=range(K)``. A prepared side keeps
its ``labels``; its report, the baselines' closed forms and every replicate and
influence term of a comparison use it (bootstrap replicates apply it to each
resample), and :func:`compare` refuses sides prepared with different ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from schemas.baselines import MetricComparison
from schemas.metrics import ConfusionMatrix, MetricsReport
from service.workers.bootstrap import classification_replicates, regression_replicates
from service.workers.metrics import (
    METRICS,
    Labels,
    RegressionStatistics,
    ScoreStatistics,
    Task,
    check_classification_inputs,
    check_labels,
    check_regression_inputs,
    classification_metrics,
    classification_report,
    confusion_counts,
    confusion_metric_values,
    default_metrics,
    regression_report,
    validate_metric_names,
)
from service.workers.significance import (
    DELTA_METHOD_METRICS,
    DifferenceInterval,
    binomial_test,
    bootstrap_difference,
    class_constant_paired_se,
    constant_score_class_influence,
    constant_score_influence,
    decide,
    delta_method_difference,
    joint_mcnemar,
    mcnemar_exact,
    normal_difference,
    normalized_gain,
    paired_confusion_replicates,
    paired_influence_se,
    paired_joint_counts,
    paired_regression_replicates,
    paired_row_replicates,
    perfect_value,
    regression_influence,
    score_influence,
    two_proportion_z,
    unpaired_classification_replicates,
    unpaired_regression_replicates,
)

Strategy = Literal["uniform", "prior"]
IntervalMethod = Literal["auto", "bootstrap", "delta_method"]

#: ``interval_method="auto"`` resamples rows for the smooth metrics too while
#: rows x samples stays under this (5,000 rows at 1000 samples: about 0.2 s per paired
#: comparison); beyond, DeLong / the delta method, O(n) and no resampling (a 1M-row
#: replicate of a score metric costs ~28 ms, so 1000 of them ~30 s per comparison).
AUTO_BOOTSTRAP_DRAWS = 5_000_000


def resamples_smooth_metrics(method: IntervalMethod, *, rows: int, samples: int) -> bool:
    """Whether ROC AUC, average precision, log loss, Brier, MAE, RMSE, MAPE and R^2 get a
    row bootstrap (True) or a DeLong / delta-method interval (False)."""
    if method not in ("auto", "bootstrap", "delta_method"):
        raise ValueError(f"interval_method must be auto, bootstrap or delta_method, got {method!r}.")
    return method == "bootstrap" or (method == "auto" and rows * samples <= AUTO_BOOTSTRAP_DRAWS)


@dataclass(frozen=True, eq=False)
class Side:
    """One side of a comparison: the rows' truth and one predictor's output.

    Attributes
    ----------
    y_true : ndarray, shape (n,)
        Class codes ``0 .. K-1`` (classification) or targets (regression).
    y_pred : ndarray, shape (n,)
        Predicted codes or values.
    scores : ndarray of shape (n,) or (n, K), optional
        Probabilities as :func:`~service.workers.metrics.classification_metrics`
        (None: the side's score metrics are undefined).
    sorted_scores : tuple of ndarray, optional
        Binary only: :func:`~service.workers.sorting.sort_floats` of ``scores``, when
        already sorted (e.g. in another thread while the labels were decoded).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    scores: np.ndarray | None = None
    sorted_scores: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class PreparedSide:
    """A side with its metric values and what the significance tests need, computed once.

    Build with :func:`prepare_side`; pass it to :func:`compare` for every baseline
    so the model's scores are sorted once for the whole panel. ``labels`` is the
    option every value, replicate and influence term of the side is computed with.
    """

    side: Side
    task: Task
    n_classes: int | None
    positive: int | None
    metrics: tuple[str, ...]
    values: dict[str, float]  # NaN = undefined
    gradients: dict[str, np.ndarray | None]  # delta-method metrics; None = undefined
    confusion: np.ndarray | None = None  # K x K counts (classification)
    regression_stats: RegressionStatistics | None = field(default=None, repr=False)
    report: MetricsReport | None = field(default=None, repr=False)  # the side's own metrics report
    #: score-metric gradients that depend on the row's class only (K values; a zero rule)
    class_gradients: dict[str, np.ndarray | None] | None = field(default=None, repr=False)
    #: the class code every row predicts (a zero rule), None when predictions vary
    constant_prediction: int | None = None
    #: :func:`paired_joint_counts` of (y_true, ``joint_pred``, this side's y_pred)
    joint: np.ndarray | None = field(default=None, repr=False)
    #: the model predictions ``joint`` was counted with (:func:`compare` checks they are its model's)
    joint_pred: np.ndarray | None = field(default=None, repr=False)
    #: classes of the macro averages (classification): ``"present"`` or ``"declared"``
    labels: Labels = "present"

    @property
    def n(self) -> int:
        return int(self.side.y_true.size)


class Comparison(NamedTuple):
    """Per-metric comparisons and whether the model significantly beats the baseline on the primary metric."""

    significance: dict[str, MetricComparison]
    beats: bool | None


# --------------------------------------------------------------------------- closed-form baselines


def _support(y_true: np.ndarray, n_classes: int, positive: int | None = None) -> np.ndarray:
    """Label counts per class (validating codes, ``n_classes`` and ``positive`` on the way)."""
    y = np.asarray(y_true)
    yt, _, _ = check_classification_inputs(y, y, n_classes=n_classes, positive=positive, scores=None)
    return np.bincount(yt, minlength=n_classes).astype(np.float64)


def _known_support(support: np.ndarray, n_classes: int) -> np.ndarray:
    """Label counts given by the caller, checked and as float64 (as :func:`_support`)."""
    counts = np.asarray(support)
    if counts.shape != (n_classes,) or (counts < 0).any():
        raise ValueError(f"support must hold {n_classes} non-negative label counts, got {counts!r}.")
    return counts.astype(np.float64)


def _prior(support: np.ndarray) -> np.ndarray:
    total = support.sum()
    return support / total if total > 0 else np.full(support.size, 1.0 / support.size)


def expected_confusion(y_true: np.ndarray, *, n_classes: int, strategy: Strategy) -> np.ndarray:
    """``E[C_ij] = n_i q_j``: the expected confusion matrix of a random predictor.

    ``q`` is ``1/K`` (``"uniform"``) or the label prior ``n_j / n`` (``"prior"``).
    """
    support = _support(y_true, n_classes)
    return np.outer(support, _random_rates(support, strategy))


def _random_rates(support: np.ndarray, strategy: Strategy) -> np.ndarray:
    if strategy == "uniform":
        return np.full(support.size, 1.0 / support.size)
    if strategy == "prior":
        return _prior(support)
    raise ValueError(f"strategy must be 'uniform' or 'prior', got {strategy!r}.")


def expected_random_metrics(
    y_true: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    strategy: Strategy,
    metrics: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    support: np.ndarray | None = None,
    labels: Labels = "present",
) -> MetricsReport:
    """Expected metrics of predicting at random, in closed form.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        Class codes of the labeled rows.
    n_classes, positive
        As :func:`~service.workers.metrics.classification_metrics`.
    strategy : {"uniform", "prior"}
        Draw each prediction uniformly among the ``K`` classes, or with the label
        distribution of ``y_true``; the scores are the same constant probabilities.
    metrics : sequence of str, optional
        Registry names (score metrics allowed: the baseline has probabilities);
        default: the task's defaults with scores.
    class_names : sequence of str, optional
        Names used in reasons and ``per_class``; default the codes.
    support : ndarray of shape (K,), optional
        The label counts of ``y_true`` when already known (a prepared side's confusion
        row sums): ``y_true`` is then not counted again.
    labels : {"present", "declared"}, default "present"
        Classes of the macro averages, as
        :func:`~service.workers.metrics.classification_metrics` on the expected
        confusion matrix (a class the random predictor may predict occurs in it).

    Returns
    -------
    MetricsReport
        Undefined values (e.g. precision when the prior never predicts the positive
        class) are None with a reason. ``per_class`` supports are the label counts;
        ``confusion_matrix`` is None (expected counts are fractional: see
        :func:`expected_confusion`).

    Notes
    -----
    The label metrics are computed by
    :func:`~service.workers.metrics.classification_metrics` on ``K^2`` pseudo-rows
    ``(i, j)`` weighted ``n_i q_j`` -- the expected confusion matrix -- so they use
    exactly the model's formulas; for 90 negatives and 10 positives uniform gives
    accuracy 0.5 and F1 1/6, prior accuracy 0.82 and F1 0.1.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> r = expected_random_metrics(y, n_classes=2, positive=1, strategy="prior", metrics=["accuracy", "f1"])
    >>> round(r.metrics["accuracy"], 6), round(r.metrics["f1"], 6)
    (0.82, 0.1)
    """
    support = _known_support(support, n_classes) if support is not None else _support(y_true, n_classes)
    q = _random_rates(support, strategy)
    return _constant_rate_report(
        support,
        label_q=q,
        score_q=q,
        n_classes=n_classes,
        positive=positive,
        metrics=metrics,
        class_names=class_names,
        integer_counts=False,
        labels=labels,
    )


def zero_rule_metrics(
    y_true: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    metrics: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    support: np.ndarray | None = None,
    labels: Labels = "present",
) -> MetricsReport:
    """Metrics of the zero rule without materialising its predictions.

    Equal to ``classification_metrics`` on :func:`zero_rule_predictions` (the same
    pseudo-row computation as :func:`expected_random_metrics` with all mass on the
    majority class and the prior as scores), in microseconds on any n. ``support``
    and ``labels`` as :func:`expected_random_metrics`.
    """
    support = _known_support(support, n_classes) if support is not None else _support(y_true, n_classes)
    label_q = np.zeros(n_classes)
    label_q[int(np.argmax(support))] = 1.0
    return _constant_rate_report(
        support,
        label_q=label_q,
        score_q=_prior(support),
        n_classes=n_classes,
        positive=positive,
        metrics=metrics,
        class_names=class_names,
        integer_counts=True,
        labels=labels,
    )


def _constant_rate_report(
    support: np.ndarray,
    *,
    label_q: np.ndarray,
    score_q: np.ndarray,
    n_classes: int,
    positive: int | None,
    metrics: Sequence[str] | None,
    class_names: Sequence[str] | None,
    integer_counts: bool,
    labels: Labels = "present",
) -> MetricsReport:
    """classification_metrics of a row-independent predictor: pseudo-rows (i, j) weighted n_i q_j
    (a pseudo-row of weight 0 is left out: it makes no class occur, see ``labels``)."""
    k = n_classes
    names_list = [str(c) for c in (class_names if class_names is not None else range(k))]
    task: Task = "binary" if positive is not None else "multiclass"
    names = list(metrics) if metrics is not None else default_metrics(task, has_scores=True)
    cm = np.outer(support, label_q)
    weight = cm.ravel()
    # zero-weight pseudo-rows change nothing but a "probability 0 to the true class" count
    keep = weight > 0
    true_code, pred_code = np.divmod(np.arange(k * k), k)
    scores = None
    if any(METRICS[m].needs_scores for m in names if m in METRICS):
        scores = np.full(k * k, score_q[positive]) if positive is not None else np.tile(score_q, (k * k, 1))
        scores = scores[keep]
    report = classification_metrics(
        true_code[keep],
        pred_code[keep],
        n_classes=k,
        class_names=names_list,
        positive=positive,
        scores=scores,
        metrics=names,
        sample_weight=weight[keep],
        labels=labels,
    )
    per_class = {
        name: c.model_copy(update={"support": int(support[i])})
        for i, (name, c) in enumerate((report.per_class or {}).items())
    }
    matrix = None
    if integer_counts:
        matrix = ConfusionMatrix(labels=names_list, matrix=cm.astype(np.int64).tolist())
    return report.model_copy(update={"per_class": per_class, "confusion_matrix": matrix})


def zero_rule_predictions(y_true: np.ndarray, *, n_classes: int, positive: int | None) -> Side:
    """The zero rule as a side: the most frequent class (ties: lowest code) and the prior as scores.

    Predictions and scores are read-only broadcasts: binary scores the prior of
    ``positive`` (shape (n,)), multiclass ones the prior (shape (n, K)).
    """
    support = _support(y_true, n_classes, positive)
    y = np.asarray(y_true)
    prior = _prior(support)
    # read-only broadcasts: no n-row array is materialised for a constant
    pred = np.broadcast_to(np.intp(np.argmax(support)), (y.size,))
    if positive is not None:
        scores = np.broadcast_to(np.float64(prior[positive]), (y.size,))
    else:
        scores = np.broadcast_to(prior, (y.size, n_classes))
    return Side(y_true=y, y_pred=pred, scores=scores)


def prepare_zero_rule(model: PreparedSide) -> PreparedSide:
    """The classification zero rule on a prepared model's rows, for :func:`compare` (paired).

    Equal to :func:`prepare_side` on :func:`zero_rule_predictions` of the model's labels,
    built from the model's confusion counts alone: no n-row array (the comparison's joint
    counts and delta-method terms are per-class closed forms). ``report`` is None (see
    :func:`zero_rule_metrics`). The zero rule keeps the model's ``labels``.
    """
    if model.task == "regression" or model.confusion is None or model.n_classes is None:
        raise ValueError("prepare_zero_rule needs a prepared classification side.")
    k, positive, n, labels = model.n_classes, model.positive, model.n, model.labels
    names = list(model.metrics)
    support = model.confusion.sum(axis=1)
    majority = int(np.argmax(support))
    prior = _prior(support.astype(np.float64))
    cm = np.zeros_like(model.confusion)
    cm[:, majority] = support
    conf = [m for m in names if METRICS[m].source == "confusion"]
    conf_values = confusion_metric_values(cm, conf, positive=positive, labels=labels)
    values = {m: float(v) for m, v in conf_values.items()}
    score_names = [m for m in names if METRICS[m].source == "scores"]
    shared = np.atleast_1d(np.float64(prior[positive])) if positive is not None else prior
    class_gradients: dict[str, np.ndarray | None] = dict.fromkeys(score_names)
    if score_names and n:
        values.update(_constant_score_values(cm, shared, positive=positive, names=score_names, labels=labels))
        class_gradients.update(
            constant_score_class_influence(
                support, shared, n_classes=k, positive=positive, names=score_names, labels=labels
            )
        )
    else:
        values.update(dict.fromkeys(score_names, np.nan))
    scores = np.broadcast_to(shared[0], (n,)) if positive is not None else np.broadcast_to(prior, (n, k))
    return PreparedSide(
        side=Side(model.side.y_true, np.broadcast_to(np.intp(majority), (n,)), scores),
        task=model.task,
        n_classes=k,
        positive=positive,
        metrics=tuple(names),
        values={m: values[m] for m in names},
        gradients=dict.fromkeys(score_names),
        confusion=cm,
        class_gradients=class_gradients,
        constant_prediction=majority,
        labels=labels,
    )


def constant_regression_predictions(y_true: np.ndarray, *, statistic: Literal["mean", "median"]) -> Side:
    """Predict the mean (the regression zero rule) or the median of ``y_true`` for every row."""
    y, _ = check_regression_inputs(y_true, y_true)
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}.")
    value = 0.0 if y.size == 0 else float(np.mean(y) if statistic == "mean" else np.median(y))
    return Side(y_true=y, y_pred=np.full(y.size, value))


# --------------------------------------------------------------------------- preparing sides


NO_PROBABILITIES = "this baseline gives predictions without probabilities"


def prepare_side(
    side: Side,
    *,
    task: Task,
    metrics: Sequence[str],
    n_classes: int | None = None,
    positive: int | None = None,
    class_names: Sequence[str] | None = None,
    paired_with: Side | PreparedSide | None = None,
    labels: Labels = "present",
) -> PreparedSide:
    """Validate a side and compute its metric values, report and delta-method gradients once.

    Parameters
    ----------
    side : Side
    task : {"binary", "multiclass", "regression"}
    metrics : sequence of str
        Registry names of ``task``. Score metrics of a side without scores are
        undefined (NaN), not an error: a human or heuristic baseline has labels only.
    n_classes, positive
        Classification only, as :func:`~service.workers.metrics.classification_metrics`.
    class_names : sequence of str, optional
        Classification only: names for the report (default the codes).
    paired_with : Side or PreparedSide, optional
        Classification only: the model this side will be compared with, paired (same
        rows, same ``y_true``). The joint counts :func:`compare` needs are then counted
        here, in the pass that also gives this side's confusion counts. A raw
        :class:`Side` (validated codes) lets a baseline be prepared while the model
        itself is still being prepared, e.g. in another thread.
    labels : {"present", "declared"}, default "present"
        Classification only: the classes of the macro averages and of the multiclass
        ROC AUC / average precision (:func:`~service.workers.metrics.classification_metrics`),
        kept on the side for :func:`compare`.

    Returns
    -------
    PreparedSide
        ``report`` equals :func:`~service.workers.metrics.classification_metrics` /
        :func:`~service.workers.metrics.regression_metrics` on the same inputs (from
        the same sort), except that score metrics of a side without scores are None
        with the reason :data:`NO_PROBABILITIES` instead of an error. For scores
        shared by every row (a zero rule) the score values come from a closed form
        and may differ from ``classification_metrics`` in the last bits.
    """
    names = list(metrics)
    validate_metric_names(task, names, has_scores=True)
    labels = check_labels(labels)
    if task == "regression":
        return _prepare_regression(side, names, labels)
    if n_classes is None:
        raise ValueError("n_classes is required for classification tasks.")
    if (task == "binary") != (positive is not None):
        raise ValueError(
            "binary tasks need positive (the code of the positive class); multiclass ones do not."
        )
    yt, yp, sc = check_classification_inputs(
        side.y_true, side.y_pred, n_classes=n_classes, positive=positive, scores=side.scores
    )
    names_list = [str(c) for c in (class_names if class_names is not None else range(n_classes))]
    if len(names_list) != n_classes or len(set(names_list)) != n_classes:
        raise ValueError(f"class_names must hold {n_classes} distinct names, got {names_list!r}.")
    joint = None
    paired = paired_with.side if isinstance(paired_with, PreparedSide) else paired_with
    if isinstance(paired_with, PreparedSide) and paired_with.n_classes != n_classes:
        paired = None
    if paired is not None:
        _check_same_rows(paired.y_true, yt)
        # the (true, model, this side) counts summed over the model's predictions are this
        # side's confusion counts (integers: exact)
        joint = paired_joint_counts(paired.y_true, paired.y_pred, yp, n_classes=n_classes)
        cm = joint.reshape(n_classes, n_classes, n_classes).sum(axis=1)
    else:
        cm = confusion_counts(yt, yp, n_classes=n_classes)
    conf = [m for m in names if METRICS[m].source == "confusion"]
    conf_values = confusion_metric_values(cm, conf, positive=positive, labels=labels)
    values = {m: float(v) for m, v in conf_values.items()}
    score_names = [m for m in names if METRICS[m].source == "scores"]
    presorted = side.sorted_scores if positive is not None else None
    score_values, gradients, n_clipped = _score_side(
        yt, sc, cm, positive=positive, names=score_names, presorted=presorted, labels=labels
    )
    values.update(score_values)
    scoreless = score_names if sc is None else []
    reported = [m for m in names if m not in scoreless]
    report = classification_report(
        cm,
        names=reported,
        class_names=names_list,
        positive=positive,
        values={m: values[m] for m in reported},
        n_clipped=n_clipped,
        labels=labels,
    )
    if scoreless:
        report.metrics = {m: report.metrics.get(m) for m in names}
        report.undefined |= dict.fromkeys(scoreless, NO_PROBABILITIES)
    return PreparedSide(
        side=Side(yt, yp, sc),
        task=task,
        n_classes=n_classes,
        positive=positive,
        metrics=tuple(names),
        values={m: values[m] for m in names},
        gradients=gradients,
        confusion=cm,
        report=report,
        joint=joint,
        joint_pred=None if paired is None else paired.y_pred,
        labels=labels,
    )


def _score_side(
    y_true: np.ndarray,
    scores: np.ndarray | None,
    cm: np.ndarray,
    *,
    positive: int | None,
    names: list[str],
    presorted: tuple[np.ndarray, np.ndarray] | None = None,
    labels: Labels = "present",
) -> tuple[dict[str, float], dict[str, np.ndarray | None], int]:
    """Values and gradients of the score metrics (NaN / None without scores or rows), and
    the number of rows whose true class got probability 0."""
    values: dict[str, float] = dict.fromkeys(names, np.nan)
    gradients: dict[str, np.ndarray | None] = dict.fromkeys(names)
    if not names or scores is None or not y_true.size:
        return values, gradients, 0
    k = cm.shape[0]
    shared = _shared_score_row(scores)
    if shared is not None:
        # a zero rule or a prior: no sort of n rows needed
        values.update(_constant_score_values(cm, shared, positive=positive, names=names, labels=labels))
        gradients.update(
            constant_score_influence(
                y_true, shared, n_classes=k, positive=positive, names=names, labels=labels
            )
        )
        if positive is not None:
            p_true = np.full(k, 1.0 - float(shared[0]))
            p_true[positive] = float(shared[0])
        else:
            p_true = shared
        n_clipped = int(cm.sum(axis=1)[p_true <= 0].sum())
    else:
        stats = ScoreStatistics(
            y_true, scores, n_classes=k, positive=positive, names=names, presorted=presorted, labels=labels
        )
        values.update(stats.values())
        # stats is not used again: its per-row losses become the gradients in place
        gradients.update(
            score_influence(y_true, scores, n_classes=k, positive=positive, stats=stats, consume=True)
        )
        n_clipped = stats.n_clipped
    return values, gradients, n_clipped


def _shared_score_row(scores: np.ndarray) -> np.ndarray | None:
    """The probabilities shared by every row (a zero rule, a prior), or None when they vary."""
    low, high = scores.min(axis=0), scores.max(axis=0)
    return np.atleast_1d(low) if np.array_equal(low, high) else None


def _constant_score_values(
    cm: np.ndarray,
    score_row: np.ndarray,
    *,
    positive: int | None,
    names: list[str],
    labels: Labels = "present",
) -> dict[str, float]:
    """Score metrics of constant probabilities: the metrics worker's statistics on one
    pseudo-row per class weighted by its count (no sort of n rows; a class of weight 0
    has no labeled rows, as ``labels="present"`` needs)."""
    k = cm.shape[0]
    support = cm.sum(axis=1).astype(np.float64)
    codes = np.arange(k)
    rows = np.full(k, float(score_row[0])) if positive is not None else np.tile(score_row, (k, 1))
    stats = ScoreStatistics(codes, rows, n_classes=k, positive=positive, names=names, labels=labels)
    return stats.values(support if stats.row_order is None else support[stats.row_order])


def _prepare_regression(side: Side, names: list[str], labels: Labels = "present") -> PreparedSide:
    yt, yp = check_regression_inputs(side.y_true, side.y_pred)
    resampled = [m for m in names if m not in DELTA_METHOD_METRICS]
    # the report's values in row order, as regression_metrics (sums over presorted
    # rows could differ in the last bits)
    stats = RegressionStatistics(yt, yp, names=names, presort=False)
    values = stats.values()
    # presorting by |error| makes each bootstrap median a cumulative sum
    boot = stats
    if resampled and "median_ae" in names:
        boot = RegressionStatistics(yt, yp, names=names, presort=True)
    return PreparedSide(
        side=Side(yt, yp),
        task="regression",
        n_classes=None,
        positive=None,
        metrics=tuple(names),
        values=values,
        gradients=regression_influence(yt, yp, names=names),
        regression_stats=boot if resampled else None,
        report=regression_report(stats, values),
        labels=labels,  # no classes to average: kept only so that a panel's sides agree
    )


def _prepared(
    side: Side | PreparedSide,
    *,
    task: Task,
    metrics: Sequence[str],
    n_classes: int | None,
    positive: int | None,
    labels: Labels,
) -> PreparedSide:
    if isinstance(side, Side):
        return prepare_side(
            side, task=task, metrics=metrics, n_classes=n_classes, positive=positive, labels=labels
        )
    if task != "regression" and side.labels != labels:
        raise ValueError(f"side was prepared with labels={side.labels!r}; compared with labels={labels!r}.")
    if (side.task, side.n_classes, side.positive) != (task, n_classes, positive):
        raise ValueError(
            f"side was prepared for task={side.task}, n_classes={side.n_classes}, positive={side.positive}; "
            f"compared as task={task}, n_classes={n_classes}, positive={positive}."
        )
    missing = [m for m in metrics if m not in side.metrics]
    if missing:
        raise ValueError(
            f"side was prepared without metrics {missing}; prepare it with every compared metric."
        )
    return side


def _common_labels(sides: Sequence[Side | PreparedSide], labels: Labels | None, *, task: Task) -> Labels:
    """The ``labels`` of a comparison: the one given, else the prepared sides' (which must
    agree: their values, replicates and influence terms were computed with it), else the
    default ``"present"``. Regression sides have no classes to average: theirs is ignored."""
    wanted = set() if labels is None else {check_labels(labels)}
    if task != "regression":
        wanted |= {s.labels for s in sides if isinstance(s, PreparedSide)}
    if len(wanted) > 1:
        given = "" if labels is None else f" (labels={labels!r} given)"
        found = ", ".join(
            f"{which}: labels={s.labels!r}"
            for which, s in zip(("model", "baseline"), sides, strict=False)
            if isinstance(s, PreparedSide)
        )
        raise ValueError(
            f"sides prepared with different labels cannot be compared{given}: {found}; "
            "prepare both with the same labels ('present' or 'declared')."
        )
    return wanted.pop() if wanted else "present"


# --------------------------------------------------------------------------- comparisons


def compare(
    model: Side | PreparedSide,
    baseline: Side | PreparedSide,
    *,
    task: Task,
    metrics: Sequence[str],
    paired: bool,
    primary_metric: str,
    n_classes: int | None = None,
    positive: int | None = None,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    interval_method: IntervalMethod = "auto",
    labels: Labels | None = None,
) -> Comparison:
    """Compare a model with a baseline that has its own predictions, metric by metric.

    Parameters
    ----------
    model, baseline : Side or PreparedSide
        Paired: the same rows in the same order (join by ``sample_id`` first), so
        ``y_true`` must be equal. Unpaired: each side on its own rows.
    task, metrics, n_classes, positive
        As :func:`prepare_side`.
    paired : bool
        Paired tests on shared rows, or unpaired tests on disjoint rows.
    primary_metric : str
        One of ``metrics``; decides :attr:`Comparison.beats`.
    samples, confidence, seed
        Bootstrap replicates, interval coverage and the seed of every random draw.
    interval_method : {"auto", "bootstrap", "delta_method"}
        For the smooth metrics (ROC AUC, average precision, log loss, Brier, MAE,
        RMSE, MAPE, R^2): a paired / unpaired row bootstrap of the difference, or
        DeLong's / the delta-method normal interval. ``auto``: the bootstrap while
        rows x samples <= :data:`AUTO_BOOTSTRAP_DRAWS`, else the delta method.
    labels : {"present", "declared"}, optional
        Classification: the classes of the macro averages (see :func:`prepare_side`).
        Default: the prepared sides' (a raw :class:`Side` is prepared with it), or
        ``"present"`` when neither side is prepared. Every replicate and influence term
        uses it.

    Raises
    ------
    ValueError
        Among others, when the sides were prepared with different ``labels`` (or other
        than the ``labels`` given).

    Returns
    -------
    Comparison
        ``significance[name]`` with ``lift = model - baseline``; ``beats`` is
        True/False when the primary metric's verdict is decided, None when undefined.

    Notes
    -----
    accuracy: paired McNemar exact test; accuracy, binary precision and recall and the
    micro averages: unpaired pooled two-proportion z test (the interval of the difference
    is the bootstrap's). Other label metrics and
    median_ae / max_error: paired (joint confusion cells / same row counts) or
    unpaired percentile bootstrap of the difference. Smooth metrics: as
    ``interval_method``; DeLong (ROC AUC) and the delta method agree with the
    bootstrap's standard error within its Monte Carlo error (tested).
    A verdict is ``better``/``worse`` when the interval of the difference excludes 0 in
    the direction the metric prefers (the count tests' p-values are reported beside it;
    :func:`~service.workers.significance.decide` notes when they disagree).
    """
    names = _check_names(metrics, primary_metric)
    labels = _common_labels((model, baseline), labels, task=task)
    m = _prepared(model, task=task, metrics=names, n_classes=n_classes, positive=positive, labels=labels)
    b = _prepared(baseline, task=task, metrics=names, n_classes=n_classes, positive=positive, labels=labels)
    if paired:
        _check_paired(m, b)
    joint = None
    if paired and m.task != "regression" and any(METRICS[n].source == "confusion" for n in names):
        # one pass over the rows serves the paired bootstrap and McNemar's test
        assert m.n_classes is not None
        joint = _constant_joint(m, b)
        if joint is None:
            joint = paired_joint_counts(m.side.y_true, m.side.y_pred, b.side.y_pred, n_classes=m.n_classes)
    replicates = _difference_replicates(m, b, names, paired=paired, samples=samples, seed=seed, joint=joint)
    if resamples_smooth_metrics(interval_method, rows=max(m.n, b.n), samples=samples):
        replicates.update(_smooth_replicates(m, b, names, paired=paired, samples=samples, seed=seed))
    prefix = "paired_" if paired else "unpaired_"
    significance: dict[str, MetricComparison] = {}
    for name in names:
        mv, bv = m.values[name], b.values[name]
        interval, test = _difference_interval(name, m, b, replicates, paired=paired, confidence=confidence)
        counted = _count_test(name, m, b, paired=paired, joint=joint)
        significance[name] = _assess(
            name, mv, bv, interval=interval, test=prefix + test, counted=counted, confidence=confidence
        )
    return Comparison(significance, _beats(significance[primary_metric]))


def compare_to_expected(
    model: Side | PreparedSide,
    expected: MetricsReport,
    *,
    task: Task,
    metrics: Sequence[str],
    primary_metric: str,
    n_classes: int | None = None,
    positive: int | None = None,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    interval_method: IntervalMethod = "auto",
    labels: Labels | None = None,
) -> Comparison:
    """Compare a model with fixed baseline values (a closed-form random baseline: pairing mode ``expected``).

    accuracy: exact binomial test of the model's correct count against
    ``p0 = expected accuracy``. Other metrics: the interval of the model's metric
    (bootstrap for label metrics; for smooth score/regression metrics as
    ``interval_method``, see :func:`compare`) shifted by the constant baseline value.
    ``labels`` as :func:`compare` (the model's replicates use it); compute ``expected``
    with the same ``labels`` (:func:`expected_random_metrics`).
    """
    names = _check_names(metrics, primary_metric)
    missing = [n for n in names if n not in expected.metrics]
    if missing:
        raise ValueError(f"expected report lacks metrics {missing}; compute it with the compared metrics.")
    labels = _common_labels((model,), labels, task=task)
    m = _prepared(model, task=task, metrics=names, n_classes=n_classes, positive=positive, labels=labels)
    smooth = resamples_smooth_metrics(interval_method, rows=m.n, samples=samples)
    replicates = _model_replicates(m, names, samples=samples, seed=seed, smooth=smooth)
    significance: dict[str, MetricComparison] = {}
    for name in names:
        value = expected.metrics[name]
        bv = np.nan if value is None else float(value)
        interval, test = _shifted_interval(name, m, bv, replicates, confidence=confidence)
        counted = None
        if name == "accuracy" and not np.isnan(bv) and m.confusion is not None:
            correct = int(np.trace(m.confusion))
            counted = ("binomial", binomial_test(correct, m.n, min(1.0, max(0.0, bv))))
        significance[name] = _assess(
            name, m.values[name], bv, interval=interval, test=test, counted=counted, confidence=confidence
        )
    return Comparison(significance, _beats(significance[primary_metric]))


def _check_names(metrics: Sequence[str], primary_metric: str) -> list[str]:
    names = list(metrics)
    if primary_metric not in names:
        raise ValueError(f"primary_metric {primary_metric!r} must be one of the compared metrics {names}.")
    return names


def _constant_joint(m: PreparedSide, b: PreparedSide) -> np.ndarray | None:
    """Joint (true, model, baseline) counts without a pass over the rows: counted when the
    baseline was prepared against these very predictions (or equal ones: an O(n) check), or,
    when the baseline predicts one class on every row, the model's confusion counts in that
    baseline column."""
    counted = b.joint_pred
    if (
        b.joint is not None
        and counted is not None
        and (counted is m.side.y_pred or np.array_equal(counted, m.side.y_pred))
    ):
        return b.joint
    if b.constant_prediction is None or m.confusion is None or m.n_classes is None:
        return None
    k = m.n_classes
    joint = np.zeros(k**3, dtype=np.intp)
    joint.reshape(k, k, k)[:, :, b.constant_prediction] = m.confusion
    return joint


def _check_paired(m: PreparedSide, b: PreparedSide) -> None:
    _check_same_rows(m.side.y_true, b.side.y_true)


def _check_same_rows(a: np.ndarray, b: np.ndarray) -> None:
    if a.size != b.size or (a is not b and not np.array_equal(a, b)):
        raise ValueError(
            "paired sides must be the same rows in the same order with the same y_true "
            f"(join by sample_id first); got {a.size} and {b.size} rows."
        )


def _difference_replicates(
    m: PreparedSide,
    b: PreparedSide,
    names: list[str],
    *,
    paired: bool,
    samples: int,
    seed: int,
    joint: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of model - baseline for the metrics without a delta-method interval."""
    conf = [n for n in names if METRICS[n].source == "confusion"]
    rows = [n for n in names if METRICS[n].source == "values" and n not in DELTA_METHOD_METRICS]
    out: dict[str, np.ndarray] = {}
    if conf:
        assert m.n_classes is not None
        if paired:
            out.update(
                paired_confusion_replicates(
                    m.side.y_true,
                    m.side.y_pred,
                    b.side.y_pred,
                    n_classes=m.n_classes,
                    positive=m.positive,
                    metrics=conf,
                    samples=samples,
                    seed=seed,
                    joint=joint,
                    labels=m.labels,
                )
            )
        else:
            out.update(
                unpaired_classification_replicates(
                    (m.side.y_true, m.side.y_pred),
                    (b.side.y_true, b.side.y_pred),
                    n_classes=m.n_classes,
                    positive=m.positive,
                    metrics=conf,
                    samples=samples,
                    seed=seed,
                    labels=m.labels,
                )
            )
    if rows:
        if paired:
            assert m.regression_stats is not None and b.regression_stats is not None
            out.update(
                paired_regression_replicates(
                    m.regression_stats, b.regression_stats, metrics=rows, samples=samples, seed=seed
                )
            )
        else:
            out.update(
                unpaired_regression_replicates(
                    (m.side.y_true, m.side.y_pred),
                    (b.side.y_true, b.side.y_pred),
                    metrics=rows,
                    samples=samples,
                    seed=seed,
                )
            )
    return out


def _smooth_replicates(
    m: PreparedSide, b: PreparedSide, names: list[str], *, paired: bool, samples: int, seed: int
) -> dict[str, np.ndarray]:
    """Row-bootstrap replicates of model - baseline for the smooth metrics (both sides defined).

    Paired: the same resampled rows on both sides (:func:`paired_row_replicates`);
    unpaired: each side resampled on its own rows.
    """
    smooth = [n for n in names if n in DELTA_METHOD_METRICS]
    if m.task != "regression":
        # a side without probabilities has no score metrics to resample
        smooth = [n for n in smooth if m.side.scores is not None and b.side.scores is not None]
    if not smooth or not m.n or not b.n:
        return {}
    if paired:
        return paired_row_replicates(
            _statistics(m, smooth), _statistics(b, smooth), n=m.n, metrics=smooth, samples=samples, seed=seed
        )
    if m.task == "regression":
        return unpaired_regression_replicates(
            (m.side.y_true, m.side.y_pred),
            (b.side.y_true, b.side.y_pred),
            metrics=smooth,
            samples=samples,
            seed=seed,
        )
    assert m.n_classes is not None
    return unpaired_classification_replicates(
        (m.side.y_true, m.side.y_pred, m.side.scores),
        (b.side.y_true, b.side.y_pred, b.side.scores),
        n_classes=m.n_classes,
        positive=m.positive,
        metrics=smooth,
        samples=samples,
        seed=seed,
        labels=m.labels,
    )


def _statistics(side: PreparedSide, names: list[str]) -> RegressionStatistics | ScoreStatistics:
    """Row statistics of a side for weighted re-evaluation (sorted once)."""
    if side.task == "regression":
        return RegressionStatistics(side.side.y_true, side.side.y_pred, names=names, presort=False)
    assert side.side.scores is not None and side.n_classes is not None
    return ScoreStatistics(
        side.side.y_true,
        np.ascontiguousarray(side.side.scores),  # a zero rule's scores are a broadcast view
        n_classes=side.n_classes,
        positive=side.positive,
        names=names,
        labels=side.labels,
    )


def _model_replicates(
    m: PreparedSide, names: list[str], *, samples: int, seed: int, smooth: bool = False
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the model's own metrics (the smooth ones only with ``smooth``),
    cached on the prepared side (every closed-form baseline of a panel asks for the same ones)."""
    resampled = [n for n in names if smooth or n not in DELTA_METHOD_METRICS]
    if m.task != "regression" and m.side.scores is None:
        resampled = [n for n in resampled if METRICS[n].source != "scores"]
    cache = m.__dict__.setdefault("_replicates", {})
    key = (tuple(resampled), samples, seed)
    if key not in cache:
        cache[key] = _fresh_model_replicates(m, resampled, samples=samples, seed=seed)
    return {n: r.copy() for n, r in cache[key].items()}


def _fresh_model_replicates(
    m: PreparedSide, resampled: list[str], *, samples: int, seed: int
) -> dict[str, np.ndarray]:
    if not resampled or m.n == 0:
        return {n: np.full(samples, np.nan) for n in resampled}
    if m.task == "regression":
        return regression_replicates(
            m.side.y_true, m.side.y_pred, metrics=resampled, samples=samples, seed=seed
        )
    assert m.n_classes is not None
    with_scores = any(METRICS[n].source == "scores" for n in resampled)
    return classification_replicates(
        m.side.y_true,
        m.side.y_pred,
        n_classes=m.n_classes,
        positive=m.positive,
        scores=m.side.scores if with_scores else None,
        metrics=resampled,
        samples=samples,
        seed=seed,
        labels=m.labels,
    )


def _difference_interval(
    name: str,
    m: PreparedSide,
    b: PreparedSide,
    replicates: dict[str, np.ndarray],
    *,
    paired: bool,
    confidence: float,
) -> tuple[DifferenceInterval | None, str]:
    if name in replicates:
        return bootstrap_difference(replicates[name], confidence=confidence), "bootstrap"
    if name not in DELTA_METHOD_METRICS:
        return None, "bootstrap"
    test = "delong" if name == "roc_auc" else "delta_method"
    difference = m.values[name] - b.values[name]
    if paired and b.class_gradients is not None:
        gm, per_class = m.gradients.get(name), b.class_gradients.get(name)
        if gm is None or per_class is None:
            return None, test
        return normal_difference(
            difference, _class_constant_se(m, name, per_class), confidence=confidence
        ), test
    gm, gb = m.gradients.get(name), b.gradients.get(name)
    if gm is None or gb is None:
        return None, test
    if paired:
        return normal_difference(difference, _paired_se(m, b, name), confidence=confidence), test
    return delta_method_difference(difference, [gm, gb], confidence=confidence), test


def _class_constant_se(m: PreparedSide, name: str, per_class: np.ndarray) -> float:
    """Paired standard error of the model's gradient minus a per-class constant one, from
    the model's gradient sums per class (cached on ``m``: every such baseline reuses them)."""
    cache: dict[str, np.ndarray] = m.__dict__.setdefault("_class_sums", {})
    total, squares = _gradient_sums(m, name)
    if name not in cache:
        assert m.n_classes is not None
        g = m.gradients[name]
        assert g is not None
        sums: np.ndarray
        if m.positive is not None and m.n_classes == 2:
            on_positive = float(np.dot(g, _positive_weights(m)))
            sums = np.empty(2)
            sums[m.positive], sums[1 - m.positive] = on_positive, total - on_positive
        else:
            sums = np.bincount(m.side.y_true, weights=g, minlength=m.n_classes)
        cache[name] = sums
    sums = cache[name]
    assert m.confusion is not None
    return class_constant_paired_se(total, squares, sums, m.confusion.sum(axis=1), per_class)


def _paired_se(m: PreparedSide, b: PreparedSide, name: str) -> float:
    """:func:`paired_influence_se` of the two sides' gradients of ``name`` from dot products
    (each side's sums cached, one cross product): no pass forming the n row differences.

    ``sum (gm - gb)^2 = gm.gm + gb.gb - 2 gm.gb`` loses digits when the sides' gradients
    nearly coincide; then the differences are formed row by row as before."""
    gm, gb = m.gradients[name], b.gradients[name]
    assert gm is not None and gb is not None
    if gm.shape != gb.shape or not gm.size:
        return paired_influence_se(gm, gb)
    total_m, squares_m = _gradient_sums(m, name)
    total_b, squares_b = _gradient_sums(b, name)
    squares = squares_m + squares_b - 2.0 * float(np.dot(gm, gb))
    if not squares > 1e-6 * (squares_m + squares_b):
        return paired_influence_se(gm, gb)
    total = total_m - total_b
    return math.sqrt(max(0.0, squares - total * total / gm.size))


def _gradient_sums(m: PreparedSide, name: str) -> tuple[float, float]:
    """Sum and sum of squares of the model's gradient of ``name``, computed once."""
    cache: dict[str, tuple[float, float]] = m.__dict__.setdefault("_gradient_sums", {})
    if name not in cache:
        g = m.gradients[name]
        assert g is not None
        cache[name] = (float(g.sum()), float(np.dot(g, g)))
    return cache[name]


def _positive_weights(m: PreparedSide) -> np.ndarray:
    """``y_true == positive`` of a prepared binary side as 0/1 floats (a BLAS dot), computed once."""
    if "_positive_weights" not in m.__dict__:
        m.__dict__["_positive_weights"] = (m.side.y_true == m.positive).astype(np.float64)
    weights: np.ndarray = m.__dict__["_positive_weights"]
    return weights


def _shifted_interval(
    name: str, m: PreparedSide, constant: float, replicates: dict[str, np.ndarray], *, confidence: float
) -> tuple[DifferenceInterval | None, str]:
    """Interval of the model's metric minus a constant baseline value."""
    test = "bootstrap"
    if name in DELTA_METHOD_METRICS and name not in replicates:
        test = "delong" if name == "roc_auc" else "delta_method"
    if np.isnan(constant) or np.isnan(m.values[name]):
        return None, test
    if name in replicates:
        return bootstrap_difference(replicates[name] - constant, confidence=confidence), test
    if name not in DELTA_METHOD_METRICS:
        return None, test
    gm = m.gradients.get(name)
    if gm is None:
        return None, test
    # influence_se(gm) from the sums cached on the model (every closed-form baseline asks)
    total, squares = _gradient_sums(m, name)
    se = math.sqrt(max(0.0, squares - total * total / gm.size)) if gm.size else 0.0
    return normal_difference(m.values[name] - constant, se, confidence=confidence), test


# label metrics that are one proportion of counts: accuracy-like, tested on the counts when unpaired
_PROPORTIONS = frozenset({"accuracy", "precision", "recall", "precision_micro", "recall_micro", "f1_micro"})


def _proportion(side: PreparedSide, name: str) -> tuple[int, int] | None:
    """``(successes, trials)`` whose ratio is the metric (None when it is not one proportion).

    Micro averages of single-label multiclass predictions are the accuracy; binary precision
    is TP over predicted positives, recall TP over actual positives.
    """
    cm = side.confusion
    if cm is None or name not in _PROPORTIONS:
        return None
    if name in ("accuracy", "precision_micro", "recall_micro", "f1_micro"):
        return int(np.trace(cm)), int(cm.sum())
    if side.positive is None:
        return None
    p = side.positive
    trials = cm[:, p].sum() if name == "precision" else cm[p, :].sum()
    return int(cm[p, p]), int(trials)


def _count_test(
    name: str, m: PreparedSide, b: PreparedSide, *, paired: bool, joint: np.ndarray | None = None
) -> tuple[str, float | None] | None:
    """The count test that decides a verdict: McNemar's exact test for paired accuracy, the
    two-proportion z test for unpaired accuracy-like metrics; None for the rest (bootstrap)."""
    if paired:
        if name != "accuracy":
            return None
        if joint is not None:
            assert m.n_classes is not None
            return "mcnemar_exact", joint_mcnemar(joint, n_classes=m.n_classes).p_value
        result = mcnemar_exact(m.side.y_true == m.side.y_pred, b.side.y_true == b.side.y_pred)
        return "mcnemar_exact", result.p_value
    counts_m, counts_b = _proportion(m, name), _proportion(b, name)
    if counts_m is None or counts_b is None:
        return None
    z = two_proportion_z(*counts_m, *counts_b)
    return "two_proportion_z", z.p_value


def _assess(
    name: str,
    model_value: float,
    baseline_value: float,
    *,
    interval: DifferenceInterval | None,
    test: str,
    counted: tuple[str, float | None] | None,
    confidence: float,
) -> MetricComparison:
    """One MetricComparison; ``counted`` = (test, p) of a count test reported beside the interval
    (accuracy); the verdict follows the interval when there is one (:func:`decide`)."""
    mv = None if np.isnan(model_value) else float(model_value)
    bv = None if np.isnan(baseline_value) else float(baseline_value)
    if mv is None or bv is None:
        return MetricComparison(
            model=mv, baseline=bv, lift=None, normalized_gain=None, test=None, verdict="undefined"
        )
    lift = mv - bv
    greater = METRICS[name].greater_is_better
    interval_method = test
    if counted is not None:
        test, p_value = counted
    else:
        p_value = None if interval is None else interval.p_value
    decision = decide(
        lift,
        p_value=p_value,
        interval=interval,
        greater_is_better=greater,
        alpha=1 - confidence,
        test=test,
        interval_method=interval_method,
    )
    return MetricComparison(
        model=mv,
        baseline=bv,
        lift=lift,
        normalized_gain=normalized_gain(mv, bv, perfect=perfect_value(name)),
        test=test,
        p_value=p_value,
        difference_interval=None if interval is None else interval.interval(),
        interval_method=None if interval is None else interval_method,
        verdict=decision.verdict,
        decided_by=decision.decided_by,
        note=decision.note,
    )


def _beats(primary: MetricComparison) -> bool | None:
    return None if primary.verdict == "undefined" else primary.verdict == "better"
