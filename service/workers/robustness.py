"""Robustness: perturbed copies of a sample, model answers and the reports on them.

Pure computation, seeded: no HTTP, no I/O, no clock, no global random state. The
caller (the robustness job) draws the sample, builds the copies here, sends every
copy to the model endpoint, turns the endpoint's answers into :class:`Answers`
(:func:`answers_from_predictions`) and hands both sides back to
:func:`perturbation_result` or :func:`expectation_result`.

Three kinds of test
-------------------
* **Perturbation** (:func:`perturb`): noise on one column -- gaussian noise scaled
  by the column's standard deviation in the sample, a swap to another observed
  value, or one typo per string. Reported: the flip rate (predicted class
  changed), the mean absolute score change and the metric drop on labeled rows.
* **Invariance** (:func:`invariance_copy`): rows holding one of two values get
  the other; only those rows are tested. The answer must stay the same.
* **Directional expectation** (:func:`directional_copy`): ``add``, ``multiply``
  or ``set`` a column; the score must not move against ``expect``.

Pairs of batches posted by a pipeline (original and perturbed predictions,
joined by ``sample_id`` by the caller) are reported by
:func:`expectation_result` with ``kind="pair"``.

Conventions
-----------
Violation (:func:`expectation_result`), with ``d = changed score - original
score`` and ``tol`` the score tolerance:

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

Randomness: every function that draws takes ``seed`` and derives its own
generator from ``(seed, purpose)``, so the sample and each kind of noise use
independent streams and the same request always gives the same copies (row
order included).
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Literal, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.robustness import (
    Directional,
    ExampleRow,
    Expectation,
    ExpectationResult,
    Invariance,
    Perturbation,
    PerturbationResult,
)
from service.workers.metrics import (
    METRICS,
    Task,
    classification_metrics,
    default_metrics,
    regression_metrics,
    validate_metric_names,
)

Kind = Literal["invariance", "directional", "pair"]
ArrayLike: TypeAlias = pa.Array | pa.ChunkedArray | np.ndarray | Sequence[Any]

# Independent random streams per purpose: the same seed never reuses draws across them.
_SAMPLE_STREAM, _GAUSSIAN_STREAM, _SWAP_STREAM, _TYPO_STREAM = 0, 1, 2, 3
_TYPO_ALPHABET = string.ascii_lowercase
# Probability vectors from an endpoint may be float16/float32 softmax outputs.
_PROBABILITY_SUM_TOLERANCE = 0.01
# Rounding slack of tolerance comparisons, in multiples of the float64 epsilon.
_ULPS = 8.0


# --------------------------------------------------------------------------- sampling


def _rng(seed: int, stream: int) -> np.random.Generator:
    # SeedSequence entropy must be non-negative; the sign goes into its own word.
    return np.random.default_rng(np.random.SeedSequence([abs(int(seed)), int(seed < 0), stream]))


def sample_rows(n_rows: int, *, sample_size: int, seed: int) -> np.ndarray:
    """Row indices of a seeded sample drawn without replacement.

    Parameters
    ----------
    n_rows : int
        Rows in the batch.
    sample_size : int
        Rows wanted; all rows when the batch is not larger.
    seed : int
        Any integer (negative too).

    Returns
    -------
    ndarray of intp, shape (min(n_rows, sample_size),)
        Sorted, distinct indices into ``0 .. n_rows - 1``.

    Examples
    --------
    >>> sample_rows(3, sample_size=10, seed=0).tolist()
    [0, 1, 2]
    >>> len(sample_rows(1000, sample_size=5, seed=0))
    5
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}.")
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1, got {sample_size}.")
    if n_rows <= sample_size:
        return np.arange(n_rows, dtype=np.intp)
    drawn = _rng(seed, _SAMPLE_STREAM).choice(n_rows, size=sample_size, replace=False)
    return np.sort(drawn).astype(np.intp, copy=False)


# --------------------------------------------------------------------------- column helpers


