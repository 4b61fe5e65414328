"""Expectation report: violations of an invariance, directional or pair expectation.

Invariance and directional tests change a copy of the sample
(:mod:`service.workers.robustness.copies`); pair tests compare two batches a pipeline posted,
joined by ``sample_id`` by the caller. Either way the answers before and after are compared here.

Violation, with ``d = changed score - original score`` and ``tol`` the score tolerance:

==========  ================================  ==============================
expect      with scores (or regression)       classification without scores
==========  ================================  ==============================
same        ``|d| > tol``                     label changed
increase    ``d < -tol``                      positive -> not positive
decrease    ``d > tol``                       not positive -> positive
==========  ================================  ==============================

* Scores are used only when *both* sides carry them; otherwise labels decide.
* With scores, a change of the predicted class is not a violation by itself: a
  score within ``tol`` of its original value that crosses the decision threshold
  (a score hovering at 0.5) moved by no more than the tolerance allows. Binary:
  ``d`` is the change of the positive-class probability. Multiclass ``same``: the
  score is the predicted class's probability, which is not comparable across a
  change of class, so a row whose label changed is a violation unless both sides
  carry probability vectors and no class probability moved by more than ``tol``.
  ``details["label_changes_within_tolerance"]`` counts the tested rows whose label
  changed without a violation.
* Regression compares the predicted values (the "score" of a regression model).
* ``increase``/``decrease`` need a direction: binary (probability of the positive
  class) or regression. Multiclass has none and raises ``ValueError``.
* A difference equal to the tolerance is not a violation. Comparisons allow a
  rounding slack of a few ulps of the values compared, so that 0.50 -> 0.51 with
  tolerance 0.01 is not a violation although ``0.51 - 0.50 > 0.01`` in floats.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from schemas.robustness import Expectation, ExpectationResult
from service.workers.metrics import Task
from service.workers.robustness.answers import Answers, label_key
from service.workers.robustness.comparison import (
    ArrayLike,
    as_list,
    beyond_tolerance,
    check_mask,
    check_pair,
    check_tolerance,
    example_row,
    labels_changed,
    probabilities_moved,
    regression_values,
)

Kind = Literal["invariance", "directional", "pair"]


def expectation_result(
    name: str,
    kind: Kind,
    expect: Expectation,
    original: Answers,
    changed: Answers,
    *,
    task: Task,
    tolerance: float,
    sample_ids: ArrayLike,
    before_values: ArrayLike | None = None,
    after_values: ArrayLike | None = None,
    positive_class: Any = None,
    mask: np.ndarray | None = None,
    examples: int = 5,
) -> ExpectationResult:
    """Count violations of an invariance, directional or pair expectation.

    Parameters
    ----------
    name : str
        Shown in the report (the column, or the pair test's name).
    kind : {"invariance", "directional", "pair"}
    expect : {"same", "increase", "decrease"}
    original, changed : Answers
        Row-aligned answers before and after the change.
    task : {"binary", "multiclass", "regression"}
    tolerance : float
        Score (or regression value) changes up to this much are not violations.
    sample_ids : array-like, shape (n,)
    before_values, after_values : array-like, shape (n,), optional
        The changed column's values, for the examples (None for pairs).
    positive_class : int or str
        Binary ``increase``/``decrease`` without scores: the positive class.
    mask : ndarray of bool, shape (n,), optional
        Rows tested (:func:`~.copies.invariance_copy`'s mask, or :func:`~.copies.changed_mask`);
        default all rows.
    examples : int
        At most this many violating rows, in sample order.

    Returns
    -------
    ExpectationResult
        ``rows`` = rows tested; ``violation_rate`` = violations / rows (None when
        no row is tested); ``mean_score_change`` = mean signed change of the
        score (regression value) over tested rows, None without scores.
        ``details``: ``basis`` ("scores", "values" or "labels"), ``tolerance``,
        ``label_changes`` (classification), ``label_changes_within_tolerance``
        (classification with scores: tested rows whose label changed, not counted as
        violations) and ``untested_rows``.

    Raises
    ------
    ValueError
        ``increase``/``decrease`` on a multiclass task, or binary without scores
        and without ``positive_class``; misaligned inputs.

    Notes
    -----
    See the module docstring for the violation table. With ``d = s_changed -
    s_original``: ``same`` violates on ``|d| > tolerance`` (a label that flips while
    the score stays within the tolerance is not a violation; multiclass: only when
    every class probability stays within it); ``increase`` on ``d < -tolerance``;
    ``decrease`` on ``d > tolerance``. Without scores on both sides: ``same``
    violates on a label change; binary ``increase`` when the label leaves the
    positive class, ``decrease`` when it becomes positive.

    Examples
    --------
    >>> o = Answers(np.array(["no", "yes"], dtype=object), np.array([0.40, 0.60]))
    >>> c = Answers(np.array(["no", "yes"], dtype=object), np.array([0.41, 0.55]))
    >>> r = expectation_result("income", "directional", "increase", o, c, task="binary",
    ...                        tolerance=0.01, sample_ids=["a", "b"])
    >>> r.violations, r.violation_rate
    (1, 0.5)
    """
    tolerance = check_tolerance(tolerance)
    n = check_pair(original, changed)
    tested = check_mask(mask, n)
    ids = as_list(sample_ids, n, "sample_ids")
    before = as_list(before_values, n, "before_values")
    after = as_list(after_values, n, "after_values")
    if task not in ("binary", "multiclass", "regression"):
        raise ValueError(f"Unknown task {task!r}; expected binary, multiclass or regression.")
    if expect != "same" and task == "multiclass":
        raise ValueError(
            f"expect={expect!r} needs a direction: a binary score (probability of the positive class) "
            "or a regression value; a multiclass model has neither. Use expect='same'."
        )

    details: dict[str, Any] = {"tolerance": tolerance}
    d: np.ndarray | None = None
    label_changed = np.zeros(n, dtype=bool)
    if task == "regression":
        a, b = regression_values(original), regression_values(changed)
        details["basis"] = "values"
    else:
        label_changed = labels_changed(original, changed)
        details["label_changes"] = int((label_changed & tested).sum())
        if original.scores is not None and changed.scores is not None:
            a, b = original.scores, changed.scores
            details["basis"] = "scores"
        else:
            details["basis"] = "labels"
    if details["basis"] != "labels":
        d = b - a
        beyond = beyond_tolerance(d, tolerance, a, b)
        if expect == "same":
            violated = beyond
            if task == "multiclass":
                # the predicted class's probability is not comparable across a change of class
                violated = np.where(label_changed, probabilities_moved(original, changed, tolerance), beyond)
        elif expect == "increase":
            violated = beyond & (d < 0)
        else:
            violated = beyond & (d > 0)
    elif expect == "same":
        violated = label_changed
    else:
        key = label_key(positive_class)
        if key is None:
            raise ValueError(
                f"expect={expect!r} without scores compares predicted labels with the positive class: "
                "give positive_class."
            )
        was = np.array([label_key(v) == key for v in original.predictions.tolist()], dtype=bool)
        now = np.array([label_key(v) == key for v in changed.predictions.tolist()], dtype=bool)
        violated = (was & ~now) if expect == "increase" else (~was & now)

    rows = int(tested.sum())
    violations = int((violated & tested).sum())
    if details["basis"] == "scores":
        details["label_changes_within_tolerance"] = int((label_changed & ~violated & tested).sum())
    if rows < n:
        details["untested_rows"] = n - rows
    picked = np.flatnonzero(violated & tested)[: max(examples, 0)].tolist()
    return ExpectationResult(
        name=name,
        kind=kind,
        expect=expect,
        rows=rows,
        violations=violations,
        violation_rate=violations / rows if rows else None,
        mean_score_change=float(d[tested].mean()) if d is not None and rows else None,
        examples=[
            example_row(i, sample_ids=ids, before=before, after=after, original=original, changed=changed)
            for i in picked
        ],
        details=details,
    )
