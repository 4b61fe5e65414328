"""The verdict as a person reads it in a terminal or a CI log, and the exit status it implies.

The verdict comes first (what to do with this model version, and why), then one line per gate;
``yardstick evaluate`` and ``yardstick demo`` both print it this way.
"""

from __future__ import annotations

from schemas.results import EvaluationResult

#: exit statuses of ``yardstick evaluate`` and ``yardstick demo``: a CI step stops the release on 1
#: and reports a broken pipeline (not a bad model) on 2
EXIT_PASS = 0
EXIT_VERDICT_FAIL = 1
EXIT_ERROR = 2


def exit_status(result: EvaluationResult) -> int:
    """1 when the verdict is fail (a gate failed, or a critical finding), else 0 (pass and warn)."""
    failed = result.verdict.status == "fail" if result.verdict else not result.gates.passed
    return EXIT_VERDICT_FAIL if failed else EXIT_PASS


def verdict_lines(result: EvaluationResult) -> list[str]:
    """Status, the primary metric with its interval, the labeled share, then the reasons in order."""
    verdict = result.verdict
    if verdict is None:
        return [f"VERDICT: {'PASS' if result.gates.passed else 'FAIL'} (gates only: no verdict stored)"]
    primary = verdict.primary_metric
    value = "undefined" if primary.value is None else f"{primary.value:.4f}"
    shown = f" [{primary.interval.low:.4f}, {primary.interval.high:.4f}]" if primary.interval else ""
    lines = [
        f"VERDICT: {verdict.status.upper()}  ({primary.name} {value}{shown}; "
        f"{verdict.labeled_rows} of {verdict.rows} rows labeled)",
        f"  primary metric {primary.name}: {primary.chosen_because}",
    ]
    return lines + [f"  - {reason}" for reason in verdict.reasons]


def gate_lines(result: EvaluationResult) -> list[str]:
    """``gates: PASSED|FAILED``, then a line per gate in request order with the number it was decided on."""
    gates = result.gates
    lines = [f"gates: {'PASSED' if gates.passed else 'FAILED'}"]
    for gate in gates.results:
        mark = "ok  " if gate.passed else "FAIL"
        value = "undefined" if gate.value is None else f"{gate.value:.4f}"
        against = [
            f"{name} {bound:g}" for name, bound in (("min", gate.min), ("max", gate.max)) if bound is not None
        ]
        if gate.vs is not None:
            base = "undefined" if gate.baseline_value is None else f"{gate.baseline_value:.4f}"
            against.append(f"vs {gate.vs} {base}, max drop {gate.max_drop or 0:g}")
        where = ""
        if gate.slice is not None:
            conditions = gate.slice.conditions or {}
            where = f" [{gate.slice.critical or ', '.join(f'{k}={v}' for k, v in conditions.items())}]"
        decided = f" ({gate.use} {value}" + (f"; {'; '.join(against)})" if against else ")")
        lines.append(f"  {mark} {gate.metric}{where}{decided}" + (f": {gate.reason}" if gate.reason else ""))
    return lines
