"""Perturbation report: how often noise flips the prediction, moves the score, costs metric value.

The caller sends the sample and its perturbed copy
(:func:`~service.workers.robustness.perturbations.perturb`) to the model and hands both answer
sets here. Metric drops use the metric registry of :mod:`service.workers.metrics`, so a metric's
needs (scores or labels) are said once, there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from schemas.robustness import Perturbation, PerturbationResult
from service.workers.metrics import (
    METRICS,
    Task,
    classification_metrics,
    default_metrics,
    regression_metrics,
    validate_metric_names,
)
from service.workers.robustness.answers import Answers, check_classes, class_index, label_key
from service.workers.robustness.comparison import (
    ArrayLike,
    as_list,
    beyond_tolerance,
    check_mask,
    check_pair,
    check_tolerance,
    example_row,
    labels_changed,
    regression_values,
)


def perturbation_result(
    spec: Perturbation,
    original: Answers,
    perturbed: Answers,
    *,
    task: Task,
    sample_ids: ArrayLike,
    before_values: ArrayLike | None = None,
    after_values: ArrayLike | None = None,
    classes: Sequence[Any] | None = None,
    positive_class: Any = None,
    y_true: np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    tolerance: float = 0.0,
    mask: np.ndarray | None = None,
    examples: int = 5,
) -> PerturbationResult:
    """Flip rate, score change and metric drop of one perturbation.

    Parameters
    ----------
    spec : Perturbation
    original, perturbed : Answers
        The model's answers on the sample and on its perturbed copy, row-aligned.
    task : {"binary", "multiclass", "regression"}
    sample_ids : array-like, shape (n,)
    before_values, after_values : array-like, shape (n,), optional
        The column before and after the noise, for the examples.
    classes, positive_class
        As in :func:`service.integrations.kserve.answers_from_predictions`; ``positive_class``
        for binary.
    y_true : ndarray, shape (n,), optional
        Labels of the sampled rows: classification class codes (indices into
        ``classes``) with -1 for unlabeled rows; regression floats with NaN for
        unlabeled rows. None when the batch has no labels.
    metrics : sequence of str, optional
        Metric names (registry of :mod:`service.workers.metrics`); default
        :func:`~service.workers.metrics.default_metrics`. Score metrics are left
        out when either side lacks scores (binary) or probability vectors
        (multiclass).
    tolerance : float
        Regression only: a "flip" is a predicted value moving by more than this.
        Classification flips are changes of the predicted class.
    mask : ndarray of bool, shape (n,), optional
        Rows the noise changed (:func:`~.copies.changed_mask`); flip rate, score change
        and examples count only these. Default: all rows.
    examples : int
        At most this many example rows.

    Returns
    -------
    PerturbationResult
        ``rows`` = rows counted (``mask.sum()``); ``flip_rate`` 0.0 when none.
        ``mean_abs_score_change`` None without scores on both sides.
        ``metric_drop[m]`` = m(original answers) - m(perturbed answers) on all
        labeled sampled rows (positive = worse for higher-is-better metrics,
        negative = worse for ``*_error``/``*_loss``); empty without labels,
        None when undefined on either side. ``examples``: flipped rows in sample
        order, then rows with the largest nonzero score change.
    """
    tolerance = check_tolerance(tolerance)
    n = check_pair(original, perturbed)
    class_list, _, pos = check_classes(task, classes, positive_class)
    tested = check_mask(mask, n)
    ids = as_list(sample_ids, n, "sample_ids")
    before = as_list(before_values, n, "before_values")
    after = as_list(after_values, n, "after_values")

    d: np.ndarray | None = None
    if task == "regression":
        v0, v1 = regression_values(original), regression_values(perturbed)
        d = v1 - v0
        flipped = beyond_tolerance(d, tolerance, v0, v1)
    else:
        flipped = labels_changed(original, perturbed)
        if original.scores is not None and perturbed.scores is not None:
            d = perturbed.scores - original.scores
    rows = int(tested.sum())
    flip_rate = float(flipped[tested].mean()) if rows else 0.0
    mean_abs = float(np.abs(d[tested]).mean()) if d is not None and rows else None

    flipped_rows = np.flatnonzero(flipped & tested)[: max(examples, 0)]
    picked = flipped_rows.tolist()
    if len(picked) < examples and d is not None:
        moved = np.flatnonzero(tested & ~flipped & (d != 0))
        moved = moved[np.argsort(-np.abs(d[moved]), kind="stable")]
        picked += moved[: examples - len(picked)].tolist()
    example_rows = [
        example_row(i, sample_ids=ids, before=before, after=after, original=original, changed=perturbed)
        for i in picked
    ]
    drop = _metric_drop(
        original, perturbed, task=task, classes=class_list, positive=pos, y_true=y_true, metrics=metrics
    )
    return PerturbationResult(
        column=spec.column,
        noise=spec.noise,
        scale=spec.scale,
        rows=rows,
        flip_rate=flip_rate,
        mean_abs_score_change=mean_abs,
        metric_drop=drop,
        examples=example_rows,
    )


def _metric_drop(
    original: Answers,
    perturbed: Answers,
    *,
    task: Task,
    classes: list[Any],
    positive: int | None,
    y_true: np.ndarray | None,
    metrics: Sequence[str] | None,
) -> dict[str, float | None]:
    if y_true is None:
        return {}
    n = len(original)
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise ValueError(f"y_true must have shape ({n},) like the answers, got {y.shape}.")
    if task == "regression":
        labeled = ~np.isnan(y.astype(np.float64))
        names = list(metrics) if metrics is not None else default_metrics(task, has_scores=False)
        validate_metric_names(task, names, has_scores=False)
        if not labeled.any():
            return dict.fromkeys(names)
        yt = y[labeled].astype(np.float64)
        before = regression_metrics(yt, regression_values(original)[labeled], metrics=names).metrics
        after = regression_metrics(yt, regression_values(perturbed)[labeled], metrics=names).metrics
    else:
        if y.size and not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y_true must hold class codes (-1 for unlabeled), got dtype {y.dtype}.")
        labeled = y >= 0
        if positive is not None:
            side_scores = (original.scores, perturbed.scores)
        else:
            side_scores = (original.probabilities, perturbed.probabilities)
        has_scores = side_scores[0] is not None and side_scores[1] is not None
        names = list(metrics) if metrics is not None else default_metrics(task, has_scores=has_scores)
        validate_metric_names(task, names, has_scores=True)
        names = [m for m in names if has_scores or not METRICS[m].needs_scores]
        index = class_index(classes)
        class_names = [str(c) for c in classes]
        values = []
        for answers, scores in zip((original, perturbed), side_scores, strict=True):
            codes = np.array([index[label_key(v) or ""] for v in answers.predictions[labeled].tolist()])
            report = classification_metrics(
                y[labeled].astype(np.intp),
                codes.astype(np.intp).reshape(-1),
                n_classes=len(classes),
                class_names=class_names,
                positive=positive,
                scores=None if scores is None or not has_scores else scores[labeled],
                metrics=names,
            )
            values.append(report.metrics)
        before, after = values
    drop: dict[str, float | None] = {}
    for m in names:
        b, a = before.get(m), after.get(m)
        drop[m] = None if b is None or a is None else b - a
    return drop
