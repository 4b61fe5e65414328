"""A model's answers for one copy of the sample, and what makes two labels the same class.

:class:`Answers` is what every robustness report compares. The endpoint client builds it from a
model server's JSON (:func:`service.integrations.kserve.answers_from_predictions`); the job builds
it from stored batches for pair tests. Labels are compared by :func:`label_key`, so a class named
1 in the batch and "1" in an endpoint's answer are one class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from service.workers.metrics import Task


@dataclass(frozen=True, eq=False)
class Answers:
    """A model's answers for the rows of one copy, in row order.

    Attributes
    ----------
    predictions : ndarray, shape (n,)
        Classification: the predicted class (a value of ``classes``; labels of
        another type with the same string form, 1 and "1", are the same class).
        Regression: the predicted values.
    scores : ndarray of float, shape (n,), or None
        Binary: probability of the positive class. Multiclass: probability of the
        predicted class. Regression: the predicted value. None without scores.
    probabilities : ndarray of float, shape (n, n_classes), or None
        One probability per class in ``classes`` order, when the endpoint gave
        them; needed for the multiclass score metrics in ``metric_drop``.
    """

    predictions: np.ndarray
    scores: np.ndarray | None = None
    probabilities: np.ndarray | None = None

    def __post_init__(self) -> None:
        predictions = np.asarray(self.predictions)
        if predictions.ndim != 1:
            raise ValueError(f"predictions must be 1-D, got shape {predictions.shape}.")
        n = predictions.size
        object.__setattr__(self, "predictions", predictions)
        if self.scores is not None:
            scores = np.asarray(self.scores, dtype=np.float64)
            if scores.shape != (n,):
                raise ValueError(f"scores must have shape ({n},) like predictions, got {scores.shape}.")
            if not np.isfinite(scores).all():
                raise ValueError("scores must be finite; use scores=None when some rows have none.")
            object.__setattr__(self, "scores", scores)
        if self.probabilities is not None:
            probabilities = np.asarray(self.probabilities, dtype=np.float64)
            if probabilities.ndim != 2 or probabilities.shape[0] != n:
                raise ValueError(
                    f"probabilities must have shape ({n}, n_classes), got {probabilities.shape}."
                )
            object.__setattr__(self, "probabilities", probabilities)

    def __len__(self) -> int:
        return int(self.predictions.size)


def label_key(value: Any) -> str | None:
    """The identity of a class label: 1, 1.0 and "1" are one class; bools and fractions are none."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real) and math.isfinite(float(value)) and float(value).is_integer():
        return str(math.trunc(value))
    return None


def class_index(classes: Sequence[Any]) -> dict[str, int]:
    index: dict[str, int] = {}
    for code, c in enumerate(classes):
        key = label_key(c)
        if key is None:
            raise ValueError(f"classes must be ints or strings, got {c!r}.")
        if key in index:
            raise ValueError(f"classes {list(classes)!r} name the same class twice ({c!r}).")
        index[key] = code
    return index


def check_classes(
    task: Task, classes: Sequence[Any] | None, positive_class: Any
) -> tuple[list[Any], dict[str, int], int | None]:
    """The classes as a list, their codes by :func:`label_key`, and the positive class's code.

    Regression has no classes: ``([], {}, None)``. Multiclass has no positive class (None).
    Raises ``ValueError`` for an unknown task, fewer than two classes, a class named twice, or
    a binary ``positive_class`` that is not one of the two.
    """
    if task == "regression":
        return [], {}, None
    if task not in ("binary", "multiclass"):
        raise ValueError(f"Unknown task {task!r}; expected binary, multiclass or regression.")
    if not classes or len(classes) < 2:
        raise ValueError(f"a {task} task needs at least two classes, got {classes!r}.")
    class_list = list(classes)
    index = class_index(class_list)
    if task == "binary":
        if len(class_list) != 2:
            raise ValueError(f"a binary task has exactly two classes, got {class_list!r}.")
        pos = index.get(label_key(positive_class) or "")
        if pos is None:
            raise ValueError(f"positive_class {positive_class!r} is not one of the classes {class_list!r}.")
        return class_list, index, pos
    return class_list, index, None
