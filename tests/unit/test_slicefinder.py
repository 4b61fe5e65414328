"""Slice finder: planted slices are found and ranked, noise is not; the selection against a
pandas + scipy enumeration, the trend test against scipy's Pearson correlation, Fisher's and
Welch's tests and Benjamini-Hochberg against scipy, counts against pandas."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from schemas.slices import SliceFinderResult, SliceFinderSummary
from service.workers.slicefinder import benjamini_hochberg, find_slices, tree_slices
from service.workers.slicefinder import tables as tables_module
from service.workers.slicefinder.hypotheses import BatchTotals, hypergeom_sf, slice_p_values
from service.workers.slicefinder.tables import CellStats
from service.workers.slices.codes import slice_codes

Columns = list[tuple[str, np.ndarray, list[Any]]]
CARDS = (3, 4, 5, 6, 8, 10)
# the planted slice: column c2 (5 values) == "c2_1" and column c5 (10 values) == "c5_7", 2% of rows
PLANTED = {"c2": "c2_1", "c5": "c5_7"}


def _columns(rng: np.random.Generator, n: int, cards: tuple[int, ...] = CARDS) -> Columns:
    return [
        (f"c{k}", rng.integers(0, card, n), [f"c{k}_{v}" for v in range(card)])
        for k, card in enumerate(cards)
    ]


def _planted(
    seed: int, n: int = 100_000, *, base: float = 0.05, inside: float = 0.20
) -> tuple[np.ndarray, Columns]:
    rng = np.random.default_rng(seed)
    columns = _columns(rng, n)
    mask = (columns[2][1] == 1) & (columns[5][1] == 7)
    errors = (rng.random(n) < np.where(mask, inside, base)).astype(np.float64)
    return errors, columns


def _frame(errors: np.ndarray, columns: Columns) -> pd.DataFrame:
    df = pd.DataFrame({name: np.asarray(labels, dtype=object)[codes] for name, codes, labels in columns})
    df["error"] = errors
    return df


def _mask(df: pd.DataFrame, conditions: dict[str, Any]) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for name, cond in conditions.items():
        if isinstance(cond, dict) and "not" in cond:
            mask &= df[name] != cond["not"]
        elif isinstance(cond, dict):
            mask &= ~df[name].isin(cond["not_in"])
        elif cond is None:
            mask &= df[name].isna()
        else:
            mask &= df[name] == cond
    return mask


def _fisher(inside: pd.Series, outside: pd.Series) -> float:
    table = [[inside.sum(), inside.size - inside.sum()], [outside.sum(), outside.size - outside.sum()]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def _rank(result: SliceFinderResult, conditions: dict[str, Any]) -> int | None:
    """1-based rank of the slice with exactly these conditions, None if not reported."""
    for i, found in enumerate(result.slices):
        if found.conditions == conditions:
            return i + 1
    return None


def _check_summary(summary: SliceFinderSummary | None, result: SliceFinderResult, top_k: int) -> None:
    """Every significant slice is counted once; what came back is the qualified, then trend bins."""
    assert summary is not None
    set_aside = (
        summary.under_min_effect
        + summary.explained_by_broader
        + summary.explained_by_narrower
        + summary.explained_by_overlap
        + summary.explained_by_trend
    )
    assert summary.significant == set_aside + summary.qualified
    assert summary.tested == result.candidates_tested
    assert summary.reported == len(result.slices) <= top_k
    trend_slices = [s for s in result.slices if s.explained_by_trend]
    assert len(trend_slices) <= summary.explained_by_trend
    assert result.slices[: len(result.slices) - len(trend_slices)] == [
        s for s in result.slices if not s.explained_by_trend
    ]
    assert (
        summary.reported - len(trend_slices) == min(top_k, summary.qualified) or summary.explained_by_overlap
    )
    if summary.reported < top_k:
        assert summary.why_fewer is not None
        assert f"{summary.reported} of top_k = {top_k} returned" in summary.why_fewer
        assert f"{summary.significant:,} " in summary.why_fewer
    else:
        assert summary.why_fewer is None


# --------------------------------------------------------------------------- the issue's cases


def _issue_batch(
    seed: int, n: int = 200_000, *, base: float = 0.08, trend: float = 0.0
) -> tuple[np.ndarray, Columns, dict[str, Any], dict[str, Any]]:
    """6 categorical columns of 2 to 20 values and a numeric ``amount`` (5 quantile bins).

    Planted: ``c1 = c1_1 & c2 = c2_3 & c4 = c4_7``, 1/200 = 0.5% of rows, at 4x the base
    error; ``c2 = c2_0 & c3 = c3_4``, 1/30 = 3.3% of rows, at 2x. With ``trend``, the
    error also rises with ``amount`` everywhere (from ``1 - trend`` to ``1 + trend`` times).
    """
    rng = np.random.default_rng(seed)
    cards = (2, 4, 5, 6, 10, 20)
    columns = _columns(rng, n, cards)
    amount = rng.lognormal(4.0, 1.0, n)
    rate = np.full(n, base)
    if trend:
        rate *= 1 + trend * (2 * stats.rankdata(amount) / n - 1)
    codes = [c for _, c, _ in columns]
    small = (codes[1] == 1) & (codes[2] == 3) & (codes[4] == 7)
    moderate = (codes[2] == 0) & (codes[3] == 4)
    rate = np.where(small, 4 * rate, np.where(moderate, 2 * rate, rate))
    errors = (rng.random(n) < rate).astype(np.float64)
    columns.append(("amount", *slice_codes(pa.array(amount), bins=5)))
    return errors, columns, {"c1": "c1_1", "c2": "c2_3", "c4": "c4_7"}, {"c2": "c2_0", "c3": "c3_4"}


@pytest.mark.parametrize("seed", [0, 1])
def test_small_severe_and_moderate_planted_slices_are_both_in_the_top_5(seed: int) -> None:
    # measured: ranks 1 (moderate, the larger impact) and 2 (small) on both seeds, nothing else
    errors, columns, small, moderate = _issue_batch(seed)
    assert ((columns[1][1] == 1) & (columns[2][1] == 3) & (columns[4][1] == 7)).mean() == pytest.approx(
        0.005, abs=0.0005
    )
    result = find_slices(errors, columns, max_conditions=3)  # a 3-condition slice needs depth 3
    small_rank, moderate_rank = _rank(result, small), _rank(result, moderate)
    assert small_rank is not None and small_rank <= 5
    assert moderate_rank is not None and moderate_rank <= 5
    found = result.slices[small_rank - 1]
    assert found.significant and found.p_value < 1e-30
    assert found.relative_effect == pytest.approx(3.0, abs=0.6)
    # the planted slices' broader and narrower relatives are explained, not reported
    assert {frozenset(s.conditions) for s in result.slices[:5]} >= {frozenset(small), frozenset(moderate)}
    for s in result.slices:
        assert not (set(s.conditions.items()) < set(small.items()))
        assert not (set(s.conditions.items()) > set(moderate.items()))
    assert result.trends == []
    _check_summary(result.summary, result, 10)


def test_error_weight_orders_by_impact_or_by_severity() -> None:
    errors, columns, small, moderate = _issue_batch(0)
    impact = find_slices(errors, columns, max_conditions=3, error_weight=0.0)
    severity = find_slices(errors, columns, max_conditions=3, error_weight=1.0)
    # 3.3% of rows at 2x (impact ~0.033) before 0.5% at 4x (~0.015); by severity the other way
    assert [s.conditions for s in impact.slices[:2]] == [moderate, small]
    assert [s.conditions for s in severity.slices[:2]] == [small, moderate]
    n = errors.size
    for result, weight in ((impact, 0.0), (severity, 1.0)):
        assert result.details["error_weight"] == weight
        scores = [s.score for s in result.slices if not s.explained_by_trend]
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        for s in result.slices:
            assert s.relative_effect == pytest.approx(s.error / s.baseline_error - 1)  # type: ignore[operator]
            assert s.score == pytest.approx((s.n / n) ** (1 - weight) * s.relative_effect)
            assert s.excess == pytest.approx(s.n * (s.error - s.baseline_error))  # type: ignore[operator]


@pytest.mark.parametrize("max_conditions", [2, 3])
def test_no_finding_on_pure_noise(max_conditions: int) -> None:
    # 20 null batches (the issue's columns, no planted slice): any reported slice is a false
    # discovery. Measured over 200 seeds at depth 2: 3 batches with one; 1 of 100 at depth 3.
    with_slice = with_trend = 0
    for seed in range(20):
        errors, columns, _, _ = _issue_batch(100 + seed, n=20_000)
        errors = (np.random.default_rng(seed).random(errors.size) < 0.08).astype(np.float64)
        result = find_slices(errors, columns, max_conditions=max_conditions)
        with_slice += bool(result.slices)
        with_trend += bool(result.trends)
        assert result.candidates_tested > 500
    assert with_slice <= 1
    assert with_trend <= 3  # one ordered column tested at 0.05 per batch


def test_no_finding_on_noisy_losses() -> None:
    with_slice = 0
    for seed in range(20):
        rng = np.random.default_rng(200 + seed)
        columns = _columns(rng, 20_000)
        result = find_slices(rng.gamma(2.0, 1.0, 20_000), columns, max_conditions=2)
        assert result.details["test"] == "welch_t"
        with_slice += bool(result.slices)
    assert with_slice <= 1


def test_a_trend_is_reported_apart_and_does_not_hide_the_planted_slice() -> None:
    # The bug report: 200k rows, error rising with amount (0.06 -> 0.16, mean 0.11) and a slice
    # of ~436 rows at 0.48. SliceLine at weight 0.95 ranked "high amount" first and never saw it.
    n = 200_000
    rng = np.random.default_rng(3)
    cards = (3, 5, 8, 20, 23)
    columns = _columns(rng, n, cards)
    amount = rng.lognormal(4.0, 1.0, n)
    planted = (columns[3][1] == 3) & (columns[4][1] == 17)
    rate = np.where(planted, 0.48, 0.06 + 0.10 * stats.rankdata(amount) / n)
    errors = (rng.random(n) < rate).astype(np.float64)
    columns.append(("amount", *slice_codes(pa.array(amount), bins=5)))

    result = find_slices(errors, columns, max_conditions=2, top_k=10)
    assert result.details["ordered_columns"] == ["amount"]
    top = result.slices[0]
    assert top.conditions == {"c3": "c3_3", "c4": "c4_17"}
    assert top.n == int(planted.sum()) and 380 < top.n < 480
    assert top.explained_by_trend is None and top.compared_within is None

    (trend,) = result.trends
    df = _frame(errors, columns)
    per_bin = df.groupby("amount", sort=False)["error"].agg(["size", "mean"])
    assert trend.column == "amount" and trend.direction == "increasing" and trend.monotone
    assert trend.bins == columns[-1][2]
    assert trend.n == [int(per_bin.loc[b, "size"]) for b in trend.bins]
    assert trend.error == pytest.approx([per_bin.loc[b, "mean"] for b in trend.bins])
    assert trend.p_value < 1e-100 and trend.test == "cochran_armitage"

    # the amount bins come after the real slice, marked, and nothing refines them
    trend_slices = [s for s in result.slices if s.explained_by_trend]
    assert trend_slices and all(s.explained_by_trend == ["amount"] for s in trend_slices)
    assert trend_slices[0].conditions == {"amount": columns[-1][2][-1]}
    assert trend_slices[0].score > top.score  # type: ignore[operator]  # larger, yet ranked after
    assert all("amount" not in s.conditions for s in result.slices if not s.explained_by_trend)
    summary = result.summary
    assert summary is not None and summary.explained_by_trend > 10
    _check_summary(summary, result, 10)
    assert "explained by a trend" in (summary.why_fewer or "")


def test_a_slice_inside_a_trend_bin_is_measured_against_that_bin() -> None:
    # the error rises with amount, and c1 = c1_2 is 3x worse only in the top amount bin
    n = 200_000
    rng = np.random.default_rng(5)
    columns = _columns(rng, n, (3, 5, 8))
    amount = rng.lognormal(4.0, 1.0, n)
    u = stats.rankdata(amount) / n
    rate = 0.06 + 0.10 * u
    rate = np.where((columns[1][1] == 2) & (u > 0.8), 3 * rate, rate)
    errors = (rng.random(n) < rate).astype(np.float64)
    columns.append(("amount", *slice_codes(pa.array(amount), bins=5)))
    top_bin = columns[-1][2][-1]

    result = find_slices(errors, columns)
    top = result.slices[0]
    assert top.conditions == {"c1": "c1_2", "amount": top_bin}
    assert top.compared_within == {"amount": top_bin} and top.explained_by_trend is None
    df = _frame(errors, columns)
    in_bin = df["amount"] == top_bin
    rest_of_bin = df.loc[in_bin & ~_mask(df, top.conditions), "error"]
    assert top.baseline_error == pytest.approx(rest_of_bin.mean())
    assert top.relative_effect == pytest.approx(top.error / rest_of_bin.mean() - 1)
    # c1 = c1_2 alone is bad only through it: explained by the narrower slice
    assert _rank(result, {"c1": "c1_2"}) is None
    assert result.summary is not None and result.summary.explained_by_narrower >= 1


def test_fewer_than_top_k_says_why() -> None:
    # one clear slice, one significant but only ~16% worse (under min_effect)
    rng = np.random.default_rng(8)
    n = 100_000
    columns = _columns(rng, n, (4, 5, 6))
    clear = (columns[0][1] == 1) & (columns[1][1] == 2)
    mild = columns[2][1] == 3
    errors = (rng.random(n) < np.where(clear, 0.3, np.where(mild, 0.116, 0.1))).astype(np.float64)

    result = find_slices(errors, columns, top_k=10)
    summary = result.summary
    assert summary is not None
    assert [s.conditions for s in result.slices] == [{"c0": "c0_1", "c1": "c1_2"}]
    assert summary.reported == 1 and summary.qualified == 1
    assert summary.under_min_effect >= 1  # c2 = c2_3
    assert summary.explained_by_broader >= 1  # e.g. c0_1 & c1_2's own refinements are not tested at depth 2
    _check_summary(summary, result, 10)
    why = summary.why_fewer or ""
    assert why.startswith("1 of top_k = 10 returned: 1 slice qualified.")
    assert f"{summary.tested:,} slices with at least min_support = 30 rows" in why
    assert "less than min_effect = 25% worse" in why
    # with min_effect 0 the mild slice qualifies too
    relaxed = find_slices(errors, columns, top_k=10, min_effect=0.0)
    assert _rank(relaxed, {"c2": "c2_3"}) is not None
    # nothing significant at all
    quiet = find_slices((rng.random(n) < 0.1).astype(np.float64), columns, top_k=3)
    assert quiet.slices == [] and quiet.summary is not None
    assert quiet.summary.why_fewer is not None and quiet.summary.why_fewer.startswith(
        "0 of top_k = 3 returned"
    )


@pytest.mark.parametrize("min_support", [30, 31])
def test_min_support_is_the_floor(min_support: int) -> None:
    # c0 = rare (60 rows), of which exactly 30 have c1 = c1_0 and are all errors
    rng = np.random.default_rng(9)
    n = 50_000
    columns = _columns(rng, n, (4, 5, 6))
    c0, c1 = columns[0][1].copy(), columns[1][1].copy()
    c0[:60] = 4
    c1[:30] = 0
    c1[30:60] = rng.integers(1, 5, 30)
    columns[0] = ("c0", c0, [*columns[0][2], "rare"])
    columns[1] = ("c1", c1, columns[1][2])
    errors = (rng.random(n) < 0.05).astype(np.float64)
    errors[:30] = 1.0
    errors[30:60] = 0.0

    result = find_slices(errors, columns, min_support=min_support)
    exact = {"c0": "rare", "c1": "c1_0"}
    summary = result.summary
    assert summary is not None
    if min_support == 30:
        assert result.slices[0].conditions == exact and result.slices[0].n == 30
        assert result.slices[0].p_value < 1e-30
        assert _rank(result, {"c0": "rare"}) is None  # bad only through its 30 rows
    else:
        assert _rank(result, exact) is None
        assert result.slices[0].conditions == {"c0": "rare"}  # the next best thing: 60 rows
        assert summary.under_min_support >= 1
    df = _frame(errors, columns)
    sizes = [df.groupby(list(c)).size() for r in (1, 2) for c in itertools.combinations(df.columns[:-1], r)]
    assert summary.tested == sum(int((s >= min_support).sum()) for s in sizes)


# --------------------------------------------------------------------------- against references


def _reference(
    errors: np.ndarray, columns: Columns, *, depth: int, min_support: int, alpha: float, weight: float
) -> tuple[int, list[tuple[dict[str, Any], float, float]]]:
    """Every slice by pandas groupby, Fisher's test by scipy, BH by scipy, ranked by score."""
    df = pd.DataFrame({name: codes for name, codes, _ in columns})
    df["error"] = errors
    n, total = len(df), errors.sum()
    names = [name for name, _, _ in columns]
    rows = []
    for level in range(1, depth + 1):
        for combo in itertools.combinations(range(len(names)), level):
            groups = df.groupby([names[j] for j in combo])["error"].agg(["size", "sum"])
            for values, (size, err) in zip(groups.index, groups.to_numpy(), strict=True):
                if size < min_support:
                    continue
                key = values if isinstance(values, tuple) else (values,)
                table = [[err, size - err], [total - err, n - size - (total - err)]]
                p = stats.fisher_exact(table, alternative="greater").pvalue
                rest = (total - err) / (n - size)
                score = (size / n) ** (1 - weight) * (err / size / rest - 1)
                cond = {names[j]: columns[j][2][int(v)] for j, v in zip(combo, key, strict=True)}
                rows.append((cond, p, err / size > rest, score, level, combo, key))
    q = stats.false_discovery_control(np.array([r[1] for r in rows]), method="bh")
    significant = [(r, qv) for r, qv in zip(rows, q, strict=True) if qv <= alpha and r[2]]
    significant.sort(key=lambda t: (-t[0][3], t[0][4], t[0][5], t[0][6]))
    return len(rows), [(r[0], r[1], qv) for r, qv in significant]


