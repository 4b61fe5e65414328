"""Simpson's paradox checks: the kidney-stone and Berkeley comparisons, noise, and trend reversals.

Mantel-Haenszel figures are checked against statsmodels' ``StratifiedTable`` and
crude ones against scipy / statsmodels' ``Table2x2``, computed from the published
counts -- never against numbers copied from our own output.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import StratifiedTable, Table2x2

from service.workers.simpsons import comparison_paradox, mantel_haenszel, trend_reversal

STONES = ["small", "large"]
DEPARTMENTS = list("ABCDEF")

Counts = list[tuple[int, int]]


def side(*slices: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one side: ``(correct, n)`` per slice code, in code order."""
    correct = np.concatenate([np.arange(n) < c for c, n in slices])
    codes = np.concatenate([np.full(n, code) for code, (_, n) in enumerate(slices)])
    return correct, codes


def reference(model: Counts, baseline: Counts) -> StratifiedTable:
    """statsmodels' stratified 2x2 tables: rows model / baseline, columns correct / wrong."""
    return StratifiedTable(
        [np.array([[a, n - a], [c, m - c]]) for (a, n), (c, m) in zip(model, baseline, strict=True)]
    )


def collapsed(model: Counts, baseline: Counts) -> np.ndarray:
    a, n = map(sum, zip(*model, strict=True))
    c, m = map(sum, zip(*baseline, strict=True))
    return np.array([[a, n - a], [c, m - c]])


# Charig et al. 1986: treatment A (open surgery) and B (percutaneous nephrolithotomy).
KIDNEY_A_COUNTS = [(81, 87), (192, 263)]
KIDNEY_B_COUNTS = [(234, 270), (55, 80)]
KIDNEY_A = side(*KIDNEY_A_COUNTS)
KIDNEY_B = side(*KIDNEY_B_COUNTS)

# UC Berkeley graduate admissions, fall 1973, six largest departments: (admitted, applied).
BERKELEY_WOMEN_COUNTS = [(89, 108), (17, 25), (202, 593), (131, 375), (94, 393), (24, 341)]
BERKELEY_MEN_COUNTS = [(512, 825), (353, 560), (120, 325), (138, 417), (53, 191), (22, 373)]
BERKELEY_WOMEN = side(*BERKELEY_WOMEN_COUNTS)
BERKELEY_MEN = side(*BERKELEY_MEN_COUNTS)


def kidney(**kwargs: object) -> dict[str, object] | None:
    return comparison_paradox("stone_size", *KIDNEY_A, *KIDNEY_B, STONES, **kwargs)  # type: ignore[arg-type]


def berkeley(**kwargs: object) -> dict[str, object] | None:
    """Women as the "model", men as the "baseline"; department B has 25 women, so min_support 20."""
    args: dict[str, object] = {"min_support": 20, **kwargs}
    return comparison_paradox("department", *BERKELEY_WOMEN, *BERKELEY_MEN, DEPARTMENTS, **args)  # type: ignore[arg-type]


