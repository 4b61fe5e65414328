"""``yardstick demo``: the whole flow against a running service, in a minute, through the Python
client (:mod:`yardstick`), as a pipeline would run it."""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa

from yardstick import Client, RetryPolicy, YardstickError
from yardstick.errors import ServiceUnreachable
from yardstick.verdict import EXIT_ERROR, exit_status, gate_lines, verdict_lines


def demo_columns(rows: int, *, seed: int) -> dict[str, list[Any]]:
    """A fraud-like binary batch: a good model (ROC AUC about 0.85) with one blind spot, medium
    Indian payments, which it scores as if they were small, so that the evaluation has something
    to find while the model passes its gates."""
    rng = np.random.default_rng(seed)
    country = rng.choice(["BR", "DE", "IN", "US"], size=rows, p=[0.2, 0.2, 0.3, 0.3])
    amount = np.round(rng.lognormal(3.5, 1.2, size=rows), 2)
    risk = -7.2 + 2.0 * np.log1p(amount) + (country == "BR") * 0.8
    label = (rng.random(rows) < 1 / (1 + np.exp(-risk))).astype(int)
    blind = (country == "IN") & (amount > 50) & (amount < 200)
    noisy = risk + rng.normal(0, 0.3, size=rows) - 2.5 * blind
    score = np.round(1 / (1 + np.exp(-noisy)), 6)
    return {
        "sample_id": [f"s{i}" for i in range(rows)],
        "label": label.tolist(),
        "score": score.tolist(),
        "amount": amount.tolist(),
        "country": country.tolist(),
    }


def demo_request(*, seed: int, min_roc_auc: float) -> dict[str, Any]:
    """Every section, so that the demo's output shows what an evaluation reads."""
    return {
        "bootstrap": {"samples": 200, "confidence": 0.95, "seed": seed},
        "gates": [
            {"metric": "roc_auc", "min": min_roc_auc, "use": "lower_bound"},
            {"metric": "log_loss", "max": 0.6},
            {"metric": "accuracy", "vs": "zero_rule"},
        ],
        "baselines": {"random_prior": True, "zero_rule": True},
        "calibration": {"bins": 10, "recalibrate": ["isotonic"]},
        "confidence": {"target_accuracy": 0.8},
        "slices": {"columns": ["country"], "finder": {"max_conditions": 2, "top_k": 3}},
    }


def run_demo(url: str, *, rows: int, api_key: str | None, seed: int, min_roc_auc: float = 0.7) -> int:
    """Post, evaluate, wait, print the verdict first; exit 0 pass or warn, 1 fail, 2 error.

    Progress goes to stderr (a bar on a terminal, plain lines otherwise); the verdict and the
    summary to stdout."""
    # one retry only: a demo without a service should say so at once, not back off for seconds
    try:
        with Client(url, api_key=api_key, retry=RetryPolicy(attempts=2)) as client:
            started = time.perf_counter()
            table = pa.table(demo_columns(rows, seed=seed))
            batch = client.post_batch(table, model="demo-fraud", version="1", task="binary", positive_class=1)
            print(f"batch {batch.id}: {batch.rows} rows posted in {time.perf_counter() - started:.2f}s")
            started = time.perf_counter()
            job = client.evaluate(batch, **demo_request(seed=seed, min_roc_auc=min_roc_auc))
            result = job.wait(progress=True, timeout=300)
            print(f"job {job.id}: succeeded in {time.perf_counter() - started:.2f}s")
    except ServiceUnreachable as exc:
        print(f"no Yardstick service at {url} ({exc}); start one with `yardstick serve`", file=sys.stderr)
        return EXIT_ERROR
    except YardstickError as exc:
        print(f"yardstick demo: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("\n".join(["", *verdict_lines(result), ""]))
    print(format_summary(result.model_dump(mode="json")))
    print("\n".join(gate_lines(result)))
    return exit_status(result)


def format_summary(result: dict[str, Any]) -> str:
    """The sections of the result after the verdict: metrics, baselines, calibration, slices, findings."""
    lines = [
        f"{result['model']['name']} v{result['model']['version']} ({result['task']}), "
        f"{result['evaluated_rows']} labeled rows",
        f"{'metric':<22}{'value':>10}   95% interval",
    ]
    for name, value in result["metrics"].items():
        shown = "undefined" if value is None else f"{value:.4f}"
        interval = result["intervals"].get(name)
        ci = f"[{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
        lines.append(f"{name:<22}{shown:>10}   {ci}")
    for baseline in result["baselines"]:
        primary = baseline["significance"][baseline["primary_metric"]]
        verdict = {True: "beats it", False: "does NOT beat it", None: "undecided"}[baseline["beats"]]
        lines.append(
            f"baseline {baseline['name']:<13} {baseline['primary_metric']} {primary['baseline']:.4f} "
            f"(lift {primary['lift']:+.4f}, {primary['test']}): the model {verdict}"
        )
    calibration = result.get("calibration")
    if calibration:
        lines.append(f"calibration: ECE {calibration['ece']:.4f}, slope {calibration['slope']:.3f}")
        for fix in calibration["recalibration"]:
            before, after = fix["before"]["ece"], fix["after"]["ece"]
            lines.append(f"  {fix['method']} (cross-fitted): ECE {before:.4f} -> {after:.4f}")
    confidence = result.get("confidence")
    if confidence and confidence.get("threshold"):
        t = confidence["threshold"]
        if t["threshold"] is not None:
            lines.append(
                f"act on confidence >= {t['threshold']:.3f} to reach accuracy {t['target_accuracy']:g} "
                f"on {t['coverage']:.1%} of rows"
            )
    slices = result.get("slices")
    if slices:
        for group in slices["groups"]:
            worst = min(group["slices"], key=lambda s: s["metrics"]["accuracy"]["value"] or 1.0)
            lines.append(
                f"worst {'/'.join(group['columns'])} slice: {worst['conditions']} "
                f"accuracy {worst['metrics']['accuracy']['value']:.4f} (n = {worst['n']})"
            )
        if slices.get("finder") and slices["finder"]["slices"]:
            top = slices["finder"]["slices"][0]
            lines.append(
                f"slice finder's worst slice: {top['conditions']} error {top['error']:.3f} (n = {top['n']})"
            )
    findings = result["findings"]
    for finding in findings[:8]:
        lines.append(f"{finding['rank']}. [{finding['severity']}] {finding['kind']}: {finding['message']}")
    more = len(findings) - 8 + result.get("findings_omitted", 0)
    if more > 0:
        lines.append(f"(+{more} more findings in the result document)")
    return "\n".join(lines)