@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_every_significant_slice_equals_a_pandas_scipy_enumeration(weight: float) -> None:
    # without min_effect and the explanation rules, the report is every BH-significant slice
    rng = np.random.default_rng(7)
    n = 4000
    columns = _columns(rng, n, (2, 3, 4, 5))
    codes = [c for _, c, _ in columns]
    rate = 0.08 + 0.12 * ((codes[1] == 2) & (codes[3] == 1)) + 0.06 * (codes[2] == 0)
    errors = (rng.random(n) < rate).astype(np.float64)
    tested, expected = _reference(errors, columns, depth=3, min_support=20, alpha=0.05, weight=weight)
    result = find_slices(
        errors, columns, max_conditions=3, top_k=100, min_support=20, min_effect=0.0, error_weight=weight,
        distinct=False,
    )  # fmt: skip
    assert result.candidates_tested == tested
    assert 5 < len(expected) < 100
    assert [s.conditions for s in result.slices] == [c for c, _, _ in expected]
    assert [s.p_value for s in result.slices] == pytest.approx([p for _, p, _ in expected], rel=1e-6)
    assert [s.q_value for s in result.slices] == pytest.approx([q for _, _, q in expected], rel=1e-6)


def test_reported_counts_and_errors_equal_pandas_groupby() -> None:
    errors, columns = _planted(2, n=30_000, inside=0.3)
    df = _frame(errors, columns)
    lattice = find_slices(errors, columns, max_conditions=3, top_k=20, distinct=False, min_effect=0.0)
    tree = tree_slices(errors, columns, max_depth=3, top_k=20)
    assert len(lattice.slices) > 5 and len(tree.slices) > 1
    for found in [*lattice.slices, *tree.slices]:
        mask = _mask(df, found.conditions)
        assert found.n == int(mask.sum())
        assert found.error == pytest.approx(df.loc[mask, "error"].mean())
        assert found.rest_error == pytest.approx(df.loc[~mask, "error"].mean())
    for found in lattice.slices:  # the tree's leaves are tested on a held-out half
        mask = _mask(df, found.conditions)
        assert found.p_value == pytest.approx(
            _fisher(df.loc[mask, "error"], df.loc[~mask, "error"]), rel=1e-6
        )