def assert_matches_reference(found: dict[str, object], model: Counts, baseline: Counts, alpha: float) -> None:
    """Crude and Mantel-Haenszel figures against statsmodels / scipy on the same counts."""
    ref = reference(model, baseline)
    adjusted = found["adjusted"]
    assert isinstance(adjusted, dict)
    assert adjusted["method"] == "mantel_haenszel"
    assert adjusted["odds_ratio"] == pytest.approx(ref.oddsratio_pooled, rel=1e-12)
    assert adjusted["se_log_odds_ratio"] == pytest.approx(ref.logodds_pooled_se, rel=1e-12)
    assert adjusted["odds_ratio_ci"] == pytest.approx(list(ref.oddsratio_pooled_confint(alpha)), rel=1e-12)
    null = ref.test_null_odds(correction=False)
    assert adjusted["cmh"]["statistic"] == pytest.approx(null.statistic, rel=1e-10)
    assert adjusted["cmh"]["p_value"] == pytest.approx(null.pvalue, rel=1e-10)
    z = ref.logodds_pooled / ref.logodds_pooled_se
    assert adjusted["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)

    table = collapsed(model, baseline)
    crude = found["crude"]
    assert isinstance(crude, dict)
    assert crude["odds_ratio"] == pytest.approx(Table2x2(table).oddsratio, rel=1e-12)
    assert crude["odds_ratio_ci"] == pytest.approx(list(Table2x2(table).oddsratio_confint(alpha)), rel=1e-12)
    pearson = stats.chi2_contingency(table, correction=False)
    assert crude["p_value"] == pytest.approx(pearson.pvalue, rel=1e-8)


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
            "odds_ratio": pytest.approx((81 * 36) / (6 * 234)),
            "contribution": pytest.approx((81 * 36 - 6 * 234) / 357 / (6 * 234 / 357 + 71 * 55 / 343)),
        },
        {
            "value": "large",
            "model": {"n": 263, "accuracy": 192 / 263, "share": 263 / 350},
            "baseline": {"n": 80, "accuracy": 55 / 80, "share": 80 / 350},
            "difference": pytest.approx(192 / 263 - 55 / 80),
            "odds_ratio": pytest.approx((192 * 25) / (71 * 55)),
            "contribution": pytest.approx((192 * 25 - 71 * 55) / 343 / (6 * 234 / 357 + 71 * 55 / 343)),
        },
    ]
    assert found["aggregate"] == {
        "model": {"n": 350, "accuracy": 273 / 350},
        "baseline": {"n": 350, "accuracy": 289 / 350},
        "difference": pytest.approx(273 / 350 - 289 / 350),
    }
    assert found["aggregate"]["model"]["accuracy"] == pytest.approx(0.78)
    assert found["unsupported_rows"] == {"model": 0, "baseline": 0}
    assert_matches_reference(found, KIDNEY_A_COUNTS, KIDNEY_B_COUNTS, 0.05)
    # the textbook figures: crude OR 0.748 (A worse), pooled OR 1.45 (A better), neither significant
    assert found["crude"]["odds_ratio"] == pytest.approx((273 * 61) / (77 * 289))
    assert found["crude"]["odds_ratio"] < 1 < found["adjusted"]["odds_ratio"]
    assert found["adjusted"]["odds_ratio_ci"][0] < 1
    assert found["crude"]["odds_ratio"] < found["adjusted"]["odds_ratio_ci"][0]
    assert found["status"] == "confounded"
    assert found["reversed_slices"] == ["small", "large"]
    # MH risk difference (Greenland & Robins 1985), from the counts
    weights = [87 * 270 / 357, 263 * 80 / 343]
    assert found["adjusted"]["difference"] == pytest.approx(
        (weights[0] * (81 / 87 - 234 / 270) + weights[1] * (192 / 263 - 55 / 80)) / sum(weights)
    )
    assert found["driver"]["slice"] == "small"
    assert found["driver"]["effect"] == pytest.approx(81 / 87 - 234 / 270)
    explanation = found["explanation"]
    assert explanation.startswith("the model is worse than the baseline overall (accuracy 0.78 against 0.826")
    assert "but better within stone_size slices (Mantel-Haenszel odds ratio 1.45" in explanation
    assert "better in every stone_size slice" in explanation
    assert "model rows in large: 75.1%, baseline rows: 22.9%" in explanation
    assert "largest contribution to the reversal: stone_size = small" in explanation.lower()


def test_kidney_stones_reversal_is_significant_at_a_looser_alpha() -> None:
    # the pooled p-value is 0.113: at alpha 0.2 the interval excludes 1 and the status is "reversed"
    found = kidney(alpha=0.2)
    assert found is not None
    assert found["status"] == "reversed"
    assert_matches_reference(found, KIDNEY_A_COUNTS, KIDNEY_B_COUNTS, 0.2)


def test_roles_swapped_model_worse_in_every_slice_but_better_overall() -> None:
    found = comparison_paradox("stone_size", *KIDNEY_B, *KIDNEY_A, STONES)
    assert found is not None
    assert_matches_reference(found, KIDNEY_B_COUNTS, KIDNEY_A_COUNTS, 0.05)
    assert [s["difference"] < 0 for s in found["per_slice"]] == [True, True]
    assert found["aggregate"]["difference"] > 0
    assert found["adjusted"]["odds_ratio"] == pytest.approx(
        1 / reference(KIDNEY_A_COUNTS, KIDNEY_B_COUNTS).oddsratio_pooled
    )
    assert found["explanation"].startswith("the model is better than the baseline overall")
    assert "but worse within stone_size slices" in found["explanation"]
    # the baseline (the overall loser) is the side crowded into large stones
    assert "model rows in large: 22.9%, baseline rows: 75.1%" in found["explanation"]


