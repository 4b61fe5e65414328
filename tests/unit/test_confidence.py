"""Confidence worker: bins against a pandas groupby, the risk-coverage curve against direct
masks, AURC against independent references, and the target-accuracy threshold against a
brute-force search over every distinct threshold."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from schemas.calibration import ConfidenceResult
from service.workers.confidence import (
    confidence_bins,
    confidence_report,
    interval_coverage,
    risk_coverage_curve,
    row_confidence,
)

SEEDS = range(150)


def _binary_batch(rng: np.random.Generator, n: int, *, ties: bool) -> tuple[np.ndarray, ...]:
    p = rng.random(n)
    if ties:
        p = np.round(p * 10) / 10  # confidences 0.5 .. 1.0 in steps of 0.1: many ties
    y_true = (rng.random(n) < p).astype(np.int64)
    # the batch's own decision threshold, not necessarily 0.5
    y_pred = (p >= rng.choice([0.3, 0.5, 0.7])).astype(np.int64)
    return y_true, y_pred, p


def _multiclass_batch(rng: np.random.Generator, n: int, k: int, *, ties: bool) -> tuple[np.ndarray, ...]:
    s = rng.dirichlet(np.full(k, 0.7), n)
    if ties:
        s = np.round(s, 1)  # rows need not sum to 1: a top below 1/k must land in the first bin
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.7, s.argmax(axis=1), rng.integers(0, k, n))
    return y_true, y_pred, s


def _batch(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    ties = bool(seed % 2)
    if seed % 3 == 0:
        return _multiclass_batch(rng, n, int(rng.integers(3, 6)), ties=ties)
    return _binary_batch(rng, n, ties=ties)


# --------------------------------------------------------------------------- references


def _hand_confidence(scores: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The probability of the predicted class, row by row (binary scores: of code 1)."""
    if scores.ndim == 1:
        return np.array([p if c == 1 else 1 - p for p, c in zip(scores, y_pred, strict=True)])
    return np.array([row[c] for row, c in zip(scores, y_pred, strict=True)])


def _low_edge(scores: np.ndarray, y_pred: np.ndarray) -> float:
    """Bins start at 1/K unless some prediction is not the most probable class."""
    top = np.maximum(scores, 1 - scores) if scores.ndim == 1 else scores.max(axis=1)
    if (_hand_confidence(scores, y_pred) < top).any():
        return 0.0
    return 0.5 if scores.ndim == 1 else 1 / scores.shape[1]


def _reference_bins(conf: np.ndarray, correct: np.ndarray, edges: np.ndarray) -> pd.DataFrame:
    bins = edges.size - 1
    code = pd.Series(pd.cut(conf, edges, right=False, labels=False))
    code[conf >= edges[-1]] = bins - 1  # the last bin is closed
    code[conf < edges[0]] = 0
    frame = pd.DataFrame({"bin": code.astype(int), "correct": correct.astype(float), "conf": conf})
    grouped = frame.groupby("bin").agg(
        count=("correct", "size"), accuracy=("correct", "mean"), mean_confidence=("conf", "mean")
    )
    return grouped.reindex(range(bins))


def _reference_aurc_quadratic(conf: np.ndarray, wrong: np.ndarray) -> float:
    """Mean over rows of the error rate among rows at least as confident (n x n masks)."""
    kept = conf[None, :] >= conf[:, None]
    return float(np.mean((kept & wrong[None, :]).sum(axis=1) / kept.sum(axis=1)))


def _reference_aurc_unique(conf: np.ndarray, wrong: np.ndarray) -> float:
    """Per distinct confidence: kept rows and errors by reverse cumulative sums over np.unique."""
    values, inverse, counts = np.unique(conf, return_inverse=True, return_counts=True)
    errors = np.bincount(inverse, weights=wrong, minlength=values.size)
    kept = np.cumsum(counts[::-1])[::-1]
    kept_errors = np.cumsum(errors[::-1])[::-1]
    return float(np.sum(counts * kept_errors / kept) / conf.size)