def test_the_trend_statistic_is_pearsons_r_times_root_n() -> None:
    # Cochran-Armitage's z on bin scores 0, 1, 2, ... equals r sqrt(N), r the row-level Pearson
    # correlation of score and error; for losses too (a z test of the slope)
    rng = np.random.default_rng(10)
    n = 20_000
    x = rng.normal(size=n)
    codes, labels = slice_codes(pa.array(np.where(rng.random(n) < 0.03, np.nan, x)), bins=6)
    for errors in (
        (rng.random(n) < 0.1 + 0.01 * np.clip(x, -2, 2)).astype(np.float64),
        rng.gamma(2.0, 1.0 + 0.05 * np.clip(x, -2, 2)),
    ):
        result = find_slices(errors, [("x", codes, labels), ("c", rng.integers(0, 3, n), ["a", "b", "c"])])
        (trend,) = result.trends
        binned = codes < len(labels) - 1  # the null bin is left out
        r = stats.pearsonr(codes[binned], errors[binned]).statistic
        assert trend.statistic == pytest.approx(r * np.sqrt(binned.sum()), rel=1e-9)
        assert trend.p_value == pytest.approx(2 * stats.norm.sf(abs(trend.statistic)), rel=1e-9)
        assert trend.bins == labels[:-1] and trend.direction == "increasing"


