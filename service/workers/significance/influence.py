"""Influence terms (delta-method gradients) of the smooth metrics of scores and values: the
per-row losses of log loss and Brier, the rankings of ROC AUC and average precision, the
regression errors; for varying probabilities and for probabilities shared by every row."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from service.workers.metrics import METRICS, Labels, ScoreStatistics
from service.workers.significance.ranking_influence import Ranking, finite_factor, macro_ranking_gradients


def row_losses(
    y_true: np.ndarray, scores: np.ndarray, *, n_classes: int, positive: int | None, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-row log loss and Brier terms whose means are the metrics (as ScoreStatistics)."""
    out: dict[str, np.ndarray] = {}
    if positive is not None:
        is_pos = y_true == positive
        p_true = np.where(is_pos, scores, 1 - scores)
    else:
        p_true = scores[np.arange(y_true.size), y_true]
    if "log_loss" in names:
        eps = np.finfo(np.float64).eps
        out["log_loss"] = -np.log(np.clip(p_true, eps, 1 - eps))
    if "brier_score" in names:
        if positive is not None:
            out["brier_score"] = (is_pos - scores) ** 2
        else:
            diff = np.array(scores, dtype=np.float64)
            diff[np.arange(y_true.size), y_true] -= 1
            # sklearn halves the multiclass sum only with fewer than 3 columns
            out["brier_score"] = np.einsum("ij,ij->i", diff, diff) * (0.5 if n_classes < 3 else 1.0)
    return out


# a ranking: is_pos by decreasing score, ends of tied runs (None: no ties), and the
# input row of each position (None: already input order), optionally followed by the


def _loss_gradients(
    losses: dict[str, np.ndarray], n: int, *, in_place: bool = False, ddof: int = 1
) -> dict[str, np.ndarray | None]:
    # a mean of per-row losses L: d L / d w_k = (l_k - L) / n, times sqrt(n / (n - 1))
    # with ddof=1 (the sample variance of the losses over n); with ``in_place`` the loss
    # rows become the influence terms (no fresh n-row array per metric)
    out: dict[str, np.ndarray | None] = {}
    for name, rows in losses.items():
        if not n:
            out[name] = None
            continue
        mean = rows.mean()
        g = np.subtract(rows, mean, out=rows) if in_place else rows - mean
        g *= finite_factor(n, ddof) / n
        out[name] = g
    return out


