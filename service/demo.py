"""``yardstick demo``: the whole flow against a running service, in a minute."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx
import numpy as np


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


def _fail(response: httpx.Response) -> int:
    print(f"error {response.status_code}: {response.text}", file=sys.stderr)
    return 1


#: the exit status when the evaluation ran but a gate failed (a CI step should stop the release)
GATE_FAILED = 2


def run_demo(url: str, *, rows: int, api_key: str | None, seed: int, min_roc_auc: float = 0.7) -> int:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        try:
            client.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            print(f"no Yardstick service at {url} ({exc}); start one with `yardstick serve`", file=sys.stderr)
            return 1
        body = {
            "model": {"name": "demo-fraud", "version": "1"},
            "task": "binary",
            "positive_class": 1,
            "columns": demo_columns(rows, seed=seed),
        }
        started = time.perf_counter()
        created = client.post("/v1/batches", json=body)
        if created.status_code != 201:
            return _fail(created)
        batch = created.json()
        print(f"batch {batch['id']}: {batch['rows']} rows posted in {time.perf_counter() - started:.2f}s")
        request = {
            "batch_id": batch["id"],
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
        queued = client.post("/v1/evaluations", json=request)
        if queued.status_code != 202:
            return _fail(queued)
        job_url = queued.headers["location"]
        deadline = time.monotonic() + 300
        while True:
            job = client.get(job_url).json()
            print(f"\rjob {job['id']}: {job['status']:<9} {job['progress'] * 100:5.1f}%", end="", flush=True)
            if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        print()
        if job["status"] != "succeeded":
            print(f"job ended {job['status']}: {job.get('error')}", file=sys.stderr)
            return 1
        result = client.get(f"{job_url}/result").json()
    print(format_summary(result))
    return 0 if result["gates"]["passed"] else GATE_FAILED


def format_verdict(result: dict[str, Any]) -> list[str]:
    """The verdict first: status, primary metric with its interval, and the reasons in order."""
    verdict = result.get("verdict")
    if not verdict:
        return []
    primary = verdict["primary_metric"]
    value = "undefined" if primary["value"] is None else f"{primary['value']:.4f}"
    interval = primary.get("interval")
    shown = f" [{interval['low']:.4f}, {interval['high']:.4f}]" if interval else ""
    lines = [
        f"\nVERDICT: {verdict['status'].upper()}  ({primary['name']} {value}{shown}; "
        f"{verdict['labeled_rows']} of {verdict['rows']} rows labeled)",
        f"  primary metric {primary['name']}: {primary['chosen_because']}",
    ]
    lines += [f"  - {reason}" for reason in verdict["reasons"]]
    return lines


def format_summary(result: dict[str, Any]) -> str:
    lines = format_verdict(result)
    lines += [
        f"\n{result['model']['name']} v{result['model']['version']} ({result['task']}), "
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
    gates = result["gates"]
    lines.append(f"gates: {'PASSED' if gates['passed'] else 'FAILED'}")
    for gate in gates["results"]:
        mark = "ok  " if gate["passed"] else "FAIL"
        lines.append(f"  {mark} {gate['metric']}" + (f": {gate['reason']}" if gate["reason"] else ""))
    return "\n".join(lines)
