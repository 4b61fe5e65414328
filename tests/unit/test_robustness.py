"""Robustness worker: seeded sampling and noise, perturbed copies, and exact violation / flip
counting on hand-made cases; metric drops against scikit-learn. (Decoding endpoint answers is
tested in test_kserve.py.)"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as skm

from schemas.robustness import Directional, Invariance, Perturbation
from service.integrations.kserve import answers_from_predictions
from service.workers.robustness import (
    Answers,
    changed_mask,
    directional_copy,
    expectation_result,
    invariance_copy,
    perturb,
    perturbation_result,
    sample_rows,
)


def _labels(*values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _osa_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: Levenshtein plus adjacent transpositions (reference)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


# --------------------------------------------------------------------------- sampling


def test_sample_rows_is_seeded_sorted_and_without_replacement() -> None:
    a = sample_rows(10_000, sample_size=500, seed=7)
    assert a.tolist() == sample_rows(10_000, sample_size=500, seed=7).tolist()
    assert a.tolist() != sample_rows(10_000, sample_size=500, seed=8).tolist()
    assert len(a) == 500 and len(np.unique(a)) == 500
    assert (np.diff(a) > 0).all() and a.min() >= 0 and a.max() < 10_000


@pytest.mark.parametrize("n_rows", [0, 1, 499, 500])
def test_sample_rows_takes_every_row_of_a_small_batch(n_rows: int) -> None:
    assert sample_rows(n_rows, sample_size=500, seed=0).tolist() == list(range(n_rows))


def test_sample_rows_accepts_negative_seeds_distinct_from_positive() -> None:
    neg = sample_rows(1000, sample_size=10, seed=-3)
    assert neg.tolist() == sample_rows(1000, sample_size=10, seed=-3).tolist()
    assert neg.tolist() != sample_rows(1000, sample_size=10, seed=3).tolist()


def test_sample_rows_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="sample_size"):
        sample_rows(10, sample_size=0, seed=0)
    with pytest.raises(ValueError, match="n_rows"):
        sample_rows(-1, sample_size=5, seed=0)


# --------------------------------------------------------------------------- gaussian noise


def _numeric_table(n: int = 20_000) -> pa.Table:
    rng = np.random.default_rng(123)
    return pa.table({"x": rng.normal(5.0, 3.0, n), "other": np.arange(n)})


def test_gaussian_noise_has_scale_times_std() -> None:
    t = _numeric_table()
    spec = Perturbation(column="x", noise="gaussian", scale=0.1)
    out = perturb(t, spec, seed=1)
    before = t.column("x").to_numpy()
    noise = out.column("x").to_numpy() - before
    expected = 0.1 * before.std()
    assert noise.std() == pytest.approx(expected, rel=0.03)
    assert abs(noise.mean()) < 4 * expected / math.sqrt(len(noise))
    assert out.column("other").equals(t.column("other"))
    assert out.column_names == t.column_names


def test_gaussian_noise_is_seeded() -> None:
    t = _numeric_table(1000)
    spec = Perturbation(column="x", noise="gaussian", scale=0.5)
    assert perturb(t, spec, seed=4).equals(perturb(t, spec, seed=4))
    assert not perturb(t, spec, seed=4).equals(perturb(t, spec, seed=5))


def test_gaussian_noise_keeps_nulls_and_nan_and_makes_ints_float() -> None:
    t = pa.table({"i": pa.array([1, None, 3, 10], pa.int32()), "f": [1.0, float("nan"), None, 4.0]})
    out = perturb(t, Perturbation(column="i", noise="gaussian"), seed=0)
    assert out.schema.field("i").type == pa.float64()
    values = out.column("i").to_pylist()
    assert values[1] is None and all(isinstance(v, float) for v in (values[0], values[2], values[3]))
    assert values != [1.0, None, 3.0, 10.0]
    f = perturb(t, Perturbation(column="f", noise="gaussian"), seed=0).column("f").to_pylist()
    assert math.isnan(f[1]) and f[2] is None and f[0] != 1.0 and f[3] != 4.0


def test_gaussian_noise_std_is_over_the_present_values() -> None:
    # present values 0 and 2: population std 1, so scale 1e-6 moves them by about 1e-6
    t = pa.table({"x": [0.0, None, 2.0, float("nan")]})
    out = perturb(t, Perturbation(column="x", noise="gaussian", scale=1e-6), seed=0).column("x").to_pylist()
    assert 0 < abs(out[0]) < 1e-5 and 0 < abs(out[2] - 2.0) < 1e-5


@pytest.mark.parametrize(
    ("values", "pa_type", "match"),
    [
        (["a", "b"], pa.string(), r"'x' is of type string"),
        ([True, False], pa.bool_(), r"'x' is of type bool"),
        ([3.0, 3.0, None], pa.float64(), r"column 'x' .*standard deviation"),
        ([3.0], pa.float64(), r"column 'x' .*standard deviation"),
    ],
)
def test_gaussian_noise_rejects_wrong_types_and_constant_columns(
    values: list[Any], pa_type: pa.DataType, match: str
) -> None:
    t = pa.table({"x": pa.array(values, pa_type)})
    with pytest.raises(ValueError, match=match):
        perturb(t, Perturbation(column="x", noise="gaussian"), seed=0)


def test_perturb_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match=r"'nope' is not in the batch"):
        perturb(pa.table({"x": [1.0, 2.0]}), Perturbation(column="nope", noise="gaussian"), seed=0)


# --------------------------------------------------------------------------- swap noise


def test_swap_never_keeps_a_value_and_draws_only_observed_values() -> None:
    rng = np.random.default_rng(0)
    values: list[str | None] = [str(v) for v in rng.choice(["red", "green", "blue"], 3000)]
    values[::10] = [None] * len(values[::10])
    t = pa.table({"c": values})
    out = perturb(t, Perturbation(column="c", noise="swap"), seed=2).column("c").to_pylist()
    for before, after in zip(values, out, strict=True):
        if before is None:
            assert after is None
        else:
            assert after != before and after in {"red", "green", "blue"}
    # uniform over the two other values
    reds = [a for b, a in zip(values, out, strict=True) if b == "red"]
    assert reds.count("green") / len(reds) == pytest.approx(0.5, abs=0.06)
    assert out == perturb(t, Perturbation(column="c", noise="swap"), seed=2).column("c").to_pylist()


def test_swap_keeps_the_column_type() -> None:
    t = pa.table(
        {"i": pa.array([1, 2, 2, None], pa.int16()), "d": pa.array(["a", "b", "a", "b"]).dictionary_encode()}
    )
    out = perturb(t, Perturbation(column="i", noise="swap"), seed=0)
    assert out.schema.field("i").type == pa.int16()
    assert out.column("i").to_pylist() == [2, 1, 1, None]
    out = perturb(t, Perturbation(column="d", noise="swap"), seed=0)
    assert out.schema.field("d").type == t.schema.field("d").type
    assert out.column("d").to_pylist() == ["b", "a", "b", "a"]


def test_swap_leaves_nan_alone_and_never_draws_it() -> None:
    t = pa.table({"f": [1.0, float("nan"), 2.0, 3.0] * 50})
    out = perturb(t, Perturbation(column="f", noise="swap"), seed=0).column("f").to_pylist()
    assert all(math.isnan(v) for v in out[1::4])
    assert not any(math.isnan(v) for i, v in enumerate(out) if i % 4 != 1)


@pytest.mark.parametrize("values", [["a", "a", None], [None, None], []])
def test_swap_needs_two_distinct_values(values: list[Any]) -> None:
    t = pa.table({"c": pa.array(values, pa.string())})
    with pytest.raises(ValueError, match=r"column 'c' needs at least two distinct values"):
        perturb(t, Perturbation(column="c", noise="swap"), seed=0)


# --------------------------------------------------------------------------- typo noise


def test_typo_makes_exactly_one_edit_per_non_empty_string() -> None:
    rng = np.random.default_rng(5)
    words = ["".join(rng.choice(list("abcde"), rng.integers(1, 8))) for _ in range(2000)]
    words += ["a", "aaaa", "Zürich", "x y"]
    t = pa.table({"s": words + ["", None]})
    out = perturb(t, Perturbation(column="s", noise="typo"), seed=9).column("s").to_pylist()
    assert out[-2:] == ["", None]
    again = perturb(t, Perturbation(column="s", noise="typo"), seed=9).column("s").to_pylist()
    assert out == again
    out = out[:-2]
    length_changes = set()
    for before, after in zip(words, out, strict=True):
        assert after != before
        assert _osa_distance(before, after) == 1, (before, after)
        length_changes.add(len(after) - len(before))
    assert length_changes == {-1, 0, 1}
    # transpositions happen too: same length, same letters, two positions differ
    swaps = [
        (b, a)
        for b, a in zip(words, out, strict=True)
        if len(a) == len(b) and sorted(a) == sorted(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 2
    ]
    assert swaps


def test_typo_rejects_non_string_columns() -> None:
    with pytest.raises(ValueError, match=r"'n' is of type int64"):
        perturb(pa.table({"n": [1, 2]}), Perturbation(column="n", noise="typo"), seed=0)


# --------------------------------------------------------------------------- invariance, directional


def test_invariance_copy_swaps_both_ways_and_masks_changed_rows() -> None:
    t = pa.table({"g": ["F", "M", "X", None, "F"], "y": [1, 2, 3, 4, 5]})
    out, mask = invariance_copy(t, Invariance(column="g", swap=["F", "M"]))
    assert out.column("g").to_pylist() == ["M", "F", "X", None, "M"]
    assert mask.tolist() == [True, True, False, False, True]
    assert out.column("y").equals(t.column("y"))


def test_invariance_copy_on_numbers_and_dictionaries() -> None:
    t = pa.table({"i": pa.array([0, 1, 2], pa.int8()), "d": pa.array(["a", "b", "c"]).dictionary_encode()})
    out, mask = invariance_copy(t, Invariance(column="i", swap=[0, 2]))
    assert out.column("i").to_pylist() == [2, 1, 0] and out.schema.field("i").type == pa.int8()
    assert mask.tolist() == [True, False, True]
    out, mask = invariance_copy(t, Invariance(column="d", swap=["c", "zzz"]))
    assert out.column("d").to_pylist() == ["a", "b", "zzz"] and mask.tolist() == [False, False, True]
    assert out.schema.field("d").type == t.schema.field("d").type


@pytest.mark.parametrize(
    ("swap", "match"),
    [
        (["F", "M"], r"'F' does not fit column 'i' of type int64"),
        ([1.5, 2], r"1.5 does not fit"),
        ([1, 1], "equal"),
    ],
)
def test_invariance_copy_rejects_bad_swap_values(swap: list[Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        invariance_copy(pa.table({"i": [1, 2]}), Invariance(column="i", swap=swap))


@pytest.mark.parametrize(
    ("change", "expected", "pa_type"),
    [
        ({"add": 1}, [31, None, -1], pa.int64()),
        ({"add": 0.5}, [30.5, None, -1.5], pa.float64()),
        ({"multiply": 2}, [60, None, -4], pa.int64()),
        ({"multiply": 1.5}, [45.0, None, -3.0], pa.float64()),
        ({"set": 18}, [18, 18, 18], pa.int64()),
    ],
)
def test_directional_copy(change: dict[str, Any], expected: list[Any], pa_type: pa.DataType) -> None:
    t = pa.table({"age": [30, None, -2], "z": ["a", "b", "c"]})
    out = directional_copy(t, Directional(column="age", expect="increase", **change))
    assert out.column("age").to_pylist() == expected
    assert out.schema.field("age").type == pa_type
    assert out.column("z").equals(t.column("z"))


def test_directional_set_on_strings_and_errors() -> None:
    t = pa.table({"plan": ["free", "pro", None], "n": pa.array([2**62, 1], pa.int64()).to_pylist() + [0]})
    out = directional_copy(t, Directional(column="plan", set="pro", expect="increase"))
    assert out.column("plan").to_pylist() == ["pro", "pro", "pro"]
    assert changed_mask(t.column("plan"), out.column("plan")).tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"`add` needs a numeric column; 'plan' is of type string"):
        directional_copy(t, Directional(column="plan", add=1, expect="increase"))
    with pytest.raises(ValueError, match=r"`set` value 'x' does not fit column 'n'"):
        directional_copy(t, Directional(column="n", set="x", expect="decrease"))
    with pytest.raises(ValueError, match=r"cannot change column 'n'.*overflow"):
        directional_copy(t, Directional(column="n", multiply=4, expect="decrease"))


def test_changed_mask() -> None:
    before = pa.chunked_array([[1.0, 2.0], [None, None, float("nan"), float("nan")]])
    after = pa.array([1.0, 2.5, None, 3.0, float("nan"), 1.0])
    assert changed_mask(before, after).tolist() == [False, True, False, True, False, True]
    with pytest.raises(ValueError, match="differ in length"):
        changed_mask(pa.array([1]), pa.array([1, 2]))


# --------------------------------------------------------------------------- answers

YES_NO = {"task": "binary", "classes": ["no", "yes"], "positive_class": "yes"}


def test_answers_validate_shapes() -> None:
    with pytest.raises(ValueError, match="scores must have shape"):
        Answers(np.array([1, 2]), np.array([0.5]))
    with pytest.raises(ValueError, match="finite"):
        Answers(np.array([1, 2]), np.array([0.5, np.nan]))
    with pytest.raises(ValueError, match="probabilities must have shape"):
        Answers(np.array([1, 2]), None, np.ones(2))


# --------------------------------------------------------------------------- expectation counting


def _binary(labels: list[str], scores: list[float] | None) -> Answers:
    return Answers(_labels(*labels), None if scores is None else np.array(scores))


def _expect(expect: str, original: Answers, changed: Answers, **kwargs: Any) -> Any:
    n = len(original)
    kwargs.setdefault("task", "binary")
    kwargs.setdefault("tolerance", 0.01)
    return expectation_result(
        "col", "invariance", expect, original, changed, sample_ids=[f"s{i}" for i in range(n)], **kwargs
    )


def test_same_counts_score_moves_beyond_tolerance_not_flips_within_it() -> None:
    o = _binary(["no", "no", "no", "yes", "no", "no"], [0.50, 0.50, 0.30, 0.70, 0.49, 0.2])
    c = _binary(["no", "no", "no", "no", "yes", "no"], [0.51, 0.5100001, 0.29, 0.695, 0.50, 0.2])
    # row 0: exactly the tolerance (0.51 - 0.50 is 0.010000000000000009 in floats): not a violation
    # row 1: just beyond; row 2: -0.01 exactly: fine; row 3: label change within tolerance;
    # row 4: label change of 0.01 (a score hovering at the threshold); row 5: unchanged
    r = _expect("same", o, c)
    assert (r.rows, r.violations) == (6, 1)
    assert r.violation_rate == pytest.approx(1 / 6)
    assert [e.sample_id for e in r.examples] == ["s1"]
    assert r.details["basis"] == "scores" and r.details["label_changes"] == 2
    assert r.details["label_changes_within_tolerance"] == 2
    assert r.mean_score_change == pytest.approx((0.01 + 0.0100001 - 0.01 - 0.005 + 0.01) / 6)
    # a flip with a score move beyond the tolerance is a violation
    far = _expect("same", _binary(["no"], [0.45]), _binary(["yes"], [0.55]))
    assert (far.violations, far.details["label_changes_within_tolerance"]) == (1, 0)


def test_a_score_hovering_at_the_threshold_is_not_an_invariance_or_directional_violation() -> None:
    """0.500 -> 0.495 flips the label (the endpoint thresholds at 0.5) but moves by 0.005."""
    o = answers_from_predictions(
        [0.500, 0.700, 0.300], task="binary", classes=["no", "yes"], positive_class="yes"
    )
    c = answers_from_predictions(
        [0.495, 0.705, 0.200], task="binary", classes=["no", "yes"], positive_class="yes"
    )
    assert o.predictions.tolist() == ["yes", "yes", "no"] and c.predictions.tolist() == ["no", "yes", "no"]
    same = _expect("same", o, c)
    assert same.violations == 1 and [e.sample_id for e in same.examples] == ["s2"]  # only the 0.1 move
    assert same.details["label_changes"] == 1 and same.details["label_changes_within_tolerance"] == 1
    up = _expect("increase", o, c)
    assert up.violations == 1 and [e.sample_id for e in up.examples] == ["s2"]
    assert _expect("decrease", o, c).violations == 0
    # tolerance 0: every move counts, the flip included
    assert _expect("same", o, c, tolerance=0.0).violations == 3


def test_multiclass_flips_need_every_class_probability_within_the_tolerance() -> None:
    before = [[0.400, 0.395, 0.205], [0.5, 0.3, 0.2], [0.6, 0.3, 0.1]]
    after = [[0.395, 0.400, 0.205], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]
    o = answers_from_predictions(before, task="multiclass", classes=["a", "b", "c"])
    c = answers_from_predictions(after, task="multiclass", classes=["a", "b", "c"])
    # row 0: a near tie swaps (every probability within 0.005); row 1: a real change of class,
    # although the predicted class's probability is 0.5 on both sides
    r = _expect("same", o, c, task="multiclass")
    assert (r.violations, [e.sample_id for e in r.examples]) == (1, ["s1"])
    assert r.details["label_changes"] == 2 and r.details["label_changes_within_tolerance"] == 1
    # without probability vectors a change of class cannot be judged from the scores: it counts
    bare_o, bare_c = Answers(o.predictions, o.scores), Answers(c.predictions, c.scores)
    assert _expect("same", bare_o, bare_c, task="multiclass").violations == 2


def test_same_with_zero_tolerance_ignores_only_rounding() -> None:
    o = _binary(["no", "no"], [0.1 + 0.2, 0.3])
    c = _binary(["no", "no"], [0.3, 0.3 + 1e-12])
    assert _expect("same", o, c, tolerance=0.0).violations == 1


def test_increase_and_decrease_with_scores() -> None:
    o = _binary(["no"] * 5, [0.40, 0.40, 0.40, 0.40, 0.40])
    c = _binary(["no"] * 5, [0.39, 0.3899, 0.41, 0.45, 0.30])
    up = _expect("increase", o, c)
    assert (up.violations, up.rows) == (2, 5)  # 0.3899 and 0.30; 0.39 is at the tolerance
    assert [e.sample_id for e in up.examples] == ["s1", "s4"]
    down = _expect("decrease", o, c)
    assert down.violations == 1  # 0.45; 0.41 is at the tolerance
    assert up.mean_score_change == pytest.approx(down.mean_score_change) == pytest.approx(-0.0601 / 5)


def test_directions_without_scores_compare_with_the_positive_class() -> None:
    o = _binary(["yes", "yes", "no", "no"], None)
    c = _binary(["no", "yes", "yes", "no"], None)
    up = _expect("increase", o, c, positive_class="yes")
    assert (up.violations, up.details["basis"], up.mean_score_change) == (1, "labels", None)
    assert up.examples[0].sample_id == "s0"
    assert _expect("decrease", o, c, positive_class="yes").violations == 1
    assert _expect("same", o, c).violations == 2
    # scores on one side only: labels decide
    assert _expect("same", o, _binary(["no", "yes", "yes", "no"], [0.1] * 4)).details["basis"] == "labels"
    with pytest.raises(ValueError, match="give positive_class"):
        _expect("increase", o, c)


def test_labels_compare_by_string_form() -> None:
    o = Answers(np.array([1, 0]))
    c = Answers(np.array(["1", "1"]))
    assert _expect("same", o, c).violations == 1


def test_regression_compares_values() -> None:
    o = Answers(np.array([100.0, 100.0, 100.0, 5.0]))
    c = Answers(np.array([100.5, 99.5, 102.0, 5.0]))
    same = _expect("same", o, c, task="regression", tolerance=0.5)
    assert (same.violations, same.details["basis"]) == (1, "values")
    assert _expect("increase", o, c, task="regression", tolerance=0.5).violations == 0
    assert _expect("decrease", o, c, task="regression", tolerance=0.5).violations == 1
    assert _expect("increase", o, c, task="regression", tolerance=0.0).violations == 1
    assert same.mean_score_change == pytest.approx(0.5)


def test_mask_limits_the_tested_rows() -> None:
    o = _binary(["no", "no", "no", "no"], [0.1, 0.1, 0.1, 0.1])
    c = _binary(["yes", "no", "yes", "no"], [0.9, 0.1, 0.9, 0.1])
    r = _expect("same", o, c, mask=np.array([True, True, False, False]))
    assert (r.rows, r.violations, r.violation_rate, r.details["untested_rows"]) == (2, 1, 0.5, 2)
    assert r.mean_score_change == pytest.approx(0.4)
    none = _expect("same", o, c, mask=np.zeros(4, dtype=bool))
    assert (none.rows, none.violations, none.violation_rate, none.mean_score_change) == (0, 0, None, None)
    with pytest.raises(ValueError, match="mask must be a boolean array"):
        _expect("same", o, c, mask=np.array([1, 0, 1, 0]))


def test_examples_carry_values_predictions_and_scores() -> None:
    o = _binary(["no", "no"], [0.2, 0.3])
    c = _binary(["no", "yes"], [0.2, 0.8])
    r = expectation_result(
        "gender",
        "invariance",
        "same",
        o,
        c,
        task="binary",
        tolerance=0.01,
        sample_ids=np.array([10, 11]),
        before_values=pa.array(["F", "M"]),
        after_values=["M", "F"],
    )
    (e,) = r.examples
    assert e.model_dump() == {
        "sample_id": "11",
        "original": "M",
        "changed": "F",
        "original_prediction": "no",
        "changed_prediction": "yes",
        "original_score": 0.3,
        "changed_score": 0.8,
    }
    pair = expectation_result(
        "p", "pair", "same", o, c, task="binary", tolerance=0.01, sample_ids=["a", "b"], examples=0
    )
    assert pair.kind == "pair" and pair.examples == [] and pair.violations == 1


def test_expectation_misuse() -> None:
    o = Answers(_labels("a", "b"), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="multiclass model has neither"):
        _expect("increase", o, o, task="multiclass")
    with pytest.raises(ValueError, match="differ in length"):
        _expect("same", o, Answers(_labels("a")))
    with pytest.raises(ValueError, match="tolerance"):
        _expect("same", o, o, tolerance=-0.1)
    with pytest.raises(ValueError, match="sample_ids has 1 rows"):
        expectation_result("c", "pair", "same", o, o, task="binary", tolerance=0, sample_ids=["x"])


# --------------------------------------------------------------------------- perturbation results

SPEC = Perturbation(column="amount", noise="gaussian", scale=0.1)


def test_flip_rate_score_change_and_example_order() -> None:
    o = _binary(["no", "no", "yes", "yes", "no"], [0.10, 0.45, 0.80, 0.60, 0.30])
    p = _binary(["no", "yes", "yes", "no", "no"], [0.40, 0.55, 0.80, 0.40, 0.31])
    r = perturbation_result(
        SPEC,
        o,
        p,
        task="binary",
        classes=["no", "yes"],
        positive_class="yes",
        sample_ids=["a", "b", "c", "d", "e"],
        before_values=[1.0, 2.0, 3.0, 4.0, 5.0],
        after_values=np.array([1.1, 2.1, 3.1, 4.1, 5.1]),
        examples=4,
    )
    assert (r.column, r.noise, r.scale, r.rows) == ("amount", "gaussian", 0.1, 5)
    assert r.flip_rate == 0.4
    assert r.mean_abs_score_change == pytest.approx((0.3 + 0.1 + 0 + 0.2 + 0.01) / 5)
    # flipped rows first (sample order), then the largest score changes; unchanged rows never
    assert [e.sample_id for e in r.examples] == ["b", "d", "a", "e"]
    assert (r.examples[0].original, r.examples[0].changed) == (2.0, 2.1)
    assert r.metric_drop == {}


def test_flip_rate_without_scores_and_with_a_mask() -> None:
    o = _binary(["no", "no", "yes", "yes"], None)
    p = _binary(["yes", "no", "no", "yes"], None)
    r = perturbation_result(
        SPEC,
        o,
        p,
        task="binary",
        classes=["no", "yes"],
        positive_class="yes",
        sample_ids=list("abcd"),
        mask=np.array([True, True, True, False]),
    )
    assert (r.rows, r.flip_rate, r.mean_abs_score_change) == (3, pytest.approx(2 / 3), None)
    assert [e.sample_id for e in r.examples] == ["a", "c"]
    assert r.examples[0].original is None


def test_regression_flips_move_beyond_the_tolerance() -> None:
    o = Answers(np.array([1.0, 2.0, 3.0, 4.0]))
    p = Answers(np.array([1.0, 2.5, 3.2, 3.0]))
    ids = list("abcd")
    assert perturbation_result(SPEC, o, p, task="regression", sample_ids=ids).flip_rate == 0.75
    r = perturbation_result(SPEC, o, p, task="regression", sample_ids=ids, tolerance=0.5)
    assert r.flip_rate == 0.25 and r.mean_abs_score_change == pytest.approx(1.7 / 4)


def _binary_case(n: int = 400, seed: int = 0) -> tuple[np.ndarray, Answers, Answers]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s0 = np.clip(0.5 * y + rng.uniform(0, 0.5, n), 0.01, 0.99)
    s1 = np.clip(s0 + rng.normal(0, 0.2, n), 0.01, 0.99)
    classes = np.array(["no", "yes"], dtype=object)
    o = Answers(classes[(s0 >= 0.5).astype(int)], s0)
    p = Answers(classes[(s1 >= 0.5).astype(int)], s1)
    y_true = y.copy()
    y_true[::7] = -1  # unlabeled rows
    return y_true, o, p


def test_binary_metric_drop_matches_sklearn() -> None:
    y_true, o, p = _binary_case()
    names = ["accuracy", "f1", "recall", "roc_auc", "log_loss", "brier_score"]
    r = perturbation_result(
        SPEC,
        o,
        p,
        task="binary",
        classes=["no", "yes"],
        positive_class="yes",
        sample_ids=np.arange(len(o)),
        y_true=y_true,
        metrics=names,
    )
    lab = y_true >= 0
    y = y_true[lab]
    assert o.scores is not None and p.scores is not None

    def sk(answers: Answers, scores: np.ndarray) -> dict[str, float]:
        pred = (answers.predictions[lab] == "yes").astype(int)
        s = scores[lab]
        return {
            "accuracy": skm.accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "roc_auc": skm.roc_auc_score(y, s),
            "log_loss": skm.log_loss(y, s),
            "brier_score": skm.brier_score_loss(y, s),
        }

    before, after = sk(o, o.scores), sk(p, p.scores)
    assert list(r.metric_drop) == names
    for m in names:
        assert r.metric_drop[m] == pytest.approx(before[m] - after[m], abs=1e-12), m
    assert r.metric_drop["accuracy"] > 0  # the noise hurts


def test_metric_drop_leaves_score_metrics_out_without_scores() -> None:
    y_true, o, p = _binary_case()
    p_labels = Answers(p.predictions)
    kwargs: dict[str, Any] = {
        "task": "binary",
        "classes": ["no", "yes"],
        "positive_class": "yes",
        "sample_ids": np.arange(len(o)),
        "y_true": y_true,
    }
    r = perturbation_result(SPEC, o, p_labels, **kwargs)
    assert "roc_auc" not in r.metric_drop and "accuracy" in r.metric_drop
    r = perturbation_result(SPEC, o, p_labels, metrics=["accuracy", "roc_auc"], **kwargs)
    assert list(r.metric_drop) == ["accuracy"]
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        perturbation_result(SPEC, o, p, metrics=["nope"], **kwargs)
    no_labels = {**kwargs, "y_true": np.full(len(o), -1)}
    unlabeled = perturbation_result(SPEC, o, p, metrics=["accuracy"], **no_labels)
    assert unlabeled.metric_drop == {"accuracy": None}
    same = perturbation_result(SPEC, o, o, **kwargs)
    assert set(same.metric_drop.values()) == {0.0}


def test_multiclass_metric_drop_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    n, k = 300, 3
    y = rng.integers(0, k, n)
    logits0 = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y]
    logits1 = logits0 + rng.normal(0, 1.0, (n, k))
    probs0 = np.exp(logits0) / np.exp(logits0).sum(axis=1, keepdims=True)
    probs1 = np.exp(logits1) / np.exp(logits1).sum(axis=1, keepdims=True)
    classes = ["a", "b", "c"]
    o = answers_from_predictions(probs0.tolist(), task="multiclass", classes=classes)
    p = answers_from_predictions(probs1.tolist(), task="multiclass", classes=classes)
    names = ["accuracy", "f1_macro", "roc_auc", "log_loss"]
    r = perturbation_result(
        SPEC,
        o,
        p,
        task="multiclass",
        classes=classes,
        sample_ids=np.arange(n),
        y_true=y,
        metrics=names,
    )

    def sk(probs: np.ndarray) -> dict[str, float]:
        pred = probs.argmax(axis=1)
        return {
            "accuracy": skm.accuracy_score(y, pred),
            "f1_macro": skm.f1_score(y, pred, average="macro"),
            "roc_auc": skm.roc_auc_score(y, probs, multi_class="ovr"),
            "log_loss": skm.log_loss(y, probs),
        }

    before, after = sk(probs0), sk(probs1)
    for m in names:
        assert r.metric_drop[m] == pytest.approx(before[m] - after[m], abs=1e-9), m
    assert r.flip_rate == pytest.approx(float((probs0.argmax(1) != probs1.argmax(1)).mean()))


def test_regression_metric_drop_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(10, 2, 200)
    v0 = y + rng.normal(0, 0.5, 200)
    v1 = v0 + rng.normal(0, 0.5, 200)
    y_true = y.copy()
    y_true[:20] = np.nan
    r = perturbation_result(
        SPEC,
        Answers(v0),
        Answers(v1),
        task="regression",
        sample_ids=np.arange(200),
        y_true=y_true,
        metrics=["mae", "rmse", "r2"],
    )
    lab = slice(20, None)
    expected = {
        "mae": skm.mean_absolute_error(y[lab], v0[lab]) - skm.mean_absolute_error(y[lab], v1[lab]),
        "rmse": skm.root_mean_squared_error(y[lab], v0[lab]) - skm.root_mean_squared_error(y[lab], v1[lab]),
        "r2": skm.r2_score(y[lab], v0[lab]) - skm.r2_score(y[lab], v1[lab]),
    }
    for m, v in expected.items():
        assert r.metric_drop[m] == pytest.approx(v, abs=1e-12), m
    assert r.metric_drop["mae"] < 0  # an error grows: negative drop


def test_end_to_end_on_a_known_model() -> None:
    """A threshold model on `amount` scored through the whole chain: copies, answers, counts."""
    t = pa.table({"amount": [10.0, 20.0, 30.0, 40.0], "gender": ["F", "M", "F", "X"]})

    def model(table: pa.Table) -> list[float]:
        # depends on gender (a violation of invariance) and increases with amount
        bump = {"F": 0.0, "M": 0.2, "X": 0.0}
        return [
            min(1.0, a / 100 + bump[g])
            for a, g in zip(
                table.column("amount").to_pylist(), table.column("gender").to_pylist(), strict=True
            )
        ]

    def ask(table: pa.Table) -> Answers:
        return answers_from_predictions(model(table), **YES_NO)

    ids = ["s1", "s2", "s3", "s4"]
    swapped, mask = invariance_copy(t, Invariance(column="gender", swap=["F", "M"]))
    inv = expectation_result(
        "gender",
        "invariance",
        "same",
        ask(t),
        ask(swapped),
        task="binary",
        tolerance=0.01,
        sample_ids=ids,
        mask=mask,
        before_values=t.column("gender"),
        after_values=swapped.column("gender"),
    )
    assert (inv.rows, inv.violations) == (3, 3)
    richer = directional_copy(t, Directional(column="amount", multiply=2, expect="increase"))
    d = expectation_result(
        "amount",
        "directional",
        "increase",
        ask(t),
        ask(richer),
        task="binary",
        tolerance=0.01,
        sample_ids=ids,
        positive_class="yes",
    )
    assert (d.rows, d.violations, d.violation_rate) == (4, 0, 0.0)
    poorer = directional_copy(t, Directional(column="amount", add=-5, expect="increase"))
    d = expectation_result(
        "amount",
        "directional",
        "increase",
        ask(t),
        ask(poorer),
        task="binary",
        tolerance=0.01,
        sample_ids=ids,
    )
    assert (d.violations, d.mean_score_change) == (4, pytest.approx(-0.05))