def test_ordered_columns_are_found_from_labels_or_given() -> None:
    rng = np.random.default_rng(11)
    n = 5000
    columns: Columns = [
        ("interval", *slice_codes(pa.array(rng.random(n)), bins=4)),
        ("count", *slice_codes(pa.array(rng.integers(0, 3, n)), bins=5)),  # values 0, 1, 2
        ("flag", *slice_codes(pa.array(rng.random(n) < 0.5), bins=5)),  # booleans: categorical
        ("plan", *slice_codes(pa.array(rng.choice(["a", "b"], n)), bins=5)),
    ]
    errors = (rng.random(n) < 0.1).astype(np.float64)
    assert find_slices(errors, columns).details["ordered_columns"] == ["interval", "count"]
    assert find_slices(errors, columns, ordered=["plan"]).details["ordered_columns"] == ["plan"]
    with pytest.raises(ValueError, match="ordered"):
        find_slices(errors, columns, ordered=["ghost"])


@pytest.mark.parametrize("max_conditions", [2, 3])
def test_planted_slice_is_the_top_slice(max_conditions: int) -> None:
    errors, columns = _planted(0)
    result = find_slices(errors, columns, max_conditions=max_conditions)
    assert result.method == "lattice"
    assert [s.conditions for s in result.slices] == [PLANTED]  # its relatives are explained
    top = result.slices[0]
    assert top.significant and top.p_value < 1e-30 and top.q_value is not None
    assert top.error == pytest.approx(0.20, abs=0.02)
    assert top.effect_size == pytest.approx(top.error - top.rest_error)
    assert top.baseline_error == pytest.approx(top.rest_error)
    assert result.candidates_tested == sum(level["tested"] for level in result.details["levels"])


