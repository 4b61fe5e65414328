"""The sides of a comparison: a model's or a baseline's predictions on labeled rows, validated
and prepared once (metric values, the report, confusion counts, delta-method influence terms) so
that the model's scores are sorted once for a whole panel of baselines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from schemas.metrics import MetricsReport
from service.workers.metrics import (
    METRICS,
    Labels,
    RegressionStatistics,
    ScoreStatistics,
    Task,
    check_classification_inputs,
    check_labels,
    check_regression_inputs,
    classification_report,
    confusion_counts,
    confusion_metric_values,
    regression_report,
    validate_metric_names,
)
from service.workers.significance import (
    constant_score_influence,
    paired_joint_counts,
    regression_influence,
    score_influence,
)


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
        check_same_rows(paired.y_true, yt)
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
        values.update(constant_score_values(cm, shared, positive=positive, names=names, labels=labels))
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


def constant_score_values(
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
    resampled = [m for m in names if METRICS[m].kind != "smooth"]
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


def prepared_side(
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


def common_labels(sides: Sequence[Side | PreparedSide], labels: Labels | None, *, task: Task) -> Labels:
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


def check_same_rows(a: np.ndarray, b: np.ndarray) -> None:
    if a.size != b.size or (a is not b and not np.array_equal(a, b)):
        raise ValueError(
            "paired sides must be the same rows in the same order with the same y_true "
            f"(join by sample_id first); got {a.size} and {b.size} rows."
        )