def test_berkeley_admissions_fire_although_two_departments_favour_men() -> None:
    found = berkeley()
    assert found is not None
    assert_matches_reference(found, BERKELEY_WOMEN_COUNTS, BERKELEY_MEN_COUNTS, 0.05)
    # crude: men admitted far more often (44.5% against 30.4%), highly significant
    assert found["crude"]["model"] == {"n": 1835, "accuracy": 557 / 1835}
    assert found["crude"]["baseline"] == {"n": 2691, "accuracy": 1198 / 2691}
    assert found["crude"]["odds_ratio"] == pytest.approx((557 * 1493) / (1278 * 1198))
    assert found["crude"]["p_value"] < 1e-10
    # adjusted for department: the textbook common odds ratio men/women is 0.905
    assert 1 / found["adjusted"]["odds_ratio"] == pytest.approx(0.905, abs=5e-4)
    assert found["adjusted"]["cmh"]["p_value"] > 0.05
    assert found["status"] == "confounded"
    assert found["reversed_slices"] == ["A", "B", "D", "F"]
    assert found["driver"]["slice"] == "A"
    assert found["driver"]["effect"] == pytest.approx(89 / 108 - 512 / 825)
    assert "department = A" in found["explanation"]
    assert "better in 4 of 6 department slices" in found["explanation"]


def test_berkeley_driver_is_the_department_whose_removal_moves_the_pooled_effect_most() -> None:
    found = berkeley()
    assert found is not None
    pooled_without = [
        reference(
            [c for j, c in enumerate(BERKELEY_WOMEN_COUNTS) if j != i],
            [c for j, c in enumerate(BERKELEY_MEN_COUNTS) if j != i],
        ).oddsratio_pooled
        for i in range(len(DEPARTMENTS))
    ]
    # the crude effect favours men (OR < 1): dropping the driver moves the pooled OR furthest towards it
    assert DEPARTMENTS[int(np.argmin(pooled_without))] == found["driver"]["slice"]


def test_berkeley_at_default_support_drops_department_b() -> None:
    found = comparison_paradox("department", *BERKELEY_WOMEN, *BERKELEY_MEN, DEPARTMENTS)
    assert found is not None
    assert [s["value"] for s in found["per_slice"]] == ["A", "C", "D", "E", "F"]
    assert found["unsupported_rows"] == {"model": 25, "baseline": 560}
    keep = [0, 2, 3, 4, 5]
    assert_matches_reference(
        found, [BERKELEY_WOMEN_COUNTS[i] for i in keep], [BERKELEY_MEN_COUNTS[i] for i in keep], 0.05
    )


def test_berkeley_with_men_as_the_model() -> None:
    found = comparison_paradox("department", *BERKELEY_MEN, *BERKELEY_WOMEN, DEPARTMENTS, min_support=20)
    assert found is not None
    assert found["adjusted"]["odds_ratio"] == pytest.approx(
        reference(BERKELEY_MEN_COUNTS, BERKELEY_WOMEN_COUNTS).oddsratio_pooled, rel=1e-12
    )
    assert found["driver"]["slice"] == "A"
    assert found["explanation"].startswith("the model is better than the baseline overall (accuracy 0.445")


def test_a_significant_reversal_is_reported_as_reversed() -> None:
    # the model is clearly better on easy and on hard rows, but 90% of its rows are hard
    model = [(190, 200), (720, 1800)]
    baseline = [(1620, 1800), (60, 200)]
    found = comparison_paradox("difficulty", *side(*model), *side(*baseline), ["easy", "hard"])
    assert found is not None
    assert_matches_reference(found, model, baseline, 0.05)
    assert found["status"] == "reversed"
    assert found["adjusted"]["odds_ratio_ci"][0] > 1 > found["crude"]["odds_ratio"]


def test_a_reversal_fires_although_a_slice_agrees_with_the_aggregate() -> None:
    # A is now worse on large stones too (170/263 = 64.6% < 68.75%), yet the pooled
    # effect still favours A and the crude OR (0.535) is far outside its interval
    a_worse_on_large = [(81, 87), (170, 263)]
    found = comparison_paradox("stone_size", *side(*a_worse_on_large), *KIDNEY_B, STONES)
    assert found is not None
    assert_matches_reference(found, a_worse_on_large, KIDNEY_B_COUNTS, 0.05)
    assert found["reversed_slices"] == ["small"]
    assert found["driver"] == {
        "slice": "small",
        "share": 1.0,
        "effect": pytest.approx(81 / 87 - 234 / 270),
        "odds_ratio": pytest.approx(81 * 36 / (6 * 234)),
    }


