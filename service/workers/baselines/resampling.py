"""Bootstrap replicates for the comparison engine: the differences ``model - baseline`` of the
metrics without a delta-method interval (or of every metric on small data), and the model's own
replicates against a constant baseline, cached on the prepared model."""

from __future__ import annotations

import numpy as np

from service.workers.baselines.sides import PreparedSide
from service.workers.bootstrap import classification_replicates, regression_replicates
from service.workers.metrics import (
    METRICS,
    RegressionStatistics,
    ScoreStatistics,
)
from service.workers.significance import (
    paired_confusion_replicates,
    paired_regression_replicates,
    paired_row_replicates,
    unpaired_classification_replicates,
    unpaired_regression_replicates,
)


def difference_replicates(
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
    rows = [n for n in names if METRICS[n].source == "values" and METRICS[n].kind != "smooth"]
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


def smooth_replicates(
    m: PreparedSide, b: PreparedSide, names: list[str], *, paired: bool, samples: int, seed: int
) -> dict[str, np.ndarray]:
    """Row-bootstrap replicates of model - baseline for the smooth metrics (both sides defined).

    Paired: the same resampled rows on both sides (:func:`paired_row_replicates`);
    unpaired: each side resampled on its own rows.
    """
    smooth = [n for n in names if METRICS[n].kind == "smooth"]
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


def model_replicates(
    m: PreparedSide, names: list[str], *, samples: int, seed: int, smooth: bool = False
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the model's own metrics (the smooth ones only with ``smooth``),
    cached on the prepared side (every closed-form baseline of a panel asks for the same ones)."""
    resampled = [n for n in names if smooth or METRICS[n].kind != "smooth"]
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
