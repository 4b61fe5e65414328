"""The KServe v1 prediction protocol: the request a model server takes, and its answers decoded.

A model server is sent ``{"instances": [{feature: value, ...}, ...]}`` and answers
``{"predictions": [...]}``, one entry per instance: a probability of the positive class, a class
label, a list of class probabilities, or a regression value. Turning that JSON into arrays is
parsing, and belongs with the client (:mod:`service.integrations.model_endpoint`), not with the
pure robustness worker, which only ever sees :class:`~service.workers.robustness.Answers`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np

from service.workers.metrics import Task
from service.workers.robustness.answers import Answers, check_classes, label_key

# Probability vectors from an endpoint may be float16/float32 softmax outputs.
_PROBABILITY_SUM_TOLERANCE = 0.01


def request_body(instances: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The body of one prediction call for ``instances`` (feature name -> value, one per row)."""
    return {"instances": list(instances)}


def predictions_of(answer: Any, *, instances: int) -> list[Any]:
    """The ``predictions`` list of a decoded answer, one entry per instance sent.

    Raises ``ValueError`` (its message follows the endpoint's URL) when the answer is not of
    the form ``{"predictions": [...]}`` or holds a different number of predictions.

    Examples
    --------
    >>> predictions_of({"predictions": [0.1, 0.9]}, instances=2)
    [0.1, 0.9]
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        raise ValueError('did not answer in the KServe v1 form {"predictions": [...]}')
    predictions: list[Any] = answer["predictions"]
    if len(predictions) != instances:
        raise ValueError(f"answered {len(predictions)} predictions for {instances} instances")
    return predictions


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def answers_from_predictions(
    raw: list[Any],
    *,
    task: Task,
    classes: Sequence[Any] | None = None,
    positive_class: Any = None,
) -> Answers:
    """Interpret the ``predictions`` list of a KServe v1 response.

    Parameters
    ----------
    raw : list
        One entry per instance sent, in order.
    task : {"binary", "multiclass", "regression"}
    classes : sequence of int or str
        Classification: the classes, in the order of probability vectors.
    positive_class : int or str
        Binary: the positive class.

    Returns
    -------
    Answers
        Classification predictions are values of ``classes``.

    Notes
    -----
    Accepted entries:

    * **Regression**: a finite number (``scores`` = ``predictions``).
    * **Class label**: a string or integer naming a class (1 and "1" match).
    * **Binary probability**: a number in [0, 1] that is not a class label, or
      any number when the batch holds at least one non-label number (so that a
      batch of probabilities may contain an integer 0 or 1). Label: the positive
      class when the probability is >= 0.5.
    * **Probability vector**: a list of ``len(classes)`` probabilities in
      ``classes`` order, each in [0, 1], summing to 1 within 0.01. Binary:
      score = probability of the positive class, label as above. Multiclass:
      label = most probable class (the first on ties), score = its probability.

    All entries of a response must have the same form. Bools, NaN and
    infinities are rejected.

    Raises
    ------
    ValueError
        Naming the first offending index: wrong type, NaN, wrong vector length,
        a label that is not a class, mixed forms.

    Examples
    --------
    >>> a = answers_from_predictions([0.2, 0.9], task="binary", classes=["no", "yes"], positive_class="yes")
    >>> a.predictions.tolist(), a.scores.tolist()
    (['no', 'yes'], [0.2, 0.9])
    """
    if not isinstance(raw, list):
        raise ValueError(f"predictions must be a list, got {type(raw).__name__}.")
    class_list, index, pos = check_classes(task, classes, positive_class)
    if task == "regression":
        values = np.empty(len(raw), dtype=np.float64)
        for i, v in enumerate(raw):
            if not _is_number(v) or not math.isfinite(float(v)):
                raise ValueError(f"predictions[{i}] = {v!r} is not a finite number (regression answer).")
            values[i] = float(v)
        return Answers(predictions=values, scores=values.copy())

    forms = [_form(v, index, binary=pos is not None) for v in raw]
    # An integer naming a class is a probability in a batch of probabilities.
    if pos is not None and "probability" in forms:
        forms = ["probability" if f == "ambiguous" else f for f in forms]
    forms = ["label" if f == "ambiguous" else f for f in forms]
    for i, (v, form) in enumerate(zip(raw, forms, strict=True)):
        if form == "garbage":
            why = _why_garbage(v, class_list, binary=pos is not None)
            raise ValueError(f"predictions[{i}] = {v!r} {why}")
        if form != forms[0]:
            raise ValueError(
                f"predictions[{i}] = {v!r} is a {form} but predictions[0] = {raw[0]!r} is a {forms[0]}; "
                "an endpoint must answer every instance in one form."
            )
    n = len(raw)
    codes = np.empty(n, dtype=np.intp)
    scores: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    form0 = forms[0] if forms else "label"
    if form0 == "label":
        for i, v in enumerate(raw):
            codes[i] = index[label_key(v) or ""]
    elif form0 == "probability":
        assert pos is not None
        scores = np.array([float(v) for v in raw], dtype=np.float64)
        codes[:] = np.where(scores >= 0.5, pos, 1 - pos)
    else:
        probabilities = _probability_vectors(raw, len(class_list))
        if pos is not None:
            scores = probabilities[:, pos].copy()
            codes[:] = np.where(scores >= 0.5, pos, 1 - pos)
        else:
            codes[:] = probabilities.argmax(axis=1)
            scores = probabilities[np.arange(n), codes]
    predictions = np.empty(n, dtype=object)
    predictions[:] = [class_list[c] for c in codes]
    return Answers(predictions=predictions, scores=scores, probabilities=probabilities)


def _form(value: Any, index: dict[str, int], *, binary: bool) -> str:
    if isinstance(value, list):
        return "probability vector"
    if isinstance(value, str):
        return "label" if value in index else "garbage"
    if not _is_number(value) or not math.isfinite(float(value)):
        return "garbage"
    is_label = isinstance(value, Integral) or not binary
    key = label_key(value) if is_label else None
    if key is not None and key in index:
        return "ambiguous" if binary and float(value) in (0.0, 1.0) else "label"
    if binary and 0.0 <= float(value) <= 1.0:
        return "probability"
    return "garbage"


def _why_garbage(value: Any, classes: list[Any], *, binary: bool) -> str:
    if isinstance(value, str):
        return f"is not one of the classes {classes!r}."
    if _is_number(value) and not math.isfinite(float(value)):
        return "is not a finite number."
    if _is_number(value):
        alternatives = "a class label or a probability in [0, 1]" if binary else "a class label"
        return f"is neither {alternatives}; classes are {classes!r}."
    return (
        f"has type {type(value).__name__}; expected a class label, "
        f"{'a probability, ' if binary else ''}or a list of {len(classes)} class probabilities."
    )


def _probability_vectors(raw: list[Any], k: int) -> np.ndarray:
    out = np.empty((len(raw), k), dtype=np.float64)
    for i, v in enumerate(raw):
        if len(v) != k:
            raise ValueError(f"predictions[{i}] has {len(v)} probabilities; expected {k}, one per class.")
        if not all(_is_number(p) for p in v):
            raise ValueError(f"predictions[{i}] = {v!r} holds a value that is not a number.")
        row = np.array([float(p) for p in v], dtype=np.float64)
        # min/max also catch NaN: a comparison with NaN is False
        if not (row.min() >= 0.0 and row.max() <= 1.0):
            raise ValueError(f"predictions[{i}] = {v!r} holds a value outside [0, 1] or NaN.")
        if abs(row.sum() - 1.0) > _PROBABILITY_SUM_TOLERANCE:
            raise ValueError(f"predictions[{i}] = {v!r} sums to {row.sum():.6g}, not 1.")
        out[i] = row
    return out
