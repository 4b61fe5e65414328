"""The verdict of an evaluation and the order its findings are read in.

Pure: findings, gates and section errors in, a ranked list and a :class:`~schemas.results.Verdict`
out.

Findings are ordered by severity (critical, warning, info), then by impact: the share of the
batch affected times the relative size of the problem (the slice's share times its relative
gap, the relative shortfall against a baseline, the ECE, a flip or violation rate, the share
of unlabeled rows). Ties keep the order the sections produced them in.

The status is ``fail`` when a gate failed or a finding is critical (a model significantly
worse than a baseline, no labeled row at all), ``warn`` when a finding is a warning or a
requested section could not finish, and ``pass`` otherwise. Info findings never change it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from schemas.gates import GateReport
from schemas.results import Finding, PrimaryMetric, SectionError, Verdict

_SEVERITY = {"critical": 0, "warning": 1, "info": 2}
#: findings quoted in the verdict's reasons before "and N more"
REASONS_SHOWN = 5


def rank_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Every finding with its ``rank`` (1 = read first), by severity then impact."""
    ordered = sorted(findings, key=lambda f: (_SEVERITY[f.severity], -f.impact))
    return [f.model_copy(update={"rank": i}) for i, f in enumerate(ordered, start=1)]


def decide(
    *,
    gates: GateReport,
    findings: Sequence[Finding],
    errors: Mapping[str, SectionError],
    primary: PrimaryMetric,
    rows: int,
    labeled_rows: int,
) -> Verdict:
    """The verdict from the gate report, the ranked findings (all of them, not a capped list)
    and the sections that failed."""
    failed = [g for g in gates.results if not g.passed]
    serious = [f for f in findings if f.severity != "info"]
    reasons = [f"gate failed: {g.reason or g.metric}" for g in failed]
    reasons += [f.message for f in serious[:REASONS_SHOWN]]
    if len(serious) > REASONS_SHOWN:
        reasons.append(f"and {len(serious) - REASONS_SHOWN} more findings (see `findings`)")
    reasons += [
        f"the {name} section could not finish, so this verdict does not cover it: {e.error}"
        for name, e in errors.items()
    ]
    if failed or any(f.severity == "critical" for f in findings):
        status = "fail"
    elif serious or errors:
        status = "warn"
    else:
        status = "pass"
        passed = f"all {len(gates.results)} gates passed" if gates.results else "no gate was set"
        reasons = [f"{passed} and no finding needs attention"]
    return Verdict(
        status=status,
        reasons=reasons,
        primary_metric=primary,
        rows=rows,
        labeled_rows=labeled_rows,
        label_coverage=labeled_rows / rows if rows else 0.0,
        missing_sections=list(errors),
    )
