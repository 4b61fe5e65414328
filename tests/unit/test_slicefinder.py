"""Slice finder: planted slices are found and noise is not; counts against pandas, the pruned
search against brute-force enumeration, Benjamini-Hochberg and the tests against scipy."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from schemas.slices import SliceFinderResult
from service.workers.slicefinder import benjamini_hochberg, find_slices, tree_slices
from service.workers.slicefinder import lattice as lattice_module
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
        else:
            mask &= df[name] == cond
    return mask


def _brute_force(
    errors: np.ndarray,
    columns: Columns,
    *,
    depth: int,
    top_k: int,
    min_support: int,
    score: str,
    weight: float,
    distinct: bool,
) -> list[tuple[dict[str, Any], float]]:
    """Every slice to ``depth`` by pandas groupby, scored, ranked, refinements skipped: the reference."""
    df = pd.DataFrame({name: codes for name, codes, _ in columns})
    df["error"] = errors
    n, mean = len(df), float(errors.mean())
    names = [name for name, _, _ in columns]
    ranked = []
    for level in range(1, depth + 1):
        for combo in itertools.combinations(range(len(names)), level):
            groups = df.groupby([names[j] for j in combo])["error"].agg(["size", "sum"])
            for values, (size, total) in zip(groups.index, groups.to_numpy(), strict=True):
                key = values if isinstance(values, tuple) else (values,)
                if score == "sliceline":
                    sc = weight * (total / size / mean - 1) - (1 - weight) * (n / size - 1)
                else:
                    sc = total - size * mean
                if size >= min_support and sc > 0:
                    ranked.append((-sc, level, combo, tuple(int(v) for v in key)))
    ranked.sort()
    top: list[tuple[float, int, tuple[int, ...], tuple[int, ...]]] = []
    for r in ranked:
        if len(top) == top_k:
            break
        items = set(zip(r[2], r[3], strict=True))
        if distinct and any(set(zip(t[2], t[3], strict=True)) <= items for t in top):
            continue
        top.append(r)
    return [({names[j]: columns[j][2][v] for j, v in zip(t[2], t[3], strict=True)}, -t[0]) for t in top]


# --------------------------------------------------------------------------- finding slices


@pytest.mark.parametrize("max_conditions", [2, 3])
@pytest.mark.parametrize("distinct", [True, False])
def test_planted_slice_is_the_top_slice_and_significant(max_conditions: int, distinct: bool) -> None:
    errors, columns = _planted(0)
    result = find_slices(errors, columns, max_conditions=max_conditions, distinct=distinct)
    assert result.method == "lattice"
    top = result.slices[0]
    assert top.conditions == PLANTED
    assert top.significant and top.p_value < 1e-30
    assert top.error == pytest.approx(0.20, abs=0.02)
    assert top.effect_size == pytest.approx(top.error - top.rest_error)
    assert result.details["error_ratios"][0] == pytest.approx(top.error / top.rest_error)
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


@pytest.mark.parametrize("method", ["lattice", "decision_tree"])
def test_no_significant_slice_on_noise(method: str) -> None:
    # 30 null batches: any significant slice is a false discovery, so the FDR is the
    # share of batches with one; BH at 0.05 should give ~1.5 of 30, allow 4.
    # error_weight 1 drops SliceLine's size penalty: any slice above the mean scores > 0,
    # so dozens of small noisy slices are reported and tested.
    batches_with_discoveries = reported = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        n = 20_000
        columns = _columns(rng, n)
        errors = (rng.random(n) < 0.05).astype(np.float64)
        if method == "lattice":
            found = find_slices(errors, columns, max_conditions=2, top_k=50, distinct=False, error_weight=1.0)
        else:
            found = tree_slices(errors, columns, max_depth=3, seed=seed)
        reported += len(found.slices)
        batches_with_discoveries += any(s.significant for s in found.slices)
    assert reported >= 60
    assert batches_with_discoveries <= 4


def test_reported_counts_and_errors_equal_pandas_groupby() -> None:
    errors, columns = _planted(2, n=30_000, inside=0.3)
    df = _frame(errors, columns)
    lattice = find_slices(errors, columns, max_conditions=3, top_k=20, distinct=False, error_weight=0.99)
    tree = tree_slices(errors, columns, max_depth=3, top_k=20)
    assert len(lattice.slices) > 5 and len(tree.slices) > 1
    for found in [*lattice.slices, *tree.slices]:
        mask = _mask(df, found.conditions)
        assert found.n == int(mask.sum())
        assert found.error == pytest.approx(df.loc[mask, "error"].mean())
        assert found.rest_error == pytest.approx(df.loc[~mask, "error"].mean())
    for found in lattice.slices:  # the tree's leaves are tested on a held-out half
        inside = df.loc[_mask(df, found.conditions), "error"]
        outside = df.loc[~_mask(df, found.conditions), "error"]
        table = [[inside.sum(), inside.size - inside.sum()], [outside.sum(), outside.size - outside.sum()]]
        expected = stats.fisher_exact(table, alternative="greater").pvalue
        assert found.p_value == pytest.approx(expected, rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("score", ["sliceline", "excess"])
@pytest.mark.parametrize("distinct", [True, False])
def test_pruned_search_equals_brute_force(depth: int, score: str, distinct: bool) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    columns = _columns(rng, n, (2, 3, 4, 5, 6))
    # losses (no ties between slices) with two weak planted slices, so many slices score > 0
    shift = 1 + 0.8 * ((columns[1][1] == 2) & (columns[3][1] == 1)) + 0.5 * (columns[4][1] == 0)
    losses = rng.gamma(2.0, shift)
    kwargs: dict[str, Any] = dict(top_k=5, min_support=20, error_weight=0.8, distinct=distinct)
    result = find_slices(losses, columns, max_conditions=depth, score=score, **kwargs)  # type: ignore[arg-type]
    expected = _brute_force(
        losses, columns, depth=depth, score=score, weight=0.8, top_k=5, min_support=20, distinct=distinct
    )
    assert [s.conditions for s in result.slices] == [c for c, _ in expected]
    assert result.details["scores"] == pytest.approx([sc for _, sc in expected], rel=1e-9)
    if score == "excess":
        return  # its bound, e - s mean with e <= the parents' errors, rarely prunes
    # the bounds pruned something: fewer candidates evaluated than slices in the lattice
    all_slices = sum(
        np.prod([c for c in combo])
        for d in range(1, depth + 1)
        for combo in itertools.combinations((2, 3, 4, 5, 6), d)
    )
    assert sum(level["evaluated"] for level in result.details["levels"]) < all_slices


@pytest.mark.parametrize("seed", range(4))
def test_pruned_search_equals_brute_force_on_01_errors(seed: int) -> None:
    # 0/1 errors tie often (equal size and error count); the scores in rank order must agree
    rng = np.random.default_rng(seed)
    n = 5000
    columns = _columns(rng, n, (2, 3, 4, 6))
    errors = (rng.random(n) < np.where(columns[2][1] == 3, 0.15, 0.08)).astype(np.float64)
    result = find_slices(errors, columns, max_conditions=3, top_k=8, min_support=25, error_weight=0.7)
    expected = _brute_force(
        errors, columns, depth=3, score="sliceline", weight=0.7, top_k=8, min_support=25, distinct=True
    )
    assert result.details["scores"] == pytest.approx([sc for _, sc in expected], rel=1e-9)


def test_reported_score_is_slicelines_formula() -> None:
    errors, columns = _planted(4, n=20_000)
    result = find_slices(errors, columns, error_weight=0.9)
    n, mean = errors.size, errors.mean()
    for found, sc in zip(result.slices, result.details["scores"], strict=True):
        expected = 0.9 * (found.error / mean - 1) - 0.1 * (n / found.n - 1)
        assert sc == pytest.approx(expected, rel=1e-12)
        assert sc > 0


@pytest.mark.parametrize("path", ["cube", "groups", "groups_sparse", "present_cells"])
def test_table_layouts_agree(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    errors, columns = _planted(5, n=20_000)
    losses = errors * 2 + np.random.default_rng(0).random(errors.size)
    expected = [find_slices(e, columns, max_conditions=3, top_k=15, distinct=False) for e in (errors, losses)]
    if path != "cube":
        monkeypatch.setattr(tables_module, "_CUBE_CELLS", 0)
    if path == "groups_sparse":
        monkeypatch.setattr(tables_module, "_DENSE_CELLS", 0)
    if path == "present_cells":  # candidates from the cells present, not from the join of survivors
        monkeypatch.setattr(lattice_module, "_MAX_JOINS", 0)
    got = [find_slices(e, columns, max_conditions=3, top_k=15, distinct=False) for e in (errors, losses)]
    for a, b in zip(got, expected, strict=True):
        assert [s.conditions for s in a.slices] == [s.conditions for s in b.slices]
        assert [s.n for s in a.slices] == [s.n for s in b.slices]
        assert a.details["scores"] == pytest.approx(b.details["scores"], rel=1e-9)
        assert a.candidates_tested == b.candidates_tested


def test_lattice_does_not_depend_on_row_order_and_tree_only_on_its_seed() -> None:
    errors, columns = _planted(6, n=20_000)
    perm = np.random.default_rng(0).permutation(errors.size)
    shuffled = [(name, codes[perm], labels) for name, codes, labels in columns]
    a = find_slices(errors, columns, max_conditions=3)
    b = find_slices(errors[perm], shuffled, max_conditions=3)
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
    for method in (find_slices, tree_slices):
        empty: SliceFinderResult = method(np.zeros(1000), columns)
        assert empty.slices == [] and empty.candidates_tested == 0
    constant: SliceFinderResult = find_slices(np.ones(1000), columns)
    assert constant.slices == []  # every slice has the batch's error: none is worse


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
    got = hypergeom_sf(x, population, successes, draws)
    expected = stats.hypergeom.sf(x - 1, population, successes, draws)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-12)


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
            table = [
                [x.sum(), x.size - x.sum()],
                [errors[~inside].sum(), (~inside).sum() - errors[~inside].sum()],
            ]
            expected = stats.fisher_exact(table, alternative="greater").pvalue
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
        ({"score": "lift"}, "score"),
        ({"error_weight": 0.0}, "error_weight"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        find_slices(np.array([0.0, 1.0]), [("a", np.array([0, 1]), ["x", "y"])], **kwargs)
