"""The primary metric: the one number a verdict leads with and a baseline must be beaten on.

A request that names metrics makes the first one primary. Otherwise the choice depends on
the task and on the labels, because accuracy misleads on imbalanced data: on a batch with 5%
fraud, the zero rule ("never fraud") scores 0.95 accuracy, and a useful model that catches
most fraud at some false alarms may score less. So:

* regression: ``rmse``;
* binary: ``accuracy`` when the rarer class holds at least :data:`IMBALANCED_SHARE` (20%) of
  the labeled rows; below that, ``f1`` (of the positive class) when the positive class is the
  rare one, else ``balanced_accuracy``. The zero rule scores 0 F1 and 0.5 balanced accuracy;
* multiclass: ``accuracy`` unless the rarest class holds under half its uniform share
  (``0.5 / K``), then ``balanced_accuracy`` (the zero rule scores ``1 / K``).

Every choice comes with a sentence saying why, which the result carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

#: binary batches whose rarer class holds under this share of labeled rows are imbalanced
IMBALANCED_SHARE = 0.2


class PrimaryChoice(NamedTuple):
    name: str
    reason: str


def choose_primary_metric(
    task: str,
    *,
    requested: Sequence[str] | None,
    support: np.ndarray | None,
    positive: int | None = None,
) -> PrimaryChoice:
    """The primary metric of an evaluation and why (see the module notes).

    Parameters
    ----------
    task : {"binary", "multiclass", "regression"}
    requested : sequence of str, optional
        The request's metric names, in order.
    support : ndarray of int, optional
        Labeled rows per class code (classification); None or all zero when unknown.
    positive : int, optional
        Binary: the positive class code.

    >>> choose_primary_metric("binary", requested=None, support=np.array([950, 50]), positive=1).name
    'f1'
    """
    if requested:
        return PrimaryChoice(requested[0], "the first metric of the request")
    if task == "regression":
        return PrimaryChoice("rmse", "the default for regression")
    return label_primary_metric(task, support=support, positive=positive)


def label_primary_metric(task: str, *, support: np.ndarray | None, positive: int | None) -> PrimaryChoice:
    """The primary metric among the label metrics (no scores needed), chosen by class balance."""
    total = 0 if support is None else int(np.sum(support))
    if support is None or total == 0 or task == "regression":
        return PrimaryChoice("accuracy", "the default for classification")
    shares = np.asarray(support, dtype=np.float64) / total
    if task == "binary":
        assert positive is not None
        rare = int(np.argmin(shares))
        if shares[rare] >= IMBALANCED_SHARE:
            return PrimaryChoice("accuracy", "the classes are balanced enough for accuracy")
        why = (
            f"the {'positive' if rare == positive else 'negative'} class holds {shares[rare]:.1%} of the "
            f"labeled rows (under {IMBALANCED_SHARE:.0%}), so predicting the majority would win accuracy"
        )
        if rare == positive:
            return PrimaryChoice("f1", f"{why}; F1 of the positive class cannot be won that way")
        return PrimaryChoice("balanced_accuracy", f"{why}; balanced accuracy cannot be won that way")
    k = shares.size
    if shares.min() < 0.5 / k:
        return PrimaryChoice(
            "balanced_accuracy",
            f"the rarest class holds {shares.min():.1%} of the labeled rows (under half of 1/{k}), "
            "so predicting the majority would win accuracy; balanced accuracy cannot be won that way",
        )
    return PrimaryChoice("accuracy", "the classes are balanced enough for accuracy")
