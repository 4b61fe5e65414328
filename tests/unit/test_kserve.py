"""KServe v1 answers decoded into Answers: every accepted form, and errors that name the first
offending index; the request and answer envelopes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.integrations.kserve import answers_from_predictions, predictions_of, request_body

YES_NO = {"task": "binary", "classes": ["no", "yes"], "positive_class": "yes"}


def test_binary_probabilities_threshold_at_one_half() -> None:
    a = answers_from_predictions([0.2, 0.5, 0.9, 0, 1], **YES_NO)
    assert a.predictions.tolist() == ["no", "yes", "yes", "no", "yes"]
    assert a.scores is not None and a.scores.tolist() == [0.2, 0.5, 0.9, 0.0, 1.0]
    # the positive class may be the first one
    a = answers_from_predictions([0.7, 0.1], task="binary", classes=["pos", "neg"], positive_class="pos")
    assert a.predictions.tolist() == ["pos", "neg"]


def test_binary_integer_labels_and_probabilities_in_one_batch_of_probabilities() -> None:
    labels = answers_from_predictions([1, 0, 1], task="binary", classes=[0, 1], positive_class=1)
    assert labels.predictions.tolist() == [1, 0, 1] and labels.scores is None
    probs = answers_from_predictions([0.25, 1, 0], task="binary", classes=[0, 1], positive_class=1)
    assert probs.predictions.tolist() == [0, 1, 0]
    assert probs.scores is not None and probs.scores.tolist() == [0.25, 1.0, 0.0]


def test_labels_match_classes_by_string_form() -> None:
    a = answers_from_predictions([1, "0", 1.0], task="multiclass", classes=["0", "1", "2"])
    assert a.predictions.tolist() == ["1", "0", "1"] and a.scores is None
    a = answers_from_predictions(["yes", "no"], **YES_NO)
    assert a.predictions.tolist() == ["yes", "no"] and a.scores is None


def test_probability_vectors() -> None:
    a = answers_from_predictions([[0.8, 0.2], [0.3, 0.7], [0.5, 0.5]], **YES_NO)
    assert a.predictions.tolist() == ["no", "yes", "yes"]
    assert a.scores is not None and a.scores.tolist() == [0.2, 0.7, 0.5]
    assert a.probabilities is not None and a.probabilities.shape == (3, 2)
    m = answers_from_predictions(
        [[0.1, 0.6, 0.3], [0.4, 0.4, 0.2], [0, 0, 1]], task="multiclass", classes=["a", "b", "c"]
    )
    assert m.predictions.tolist() == ["b", "a", "c"]  # ties: the first class
    assert m.scores is not None and m.scores.tolist() == [0.6, 0.4, 1.0]
    assert m.probabilities is not None and m.probabilities[1].tolist() == [0.4, 0.4, 0.2]


def test_regression_values() -> None:
    a = answers_from_predictions([1, 2.5, -3e9], task="regression")
    assert a.predictions.dtype == np.float64 and a.predictions.tolist() == [1.0, 2.5, -3e9]
    assert a.scores is not None and a.scores.tolist() == [1.0, 2.5, -3e9]


def test_empty_answers() -> None:
    assert len(answers_from_predictions([], **YES_NO)) == 0


MULTI = {"task": "multiclass", "classes": ["a", "b", "c"]}


@pytest.mark.parametrize(
    ("raw", "kwargs", "match"),
    [
        ([0.1, True], YES_NO, r"predictions\[1\] = True has type bool"),
        ([0.1, None], YES_NO, r"predictions\[1\] = None has type NoneType"),
        ([0.1, {"p": 1}], YES_NO, r"predictions\[1\]"),
        ([0.1, 0.2, float("nan")], YES_NO, r"predictions\[2\] = nan is not a finite number"),
        ([1.5], YES_NO, r"predictions\[0\] = 1.5 is neither a class label or a probability"),
        (["no", "maybe"], YES_NO, r"predictions\[1\] = 'maybe' is not one of the classes"),
        (["yes", 0.3], YES_NO, r"predictions\[1\] = 0.3 is a probability but predictions\[0\] = 'yes'"),
        ([[0.5, 0.5], 0.3], YES_NO, r"predictions\[1\] = 0.3 is a probability but"),
        ([[0.5, 0.5], [0.2, 0.3, 0.5]], YES_NO, r"predictions\[1\] has 3 probabilities; expected 2"),
        ([[0.5, 0.5], [float("nan"), 1.0]], YES_NO, r"predictions\[1\] .*outside \[0, 1\] or NaN"),
        ([[1.2, -0.2]], YES_NO, r"predictions\[0\] .*outside \[0, 1\]"),
        ([[0.5, 0.6]], YES_NO, r"predictions\[0\] .*sums to 1.1, not 1"),
        ([[0.5, "0.5"]], YES_NO, r"predictions\[0\] .*not a number"),
        (["a", 3], MULTI, r"predictions\[1\] = 3 is neither a class label"),
        (["a", 0.4], MULTI, r"predictions\[1\] = 0.4 is neither a class label"),
        ([[0.2, 0.8]], MULTI, r"predictions\[0\] has 2 probabilities; expected 3"),
        ([1.0, "x"], {"task": "regression"}, r"predictions\[1\] = 'x' is not a finite number"),
        ([1.0, float("inf")], {"task": "regression"}, r"predictions\[1\] = inf"),
        ([1.0, False], {"task": "regression"}, r"predictions\[1\] = False"),
        ([[1.0]], {"task": "regression"}, r"predictions\[0\] = \[1.0\]"),
    ],
)
def test_garbage_answers_name_the_first_offending_index(
    raw: list[Any], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        answers_from_predictions(raw, **kwargs)


@pytest.mark.parametrize(
    ("raw", "kwargs", "match"),
    [
        ({"predictions": [1]}, YES_NO, "must be a list"),
        ([1], {**YES_NO, "positive_class": "maybe"}, "positive_class 'maybe'"),
        ([1], {"task": "binary", "classes": ["a", "b", "c"], "positive_class": "a"}, "exactly two classes"),
        ([1], {"task": "multiclass", "classes": [1, "1"]}, "same class twice"),
        ([1], {"task": "multiclass", "classes": ["a"]}, "at least two classes"),
        ([1], {"task": "ranking", "classes": ["a", "b"]}, "Unknown task"),
    ],
)
def test_answer_configuration_errors(raw: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        answers_from_predictions(raw, **kwargs)


def test_request_body_lists_the_instances() -> None:
    rows = ({"amount": 1.0}, {"amount": 2.0})
    assert request_body(rows) == {"instances": [{"amount": 1.0}, {"amount": 2.0}]}


def test_predictions_of_checks_the_envelope_and_the_count() -> None:
    assert predictions_of({"predictions": [0.1, 0.9], "model": "m"}, instances=2) == [0.1, 0.9]
    for answer in ([0.1, 0.9], {"outputs": []}, {"predictions": "0.1"}, None):
        with pytest.raises(ValueError, match=r'KServe v1 form \{"predictions": \[...\]\}'):
            predictions_of(answer, instances=2)
    with pytest.raises(ValueError, match="answered 1 predictions for 2 instances"):
        predictions_of({"predictions": [0.1]}, instances=2)