def score_influence(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    stats: ScoreStatistics,
    consume: bool = False,
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """Influence terms (rows in input order) of the score metrics prepared in ``stats``.

    Parameters
    ----------
    y_true, scores, n_classes, positive
        As :class:`~service.workers.metrics.ScoreStatistics` (validated).
    stats : ScoreStatistics
        Built on the same data; its rankings are reused (no new sort), and its
        ``labels`` says which classes the multiclass macro means are over.
    consume : bool, default False
        Turn ``stats``' per-row losses into the influence terms in place (no fresh
        n-row arrays); ``stats`` must not be evaluated afterwards.
    ddof : {1, 0}, default 1
        1: the gradients ``d metric / d w_k`` scaled to the unbiased variance (see the
        module docstring: ``sqrt(n / (n - 1))``, DeLong's per-class factors for ROC
        AUC), so that :func:`influence_se` is the textbook standard error. 0: the bare
        gradients (the infinitesimal jackknife).

    Returns
    -------
    dict of str to ndarray of shape (n,) or None
        None where the metric is undefined. Multiclass ROC AUC / average precision
        are macro means of one-vs-rest values, so their terms are the means of the
        per-class terms (``labels="declared"``: a class without positives adds a
        constant 0 to AP).
    """
    n = y_true.size
    names = stats.names
    ranked = stats.ranked
    out: dict[str, np.ndarray | None] = {}
    if ranked:
        # the cumulative counts ScoreStatistics.values() already computed (no new cumsum)
        rankings: list[Ranking] = [
            (c.is_pos, c.ends, stats.row_order if positive is not None else c.order, c.unweighted_tps)
            for c in stats.curves
        ]
        out.update(
            macro_ranking_gradients(
                rankings, n, ranked, binary=positive is not None, labels=stats.labels, ddof=ddof
            )
        )
    out.update(_loss_gradients(stats.row_losses, n, in_place=consume, ddof=ddof))
    if consume:
        stats.row_losses = {}
    return {m: out[m] for m in names}


def constant_score_influence(
    y_true: np.ndarray,
    score_row: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    names: Sequence[str],
    labels: Labels = "present",
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """:func:`score_influence` for probabilities that are the same on every row (zero rule, a prior).

    Every ranking is then one run of tied scores in any order, so nothing is sorted
    or permuted, and a row's losses depend only on its class (computed for ``K`` rows,
    then gathered).

    Parameters
    ----------
    score_row : ndarray of shape (1,) or (K,)
        The probability of ``positive`` (binary) or of each class, shared by all rows.
    labels, ddof
        As :class:`~service.workers.metrics.ScoreStatistics` and :func:`score_influence`.
    """
    y = np.asarray(y_true)
    n = y.size
    score_names = [m for m in names if METRICS[m].source == "scores"]
    ranked = {m for m in score_names if METRICS[m].ranked}
    out: dict[str, np.ndarray | None] = {}
    if ranked:
        one_run = np.array([n - 1]) if n else None
        classes = [positive] if positive is not None else range(n_classes)
        rankings = [(y == c, one_run, None) for c in classes]
        out.update(
            macro_ranking_gradients(
                rankings, n, ranked, binary=positive is not None, labels=labels, ddof=ddof
            )
        )
    codes = np.arange(n_classes)
    if positive is not None:
        rows = np.full(n_classes, float(score_row[0]))
    else:
        rows = np.tile(score_row, (n_classes, 1))
    per_class = row_losses(codes, rows, n_classes=n_classes, positive=positive, names=score_names)
    # the gathered rows are fresh arrays: they become the gradients in place
    out.update(_loss_gradients({m: table[y] for m, table in per_class.items()}, n, in_place=True, ddof=ddof))
    return {m: out[m] for m in score_names}


def constant_score_class_influence(
    support: np.ndarray,
    score_row: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    names: Sequence[str],
    labels: Labels = "present",
    ddof: int = 1,
) -> dict[str, np.ndarray | None]:
    """:func:`constant_score_influence` per class: entry ``c`` is the influence term of every
    row of class ``c`` (``support[c]`` rows), so no n-row array is built.

    Parameters
    ----------
    support : ndarray of shape (K,)
        Rows per class.
    labels, ddof
        As :func:`constant_score_influence`.
    """
    counts = np.asarray(support, dtype=np.float64)
    n = int(counts.sum())
    score_names = [m for m in names if METRICS[m].source == "scores"]
    if not n:
        return dict.fromkeys(score_names)
    ranked = {m for m in score_names if METRICS[m].ranked}
    out: dict[str, np.ndarray | None] = {}
    codes = np.arange(n_classes)
    if ranked:
        # one run of tied scores over all n rows; a row's gradient depends on its class only
        one_run = np.array([n - 1])
        classes = [positive] if positive is not None else range(n_classes)
        rankings: list[Ranking] = [(codes == c, one_run, None, counts[c : c + 1]) for c in classes]
        out.update(
            macro_ranking_gradients(
                rankings, n_classes, ranked, binary=positive is not None, labels=labels, ddof=ddof
            )
        )
    if positive is not None:
        rows = np.full(n_classes, float(score_row[0]))
    else:
        rows = np.tile(score_row, (n_classes, 1))
    per_class = row_losses(codes, rows, n_classes=n_classes, positive=positive, names=score_names)
    for name, losses in per_class.items():
        losses -= float(np.dot(counts, losses)) / n
        losses *= finite_factor(n, ddof) / n
        out[name] = losses
    return {m: out[m] for m in score_names}


def regression_influence(
    y_true: np.ndarray, y_pred: np.ndarray, *, names: Sequence[str], ddof: int = 1
) -> dict[str, np.ndarray | None]:
    """Influence terms of the smooth regression metrics (MAE, RMSE, MAPE, R^2).

    ``ddof=1`` (default): the gradients below times ``sqrt(n / (n - 1))``, so that
    :func:`influence_se` uses the sample variance (``n - 1``) of the influence function
    (for MAE: ``std(|e|, ddof=1) / sqrt(n)``); ``ddof=0``: the bare gradients.

    Notes
    -----
    With ``e = y_hat - y``, ``SSres = sum e^2``, ``SStot = sum (y - ybar)^2``, the
    gradients ``d metric / d w_k`` are::

        mae:  (|e_k| - mae) / n           rmse: (e_k^2 - mse) / (2 rmse n)
        mape: (ape_k - mape) / n          r2:   -(e_k^2 SStot - SSres (y_k - ybar)^2) / SStot^2
    """
    y = np.asarray(y_true, dtype=np.float64)
    n = y.size
    err = np.asarray(y_pred, dtype=np.float64) - y
    out: dict[str, np.ndarray | None] = {}
    if n == 0:
        return {m: None for m in names if METRICS[m].kind == "smooth"}
    sq = err * err
    factor = finite_factor(n, ddof)
    for name in names:
        if name == "mae":
            a = np.abs(err)
            out[name] = (a - a.mean()) * (factor / n)
        elif name == "mape":
            ape = np.abs(err) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
            out[name] = (ape - ape.mean()) * (factor / n)
        elif name == "rmse":
            mse = float(sq.mean())
            out[name] = (sq - mse) * (factor / (2 * math.sqrt(mse) * n)) if mse > 0 else np.zeros(n)
        elif name == "r2":
            dev = (y - y.mean()) ** 2
            ss_tot, ss_res = float(dev.sum()), float(sq.sum())
            # undefined for constant y_true, as the metric
            defined = y.min() < y.max() and ss_tot > 0
            out[name] = -(sq * ss_tot - ss_res * dev) * (factor / ss_tot**2) if defined else None
    return out
