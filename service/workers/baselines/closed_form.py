"""Baselines in closed form: the expected metrics of a random predictor (uniform or with the
label prior) and the zero rule, computed from label counts without materialising predictions.

A predictor that draws its class from ``q`` independently of the row has expected confusion
matrix ``E[C_ij] = n_i q_j``; the label metrics are those of that matrix (computed by the
metrics worker's confusion code, so exactly the model's formulas), the score metrics those
of the constant probabilities ``q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from schemas.metrics import ConfusionMatrix, MetricsReport
from service.workers.baselines.sides import (
    PreparedSide,
    Side,
    constant_score_values,
)
from service.workers.metrics import (
    METRICS,
    Labels,
    Task,
    check_classification_inputs,
    check_regression_inputs,
    classification_metrics,
    confusion_metric_values,
    default_metrics,
)
from service.workers.significance import (
    constant_score_class_influence,
)

Strategy = Literal["uniform", "prior"]


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
        values.update(constant_score_values(cm, shared, positive=positive, names=score_names, labels=labels))
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