def test_planted_slice_of_losses_uses_welch() -> None:
    rng = np.random.default_rng(3)
    n = 100_000
    columns = _columns(rng, n)
    mask = (columns[2][1] == 1) & (columns[5][1] == 7)
    losses = rng.gamma(2.0, np.where(mask, 4.0, 1.0))
    result = find_slices(losses, columns, max_conditions=3)
    assert result.details["test"] == "welch_t"
    assert result.slices[0].conditions == PLANTED
    assert result.slices[0].significant
    df = _frame(losses, columns)
    inside = _mask(df, PLANTED)
    welch = stats.ttest_ind(
        df.loc[inside, "error"], df.loc[~inside, "error"], equal_var=False, alternative="greater"
    )
    assert result.slices[0].p_value == pytest.approx(welch.pvalue, rel=1e-6, abs=1e-300)


def test_a_refinement_of_a_bad_slice_is_not_reported_again() -> None:
    # c0 = c0_1 is bad as a whole: its refinements are significant but explained by it
    rng = np.random.default_rng(12)
    n = 50_000
    columns = _columns(rng, n, (3, 4, 5))
    errors = (rng.random(n) < np.where(columns[0][1] == 1, 0.2, 0.05)).astype(np.float64)
    result = find_slices(errors, columns)
    assert [s.conditions for s in result.slices] == [{"c0": "c0_1"}]
    assert result.summary is not None and result.summary.explained_by_broader >= 4
    loose = find_slices(errors, columns, distinct=False)
    assert len(loose.slices) == 10 and all(s.conditions.get("c0") == "c0_1" for s in loose.slices)