def _brute_force_threshold(conf: np.ndarray, correct: np.ndarray, target: float) -> float | None:
    reaching = [t for t in np.unique(conf) if correct[conf >= t].mean() >= target]
    return float(min(reaching)) if reaching else None


# --------------------------------------------------------------------------- row confidence


def test_row_confidence_binary_is_the_larger_of_p_and_one_minus_p() -> None:
    assert row_confidence(np.array([0.0, 0.1, 0.5, 0.8, 1.0])).tolist() == [1.0, 0.9, 0.5, 0.8, 1.0]


@pytest.mark.parametrize("k", [2, 3, 12, 13, 40])
def test_row_confidence_multiclass_is_the_row_maximum(k: int) -> None:
    # k around the column-wise / row-wise switch
    s = np.random.default_rng(k).dirichlet(np.ones(k), 500)
    np.testing.assert_array_equal(row_confidence(s), s.max(axis=1))
    np.testing.assert_array_equal(row_confidence(np.asfortranarray(s)), s.max(axis=1))


@pytest.mark.parametrize(
    "scores", [np.zeros((3, 1)), np.zeros((2, 2, 2)), np.array([0.2, 1.2]), np.array([[0.5, np.nan]])]
)
def test_row_confidence_rejects_non_probabilities(scores: np.ndarray) -> None:
    with pytest.raises(ValueError, match="scores"):
        row_confidence(scores)


# --------------------------------------------------------------------------- bins


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("bins", [2, 7, 10])
def test_bins_match_a_pandas_groupby(seed: int, bins: int) -> None:
    y_true, y_pred, scores = _batch(seed)
    result = confidence_report(y_true, y_pred, scores, bins=bins)
    edges = np.linspace(_low_edge(scores, y_pred), 1.0, bins + 1)
    assert [b.low for b in result.bins] == edges[:-1].tolist()
    assert [b.high for b in result.bins] == edges[1:].tolist()

    expected = _reference_bins(_hand_confidence(scores, y_pred), y_true == y_pred, edges)
    assert [b.count for b in result.bins] == expected["count"].fillna(0).astype(int).tolist()
    for b, (_, row) in zip(result.bins, expected.iterrows(), strict=True):
        if b.count == 0:
            assert b.accuracy is None and b.mean_confidence is None
        else:
            assert b.accuracy == pytest.approx(row["accuracy"], rel=1e-12)
            assert b.mean_confidence == pytest.approx(row["mean_confidence"], rel=1e-12)


def test_a_confidence_on_an_edge_opens_its_bin_and_one_closes_the_last() -> None:
    edges = np.linspace(0.5, 1.0, 6)
    result = confidence_bins(edges, np.ones(edges.size, dtype=bool), bins=5, low=0.5)
    assert [b.count for b in result] == [1, 1, 1, 1, 2]
    assert [b.mean_confidence for b in result][:4] == edges[:4].tolist()


# --------------------------------------------------------------------------- risk-coverage


@pytest.mark.parametrize("seed", SEEDS)
def test_risk_coverage_is_monotone_in_coverage_and_matches_direct_masks(seed: int) -> None:
    y_true, y_pred, scores = _batch(seed)
    conf, wrong = _hand_confidence(scores, y_pred), y_true != y_pred
    curve = confidence_report(y_true, y_pred, scores, max_curve_points=10_000).risk_coverage

    thresholds = np.array([p.threshold for p in curve])
    coverage = np.array([p.coverage for p in curve])
    assert thresholds.tolist() == sorted(set(conf.tolist()), reverse=True)  # every distinct confidence
    assert np.all(np.diff(coverage) > 0)  # coverage grows as the threshold falls
    assert curve[0].threshold == conf.max()
    assert curve[-1].coverage == 1.0
    assert curve[-1].risk == pytest.approx(wrong.mean(), abs=1e-15)
    for point in curve:
        kept = conf >= point.threshold
        assert point.coverage == pytest.approx(kept.mean(), abs=1e-15)
        assert point.risk == pytest.approx(wrong[kept].mean(), abs=1e-15)


