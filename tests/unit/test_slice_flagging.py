"""Which slices are flagged: one adjustment over the evaluation, a minimum effect, and slices
explained by a parent or a child set aside."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from service.workers.slices import SliceEvaluator
from service.workers.slices.flagging import flag_slices, relative_gap

COUNTRIES = ["AR", "BR", "CL", "DE", "MX", "US"]
DEVICES = ["ios", "android", "web"]
METRICS = ["accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss", "brier_score"]


def fraud_like(seed: int, *, planted: bool, n: int = 50_000) -> dict[str, np.ndarray]:
    """A fraud-like batch: 6 countries, 3 devices, 14% errors; optionally one cell
    (country AR x device web) at twice the error rate."""
    rng = np.random.default_rng(seed)
    country = rng.integers(0, 6, n)
    device = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.3).astype(np.int64)
    error = np.full(n, 0.14)
    if planted:
        error[(country == 0) & (device == 2)] = 0.28
    wrong = rng.random(n) < error
    pred = np.where(wrong, 1 - y, y)
    score = np.clip(np.where(pred == 1, 0.75, 0.25) + rng.normal(0, 0.12, n), 0.001, 0.999)
    return {"country": country, "device": device, "y": y, "pred": pred, "score": score}


def flags_of(data: dict[str, np.ndarray], **options: float) -> object:
    evaluator = SliceEvaluator(
        data["y"],
        data["pred"],
        task="binary",
        n_classes=2,
        positive=1,
        scores=data["score"],
        metrics=METRICS,
        bootstrap_samples=100,
    )
    country = ("country", data["country"], COUNTRIES)
    device = ("device", data["device"], DEVICES)
    groups = [evaluator.evaluate(g)[1] for g in ([country], [device], [country, device])]
    return flag_slices(groups, **options)


def test_the_planted_cell_is_flagged_first_and_its_parents_are_explained_by_it() -> None:
    flags = flags_of(fraud_like(0, planted=True))
    assert flags.flagged, "the planted cell must be flagged"
    first = flags.flagged[0]
    assert first.conditions == {"country": "AR", "device": "web"}
    assert len(flags.flagged) <= 3
    # country AR and device web look worse only because of the cell: set aside, and said so
    explained = {tuple(e.conditions.items()): e.by for e in flags.explained}
    assert explained.get((("country", "AR"),)) == first.conditions
    assert {tuple(e["conditions"].items()) for e in first.explains} >= {(("country", "AR"),)}
    # device web (a third of the batch) is diluted under min_effect or explained too: never flagged
    assert all(f.conditions != {"device": "web"} for f in flags.flagged)
    assert all(f.conditions != {"country": "AR"} for f in flags.flagged)
    accuracy = next(m for m in first.metrics if m.metric == "accuracy")
    assert accuracy.relative_gap == pytest.approx(relative_gap("accuracy", accuracy.value, accuracy.rest))
    assert first.error_rate == pytest.approx(1 - accuracy.value)


def test_no_slice_is_flagged_without_a_planted_one_over_20_seeds() -> None:
    total = sum(len(flags_of(fraud_like(seed, planted=False)).flagged) for seed in range(100, 120))
    assert total <= 1


def test_a_parent_bad_as_a_whole_explains_its_cells() -> None:
    data = fraud_like(3, planted=False)
    rng = np.random.default_rng(4)
    bad = data["country"] == 1  # BR: every device at twice the error rate
    flip = bad & (rng.random(bad.size) < 0.165)  # 0.14 + 0.86 * 0.165 ~ 0.28
    data["pred"] = np.where(flip, 1 - data["pred"], data["pred"])
    flags = flags_of(data)
    assert flags.flagged[0].conditions == {"country": "BR"}
    assert all(f.conditions.get("country") != "BR" or len(f.conditions) == 1 for f in flags.flagged)
    explained_cells = [e for e in flags.explained if e.by == {"country": "BR"}]
    assert len(explained_cells) >= 2


def test_min_effect_keeps_significant_but_small_gaps_quiet() -> None:
    # 400k rows: a 10% relative increase of the error rate is very significant, but small
    rng = np.random.default_rng(5)
    n = 400_000
    country = rng.integers(0, 6, n)
    y = rng.integers(0, 2, n)
    error = np.where(country == 0, 0.154, 0.14)
    pred = np.where(rng.random(n) < error, 1 - y, y)
    evaluator = SliceEvaluator(y, pred, task="binary", n_classes=2, positive=1, metrics=["accuracy"])
    tests = [evaluator.evaluate([("country", country, COUNTRIES)])[1]]
    loud = flag_slices(tests, min_effect=0.0)
    quiet = flag_slices(tests)
    assert [f.conditions for f in loud.flagged] == [{"country": "AR"}]
    assert quiet.flagged == [] and quiet.significant == 1 and quiet.below_min_effect == 1


def test_one_adjustment_over_every_test_of_the_evaluation() -> None:
    data = fraud_like(6, planted=True, n=20_000)
    evaluator = SliceEvaluator(
        data["y"], data["pred"], task="binary", n_classes=2, positive=1, metrics=["accuracy", "f1"]
    )
    country = ("country", data["country"], COUNTRIES)
    device = ("device", data["device"], DEVICES)
    groups = [evaluator.evaluate(g)[1] for g in ([country], [device], [country, device])]
    flags = flag_slices(groups, min_effect=0.0)
    p = np.array([t.p_value for g in groups for t in g.tests])
    adjusted = stats.false_discovery_control(p, method="bh")
    assert flags.tests == p.size == sum(len(g.tests) for g in groups)
    worse = np.array([t.worse for g in groups for t in g.tests])
    assert flags.significant == int(np.sum((adjusted <= 0.05) & worse))
    flagged_p = sorted(m.p_adjusted for f in flags.flagged for m in f.metrics)
    for value in flagged_p:
        assert np.any(np.isclose(adjusted, value, rtol=0, atol=1e-15))


def test_relative_gap_for_scores_and_losses() -> None:
    assert relative_gap("accuracy", 0.8, 0.9) == pytest.approx(1.0)
    assert relative_gap("roc_auc", 0.85, 0.9) == pytest.approx(0.5)
    assert relative_gap("log_loss", 0.6, 0.4) == pytest.approx(0.5)
    assert relative_gap("accuracy", 0.95, 0.9) < 0
    assert relative_gap("accuracy", 0.9, 1.0) == float("inf")


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        flag_slices([], alpha=0)
    with pytest.raises(ValueError, match="min_effect"):
        flag_slices([], min_effect=float("nan"))
