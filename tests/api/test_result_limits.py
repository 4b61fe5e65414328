"""Result size limits: a many-column cross lists at most YARDSTICK_MAX_SLICES_PER_GROUP slices and a
result at most YARDSTICK_MAX_SLICES_PER_RESULT, says exactly how many it left out, and keeps the
slices that matter (gated, flagged, then the worst)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from service.settings import Settings
from tests.api.test_evaluations import evaluate

pytestmark = pytest.mark.anyio

PER_GROUP = 40
PER_RESULT = 60
CROSS = ["c0", "c1", "c2", "c3", "c4", "c5"]
CARDINALITIES = (2, 3, 4, 5, 6, 8)  # 5760 combinations
HOT = {"c0": "v0_1", "c1": "v1_2", "c2": "v2_0", "c3": "v3_4", "c4": "v4_5", "c5": "v5_7"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        workers=0,
        poll_seconds=0.05,
        api_keys=[],
        max_slices_per_group=PER_GROUP,
        max_slices_per_result=PER_RESULT,
    )


def frame(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Errors 10% everywhere, except one 6-column combination given 400 rows and 60% errors."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        name: rng.choice([f"v{j}_{v}" for v in range(card)], n)
        for j, (name, card) in enumerate(zip(CROSS, CARDINALITIES, strict=True))
    }
    out = pd.DataFrame(data)
    hot = np.zeros(n, dtype=bool)
    hot[:400] = True
    for name, value in HOT.items():
        out.loc[hot, name] = value
    label = rng.integers(0, 2, n)
    wrong = rng.random(n) < np.where(hot, 0.6, 0.1)
    out["label"] = label
    out["prediction"] = np.where(wrong, 1 - label, label)
    out["sample_id"] = [f"s{i}" for i in range(n)]
    return out


async def test_a_large_cross_is_capped_with_exact_counts_and_keeps_what_matters(
    client: httpx.AsyncClient, run_jobs: Callable[[], int]
) -> None:
    data = frame()
    body = {
        "model": {"name": "wide", "version": "1"},
        "task": "binary",
        "positive_class": 1,
        "columns": {c: data[c].tolist() for c in data.columns},
    }
    response = await client.post("/v1/batches", json=body)
    assert response.status_code == 201, response.text
    # A gate on an ordinary combination: it must be listed, or the gate could not read it.
    sizes = data.groupby(CROSS).size()
    gated_key = sizes[sizes == 3].index[0]
    gated = dict(zip(CROSS, gated_key, strict=True))
    request = {
        "batch_id": response.json()["id"],
        "metrics": ["accuracy", "f1"],
        "slices": {"columns": ["c0"], "crosses": [CROSS, ["c0", "c1", "c2"]], "min_support": 30},
        "findings": {"max": 100},
        "gates": [{"metric": "accuracy", "min": 0.0, "slice": {"conditions": gated}}],
    }
    result = await evaluate(client, run_jobs, request)
    slices = result["slices"]

    # bounded: the uncapped result lists 5,000+ slices (several MB)
    assert len(json.dumps(result)) < 250_000
    groups = {tuple(g["columns"]): g for g in slices["groups"]}
    single, wide = groups[("c0",)], groups[tuple(CROSS)]
    nonempty = {
        ("c0",): data.groupby(["c0"]).ngroups,
        tuple(CROSS): data.groupby(CROSS).ngroups,
        ("c0", "c1", "c2"): data.groupby(["c0", "c1", "c2"]).ngroups,
    }
    assert nonempty[tuple(CROSS)] > 5000
    listed = sum(len(g["slices"]) for g in slices["groups"])
    assert listed == PER_RESULT
    assert all(len(g["slices"]) <= PER_GROUP for g in slices["groups"])
    for key, group in groups.items():
        assert group["omitted"] == nonempty[key] - len(group["slices"])
    assert slices["omitted_slices"] == sum(nonempty.values()) - PER_RESULT
    assert str(slices["omitted_slices"]) in slices["omitted_reason"]
    assert len(single["slices"]) == 2  # large slices come before minority ones

    # every flagged slice is listed, the planted one among them
    flagged = [f["details"]["conditions"] for f in result["findings"] if f["kind"] == "underperforming_slice"]
    assert HOT in flagged and len(flagged) == slices["flagging"]["flagged"]
    shown = [s["conditions"] for g in slices["groups"] for s in g["slices"]]
    assert all(conditions in shown for conditions in flagged)
    # the gated slice is listed and the gate read it
    assert gated in [s["conditions"] for s in wide["slices"]]
    assert result["gates"]["passed"] is True, result["gates"]

    # the other listed slices of the wide cross are the worst on the primary metric (accuracy)
    overall = result["metrics"]["accuracy"]
    accuracy = (data.label == data.prediction).groupby([data[c] for c in CROSS]).mean()
    listed_keys = {tuple(s["conditions"][c] for c in CROSS) for s in wide["slices"]}
    special = {tuple(c[k] for k in CROSS) for c in flagged if set(c) == set(CROSS)} | {gated_key}
    fillers = [overall - accuracy[k] for k in listed_keys - special]
    omitted = [overall - a for k, a in accuracy.items() if k not in listed_keys]
    assert fillers and min(fillers) >= max(omitted) - 1e-12
    # the listed slices have every figure, bootstrap intervals of f1 included
    for s in wide["slices"]:
        f1 = s["metrics"]["f1"]
        assert f1["value"] is None or f1["interval"] is not None, s
    hot = next(s for s in wide["slices"] if s["conditions"] == HOT)
    assert hot["n"] == sizes[tuple(HOT[c] for c in CROSS)] >= 400
    assert hot["metrics"]["f1"]["interval"] is not None
