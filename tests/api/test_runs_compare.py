"""``POST /v1/runs/compare`` on loss curves of a real data-parallel SGD simulation.

tests/sgd_simulation.py trains logistic regression with 8 simulated workers, synchronously and
asynchronously, on dense and on sparse features, four seeds each. Its curves are logged through
the API, then compared; the comparison must find what the simulation shows, computed here from
the simulation's own arrays: async needs more steps to the target, and the gap shrinks on
sparse features.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

from tests.sgd_simulation import Curve, Problem, train

pytestmark = pytest.mark.anyio

SEEDS = range(4)
#: (features, columns, learning rate, steps): dense and sparse problems that both converge.
SETTINGS = {"dense": (1.0, 50, 0.5, 400), "sparse": (0.05, 200, 1.0, 800)}


def _target(problem: Problem) -> float:
    """20% of the way from the starting loss (all-zero weights) to the optimum's."""
    columns = problem.features.shape[1]
    optimum = LogisticRegression(C=1e6, fit_intercept=False, max_iter=5000).fit(
        problem.features, problem.labels
    )
    start, best = problem.loss(np.zeros(columns)), problem.loss(optimum.coef_[0])
    return best + 0.2 * (start - best)


def _simulate(kind: str) -> tuple[float, dict[str, list[Curve]]]:
    density, columns, rate, steps = SETTINGS[kind]
    problem = Problem.generate(rows=2000, columns=columns, density=density, seed=0)
    curves = {
        mode: [train(problem, mode, learning_rate=rate, steps=steps, seed=seed) for seed in SEEDS]  # type: ignore[arg-type]
        for mode in ("sync", "async")
    }
    return _target(problem), curves


def _steps_to_target(curve: Curve, target: float) -> float:
    """The first logged step where the smoothed loss (pandas' EMA, as the API documents) is at
    or below the target."""
    smoothed = pd.Series(curve.losses).ewm(alpha=0.4, adjust=True).mean().to_numpy()
    hits = np.flatnonzero(smoothed <= target)
    return float(curve.steps[hits[0]]) if len(hits) else np.inf


async def _log(client: httpx.AsyncClient, kind: str, mode: str, seed: int, curve: Curve) -> str:
    run = await client.post(
        "/v1/runs",
        json={
            "model": {"name": f"logreg-{kind}", "version": "1"},
            "name": f"{mode}-{seed}",
            "params": {"workers": 8, "batch": 16, "lr": SETTINGS[kind][2]},
            "tags": {"sync": str(mode == "sync").lower(), "seed": str(seed)},
        },
    )
    run_id: str = run.json()["id"]
    t0 = 1_700_000_000.0
    points: list[dict[str, Any]] = [
        {"name": "loss", "step": s, "value": v, "timestamp": t0 + sec, "staleness": st}
        for s, v, sec, st in zip(curve.steps, curve.losses, curve.seconds, curve.staleness, strict=True)
    ]
    logged = await client.post(f"/v1/runs/{run_id}/metrics", json={"points": points})
    assert logged.json() == {"accepted": len(points), "unchanged": 0}
    return run_id


@pytest.mark.parametrize("kind", ["dense", "sparse"])
async def test_the_comparison_finds_what_the_simulation_shows(client: httpx.AsyncClient, kind: str) -> None:
    target, curves = _simulate(kind)
    run_ids = {
        mode: [await _log(client, kind, mode, s, c) for s, c in zip(SEEDS, runs, strict=True)]
        for mode, runs in curves.items()
    }
    response = await client.post(
        "/v1/runs/compare",
        json={
            "run_ids": run_ids["sync"] + run_ids["async"],
            "metric": "loss",
            "target": target,
            "direction": "min",
            "group_by": "sync",
        },
    )
    assert response.status_code == 200, response.text
    comparison = response.json()

    expected = {mode: [_steps_to_target(c, target) for c in runs] for mode, runs in curves.items()}
    by_id = {r["run_id"]: r for r in comparison["runs"]}
    for mode in ("sync", "async"):
        for run_id, curve, steps in zip(run_ids[mode], curves[mode], expected[mode], strict=True):
            run = by_id[run_id]
            assert run["group"] == str(mode == "sync").lower()
            assert (run["steps_to_target"] if run["reached"] else np.inf) == steps
            if run["reached"]:
                at = curve.steps.index(run["steps_to_target"])
                assert run["time_to_target_seconds"] == pytest.approx(curve.seconds[at] - curve.seconds[0])
            assert run["best"] == min(curve.losses) and run["final"] == curve.losses[-1]
            if mode == "async":
                assert run["staleness"]["max"] == max(curve.staleness)
                assert run["staleness"]["mean"] == pytest.approx(np.mean(curve.staleness))
            else:
                assert run["staleness"] == {"mean": 0.0, "max": 0}

    # groups sorted by tag value: "false" (async) first, then "true" (sync)
    asynchronous, synchronous = comparison["groups"]
    assert (asynchronous["key"], synchronous["key"]) == ("false", "true")
    assert synchronous["steps_to_target"]["median"] == np.median(expected["sync"])
    assert synchronous["p_value_vs_first"] == pytest.approx(
        stats.mannwhitneyu(expected["async"], expected["sync"], alternative="two-sided").pvalue
    )
    # what the simulation shows: async needs more steps than sync on every seed
    assert min(expected["async"]) > max(expected["sync"])
    assert asynchronous["steps_to_target"]["median"] > synchronous["steps_to_target"]["median"]


async def test_async_falls_behind_less_on_sparse_features(client: httpx.AsyncClient) -> None:
    ratios = {}
    for kind in ("dense", "sparse"):
        target, curves = _simulate(kind)
        ids = [
            await _log(client, kind, mode, s, c)
            for mode, runs in curves.items()
            for s, c in zip(SEEDS, runs, strict=True)
        ]
        comparison = (
            await client.post(
                "/v1/runs/compare",
                json={"run_ids": ids, "metric": "loss", "target": target, "group_by": "sync"},
            )
        ).json()
        medians = {g["key"]: g["steps_to_target"]["median"] for g in comparison["groups"]}
        ratios[kind] = medians["false"] / medians["true"]
    assert ratios["dense"] > 2.0 > 1.5 > ratios["sparse"] > 1.0, ratios


async def test_compare_refuses_unknown_runs_and_runs_without_the_metric(client: httpx.AsyncClient) -> None:
    run = (await client.post("/v1/runs", json={"model": {"name": "m", "version": "1"}})).json()
    missing = await client.post("/v1/runs/compare", json={"run_ids": ["r_nope"], "metric": "loss"})
    assert missing.status_code == 404 and "r_nope" in missing.text
    empty = await client.post("/v1/runs/compare", json={"run_ids": [run["id"]], "metric": "loss"})
    assert empty.status_code == 422 and "run_ids[0]" in empty.text