@pytest.mark.parametrize("max_points", [2, 3, 7, 50])
@pytest.mark.parametrize("ties", [False, True])
def test_down_sampled_curve_keeps_endpoints_monotonicity_and_aurc(max_points: int, ties: bool) -> None:
    y_true, y_pred, scores = _binary_batch(np.random.default_rng(max_points), 5_000, ties=ties)
    full = confidence_report(y_true, y_pred, scores, max_curve_points=100_000)
    thin = confidence_report(y_true, y_pred, scores, max_curve_points=max_points)

    assert len(thin.risk_coverage) <= max_points
    assert thin.risk_coverage[0] == full.risk_coverage[0]
    assert thin.risk_coverage[-1] == full.risk_coverage[-1]
    assert set(map(repr, thin.risk_coverage)) <= set(map(repr, full.risk_coverage))
    assert np.all(np.diff([p.coverage for p in thin.risk_coverage]) > 0)
    assert thin.aurc == full.aurc
    if len(full.risk_coverage) > max_points >= 7:
        # spread over coverage: no gap much wider than an even share
        gaps = np.diff([p.coverage for p in thin.risk_coverage])
        assert gaps.max() <= 2 / (max_points - 1)


def test_hand_computed_curve_with_ties_and_a_non_monotone_accuracy() -> None:
    # confidences 0.9 0.9 0.8 0.8 0.6; the second and the last row are wrong
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.6])
    y_true = np.array([1, 1, 1, 0, 0])
    y_pred = (scores >= 0.5).astype(int)
    result = confidence_report(y_true, y_pred, scores, target_accuracy=0.6)
    assert [(p.threshold, p.coverage, p.risk) for p in result.risk_coverage] == [
        (0.9, 0.4, 0.5),
        (0.8, 0.8, 0.25),
        (0.6, 1.0, 0.4),
    ]
    assert result.aurc == pytest.approx((2 * 0.5 + 2 * 0.25 + 1 * 0.4) / 5)
    # accuracy 0.5 at 0.9 misses 0.6, yet 0.6 at the lowest threshold reaches it
    lowest = result.threshold
    assert lowest is not None
    assert (lowest.threshold, lowest.coverage, lowest.kept_rows) == (0.6, 1.0, 5)
    assert lowest.accuracy == pytest.approx(0.6)
    choice = confidence_report(y_true, y_pred, scores, target_accuracy=0.75).threshold
    assert choice is not None and (choice.threshold, choice.kept_rows, choice.accuracy) == (0.8, 4, 0.75)


# --------------------------------------------------------------------------- AURC


