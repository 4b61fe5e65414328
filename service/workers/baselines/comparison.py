"""The comparison engine: the model against one baseline, metric by metric, with the lift, an
interval of the difference, the count test the registry names and a verdict.

Which interval and which test a metric gets is the registry's (kind, interval, count tests):
:mod:`service.workers.metrics.registry`; the statistics are :mod:`service.workers.significance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from schemas.baselines import MetricComparison
from schemas.metrics import MetricsReport
from service.workers.baselines.intervals import difference_interval, shifted_interval
from service.workers.baselines.resampling import difference_replicates, model_replicates, smooth_replicates
from service.workers.baselines.sides import (
    PreparedSide,
    Side,
    check_same_rows,
    common_labels,
    prepared_side,
)
from service.workers.metrics import (
    METRICS,
    Labels,
    Task,
)
from service.workers.significance import (
    DifferenceInterval,
    binomial_test,
    decide,
    joint_mcnemar,
    mcnemar_exact,
    normalized_gain,
    paired_joint_counts,
    two_proportion_z,
)

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


class Comparison(NamedTuple):
    """Per-metric comparisons and whether the model significantly beats the baseline on the primary metric."""

    significance: dict[str, MetricComparison]
    beats: bool | None


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
    labels = common_labels((model, baseline), labels, task=task)
    m = prepared_side(model, task=task, metrics=names, n_classes=n_classes, positive=positive, labels=labels)
    b = prepared_side(
        baseline, task=task, metrics=names, n_classes=n_classes, positive=positive, labels=labels
    )
    if paired:
        _check_paired(m, b)
    joint = None
    if paired and m.task != "regression" and any(METRICS[n].source == "confusion" for n in names):
        # one pass over the rows serves the paired bootstrap and McNemar's test
        assert m.n_classes is not None
        joint = _constant_joint(m, b)
        if joint is None:
            joint = paired_joint_counts(m.side.y_true, m.side.y_pred, b.side.y_pred, n_classes=m.n_classes)
    replicates = difference_replicates(m, b, names, paired=paired, samples=samples, seed=seed, joint=joint)
    if resamples_smooth_metrics(interval_method, rows=max(m.n, b.n), samples=samples):
        replicates.update(smooth_replicates(m, b, names, paired=paired, samples=samples, seed=seed))
    prefix = "paired_" if paired else "unpaired_"
    significance: dict[str, MetricComparison] = {}
    for name in names:
        mv, bv = m.values[name], b.values[name]
        interval, test = difference_interval(name, m, b, replicates, paired=paired, confidence=confidence)
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
    labels = common_labels((model,), labels, task=task)
    m = prepared_side(model, task=task, metrics=names, n_classes=n_classes, positive=positive, labels=labels)
    smooth = resamples_smooth_metrics(interval_method, rows=m.n, samples=samples)
    replicates = model_replicates(m, names, samples=samples, seed=seed, smooth=smooth)
    significance: dict[str, MetricComparison] = {}
    for name in names:
        value = expected.metrics[name]
        bv = np.nan if value is None else float(value)
        interval, test = shifted_interval(name, m, bv, replicates, confidence=confidence)
        counted = _expected_count_test(name, m, bv)
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
    check_same_rows(m.side.y_true, b.side.y_true)


def _proportion(side: PreparedSide, name: str) -> tuple[int, int] | None:
    """``(successes, trials)`` whose ratio is the metric, from the registry (None when it is not
    one proportion, e.g. binary precision without a positive class)."""
    info = METRICS[name]
    if side.confusion is None or info.kind != "proportion" or info.proportion is None:
        return None
    parts = info.proportion(side.confusion, side.positive)
    return None if parts is None else (int(parts[0]), int(parts[1]))


def _count_test(
    name: str, m: PreparedSide, b: PreparedSide, *, paired: bool, joint: np.ndarray | None = None
) -> tuple[str, float | None] | None:
    """The count test the registry reports beside the interval: McNemar's exact test on the
    correct rows of paired sides (accuracy), the two-proportion z test of unpaired proportions;
    None for the rest (bootstrap)."""
    test = METRICS[name].count_test("paired" if paired else "unpaired")
    if test == "mcnemar_exact" and paired:
        if joint is not None:
            assert m.n_classes is not None
            return test, joint_mcnemar(joint, n_classes=m.n_classes).p_value
        result = mcnemar_exact(m.side.y_true == m.side.y_pred, b.side.y_true == b.side.y_pred)
        return test, result.p_value
    if test != "two_proportion_z" or paired:
        return None
    counts_m, counts_b = _proportion(m, name), _proportion(b, name)
    if counts_m is None or counts_b is None:
        return None
    z = two_proportion_z(*counts_m, *counts_b)
    return test, z.p_value


def _expected_count_test(name: str, m: PreparedSide, expected: float) -> tuple[str, float | None] | None:
    """The registry's test of the model's counts against a fixed baseline value (accuracy: the
    exact binomial test of its correct rows against ``p0 = expected``); None for the rest."""
    test = METRICS[name].count_test("expected")
    parts = _proportion(m, name)
    if test != "binomial" or np.isnan(expected) or parts is None:
        return None
    return test, binomial_test(*parts, min(1.0, max(0.0, expected)))


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
        normalized_gain=normalized_gain(mv, bv, perfect=METRICS[name].perfect),
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
