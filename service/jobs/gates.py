"""Release gates: thresholds on result metrics that a pipeline can block a release on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from schemas.gates import Gate, GateReport, GateResult


def check_gates(
    gates: Sequence[Gate], metrics: Mapping[str, float | None], undefined: Mapping[str, str]
) -> GateReport:
    """Each gate passes when its metric is defined and inside its bounds (inclusive)."""
    results = []
    for gate in gates:
        value = metrics.get(gate.metric)
        reason: str | None = None
        if value is None:
            passed = False
            reason = undefined.get(gate.metric, f"metric {gate.metric!r} was not computed")
            reason = f"undefined: {reason}"
        else:
            below = gate.min is not None and value < gate.min
            above = gate.max is not None and value > gate.max
            passed = not (below or above)
            if below:
                reason = f"{gate.metric} = {value:.6g} is below the minimum {gate.min:.6g}"
            elif above:
                reason = f"{gate.metric} = {value:.6g} is above the maximum {gate.max:.6g}"
        results.append(
            GateResult(
                metric=gate.metric, value=value, min=gate.min, max=gate.max, passed=passed, reason=reason
            )
        )
    return GateReport(passed=all(r.passed for r in results), results=results)