@pytest.mark.parametrize("seed", SEEDS)
def test_aurc_matches_independent_references(seed: int) -> None:
    y_true, y_pred, scores = _batch(seed)
    conf, wrong = _hand_confidence(scores, y_pred), y_true != y_pred
    aurc = confidence_report(y_true, y_pred, scores, max_curve_points=2).aurc
    assert aurc == pytest.approx(_reference_aurc_quadratic(conf, wrong), abs=1e-12)
    assert aurc == pytest.approx(_reference_aurc_unique(conf, wrong), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_aurc_without_ties_is_the_mean_prefix_risk_of_geifman_and_el_yaniv(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y_true, y_pred, scores = _binary_batch(rng, 300, ties=False)
    conf = _hand_confidence(scores, y_pred)
    assert np.unique(conf).size == conf.size
    wrong_sorted = (y_true != y_pred)[np.argsort(-conf)]
    prefix_risks = [wrong_sorted[: i + 1].mean() for i in range(conf.size)]
    assert confidence_report(y_true, y_pred, scores).aurc == pytest.approx(np.mean(prefix_risks), abs=1e-12)


def test_report_does_not_depend_on_row_order() -> None:
    y_true, y_pred, scores = _binary_batch(np.random.default_rng(3), 2_000, ties=True)
    perm = np.random.default_rng(4).permutation(y_true.size)
    a = confidence_report(y_true, y_pred, scores, target_accuracy=0.8)
    b = confidence_report(y_true[perm], y_pred[perm], scores[perm], target_accuracy=0.8)
    assert a == b


# --------------------------------------------------------------------------- target accuracy


@pytest.mark.parametrize("seed", SEEDS)
def test_threshold_matches_brute_force_over_distinct_thresholds(seed: int) -> None:
    y_true, y_pred, scores = _batch(seed)
    conf, correct = _hand_confidence(scores, y_pred), y_true == y_pred
    rng = np.random.default_rng(10_000 + seed)
    targets = [1.0, float(correct.mean()) if correct.any() else 0.5, *rng.uniform(0.3, 1.0, 4).tolist()]
    for target in targets:
        choice = confidence_report(y_true, y_pred, scores, target_accuracy=target).threshold
        assert choice is not None and choice.target_accuracy == target
        expected = _brute_force_threshold(conf, correct, target)
        assert choice.threshold == expected
        if expected is None:
            assert (choice.coverage, choice.accuracy, choice.kept_rows) == (0.0, None, 0)
        else:
            kept = conf >= expected
            assert choice.kept_rows == kept.sum()
            assert choice.coverage == pytest.approx(kept.mean(), abs=1e-15)
            assert choice.accuracy == pytest.approx(correct[kept].mean(), abs=1e-15)
            assert choice.accuracy is not None and choice.accuracy >= target


def test_brute_force_comparison_covers_both_outcomes() -> None:
    # guards the randomized test above against only ever exercising one branch
    outcomes = set()
    for seed in SEEDS:
        y_true, y_pred, scores = _batch(seed)
        choice = confidence_report(y_true, y_pred, scores, target_accuracy=1.0).threshold
        assert choice is not None
        outcomes.add(choice.threshold is None)
    assert outcomes == {True, False}


def test_no_threshold_reaches_the_target() -> None:
    # the most confident row is wrong and every prefix stays below 0.9
    scores = np.array([0.99, 0.8, 0.7, 0.6])
    y_true = np.array([0, 1, 0, 1])
    choice = confidence_report(y_true, np.ones(4, dtype=int), scores, target_accuracy=0.9).threshold
    assert choice is not None
    assert (choice.threshold, choice.coverage, choice.accuracy, choice.kept_rows) == (None, 0.0, None, 0)


def test_target_one_keeps_only_perfect_prefixes() -> None:
    scores = np.array([0.95, 0.95, 0.9, 0.8])
    y_true = np.array([1, 1, 1, 0])
    choice = confidence_report(y_true, np.ones(4, dtype=int), scores, target_accuracy=1.0).threshold
    assert choice is not None
    assert (choice.threshold, choice.coverage, choice.accuracy, choice.kept_rows) == (0.9, 0.75, 1.0, 3)


def test_a_tie_group_is_kept_or_dropped_whole() -> None:
    # the top two rows tie: one right, one wrong, so accuracy 1.0 is unreachable
    scores = np.array([0.9, 0.9, 0.6])
    y_true, y_pred = np.array([1, 0, 1]), np.ones(3, dtype=int)
    choice = confidence_report(y_true, y_pred, scores, target_accuracy=1.0).threshold
    assert choice is not None and choice.threshold is None


# --------------------------------------------------------------------------- over/underconfidence


@pytest.mark.parametrize("seed", range(60))
@pytest.mark.parametrize("level", [0.5, 0.7, 0.9])
def test_over_and_underconfidence_match_direct_masks(seed: int, level: float) -> None:
    y_true, y_pred, scores = _batch(seed)
    conf, correct = _hand_confidence(scores, y_pred), y_true == y_pred
    result = confidence_report(y_true, y_pred, scores, level=level)
    assert result.level == level
    assert result.overconfidence_rate == np.mean(~correct & (conf >= level))
    assert result.underconfidence_rate == np.mean(correct & (conf < level))


def test_a_confidence_equal_to_the_level_counts_as_confident() -> None:
    # confidences 0.9, 0.9, 0.8, 0.8 (1 - 0.1 and 1 - 0.2 round to 0.9 and 0.8)
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    y_pred = (scores >= 0.5).astype(int)
    y_true = np.array([0, 0, 1, 1])  # wrong, right, right, wrong
    result = confidence_report(y_true, y_pred, scores, level=0.9)
    assert (result.overconfidence_rate, result.underconfidence_rate) == (0.25, 0.25)


def test_correctness_uses_the_batch_predictions_not_a_half_threshold() -> None:
    # p = 0.4 predicted positive (threshold 0.3) and truly positive: right, confidence 0.4
    result = confidence_report(np.array([1]), np.array([1]), np.array([0.4]), level=0.9)
    assert result.risk_coverage[0].risk == 0.0
    assert result.risk_coverage[0].threshold == 0.4
    assert result.underconfidence_rate == 1.0
    assert result.rows_not_most_probable == 1


def test_confidence_is_the_probability_of_an_explicit_prediction_that_is_not_the_argmax() -> None:
    """Hand computation: binary p if predicted positive else 1 - p, multiclass p[row, pred]."""
    # binary, thresholded at 0.3: rows 1 and 3 are predicted positive below 0.5
    scores = np.array([0.9, 0.35, 0.2, 0.45, 0.6])
    y_pred = np.array([1, 1, 0, 1, 0])  # the last: predicted negative above 0.5
    y_true = np.array([1, 0, 0, 1, 0])
    np.testing.assert_allclose(row_confidence(scores, y_pred), [0.9, 0.35, 0.8, 0.45, 0.4])
    result = confidence_report(y_true, y_pred, scores, bins=4, max_curve_points=100, level=0.5)
    # ascending confidences 0.35 (wrong) 0.4 (right) 0.45 (right) 0.8 (right) 0.9 (right)
    assert [(p.threshold, p.coverage) for p in result.risk_coverage] == [
        (0.9, 0.2),
        (0.8, 0.4),
        (0.45, 0.6),
        (0.4, 0.8),
        (0.35, 1.0),
    ]
    assert [p.risk for p in result.risk_coverage] == pytest.approx([0, 0, 0, 0, 0.2])
    assert result.aurc == pytest.approx(0.2 / 5)  # only the last row's threshold has risk
    assert result.rows_not_most_probable == 3
    assert [b.low for b in result.bins] == [0.0, 0.25, 0.5, 0.75]  # below 1/2: bins from 0
    assert [b.count for b in result.bins] == [0, 3, 0, 2]
    assert result.overconfidence_rate == 0.0 and result.underconfidence_rate == pytest.approx(0.4)
    # the positive class may be code 0: the scores are then its probability
    flipped = confidence_report(1 - y_true, 1 - y_pred, scores, positive=0, max_curve_points=100)
    assert flipped.risk_coverage == result.risk_coverage
    # multiclass: the prediction's own probability, not the row maximum
    probas = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    pred = np.array([1, 1, 0])
    np.testing.assert_allclose(row_confidence(probas, pred), [0.3, 0.6, 0.25])
    multi = confidence_report(np.array([1, 1, 2]), pred, probas, bins=2)
    assert multi.rows_not_most_probable == 2
    assert multi.aurc == pytest.approx(
        _reference_aurc_quadratic(np.array([0.3, 0.6, 0.25]), pred != [1, 1, 2])
    )


@pytest.mark.parametrize("seed", range(30))
def test_argmax_predictions_keep_the_top_probability_and_the_bins_from_one_over_k(seed: int) -> None:
    rng = np.random.default_rng(seed)
    if seed % 2:
        scores = rng.random(80)
        y_pred = (scores >= 0.5).astype(int)
    else:
        scores = rng.dirichlet(np.ones(4), 80)
        y_pred = scores.argmax(axis=1)
    y_true = rng.integers(0, 2 if scores.ndim == 1 else 4, 80)
    result = confidence_report(y_true, y_pred, scores, bins=5)
    np.testing.assert_array_equal(row_confidence(scores, y_pred), row_confidence(scores))
    assert result.rows_not_most_probable == 0
    assert result.bins[0].low == (0.5 if scores.ndim == 1 else 0.25)


# --------------------------------------------------------------------------- edge cases and inputs


@pytest.mark.parametrize("scores", [np.zeros(0), np.zeros((0, 3))])
def test_no_rows(scores: np.ndarray) -> None:
    empty = np.zeros(0, dtype=int)
    result = confidence_report(empty, empty, scores, bins=4, target_accuracy=0.9)
    assert [b.count for b in result.bins] == [0, 0, 0, 0]
    assert result.risk_coverage == [] and result.aurc is None
    assert result.overconfidence_rate is None and result.underconfidence_rate is None
    assert result.threshold is not None and result.threshold.threshold is None


def test_result_round_trips_through_the_wire_model() -> None:
    y_true, y_pred, scores = _multiclass_batch(np.random.default_rng(0), 300, 4, ties=True)
    result = confidence_report(y_true, y_pred, scores, target_accuracy=0.6)
    assert ConfidenceResult.model_validate_json(result.model_dump_json()) == result
    assert result.prediction_intervals is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bins": 0}, "bins"),
        ({"max_curve_points": 1}, "max_curve_points"),
        ({"target_accuracy": 0.0}, "target_accuracy"),
        ({"target_accuracy": 1.5}, "target_accuracy"),
        ({"level": math.nan}, "level"),
        ({"level": 1.2}, "level"),
    ],
)
def test_rejects_bad_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        confidence_report(np.array([0, 1]), np.array([0, 1]), np.array([0.2, 0.7]), **kwargs)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "scores", "match"),
    [
        (np.array([0, 1]), np.array([0, 1]), np.array([0.2, 1.7]), "scores"),
        (np.array([0, 1]), np.array([0, 1]), np.array([0.2, 0.7, 0.1]), "scores"),
        (np.array([0, 2]), np.array([0, 1]), np.array([0.2, 0.7]), "y_true"),
        (np.array([0, 3]), np.array([0, 1]), np.full((2, 3), 1 / 3), "y_true"),
        (np.array([0.0, 1.0]), np.array([0, 1]), np.array([0.2, 0.7]), "y_true"),
        (np.array([0, 1]), np.array([0]), np.array([0.2, 0.7]), "length"),
    ],
)
def test_rejects_bad_data(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        confidence_report(y_true, y_pred, scores)


def test_risk_coverage_curve_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="equal length"):
        risk_coverage_curve(np.array([0.5, 0.6]), np.array([True]))