def _column(table: pa.Table, column: str) -> pa.Array:
    if column not in table.column_names:
        raise ValueError(f"column {column!r} is not in the batch; its columns are {table.column_names}.")
    return table.column(column).combine_chunks()


def _decoded(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _replace(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    i = table.column_names.index(column)
    field = table.schema.field(i).with_type(values.type)
    return table.set_column(i, field, values)


def _restore_type(values: pa.Array, original: pa.DataType) -> pa.Array:
    """Re-encode a column that was dictionary-decoded for the computation."""
    if pa.types.is_dictionary(original) and values.type == original.value_type:
        return values.cast(original)
    return values


def _missing(arr: pa.Array) -> np.ndarray:
    """Null, or NaN in a floating column: values a perturbation leaves alone."""
    missing = arr.is_null()
    if pa.types.is_floating(arr.type):
        missing = pc.or_(missing, pc.is_nan(arr).fill_null(True))
    return np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool)


def _is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _scalar(value: Any, t: pa.DataType, *, column: str, what: str) -> pa.Scalar:
    """``value`` as a scalar of the column's type, refusing lossy conversions (1.5 -> int 1)."""
    try:
        s = pa.scalar(value, type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
        raise ValueError(f"{what} {value!r} does not fit column {column!r} of type {t}: {e}") from None
    if s.as_py() != value:
        raise ValueError(f"{what} {value!r} does not fit column {column!r} of type {t} (it would become {s})")
    return s


# --------------------------------------------------------------------------- perturbed copies


def perturb(table: pa.Table, spec: Perturbation, *, seed: int) -> pa.Table:
    """A copy of ``table`` with noise on ``spec.column``; every other column is untouched.

    Parameters
    ----------
    table : pyarrow.Table
        The sampled rows.
    spec : Perturbation
        ``noise`` is one of

        * ``gaussian`` (integer, floating or decimal column): ``x + N(0, (scale *
          std(x))^2)``, with the population standard deviation of the column's
          non-null, non-NaN values in ``table``. The column becomes float64;
          nulls and NaN stay as they are.
        * ``swap`` (any flat type): every non-missing value becomes another
          distinct value observed in the column, uniformly among the others
          (never itself). Nulls (and NaN) stay and are never drawn.
        * ``typo`` (string column): one random edit per non-empty string --
          insert or substitute a lowercase ASCII letter, delete a character, or
          transpose two adjacent different characters -- so every such string
          changes. Null and empty strings stay.
    seed : int
        Same seed and table, same copy.

    Returns
    -------
    pyarrow.Table
        Same rows in the same order.

    Raises
    ------
    ValueError
        The column is missing or of the wrong type for the noise, has no spread
        (gaussian: std 0 or fewer than two values) or fewer than two distinct
        values (swap).

    Examples
    --------
    >>> t = pa.table({"city": ["Oslo", "Rome", "Oslo"]})
    >>> perturb(t, Perturbation(column="city", noise="swap"), seed=0).column("city").to_pylist()
    ['Rome', 'Oslo', 'Rome']
    """
    arr = _column(table, spec.column)
    if spec.noise == "gaussian":
        new = _gaussian(arr, spec.scale, _rng(seed, _GAUSSIAN_STREAM), column=spec.column)
    elif spec.noise == "swap":
        new = _swap(arr, _rng(seed, _SWAP_STREAM), column=spec.column)
    else:
        new = _typo(arr, _rng(seed, _TYPO_STREAM), column=spec.column)
    return _replace(table, spec.column, new)


def _gaussian(arr: pa.Array, scale: float, rng: np.random.Generator, *, column: str) -> pa.Array:
    if not _is_numeric(arr.type):
        raise ValueError(
            f"gaussian noise needs a numeric column; {column!r} is of type {arr.type} "
            "(use `swap` for categories, `typo` for strings)."
        )
    missing = _missing(arr)
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(arr.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
    present = values[~missing]
    std = float(present.std()) if present.size else 0.0
    if present.size < 2 or not (std > 0 and math.isfinite(std)):
        raise ValueError(
            f"gaussian noise on column {column!r} is scaled by its standard deviation, which is "
            f"{std!r} over the {present.size} non-missing values of the sample: nothing would change."
        )
    # One draw per row whatever the nulls, so a row's noise depends only on its position.
    noise = rng.standard_normal(values.size) * (scale * std)
    out = np.where(missing, values, values + noise)
    return pa.array(out, type=pa.float64(), mask=nulls)


def _swap(arr: pa.Array, rng: np.random.Generator, *, column: str) -> pa.Array:
    plain = _decoded(arr)
    if pa.types.is_nested(plain.type):
        raise ValueError(f"swap noise needs a flat column; {column!r} is of type {plain.type}.")
    missing = _missing(plain)
    observed = pc.unique(plain.filter(pa.array(~missing)))  # first-appearance order: deterministic
    k = len(observed)
    if k < 2:
        raise ValueError(
            f"swap noise on column {column!r} needs at least two distinct values in the sample; "
            f"it has {k}{'' if k == 0 else f' ({observed[0].as_py()!r})'}."
        )
    codes = np.asarray(
        pc.index_in(plain, value_set=observed).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    # Uniform over the k - 1 other values: draw in 0..k-2 and skip over the row's own code.
    drawn = rng.integers(0, k - 1, size=len(plain))
    new_codes = drawn + (drawn >= codes)
    swapped = observed.take(pa.array(new_codes, mask=missing))
    # Missing rows keep their value (null, or NaN in a floating column).
    out = pc.if_else(pa.array(missing), plain, swapped)
    return _restore_type(out, arr.type)


def _typo(arr: pa.Array, rng: np.random.Generator, *, column: str) -> pa.Array:
    plain = _decoded(arr)
    if not (pa.types.is_string(plain.type) or pa.types.is_large_string(plain.type)):
        raise ValueError(f"typo noise needs a string column; {column!r} is of type {plain.type}.")
    out = [v if not v else _one_typo(v, rng) for v in plain.to_pylist()]
    return _restore_type(pa.array(out, type=plain.type), arr.type)


def _one_typo(s: str, rng: np.random.Generator) -> str:
    """One edit that always changes ``s`` (non-empty): insert, delete, substitute or transpose."""
    transposable = [i for i in range(len(s) - 1) if s[i] != s[i + 1]]
    ops = ["insert", "delete", "substitute"] + (["transpose"] if transposable else [])
    op = ops[int(rng.integers(len(ops)))]
    if op == "insert":
        pos = int(rng.integers(len(s) + 1))
        return s[:pos] + _TYPO_ALPHABET[int(rng.integers(len(_TYPO_ALPHABET)))] + s[pos:]
    if op == "delete":
        pos = int(rng.integers(len(s)))
        return s[:pos] + s[pos + 1 :]
    if op == "substitute":
        pos = int(rng.integers(len(s)))
        choices = _TYPO_ALPHABET.replace(s[pos], "")
        return s[:pos] + choices[int(rng.integers(len(choices)))] + s[pos + 1 :]
    i = transposable[int(rng.integers(len(transposable)))]
    return s[:i] + s[i + 1] + s[i] + s[i + 2 :]


def invariance_copy(table: pa.Table, spec: Invariance) -> tuple[pa.Table, np.ndarray]:
    """Swap two values of ``spec.column``: rows with ``swap[0]`` get ``swap[1]`` and vice versa.

    Returns
    -------
    table : pyarrow.Table
        The copy; other rows and columns untouched, same column type.
    mask : ndarray of bool, shape (n_rows,)
        Rows that changed: the only rows an invariance test counts.

    Raises
    ------
    ValueError
        Missing column, equal swap values, or a swap value that does not fit
        the column's type (``"F"`` in an integer column, ``1.5`` in an integer
        column).

    Examples
    --------
    >>> t = pa.table({"g": ["F", "M", "X", None]})
    >>> copy, mask = invariance_copy(t, Invariance(column="g", swap=["F", "M"]))
    >>> copy.column("g").to_pylist(), mask.tolist()
    (['M', 'F', 'X', None], [True, True, False, False])
    """
    arr = _column(table, spec.column)
    plain = _decoded(arr)
    first, second = spec.swap
    a = _scalar(first, plain.type, column=spec.column, what="swap value")
    b = _scalar(second, plain.type, column=spec.column, what="swap value")
    if a == b:
        raise ValueError(f"the two swap values of column {spec.column!r} are equal ({first!r}).")
    is_a = pc.equal(plain, a).fill_null(False)
    is_b = pc.equal(plain, b).fill_null(False)
    out = pc.if_else(is_a, b, pc.if_else(is_b, a, plain))
    mask = np.asarray(pc.or_(is_a, is_b).to_numpy(zero_copy_only=False), dtype=bool)
    return _replace(table, spec.column, _restore_type(out, arr.type)), mask


def directional_copy(table: pa.Table, spec: Directional) -> pa.Table:
    """Apply ``add``, ``multiply`` or ``set`` to ``spec.column``.

    ``add``/``multiply`` need a numeric column; an integer column stays integer
    when the operand is integral (``age + 1``) and becomes float64 otherwise.
    Nulls stay null. ``set`` writes the value (in the column's type) to every
    row, nulls included. Rows whose value does not change (``x * 2`` at 0, a
    ``set`` to the value already there) are found by :func:`changed_mask`.

    Raises
    ------
    ValueError
        Missing column, arithmetic on a non-numeric column, integer overflow, or
        a ``set`` value that does not fit the column's type.

    Examples
    --------
    >>> t = pa.table({"age": [30, None]})
    >>> spec = Directional(column="age", add=1, expect="increase")
    >>> directional_copy(t, spec).column("age").to_pylist()
    [31, None]
    """
    arr = _column(table, spec.column)
    if spec.set is not None:
        plain = _decoded(arr)
        value = _scalar(spec.set, plain.type, column=spec.column, what="`set` value")
        out = pa.repeat(value, len(plain))
        return _replace(table, spec.column, _restore_type(out, arr.type))
    if spec.add is not None:
        op, operand = "add", float(spec.add)
    else:
        assert spec.multiply is not None  # Directional validates: exactly one of add, multiply, set
        op, operand = "multiply", float(spec.multiply)
    if not _is_numeric(arr.type):
        raise ValueError(f"`{op}` needs a numeric column; {spec.column!r} is of type {arr.type}.")
    try:
        if pa.types.is_integer(arr.type) and operand.is_integer():
            fn = pc.add_checked if op == "add" else pc.multiply_checked
            out = fn(arr, pa.scalar(int(operand), type=pa.int64()))
        else:
            fn = pc.add if op == "add" else pc.multiply
            out = fn(arr.cast(pa.float64(), safe=False), pa.scalar(operand, type=pa.float64()))
    except pa.ArrowInvalid as e:
        raise ValueError(f"cannot change column {spec.column!r} ({arr.type}): {e}") from None
    return _replace(table, spec.column, out)


def changed_mask(before: pa.Array | pa.ChunkedArray, after: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Rows whose value differs between two versions of a column.

    Null -> null and NaN -> NaN are unchanged; null <-> value is a change. The
    two versions may differ in type when they compare (int64 vs float64 after
    gaussian noise).

    Examples
    --------
    >>> changed_mask(pa.array([1, 2, None, None]), pa.array([1.0, 2.5, None, 3.0])).tolist()
    [False, True, False, True]
    """
    b = _decoded(before.combine_chunks() if isinstance(before, pa.ChunkedArray) else before)
    a = _decoded(after.combine_chunks() if isinstance(after, pa.ChunkedArray) else after)
    if len(a) != len(b):
        raise ValueError(f"the two versions of the column differ in length: {len(b)} vs {len(a)}.")
    changed = pc.or_(pc.not_equal(b, a).fill_null(False), pc.xor(b.is_null(), a.is_null()))
    if pa.types.is_floating(b.type) and pa.types.is_floating(a.type):
        both_nan = pc.and_(pc.is_nan(b), pc.is_nan(a)).fill_null(False)
        changed = pc.and_(changed, pc.invert(both_nan))
    return np.asarray(changed.to_numpy(zero_copy_only=False), dtype=bool)


# --------------------------------------------------------------------------- answers


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


def _label_key(value: Any) -> str | None:
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


def _class_index(classes: Sequence[Any]) -> dict[str, int]:
    index: dict[str, int] = {}
    for code, c in enumerate(classes):
        key = _label_key(c)
        if key is None:
            raise ValueError(f"classes must be ints or strings, got {c!r}.")
        if key in index:
            raise ValueError(f"classes {list(classes)!r} name the same class twice ({c!r}).")
        index[key] = code
    return index


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _check_classes(
    task: Task, classes: Sequence[Any] | None, positive_class: Any
) -> tuple[list[Any], dict[str, int], int | None]:
    if task == "regression":
        return [], {}, None
    if task not in ("binary", "multiclass"):
        raise ValueError(f"Unknown task {task!r}; expected binary, multiclass or regression.")
    if not classes or len(classes) < 2:
        raise ValueError(f"a {task} task needs at least two classes, got {classes!r}.")
    class_list = list(classes)
    index = _class_index(class_list)
    if task == "binary":
        if len(class_list) != 2:
            raise ValueError(f"a binary task has exactly two classes, got {class_list!r}.")
        pos = index.get(_label_key(positive_class) or "")
        if pos is None:
            raise ValueError(f"positive_class {positive_class!r} is not one of the classes {class_list!r}.")
        return class_list, index, pos
    return class_list, index, None


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
    class_list, index, pos = _check_classes(task, classes, positive_class)
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
            codes[i] = index[_label_key(v) or ""]
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
    key = _label_key(value) if is_label else None
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


# --------------------------------------------------------------------------- reports


def _as_list(values: ArrayLike | None, n: int, name: str) -> list[Any]:
    if values is None:
        return [None] * n
    out: list[Any]
    if isinstance(values, pa.ChunkedArray | pa.Array):
        out = values.to_pylist()
    elif isinstance(values, np.ndarray):
        out = values.tolist()
    else:
        out = list(values)
    if len(out) != n:
        raise ValueError(f"{name} has {len(out)} rows; the answers have {n}.")
    return out


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_pair(original: Answers, changed: Answers) -> int:
    if len(original) != len(changed):
        raise ValueError(f"the two answer sets differ in length: {len(original)} vs {len(changed)}.")
    return len(original)


def _check_mask(mask: np.ndarray | None, n: int) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype != bool:
        raise ValueError(f"mask must be a boolean array of shape ({n},), got {m.dtype} {m.shape}.")
    return m


def _label_changed(original: Answers, changed: Answers) -> np.ndarray:
    a = [_label_key(v) for v in original.predictions.tolist()]
    b = [_label_key(v) for v in changed.predictions.tolist()]
    return np.array([x != y for x, y in zip(a, b, strict=True)], dtype=bool)


def _values(answers: Answers) -> np.ndarray:
    values = np.asarray(answers.predictions, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("regression predictions must be finite numbers.")
    return values


def _beyond(d: np.ndarray, tolerance: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|d| > tolerance, allowing the rounding of the inputs (a few ulps of the values compared)."""
    slack = _ULPS * np.finfo(np.float64).eps * np.maximum(np.maximum(np.abs(a), np.abs(b)), tolerance)
    return np.asarray(np.abs(d) > tolerance + slack, dtype=bool)


def _probabilities_moved(original: Answers, changed: Answers, tolerance: float) -> np.ndarray:
    """Per row: did any class probability move by more than ``tolerance``? All True without
    probability vectors on both sides (a change of class cannot be judged then)."""
    p, q = original.probabilities, changed.probabilities
    n = len(original)
    if p is None or q is None or p.shape != q.shape:
        return np.ones(n, dtype=bool)
    return np.asarray(_beyond(q - p, tolerance, p, q).any(axis=1), dtype=bool)


def _check_tolerance(tolerance: float) -> float:
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite non-negative number, got {tolerance!r}.")
    return float(tolerance)


def _example(
    i: int,
    *,
    sample_ids: list[Any],
    before: list[Any],
    after: list[Any],
    original: Answers,
    changed: Answers,
) -> ExampleRow:
    return ExampleRow(
        sample_id=str(sample_ids[i]),
        original=_py(before[i]),
        changed=_py(after[i]),
        original_prediction=_py(original.predictions[i]),
        changed_prediction=_py(changed.predictions[i]),
        original_score=None if original.scores is None else float(original.scores[i]),
        changed_score=None if changed.scores is None else float(changed.scores[i]),
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
        As in :func:`answers_from_predictions`; ``positive_class`` for binary.
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
        Rows the noise changed (:func:`changed_mask`); flip rate, score change
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
    tolerance = _check_tolerance(tolerance)
    n = _check_pair(original, perturbed)
    class_list, _, pos = _check_classes(task, classes, positive_class)
    tested = _check_mask(mask, n)
    ids = _as_list(sample_ids, n, "sample_ids")
    before = _as_list(before_values, n, "before_values")
    after = _as_list(after_values, n, "after_values")

    d: np.ndarray | None = None
    if task == "regression":
        v0, v1 = _values(original), _values(perturbed)
        d = v1 - v0
        flipped = _beyond(d, tolerance, v0, v1)
    else:
        flipped = _label_changed(original, perturbed)
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
        _example(i, sample_ids=ids, before=before, after=after, original=original, changed=perturbed)
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
        before = regression_metrics(yt, _values(original)[labeled], metrics=names).metrics
        after = regression_metrics(yt, _values(perturbed)[labeled], metrics=names).metrics
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
        index = _class_index(classes)
        class_names = [str(c) for c in classes]
        values = []
        for answers, scores in zip((original, perturbed), side_scores, strict=True):
            codes = np.array([index[_label_key(v) or ""] for v in answers.predictions[labeled].tolist()])
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
        Rows tested (:func:`invariance_copy`'s mask, or :func:`changed_mask`);
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
    tolerance = _check_tolerance(tolerance)
    n = _check_pair(original, changed)
    tested = _check_mask(mask, n)
    ids = _as_list(sample_ids, n, "sample_ids")
    before = _as_list(before_values, n, "before_values")
    after = _as_list(after_values, n, "after_values")
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
        a, b = _values(original), _values(changed)
        details["basis"] = "values"
    else:
        label_changed = _label_changed(original, changed)
        details["label_changes"] = int((label_changed & tested).sum())
        if original.scores is not None and changed.scores is not None:
            a, b = original.scores, changed.scores
            details["basis"] = "scores"
        else:
            details["basis"] = "labels"
    if details["basis"] != "labels":
        d = b - a
        beyond = _beyond(d, tolerance, a, b)
        if expect == "same":
            violated = beyond
            if task == "multiclass":
                # the predicted class's probability is not comparable across a change of class
                violated = np.where(label_changed, _probabilities_moved(original, changed, tolerance), beyond)
        elif expect == "increase":
            violated = beyond & (d < 0)
        else:
            violated = beyond & (d > 0)
    elif expect == "same":
        violated = label_changed
    else:
        key = _label_key(positive_class)
        if key is None:
            raise ValueError(
                f"expect={expect!r} without scores compares predicted labels with the positive class: "
                "give positive_class."
            )
        was = np.array([_label_key(v) == key for v in original.predictions.tolist()], dtype=bool)
        now = np.array([_label_key(v) == key for v in changed.predictions.tolist()], dtype=bool)
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
            _example(i, sample_ids=ids, before=before, after=after, original=original, changed=changed)
            for i in picked
        ],
        details=details,
    )