def test_a_slice_bad_only_through_an_overlap_is_not_reported() -> None:
    # planted c0 = c0_1 & c1 = c1_2; c2 copies c1 on 80% of rows, so c0 = c0_1 & c2 = c1_2 is
    # mostly the planted slice and much worse than its broader slices, but not without its rows
    rng = np.random.default_rng(13)
    n = 100_000
    columns = _columns(rng, n, (2, 5, 6))
    c2 = np.where(rng.random(n) < 0.8, columns[1][1], rng.integers(0, 5, n))
    columns[2] = ("c2", c2, [f"c1_{v}" for v in range(5)])
    planted = (columns[0][1] == 1) & (columns[1][1] == 2)
    errors = (rng.random(n) < np.where(planted, 0.3, 0.06)).astype(np.float64)
    overlapping = {"c0": "c0_1", "c2": "c1_2"}
    loose = find_slices(errors, columns, distinct=False)
    assert _rank(loose, overlapping) is not None
    result = find_slices(errors, columns)
    assert _rank(result, {"c0": "c0_1", "c1": "c1_2"}) == 1
    assert _rank(result, overlapping) is None
    assert result.summary is not None and result.summary.explained_by_overlap >= 1
    _check_summary(result.summary, result, 10)


@pytest.mark.parametrize("max_depth", [2, 3])
def test_tree_finds_the_planted_slice(max_depth: int) -> None:
    errors, columns = _planted(1)
    result = tree_slices(errors, columns, max_depth=max_depth)
    assert result.method == "decision_tree"
    top = result.slices[0]
    assert {k: v for k, v in top.conditions.items() if k in PLANTED} == PLANTED
    assert top.significant
    assert len(top.conditions) <= max_depth
    assert result.candidates_tested == result.details["leaves"]
    strict = tree_slices(errors, columns, max_depth=max_depth, min_effect=1.0)
    assert all(s.relative_effect is not None and s.relative_effect >= 1.0 for s in strict.slices)


def test_tree_reports_no_significant_leaf_on_noise() -> None:
    # 30 null batches: any significant leaf is a false discovery; BH at 0.05 should give ~1.5
    # of 30, allow 4
    batches_with_discoveries = reported = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        n = 20_000
        columns = _columns(rng, n)
        errors = (rng.random(n) < 0.05).astype(np.float64)
        found = tree_slices(errors, columns, max_depth=3, seed=seed)
        reported += len(found.slices)
        batches_with_discoveries += any(s.significant for s in found.slices)
    assert reported >= 60
    assert batches_with_discoveries <= 4


