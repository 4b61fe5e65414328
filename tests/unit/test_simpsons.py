"""Simpson's paradox checks: the kidney-stone comparison, its near misses, and trend reversals."""

from __future__ import annotations

import numpy as np
import pytest

from service.workers.simpsons import comparison_paradox, trend_reversal

STONES = ["small", "large"]


def side(*slices: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one side: ``(correct, n)`` per slice code, in code order."""
    correct = np.concatenate([np.arange(n) < c for c, n in slices])
    codes = np.concatenate([np.full(n, code) for code, (_, n) in enumerate(slices)])
    return correct, codes


# Charig et al. 1986: treatment A (open surgery) and B (percutaneous nephrolithotomy).
KIDNEY_A = side((81, 87), (192, 263))
KIDNEY_B = side((234, 270), (55, 80))


def kidney(**kwargs: object) -> dict[str, object] | None:
    return comparison_paradox("stone_size", *KIDNEY_A, *KIDNEY_B, STONES, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- comparison


def test_kidney_stones_found_with_exact_numbers() -> None:
    found = kidney()
    assert found is not None
    assert found["column"] == "stone_size"
    assert found["metric"] == "accuracy"
    assert found["per_slice"] == [
        {
            "value": "small",
            "model": {"n": 87, "accuracy": 81 / 87, "share": 87 / 350},
            "baseline": {"n": 270, "accuracy": 234 / 270, "share": 270 / 350},
            "difference": pytest.approx(81 / 87 - 234 / 270),
        },
        {
            "value": "large",
            "model": {"n": 263, "accuracy": 192 / 263, "share": 263 / 350},
            "baseline": {"n": 80, "accuracy": 55 / 80, "share": 80 / 350},
            "difference": pytest.approx(192 / 263 - 55 / 80),
        },
    ]
    assert found["aggregate"] == {
        "model": {"n": 350, "accuracy": 273 / 350},
        "baseline": {"n": 350, "accuracy": 289 / 350},
        "difference": pytest.approx(273 / 350 - 289 / 350),
    }
    assert found["aggregate"]["model"]["accuracy"] == pytest.approx(0.78)
    assert found["unsupported_rows"] == {"model": 0, "baseline": 0}
    explanation = found["explanation"]
    assert explanation.startswith("the model is better than the baseline in every stone_size slice but worse")
    assert "model rows in large: 75.1%, baseline rows: 22.9%" in explanation


def test_roles_swapped_model_worse_in_every_slice_but_better_overall() -> None:
    found = comparison_paradox("stone_size", *KIDNEY_B, *KIDNEY_A, STONES)
    assert found is not None
    assert [s["difference"] < 0 for s in found["per_slice"]] == [True, True]
    assert found["aggregate"]["difference"] > 0
    assert found["explanation"].startswith("the model is worse than the baseline in every stone_size slice")
    # the baseline (the overall loser) is the side crowded into large stones
    assert "model rows in large: 22.9%, baseline rows: 75.1%" in found["explanation"]


def test_equal_composition_is_no_paradox() -> None:
    # B with A's composition and B's slice rates: A wins in both slices and overall
    b_same_mix = side((75, 87), (181, 263))
    assert comparison_paradox("stone_size", *KIDNEY_A, *b_same_mix, STONES) is None


def test_a_disagreeing_slice_is_no_paradox() -> None:
    a_worse_on_large = side((81, 87), (170, 263))  # 64.6% < B's 68.75% on large stones
    assert comparison_paradox("stone_size", *a_worse_on_large, *KIDNEY_B, STONES) is None


def test_a_tied_slice_is_no_paradox() -> None:
    a_tied_on_large = side((81, 87), (55 * 263 // 80, 263))
    b_scaled = side((234, 270), (55 * 263 // 80, 263))
    assert comparison_paradox("stone_size", *a_tied_on_large, *b_scaled, STONES) is None


@pytest.mark.parametrize(("min_support", "found"), [(30, True), (80, True), (81, False), (88, False)])
def test_min_support_on_both_sides(min_support: int, found: bool) -> None:
    # B has 80 large stones, A 87 small ones: above either, only one slice is left
    assert (kidney(min_support=min_support) is not None) is found


def test_min_difference_requires_a_clear_reversal() -> None:
    assert kidney(min_difference=0.04) is not None
    assert kidney(min_difference=0.043) is None  # the large-stone gap is 0.0425


def test_paired_rows_never_reverse() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        codes = rng.integers(0, 3, size=400)
        rates = rng.uniform(0.2, 0.9, size=3)
        model = rng.random(400) < rates[codes]
        baseline = rng.random(400) < rates[codes] - 0.1
        assert comparison_paradox("c", model, codes, baseline, codes, ["x", "y", "z"]) is None


def test_a_reversal_made_by_an_unsupported_slice_is_not_reported() -> None:
    # The model wins small and large with the same mix as the baseline; only its 25
    # "other" rows (no baseline rows there) drag the aggregate below the baseline's.
    model_correct, model_codes = side((90, 100), (60, 100), (0, 25))
    baseline_correct, baseline_codes = side((85, 100), (55, 100))
    assert model_correct.mean() < baseline_correct.mean()
    labels = ["small", "large", "other"]
    found = comparison_paradox("c", model_correct, model_codes, baseline_correct, baseline_codes, labels)
    assert found is None


def test_missing_codes_count_in_the_aggregate_only() -> None:
    a_correct, a_codes = KIDNEY_A
    a_correct = np.r_[a_correct, [True] * 3]
    a_codes = np.r_[a_codes, [-1] * 3]
    found = comparison_paradox("stone_size", a_correct, a_codes, *KIDNEY_B, STONES)
    assert found is not None
    assert found["aggregate"]["model"] == {"n": 353, "accuracy": 276 / 353}
    assert found["unsupported_rows"] == {"model": 3, "baseline": 0}
    assert found["per_slice"][0]["model"]["n"] == 87


def test_row_order_does_not_matter() -> None:
    order = np.random.default_rng(0).permutation(350)
    shuffled = (KIDNEY_A[0][order], KIDNEY_A[1][order])
    assert comparison_paradox("stone_size", *shuffled, *KIDNEY_B, STONES) == kidney()


def test_mean_loss_lower_is_better() -> None:
    loss_a, loss_b = 1.0 - KIDNEY_A[0], 1.0 - KIDNEY_B[0]
    found = comparison_paradox(
        "stone_size", loss_a, KIDNEY_A[1], loss_b, KIDNEY_B[1], STONES, metric="loss", higher_is_better=False
    )
    assert found is not None
    assert found["aggregate"]["model"] == {"n": 350, "loss": pytest.approx(77 / 350)}
    assert all(s["difference"] < 0 for s in found["per_slice"])
    assert found["explanation"].startswith("the model is better than the baseline in every stone_size slice")


def test_numpy_labels_are_unwrapped() -> None:
    found = comparison_paradox("grade", *KIDNEY_A, *KIDNEY_B, list(np.array([1, 2])))
    assert found is not None
    assert [type(s["value"]) for s in found["per_slice"]] == [int, int]


def test_empty_side_is_no_paradox() -> None:
    empty = np.array([], dtype=bool), np.array([], dtype=int)
    assert comparison_paradox("stone_size", *empty, *KIDNEY_B, STONES) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_correct": np.full(350, 0.5)}, "0/1"),
        ({"model_correct": np.full(350, np.nan)}, "NaN"),
        ({"model_codes": np.full(350, 2)}, "only 2 labels"),
        ({"model_codes": np.zeros(350)}, "integer codes"),
        ({"model_codes": np.zeros(349, dtype=int)}, r"shape \(350,\)"),
        ({"model_correct": np.zeros((350, 1), dtype=bool)}, "1-D"),
        ({"min_support": 0}, "min_support"),
        ({"min_difference": -0.1}, "min_difference"),
    ],
)
def test_invalid_input_raises(change: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "model_correct": KIDNEY_A[0],
        "model_codes": KIDNEY_A[1],
        "baseline_correct": KIDNEY_B[0],
        "baseline_codes": KIDNEY_B[1],
        "min_support": 30,
        "min_difference": 0.0,
        **change,
    }
    with pytest.raises(ValueError, match=message):
        comparison_paradox("stone_size", labels=STONES, **args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- trend


def grid(x_values: np.ndarray, rates: np.ndarray, *, per_x: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """``per_x`` rows at each x, ``round(rate * per_x)`` of them errors."""
    x = np.repeat(x_values.astype(float), per_x)
    errors = np.concatenate([np.arange(per_x) < round(r * per_x) for r in rates])
    return x, errors


def grouped(*groups: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [grid(xs, rates) for xs, rates in groups]
    codes = np.concatenate([np.full(p[0].size, g) for g, p in enumerate(parts)])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), codes


STEPS = np.arange(10)
# error falls with x inside each group; the high-x group has the higher base rate
REVERSING = grouped((STEPS, 0.40 - 0.02 * STEPS), (STEPS + 10, 0.80 - 0.02 * STEPS))


def test_trend_reversal_found() -> None:
    x, errors, codes = REVERSING
    found = trend_reversal(x, errors, codes, ["new", "old"], x_name="age", strata_name="segment")
    assert found is not None
    assert found["x"] == "age"
    assert found["column"] == "segment"
    assert found["method"] == "least_squares"
    assert found["overall"]["n"] == 400
    assert found["overall"]["slope"] == pytest.approx(np.polyfit(x, errors.astype(float), 1)[0])
    assert found["overall"]["slope"] > 0
    assert found["overall"]["p_value"] < 0.01
    assert [s["value"] for s in found["per_stratum"]] == ["new", "old"]
    for stratum, rows in zip(found["per_stratum"], (codes == 0, codes == 1), strict=True):
        assert stratum["n"] == 200
        assert stratum["slope"] == pytest.approx(np.polyfit(x[rows], errors[rows].astype(float), 1)[0])
        assert stratum["slope"] == pytest.approx(-0.02, abs=0.005)
    assert found["within"]["slope"] < 0
    assert found["within"]["p_value"] < 0.01
    assert "age overall" in found["explanation"]
    assert "inside every segment slice" in found["explanation"]


def test_mirrored_trend_reversal_found() -> None:
    x, errors, codes = REVERSING
    found = trend_reversal(-x, errors, codes, ["new", "old"], x_name="age", strata_name="segment")
    assert found is not None
    assert found["overall"]["slope"] < 0 < found["within"]["slope"]
    assert found["explanation"].startswith("the error falls with age overall")


def test_monotone_data_not_flagged() -> None:
    x, errors, codes = grouped((STEPS, 0.2 + 0.03 * STEPS), (STEPS + 10, 0.5 + 0.03 * STEPS))
    assert trend_reversal(x, errors, codes, ["a", "b"], x_name="x", strata_name="g") is None


def test_no_within_trend_is_noise_not_a_reversal() -> None:
    # groups differ in base rate and x range, but inside them error ignores x
    rng = np.random.default_rng(3)
    x = np.r_[rng.uniform(0, 10, 300), rng.uniform(10, 20, 300)]
    codes = np.repeat([0, 1], 300)
    errors = rng.random(600) < np.where(codes == 0, 0.2, 0.6)
    assert trend_reversal(x, errors, codes, ["a", "b"], x_name="x", strata_name="g") is None


def test_a_disagreeing_stratum_is_no_reversal() -> None:
    x, errors, codes = grouped(
        (STEPS, 0.40 - 0.02 * STEPS), (STEPS + 10, 0.80 - 0.02 * STEPS), (STEPS + 20, 0.85 + 0.01 * STEPS)
    )
    assert trend_reversal(x, errors, codes, ["a", "b", "c"], x_name="x", strata_name="g") is None


def test_trend_min_support() -> None:
    x, errors, codes = REVERSING
    assert trend_reversal(x, errors, codes, ["a", "b"], x_name="x", strata_name="g", min_support=200)
    assert trend_reversal(x, errors, codes, ["a", "b"], x_name="x", strata_name="g", min_support=201) is None


def test_single_supported_stratum_is_no_reversal() -> None:
    x, errors, codes = REVERSING
    codes = np.where(codes == 1, -1, codes)  # the second group's slice value is missing
    assert trend_reversal(x, errors, codes, ["a", "b"], x_name="x", strata_name="g") is None


def test_constant_x_inside_a_stratum_gives_it_no_slope() -> None:
    x, errors, codes = grouped(
        (STEPS, 0.40 - 0.02 * STEPS), (STEPS + 10, 0.80 - 0.02 * STEPS), (np.full(10, 5), np.full(10, 0.5))
    )
    found = trend_reversal(x, errors, codes, ["a", "b", "c"], x_name="x", strata_name="g")
    assert found is not None
    assert [s["value"] for s in found["per_stratum"]] == ["a", "b"]


def test_non_finite_x_rows_are_left_out() -> None:
    x, errors, codes = REVERSING
    base = trend_reversal(x, errors, codes, ["a", "b"], x_name="x", strata_name="g")
    with_nan = trend_reversal(
        np.r_[x, np.nan, np.inf],
        np.r_[errors, True, True],
        np.r_[codes, 0, 1],
        ["a", "b"],
        x_name="x",
        strata_name="g",
    )
    assert with_nan == base


def test_loss_errors_accepted() -> None:
    x, errors, codes = REVERSING
    loss = errors * 2.5 + 0.1
    found = trend_reversal(x, loss, codes, ["a", "b"], x_name="x", strata_name="g")
    assert found is not None
    assert found["per_stratum"][0]["error_mean"] == pytest.approx(2.5 * errors[codes == 0].mean() + 0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"errors": np.full(400, np.nan)}, "NaN"),
        ({"errors": np.zeros(399)}, "shape"),
        ({"x": np.array(["a"] * 400)}, "numeric"),
        ({"strata_codes": np.full(400, 5)}, "only 2 labels"),
        ({"min_support": 0}, "min_support"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_trend_invalid_input_raises(change: dict[str, object], message: str) -> None:
    x, errors, codes = REVERSING
    args: dict[str, object] = {"x": x, "errors": errors, "strata_codes": codes, **change}
    with pytest.raises(ValueError, match=message):
        trend_reversal(
            strata_labels=["a", "b"],
            x_name="x",
            strata_name="g",
            **args,  # type: ignore[arg-type]
        )