# --------------------------------------------------------------------------- prediction intervals


def test_interval_coverage_counts_endpoints_as_inside() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    lower = np.array([0.0, 0.5, 2.5, 1.0, 0.0])
    upper = np.array([1.0, 1.0, 4.0, 3.0, 9.0])
    result = interval_coverage(y, lower, upper)
    assert (result.coverage, result.rows) == (0.6, 5)
    assert result.mean_width == pytest.approx(np.mean(upper - lower))


@pytest.mark.parametrize("seed", range(10))
def test_interval_coverage_matches_direct_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=500)
    center, half = rng.normal(size=500), rng.exponential(size=500)
    result = interval_coverage(y, center - half, center + half)
    assert result.coverage == np.mean(np.abs(y - center) <= half)
    assert result.mean_width == pytest.approx(np.mean(2 * half), rel=1e-12)


@pytest.mark.parametrize(
    ("y", "lower", "upper", "match"),
    [
        (np.zeros(0), np.zeros(0), np.zeros(0), "at least one"),
        (np.zeros(2), np.zeros(3), np.zeros(2), "equal length"),
        (np.array([1.0, np.nan]), np.zeros(2), np.ones(2), "finite"),
        (np.zeros(3), np.array([0.0, 2.0, 3.0]), np.ones(3), "2 of 3 rows"),
    ],
)
def test_interval_coverage_rejects_bad_intervals(
    y: np.ndarray, lower: np.ndarray, upper: np.ndarray, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        interval_coverage(y, lower, upper)