@pytest.mark.parametrize("path", ["cube", "groups", "groups_sparse"])
def test_table_layouts_agree(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    errors, columns = _planted(5, n=20_000)
    losses = errors * 2 + np.random.default_rng(0).random(errors.size)
    kwargs: dict[str, Any] = dict(max_conditions=3, top_k=15, distinct=False, min_effect=0.0)
    expected = [find_slices(e, columns, **kwargs) for e in (errors, losses)]
    if path != "cube":
        monkeypatch.setattr(tables_module, "_CUBE_CELLS", 0)
    if path == "groups_sparse":
        monkeypatch.setattr(tables_module, "_DENSE_CELLS", 0)
    got = [find_slices(e, columns, **kwargs) for e in (errors, losses)]
    for a, b in zip(got, expected, strict=True):
        assert [s.conditions for s in a.slices] == [s.conditions for s in b.slices]
        assert [s.n for s in a.slices] == [s.n for s in b.slices]
        assert [s.score for s in a.slices] == pytest.approx([s.score for s in b.slices], rel=1e-9)
        assert a.candidates_tested == b.candidates_tested
        assert a.summary == b.summary


def test_lattice_does_not_depend_on_row_order_and_tree_only_on_its_seed() -> None:
    errors, columns = _planted(6, n=20_000)
    perm = np.random.default_rng(0).permutation(errors.size)
    shuffled = [(name, codes[perm], labels) for name, codes, labels in columns]
    a = find_slices(errors, columns, max_conditions=3, min_effect=0.0, distinct=False)
    b = find_slices(errors[perm], shuffled, max_conditions=3, min_effect=0.0, distinct=False)
    assert len(a.slices) > 3
    assert [s.conditions for s in a.slices] == [s.conditions for s in b.slices]
    assert [s.n for s in a.slices] == [s.n for s in b.slices]
    assert [s.p_value for s in a.slices] == pytest.approx([s.p_value for s in b.slices], rel=1e-9)
    # the tree's growing half is drawn per row position, so only a seed makes it repeat
    assert tree_slices(errors, columns, seed=3) == tree_slices(errors, columns, seed=3)


def test_tree_conditions_name_excluded_values() -> None:
    rng = np.random.default_rng(8)
    n = 40_000
    columns = _columns(rng, n, (2, 4, 6))
    errors = (rng.random(n) < np.where(columns[2][1] != 0, 0.15, 0.05)).astype(np.float64)
    result = tree_slices(errors, columns, max_depth=1)
    assert result.slices[0].conditions == {"c2": {"not": "c2_0"}}
    # a two-valued column excluded from one value is the other value
    errors = (rng.random(n) < np.where(columns[0][1] != 0, 0.15, 0.05)).astype(np.float64)
    assert tree_slices(errors, columns, max_depth=1).slices[0].conditions == {"c0": "c0_1"}


def test_no_errors_and_no_worse_slice() -> None:
    rng = np.random.default_rng(9)
    columns = _columns(rng, 1000)
    empty = find_slices(np.zeros(1000), columns)
    assert empty.slices == [] and empty.summary is not None
    assert empty.summary.why_fewer == "The batch has no errors: no slice can be worse than the rest."
    tree_empty = tree_slices(np.zeros(1000), columns)
    assert tree_empty.slices == [] and tree_empty.candidates_tested == 0
    constant = find_slices(np.ones(1000), columns)
    assert constant.slices == []  # every slice has the batch's error: none is worse
    assert constant.summary is not None and constant.summary.significant == 0


def test_columns_coded_by_slice_codes_binned_and_null() -> None:
    # the job's input path: numeric columns quantile-binned, nulls their own slice (label None)
    rng = np.random.default_rng(12)
    n = 40_000
    age = rng.uniform(18, 90, n)
    age[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(["basic", "pro", "team"], n)
    worse = np.isnan(age) & (plan == "team")
    errors = (rng.random(n) < np.where(worse, 0.4, 0.05)).astype(np.float64)
    columns: Columns = [
        ("age", *slice_codes(pa.array(age, from_pandas=True), bins=5)),
        ("plan", *slice_codes(pa.array(plan), bins=5)),
    ]
    assert columns[0][2][-1] is None and columns[0][2][0].startswith("[")
    for result in (find_slices(errors, columns), tree_slices(errors, columns)):
        assert result.slices[0].conditions == {"age": None, "plan": "team"}
        assert result.slices[0].significant


# --------------------------------------------------------------------------- tests and BH


@pytest.mark.parametrize("m", [1, 2, 10, 500])
def test_benjamini_hochberg_matches_scipy(m: int) -> None:
    rng = np.random.default_rng(m)
    p = np.concatenate([rng.random(m // 2) ** 4, rng.random(m - m // 2)])
    p[: m // 5] = np.round(p[: m // 5], 2)  # ties
    np.testing.assert_allclose(
        benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg(np.array([0.1, 1.5]))


def test_benjamini_hochberg_controls_the_fdr() -> None:
    rng = np.random.default_rng(0)
    fdp = []
    for _ in range(400):
        null = rng.random(180)
        signal = stats.norm.sf(rng.normal(3.0, 1.0, 20))
        rejected = benjamini_hochberg(np.concatenate([null, signal])) <= 0.1
        fdp.append(rejected[:180].sum() / max(rejected.sum(), 1))
    assert np.mean(fdp) <= 0.1 * 180 / 200 + 0.02


@pytest.mark.parametrize(
    ("population", "successes"), [(60, 7), (5000, 250), (300_000, 15_000), (1000, 0), (80, 80)]
)
def test_hypergeometric_tail_matches_scipy(population: int, successes: int) -> None:
    rng = np.random.default_rng(population + successes)
    draws = rng.integers(1, population + 1, 400).astype(np.float64)
    rate = successes / population
    x = np.concatenate(
        [
            rng.binomial(draws[:200].astype(np.int64), rate),  # near the mean: both tails
            rng.binomial(draws[200:300].astype(np.int64), min(1.0, 3 * rate)),  # far above: tiny p
            rng.integers(0, population + 2, 100),  # anywhere, outside the support too
        ]
    ).astype(np.float64)
    expected = stats.hypergeom.sf(x - 1, population, successes, draws)
    np.testing.assert_allclose(hypergeom_sf(x, population, successes, draws), expected, rtol=1e-7, atol=1e-12)
    # populations and successes per entry, as the pairwise tests use them
    populations = np.full(x.size, float(population))
    np.testing.assert_allclose(
        hypergeom_sf(x, populations, populations * 0 + successes, draws), expected, rtol=1e-7, atol=1e-12
    )
    # stopped early above a level: exact at or below it, a lower bound above it that exceeds it
    for above in (1e-6, 0.05, 0.4, 0.9):
        got = hypergeom_sf(x, population, successes, draws, above=above)
        small = expected <= above
        np.testing.assert_allclose(got[small], expected[small], rtol=1e-7, atol=1e-12)
        assert np.all(got[~small] > above) and np.all(got[~small] <= expected[~small] * (1 + 1e-7) + 1e-12)


def test_p_values_match_scipy() -> None:
    rng = np.random.default_rng(11)
    n = 4000
    inside = rng.random(n) < 0.1
    e01 = (rng.random(n) < np.where(inside, 0.12, 0.08)).astype(np.float64)
    loss = rng.gamma(2.0, np.where(inside, 1.2, 1.0))
    for errors, binary in ((e01, True), (loss, False)):
        x = errors[inside]
        cell = CellStats(
            np.array([x.size]), np.array([x.sum()]), np.array([(x * x).sum()]), np.array([x.max()])
        )
        p = slice_p_values(cell, BatchTotals(errors, binary=binary))[0]
        if binary:
            expected = _fisher(pd.Series(x), pd.Series(errors[~inside]))
        else:
            expected = stats.ttest_ind(x, errors[~inside], equal_var=False, alternative="greater").pvalue
        assert p == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("errors", "columns", "match"),
    [
        (np.array([0.0, -1.0]), [("a", np.array([0, 1]), ["x", "y"])], "negative"),
        (np.array([0.0, np.nan]), [("a", np.array([0, 1]), ["x", "y"])], "NaN"),
        (np.array([0.0, 1.0]), [("a", np.array([0, 2]), ["x", "y"])], "outside"),
        (np.array([0.0, 1.0]), [("a", np.array([0]), ["x"])], "shape"),
        (np.array([0.0, 1.0]), [("a", np.array([0.0, 1.0]), ["x", "y"])], "integers"),
        (np.array([0.0, 1.0]), [("a", np.array([0, 1]), ["x", "y"])] * 2, "twice"),
        (np.array([0.0, 1.0]), [], "at least one"),
        (np.array([]), [("a", np.array([], dtype=int), ["x"])], "non-empty"),
    ],
)
def test_bad_inputs_are_refused(errors: np.ndarray, columns: Columns, match: str) -> None:
    for method in (find_slices, tree_slices):
        with pytest.raises(ValueError, match=match):
            method(errors, columns)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_conditions": 0}, "max_conditions"),
        ({"top_k": 0}, "top_k"),
        ({"min_support": 0}, "min_support"),
        ({"alpha": 1.0}, "alpha"),
        ({"min_effect": -0.1}, "min_effect"),
        ({"min_effect": float("inf")}, "min_effect"),
        ({"error_weight": 1.5}, "error_weight"),
        ({"error_weight": -0.1}, "error_weight"),
        ({"ordered": "a"}, "ordered"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        find_slices(np.array([0.0, 1.0]), [("a", np.array([0, 1]), ["x", "y"])], **kwargs)
