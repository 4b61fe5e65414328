"""Label metrics from confusion matrices: one ``K x K`` matrix, or a stack of them.

Every label metric (accuracy, precision/recall/F1 and their averages, balanced
accuracy, MCC) comes from one confusion matrix built with a single
``np.bincount(y_true * K + y_pred)``. A leading axis of matrices lets the bootstrap
evaluate 1000 replicates, and the slice report every slice, in one call. Metrics added
to the registry (:func:`~service.workers.metrics.registry.register_metric`) are computed
from their registry functions of the same matrices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from service.workers.metrics.arithmetic import safe_div
from service.workers.metrics.registry import METRICS, Labels, check_labels, proportion_value


def confusion_counts(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_classes: int,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """The ``K x K`` confusion matrix (rows true, columns predicted) in one bincount.

    Returns int64 counts without weights, float64 weight sums with weights
    (like ``sklearn.metrics.confusion_matrix(..., labels=range(K))``).
    """
    flat = y_true * n_classes
    flat += y_pred
    k2 = n_classes * n_classes
    if sample_weight is None:
        return np.bincount(flat, minlength=k2).reshape(n_classes, n_classes)
    return np.bincount(flat, weights=sample_weight, minlength=k2).reshape(n_classes, n_classes)


@dataclass(frozen=True)
class ClassRates:
    """Per-class sufficient statistics of a stack of confusion matrices (leading axes kept)."""

    tp: np.ndarray  # (..., K)
    true_sum: np.ndarray  # (..., K) support: TP + FN
    pred_sum: np.ndarray  # (..., K) TP + FP
    total: np.ndarray  # (...)

    @classmethod
    def of(cls, cm: np.ndarray) -> ClassRates:
        cm = np.asarray(cm, dtype=np.float64)
        true_sum = cm.sum(axis=-1)
        return cls(
            tp=np.diagonal(cm, axis1=-2, axis2=-1),
            true_sum=true_sum,
            pred_sum=cm.sum(axis=-2),
            total=true_sum.sum(axis=-1),
        )

    # sklearn precision_recall_fscore_support: P = tp/pred, R = tp/true, F1 = 2tp/(true+pred)
    def precision(self) -> np.ndarray:
        return safe_div(self.tp, self.pred_sum)

    def recall(self) -> np.ndarray:
        return safe_div(self.tp, self.true_sum)

    def f1(self) -> np.ndarray:
        return safe_div(2.0 * self.tp, self.true_sum + self.pred_sum)

    def score(self, base: str) -> np.ndarray:
        """Per-class ``precision``, ``recall`` or ``f1``; NaN on 0/0."""
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}[base]()

    def pooled(self) -> ClassRates:
        """All classes summed into one (micro averaging)."""
        return ClassRates(
            tp=self.tp.sum(axis=-1, keepdims=True),
            true_sum=self.true_sum.sum(axis=-1, keepdims=True),
            pred_sum=self.pred_sum.sum(axis=-1, keepdims=True),
            total=self.total,
        )


def _averaged(per_class: np.ndarray, rates: ClassRates, average: str, labels: Labels) -> np.ndarray:
    """sklearn's macro/weighted average with zero_division=0 (NaN classes count as 0).

    ``labels="present"``: the macro average is over the classes with rows in y_true or
    y_pred of each matrix (sklearn's default ``unique_labels``); ``"declared"``: over all.
    """
    zeroed = np.nan_to_num(per_class, nan=0.0)
    if average == "macro":
        if labels == "declared":
            mean: np.ndarray = zeroed.mean(axis=-1)
            return mean
        occurs = (rates.true_sum + rates.pred_sum) > 0
        return safe_div(np.where(occurs, zeroed, 0.0).sum(axis=-1), occurs.sum(axis=-1))
    # weighted by true support: classes without labeled rows have weight 0
    return safe_div((zeroed * rates.true_sum).sum(axis=-1), rates.true_sum.sum(axis=-1))


def confusion_metric_values(
    cm: np.ndarray, names: Iterable[str], *, positive: int | None, labels: Labels = "present"
) -> dict[str, np.ndarray]:
    """Label metrics of one confusion matrix or a stack of them.

    Parameters
    ----------
    cm : ndarray of shape (..., K, K)
        Confusion matrices (rows true, columns predicted); counts or weight sums.
        A leading axis lets the bootstrap evaluate 1000 replicates at once.
    names : iterable of str
        Registry names whose ``source`` is ``"confusion"``.
    positive : int or None
        Code of the positive class (binary ``precision``, ``recall``, ``f1``).
    labels : {"present", "declared"}, default "present"
        Classes of the macro averages: those with rows in y_true or y_pred of each
        matrix (sklearn's default), or every declared class (sklearn ``labels=range(K)``).

    Returns
    -------
    dict of str to ndarray of shape (...)
        NaN where the metric is undefined (a zero denominator).

    Notes
    -----
    With ``t`` the true-class sums, ``p`` the predicted-class sums, ``c`` the trace
    and ``s`` the total (sklearn ``matthews_corrcoef``)::

        MCC = (c s - t.p) / sqrt((s^2 - p.p) (s^2 - t.t)),  0 if the denominator is 0
    """
    labels = check_labels(labels)
    cm = np.asarray(cm, dtype=np.float64)
    r = ClassRates.of(cm)
    out: dict[str, np.ndarray] = {}
    for name in names:
        base, _, average = name.partition("_")
        info = METRICS.get(name)
        if info is not None and info.formula is not None:
            out[name] = _from_registry(name, cm, positive)
        elif name == "accuracy":
            out[name] = safe_div(r.tp.sum(axis=-1), r.total)
        elif name == "balanced_accuracy":
            # sklearn drops classes absent from y_true (their recall is NaN)
            rec = r.recall()
            present = ~np.isnan(rec)
            out[name] = safe_div(np.where(present, rec, 0.0).sum(axis=-1), present.sum(axis=-1))
        elif name == "mcc":
            c = r.tp.sum(axis=-1)
            s = r.total
            cov_tp = c * s - np.einsum("...k,...k->...", r.true_sum, r.pred_sum)
            cov_pp = s * s - np.einsum("...k,...k->...", r.pred_sum, r.pred_sum)
            cov_tt = s * s - np.einsum("...k,...k->...", r.true_sum, r.true_sum)
            den = cov_pp * cov_tt
            out[name] = np.nan_to_num(safe_div(cov_tp, np.sqrt(np.maximum(den, 0.0))), nan=0.0)
        elif base in ("precision", "recall", "f1"):
            if average == "micro":
                # pool TP / FP / FN over classes, then the same ratio as for one class
                out[name] = r.pooled().score(base)[..., 0]
                continue
            per_class = r.score(base)
            if average in ("macro", "weighted"):
                out[name] = _averaged(per_class, r, average, labels)
            elif average == "":
                if positive is None:
                    raise ValueError(f"{name!r} needs the positive class code (binary tasks only).")
                out[name] = per_class[..., positive]
            else:
                out[name] = _from_registry(name, cm, positive)
        else:
            out[name] = _from_registry(name, cm, positive)
    return out


def _from_registry(name: str, cm: np.ndarray, positive: int | None) -> np.ndarray:
    """A label metric without a formula above: its registry ``formula``, or the ratio of its
    registry ``proportion`` (NaN without trials)."""
    info = METRICS.get(name)
    if info is None or info.source != "confusion":
        raise ValueError(f"{name!r} is not computed from the confusion matrix.")
    if info.formula is not None:
        return np.asarray(info.formula(cm, positive), dtype=np.float64)
    parts = None if info.proportion is None else info.proportion(cm, positive)
    if parts is None:
        raise ValueError(f"{name!r} needs the positive class code (binary tasks only).")
    return proportion_value(parts)