def test_pooled_effect_on_the_crude_side_is_no_paradox() -> None:
    # the model wins small stones narrowly and loses large ones clearly: pooled OR < 1 like the crude one
    model = [(82, 87), (150, 263)]
    assert reference(model, KIDNEY_B_COUNTS).oddsratio_pooled < 1
    assert comparison_paradox("stone_size", *side(*model), *KIDNEY_B, STONES) is None


def test_equal_composition_is_no_paradox() -> None:
    # B with A's composition and B's slice rates: A wins in both slices and overall
    b_same_mix = side((75, 87), (181, 263))
    assert comparison_paradox("stone_size", *KIDNEY_A, *b_same_mix, STONES) is None


def test_a_tied_slice_is_no_paradox() -> None:
    a_tied_on_large = side((81, 87), (55 * 263 // 80, 263))
    b_scaled = side((234, 270), (55 * 263 // 80, 263))
    assert comparison_paradox("stone_size", *a_tied_on_large, *b_scaled, STONES) is None


@pytest.mark.parametrize(("min_support", "found"), [(30, True), (80, True), (81, False), (88, False)])
def test_min_support_on_both_sides(min_support: int, found: bool) -> None:
    # B has 80 large stones, A 87 small ones: above either, only one slice is left
    assert (kidney(min_support=min_support) is not None) is found


def test_min_difference_requires_a_clear_reversal() -> None:
    # crude difference 273/350 - 289/350 = -0.0457; MH risk difference +0.0538
    assert kidney(min_difference=0.045) is not None
    assert kidney(min_difference=0.046) is None


def test_trivially_ok_comparison_is_no_paradox() -> None:
    # the model is better in every slice and overall, with different composition
    model = side((85, 100), (70, 100), (40, 100))
    baseline = side((80, 100), (60, 100), (10, 50))
    assert model[0].mean() > baseline[0].mean()
    assert comparison_paradox("c", *model, *baseline, ["x", "y", "z"]) is None


NOISE_RATES = np.array([0.3, 0.5, 0.7, 0.9])


def noise_side(
    rng: np.random.Generator, n: int, mix: np.ndarray, rates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    codes = rng.choice(mix.size, size=n, p=mix)
    return rng.random(n) < rates[codes], codes


@pytest.mark.parametrize(
    ("model_mix", "baseline_mix", "rates"),
    [
        # same composition in expectation, slices of different difficulty
        (np.full(4, 0.25), np.full(4, 0.25), NOISE_RATES),
        # different composition, slices of equal difficulty: nothing to confound
        (np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4]), np.full(4, 0.6)),
    ],
)
def test_pure_noise_does_not_fire(model_mix: np.ndarray, baseline_mix: np.ndarray, rates: np.ndarray) -> None:
    fired = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        model, baseline = noise_side(rng, 800, model_mix, rates), noise_side(rng, 800, baseline_mix, rates)
        fired += comparison_paradox("c", *model, *baseline, ["a", "b", "c", "d"]) is not None
    assert fired <= 1


def test_confounded_null_effect_is_never_called_reversed() -> None:
    # No within-slice effect, but the model's rows are the hard ones: the crude gap is real
    # confounding, the pooled OR sits near 1 on either side. The check may say "confounded"
    # (the aggregate comparison is explained by composition) but must not claim a reversal.
    statuses = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        model = noise_side(rng, 800, np.array([0.1, 0.2, 0.3, 0.4]), NOISE_RATES[::-1])
        baseline = noise_side(rng, 800, np.array([0.4, 0.3, 0.2, 0.1]), NOISE_RATES[::-1])
        found = comparison_paradox("c", *model, *baseline, ["a", "b", "c", "d"])
        statuses.append(None if found is None else found["status"])
    assert statuses.count("reversed") <= 1
    assert set(statuses) <= {None, "confounded", "reversed"}


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
    assert found["crude"]["model"] == {"n": 350, "accuracy": 273 / 350}
    assert found["unsupported_rows"] == {"model": 3, "baseline": 0}
    assert found["per_slice"][0]["model"]["n"] == 87


def test_row_order_does_not_matter() -> None:
    order = np.random.default_rng(0).permutation(350)
    shuffled = (KIDNEY_A[0][order], KIDNEY_A[1][order])
    assert comparison_paradox("stone_size", *shuffled, *KIDNEY_B, STONES) == kidney()


@pytest.mark.parametrize("seed", range(10))
def test_mantel_haenszel_matches_statsmodels_on_sparse_tables(seed: int) -> None:
    rng = np.random.default_rng(seed)
    strata = int(rng.integers(2, 9))
    n1, n0 = rng.integers(1, 15, size=strata), rng.integers(1, 15, size=strata)
    a, c = rng.binomial(n1, rng.uniform(0.1, 0.9, strata)), rng.binomial(n0, rng.uniform(0.1, 0.9, strata))
    ref = reference(list(zip(a, n1, strict=True)), list(zip(c, n0, strict=True)))
    found = mantel_haenszel(a, n1, c, n0, alpha=0.1)
    b, d = n1 - a, n0 - c
    if (a * d).sum() == 0 or (b * c).sum() == 0:
        assert found is None
        return
    assert found is not None
    assert found["odds_ratio"] == pytest.approx(ref.oddsratio_pooled, rel=1e-12)
    assert found["se_log_odds_ratio"] == pytest.approx(ref.logodds_pooled_se, rel=1e-12)
    assert [found["low"], found["high"]] == pytest.approx(list(ref.oddsratio_pooled_confint(0.1)), rel=1e-12)
    null = ref.test_null_odds(correction=False)
    assert found["cmh_statistic"] == pytest.approx(null.statistic, rel=1e-10)
    assert found["cmh_p_value"] == pytest.approx(null.pvalue, rel=1e-10)


def test_mean_loss_uses_the_weighted_difference() -> None:
    loss_a, loss_b = 1.0 - KIDNEY_A[0], 1.0 - KIDNEY_B[0]
    found = comparison_paradox(
        "stone_size", loss_a, KIDNEY_A[1], loss_b, KIDNEY_B[1], STONES, metric="loss", higher_is_better=False
    )
    assert found is not None
    assert found["aggregate"]["model"] == {"n": 350, "loss": pytest.approx(77 / 350)}
    assert all(s["difference"] < 0 for s in found["per_slice"])
    assert all(s["odds_ratio"] is None for s in found["per_slice"])
    # independent: per-slice means and sample variances straight from the rows
    weights, diffs, variances = [], [], []
    for code in range(2):
        xa, xb = loss_a[KIDNEY_A[1] == code], loss_b[KIDNEY_B[1] == code]
        weights.append(xa.size * xb.size / (xa.size + xb.size))
        diffs.append(xa.mean() - xb.mean())
        variances.append(xa.var(ddof=1) / xa.size + xb.var(ddof=1) / xb.size)
    w = np.array(weights)
    adjusted = found["adjusted"]
    assert adjusted["method"] == "mantel_haenszel_weighted_difference"
    assert adjusted["difference"] == pytest.approx((w * diffs).sum() / w.sum())
    assert adjusted["se"] == pytest.approx(np.sqrt((w**2 * variances).sum()) / w.sum())
    crude = stats.ttest_ind(loss_a, loss_b, equal_var=False)
    assert found["crude"]["difference"] == pytest.approx(77 / 350 - 61 / 350)
    assert found["crude"]["difference"] / (
        found["crude"]["difference_ci"][1] - found["crude"]["difference"]
    ) == (pytest.approx(crude.statistic / stats.norm.isf(0.025)))
    # on 0/1 outcomes the weighted difference is the Mantel-Haenszel risk difference
    assert adjusted["difference"] == pytest.approx(-kidney()["adjusted"]["difference"])  # type: ignore[index]
    assert found["driver"]["slice"] == "small"
    assert found["explanation"].startswith(
        "the model is worse than the baseline overall (loss 0.22 against 0.174"
    )
    assert (
        "but better within stone_size slices (Mantel-Haenszel weighted difference -0.0538"
        in found["explanation"]
    )


def test_numpy_labels_are_unwrapped() -> None:
    found = comparison_paradox("grade", *KIDNEY_A, *KIDNEY_B, list(np.array([1, 2])))
    assert found is not None
    assert [type(s["value"]) for s in found["per_slice"]] == [int, int]
    assert type(found["driver"]["slice"]) is int


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
        ({"alpha": 0.0}, "alpha"),
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
