"""Release gates: thresholds on a result that a pipeline can block a release on.

:func:`check_gates` is pure: it reads the :class:`~schemas.results.EvaluationResult` being built
(every section but ``gates`` filled) and decides each gate. A gate that cannot be decided (an
undefined metric, no interval for ``use: lower_bound``, an unknown baseline) fails, with a reason
that says what to add. :func:`gate_issues` is the request-time check: what can be refused with a
422 before a job is queued.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas.gates import SECTION_FIGURES, Gate, GateReport, GateResult, GateSlice
from schemas.metrics import Interval
from service.errors import FieldIssue
from service.workers.metrics import METRICS

if TYPE_CHECKING:
    from schemas.evaluations import EvaluationCreate
    from schemas.results import EvaluationResult


@dataclass(frozen=True)
class Figure:
    """What a gate reads: the point estimate, its interval and the rows behind it.

    ``missing`` says why ``observed`` is None; ``no_interval`` why ``interval`` is None.
    """

    label: str
    observed: float | None
    interval: Interval | None = None
    rows: int | None = None
    missing: str | None = None
    no_interval: str | None = None


def _num(value: float) -> str:
    return f"{value:.6g}"


def slice_label(spec: GateSlice) -> str:
    """``country=AR, tier=1`` for group slices, ``critical new-users`` for critical ones."""
    if spec.critical is not None:
        return f"critical {spec.critical}"
    return ", ".join(f"{column}={value}" for column, value in (spec.conditions or {}).items())


# ---------------------------------------------------------------------------------------- figures

Extract = Callable[["EvaluationResult"], Figure]


def _overall(metric: str, result: EvaluationResult) -> Figure:
    no_interval = f"no interval for {metric}: add a `bootstrap` section"
    if metric not in result.metrics:
        return Figure(metric, None, missing=f"metric {metric!r} was not computed")
    value = result.metrics[metric]
    missing = None
    if value is None:
        missing = "undefined: " + result.undefined.get(metric, f"metric {metric!r} is undefined on this data")
    return Figure(
        metric,
        value,
        interval=result.intervals.get(metric),
        rows=result.evaluated_rows,
        missing=missing,
        no_interval=no_interval,
    )


def _in_slice(metric: str, spec: GateSlice, result: EvaluationResult) -> Figure:
    label = f"{metric} in slice {slice_label(spec)}"
    if result.slices is None:
        error = _section_error(result, "slices")
        why = f"the `slices` section failed: {error}" if error else "add a `slices` section"
        return Figure(label, None, missing=f"{label} was not computed: {why}")
    if spec.critical is not None:
        critical = {c.name: c for c in result.slices.critical}
        found = critical.get(spec.critical)
        if found is None:
            return Figure(
                label,
                None,
                missing=f"no critical slice named {spec.critical!r}: they are {sorted(critical)}",
            )
        n, metrics = found.n, found.metrics
    else:
        match = None
        for group in result.slices.groups:
            for candidate in group.slices:
                if candidate.conditions == spec.conditions:
                    match = candidate
                    break
            if match is not None:
                break
        if match is None:
            shown = [list(g.columns) for g in result.slices.groups]
            return Figure(
                label,
                None,
                missing=f"no slice has the conditions {spec.conditions}: the sliced columns are {shown} "
                "(numeric columns are matched by their bin label, e.g. `[10, 20)`)",
            )
        n, metrics = match.n, match.metrics
    entry = metrics.get(metric)
    if entry is None:
        return Figure(label, None, rows=n, missing=f"{label} was not computed: slices have {sorted(metrics)}")
    missing = None if entry.value is not None else f"{label} is undefined ({n} rows in the slice)"
    return Figure(
        label,
        entry.value,
        interval=entry.interval,
        rows=n,
        missing=missing,
        no_interval=f"no interval for {label}",
    )


def _section_figure(
    name: str, value: float | None, interval: Interval | None = None, why: str | None = None
) -> Figure:
    missing = None
    if value is None:
        missing = why or f"{name} is undefined on this evaluation"
    no_interval = f"no interval for {name}: only `calibration.ece` has one (with a `bootstrap` section)"
    if name == "calibration.ece":
        no_interval = "no interval for calibration.ece: add a `bootstrap` section"
    return Figure(name, value, interval=interval, missing=missing, no_interval=no_interval)


def _section_error(result: EvaluationResult, section: str) -> str | None:
    """Why a requested section could not finish (``result.errors``), if it did not."""
    errors = getattr(result, "errors", None) or {}
    error = errors.get(section)
    return None if error is None else str(getattr(error, "error", error))


def _absent(name: str, section: str, result: EvaluationResult) -> Figure:
    """A section figure whose section is absent: not requested, or it failed (``result.errors``)."""
    error = _section_error(result, section)
    if error is not None:
        why = f"{name} was not computed: the `{section}` section failed: {error}"
    else:
        why = f"{name} was not computed: add a `{section}` section"
    return _section_figure(name, None, why=why)


def _calibration(name: str, read: Callable[[Any], float | None]) -> Extract:
    def extract(result: EvaluationResult) -> Figure:
        c = result.calibration
        if c is None:
            return _absent(name, "calibration", result)
        interval = c.ece_interval if name == "calibration.ece" else None
        return _section_figure(name, read(c), interval)

    return extract


def _confidence(name: str, read: Callable[[Any], float | None], why: str | None = None) -> Extract:
    def extract(result: EvaluationResult) -> Figure:
        c = result.confidence
        if c is None:
            return _absent(name, "confidence", result)
        return _section_figure(name, read(c), why=why)

    return extract


def _threshold(name: str, field: str) -> Extract:
    def extract(result: EvaluationResult) -> Figure:
        c = result.confidence
        if c is None:
            return _absent(name, "confidence", result)
        if c.threshold is None:
            why = f"{name} needs `confidence.target_accuracy` (classification)"
            return _section_figure(name, None, why=why)
        value = getattr(c.threshold, field)
        why = f"no confidence threshold reaches the target accuracy {_num(c.threshold.target_accuracy)}"
        return _section_figure(name, value, why=why)

    return extract


def _worst(name: str, sections: Sequence[str], field: str) -> Extract:
    """The highest ``field`` over the robustness tests of ``sections``."""

    def extract(result: EvaluationResult) -> Figure:
        r = result.robustness
        if r is None:
            return _absent(name, "robustness", result)
        tests = [t for s in sections for t in getattr(r, s)]
        if not tests:
            wanted = " or ".join(f"`robustness.{s}`" for s in sections)
            return _section_figure(name, None, why=f"{name}: no such robustness test ran; add {wanted}")
        values = [v for t in tests if (v := getattr(t, field)) is not None]
        why = f"{name} is undefined: no test had rows to measure it on"
        return _section_figure(name, max(values) if values else None, why=why)

    return extract


_EXPECTATIONS = ("invariance", "directional", "pairs")


def _latency(name: str) -> Extract:
    field = name.split(".", 1)[1]

    def extract(result: EvaluationResult) -> Figure:
        latency = getattr(result, "latency", None)
        if latency is None:
            why = f"{name} needs a batch with a `latency_ms` column (per-row inference latency in ms)"
            return _section_figure(name, None, why=why)
        return _section_figure(name, getattr(latency.overall, field))

    return extract


_LATENCY = ("p50", "p90", "p99", "max", "mean", "throughput_per_second")

FIGURES: dict[str, Extract] = {
    **{f"latency.{f}": _latency(f"latency.{f}") for f in _LATENCY},
    "calibration.ece": _calibration("calibration.ece", lambda c: c.ece),
    "calibration.mce": _calibration("calibration.mce", lambda c: c.mce),
    "calibration.adaptive_ece": _calibration("calibration.adaptive_ece", lambda c: c.adaptive_ece),
    "calibration.top_label_ece": _calibration("calibration.top_label_ece", lambda c: c.top_label_ece),
    "calibration.classwise_ece": _calibration("calibration.classwise_ece", lambda c: c.classwise_ece),
    "calibration.brier": _calibration("calibration.brier", lambda c: c.brier.brier),
    "calibration.brier_reliability": _calibration(
        "calibration.brier_reliability", lambda c: c.brier.reliability
    ),
    "calibration.log_loss": _calibration("calibration.log_loss", lambda c: c.log_loss),
    "calibration.slope": _calibration("calibration.slope", lambda c: c.slope),
    "calibration.intercept": _calibration("calibration.intercept", lambda c: c.intercept),
    "confidence.aurc": _confidence(
        "confidence.aurc", lambda c: c.aurc, "confidence.aurc is for classification"
    ),
    "confidence.overconfidence_rate": _confidence(
        "confidence.overconfidence_rate", lambda c: c.overconfidence_rate
    ),
    "confidence.underconfidence_rate": _confidence(
        "confidence.underconfidence_rate", lambda c: c.underconfidence_rate
    ),
    "confidence.threshold": _threshold("confidence.threshold", "threshold"),
    "confidence.coverage": _threshold("confidence.coverage", "coverage"),
    "confidence.accuracy": _threshold("confidence.accuracy", "accuracy"),
    "confidence.interval_coverage": _confidence(
        "confidence.interval_coverage",
        lambda c: c.prediction_intervals.coverage if c.prediction_intervals else None,
        "confidence.interval_coverage needs a regression batch with `lower` and `upper` columns",
    ),
    "confidence.interval_width": _confidence(
        "confidence.interval_width",
        lambda c: c.prediction_intervals.mean_width if c.prediction_intervals else None,
        "confidence.interval_width needs a regression batch with `lower` and `upper` columns",
    ),
    "robustness.flip_rate": _worst("robustness.flip_rate", ["perturbation"], "flip_rate"),
    "robustness.mean_abs_score_change": _worst(
        "robustness.mean_abs_score_change", ["perturbation"], "mean_abs_score_change"
    ),
    "robustness.violation_rate": _worst("robustness.violation_rate", _EXPECTATIONS, "violation_rate"),
    "robustness.invariance_violation_rate": _worst(
        "robustness.invariance_violation_rate", ["invariance"], "violation_rate"
    ),
    "robustness.directional_violation_rate": _worst(
        "robustness.directional_violation_rate", ["directional"], "violation_rate"
    ),
    "robustness.pair_violation_rate": _worst("robustness.pair_violation_rate", ["pairs"], "violation_rate"),
}
assert FIGURES.keys() == SECTION_FIGURES.keys()


def read_figure(gate: Gate, result: EvaluationResult) -> Figure:
    """The figure ``gate`` reads from ``result``."""
    if gate.metric in FIGURES:
        figure = FIGURES[gate.metric](result)
        # section figures rest on the evaluated rows (robustness samples its own: still labeled-row gated)
        return Figure(
            figure.label,
            figure.observed,
            interval=figure.interval,
            rows=result.evaluated_rows,
            missing=figure.missing,
            no_interval=figure.no_interval,
        )
    if gate.slice is not None:
        return _in_slice(gate.metric, gate.slice, result)
    return _overall(gate.metric, result)


# ------------------------------------------------------------------------------------------ gates


def _bound_failure(gate: Gate, figure: Figure, value: float) -> str | None:
    """Why ``value`` is outside the gate's bounds, or None."""
    context = ""
    if gate.use == "value":
        subject = f"{figure.label} = {_num(value)}"
    else:
        assert figure.interval is not None and figure.observed is not None
        end = "lower" if gate.use == "lower_bound" else "upper"
        subject = f"{figure.label} {end} bound = {_num(value)}"
        context = (
            f" (point estimate {_num(figure.observed)}, "
            f"interval [{_num(figure.interval.low)}, {_num(figure.interval.high)}])"
        )
    if gate.min is not None and value < gate.min:
        failure = f"{subject} is below the minimum {_num(gate.min)}"
    elif gate.max is not None and value > gate.max:
        failure = f"{subject} is above the maximum {_num(gate.max)}"
    else:
        return None
    return failure + context


@dataclass
class _Comparison:
    baseline_value: float | None = None
    drop: float | None = None
    failure: str | None = None


def _against_baseline(gate: Gate, figure: Figure, result: EvaluationResult, max_drop: float) -> _Comparison:
    assert gate.vs is not None
    metric = gate.metric
    baselines = {b.name: b for b in result.baselines}
    baseline = baselines.get(gate.vs)
    if baseline is None:
        error = _section_error(result, "baselines")
        if error is not None:
            why = f"the `baselines` section failed: {error}"
        elif not baselines:
            why = "the evaluation has no baselines; add a `baselines` section"
        else:
            why = f"the baselines are {sorted(baselines)}"
        return _Comparison(failure=f"no baseline named {gate.vs!r}: {why}")
    out = _Comparison(baseline_value=baseline.metrics.get(metric))
    info = METRICS.get(metric)
    if info is None:
        out.failure = (
            f"{metric} has no known direction (greater or lower is better) to compare with {gate.vs!r}"
        )
        return out
    if figure.observed is None:
        return out  # the gate already fails with why the metric is undefined
    if out.baseline_value is None:
        why = baseline.undefined.get(metric, "not computed")
        out.failure = (
            f"{metric} cannot be compared with {gate.vs!r}: the baseline's value is undefined: {why}"
        )
        return out
    comparison = baseline.significance.get(metric)
    context = f"{_num(figure.observed)} against {_num(out.baseline_value)}"
    if gate.use == "value":
        lift = baseline.lift.get(metric)
        if lift is None:
            lift = figure.observed - out.baseline_value
    else:
        interval = None if comparison is None else comparison.difference_interval
        if interval is None:
            out.failure = (
                f"no interval for the difference of {metric} against {gate.vs!r}: "
                "the baseline panel computes them for paired or unpaired batches, not closed-form baselines"
            )
            return out
        lift = interval.low if gate.use == "lower_bound" else interval.high
        end = "lower" if gate.use == "lower_bound" else "upper"
        context += (
            f"; model - baseline {end} bound {_num(lift)} of [{_num(interval.low)}, {_num(interval.high)}]"
        )
    out.drop = -lift if info.greater_is_better else lift
    # the drop is a difference: 0.40 - 0.35 is 0.05000000000000002, which max_drop 0.05 allows
    if out.drop > max_drop and not math.isclose(out.drop, max_drop, rel_tol=1e-9, abs_tol=1e-12):
        out.failure = (
            f"{metric} is {_num(out.drop)} worse than {gate.vs!r} ({context}); "
            f"the gate allows a drop of at most {_num(max_drop)}"
        )
    return out


def check_gate(gate: Gate, result: EvaluationResult) -> GateResult:
    """Decide one gate on ``result``; every condition that fails adds to the reason."""
    figure = read_figure(gate, result)
    failures: list[str] = []
    if gate.min_rows is not None and (figure.rows is None or figure.rows < gate.min_rows):
        where = f"the slice {slice_label(gate.slice)} has" if gate.slice is not None else "the evaluation has"
        rows = "no" if figure.rows is None else str(figure.rows)
        failures.append(f"{where} {rows} labeled rows; the gate needs at least {gate.min_rows} (`min_rows`)")
    bounded = gate.min is not None or gate.max is not None
    value: float | None = None
    if figure.observed is None:
        failures.append(figure.missing or f"{figure.label} is undefined")
    elif gate.use == "value":
        value = figure.observed
    elif figure.interval is not None:
        value = figure.interval.low if gate.use == "lower_bound" else figure.interval.high
    elif bounded:
        failures.append(figure.no_interval or f"no interval for {figure.label}")
    if bounded and value is not None and (failure := _bound_failure(gate, figure, value)) is not None:
        failures.append(failure)
    max_drop = None
    comparison = _Comparison()
    if gate.vs is not None:
        max_drop = gate.max_drop if gate.max_drop is not None else 0.0
        comparison = _against_baseline(gate, figure, result, max_drop)
        if comparison.failure is not None:
            failures.append(comparison.failure)
    return GateResult(
        metric=gate.metric,
        slice=gate.slice,
        use=gate.use,
        value=value,
        observed=figure.observed,
        interval=figure.interval,
        min=gate.min,
        max=gate.max,
        min_rows=gate.min_rows,
        rows=figure.rows,
        vs=gate.vs,
        baseline_value=comparison.baseline_value,
        drop=comparison.drop,
        max_drop=max_drop,
        passed=not failures,
        reason="; ".join(failures) if failures else None,
    )


def check_gates(gates: Sequence[Gate], result: EvaluationResult) -> GateReport:
    """Each gate passes when every condition it sets holds on ``result`` (bounds inclusive)."""
    results = [check_gate(gate, result) for gate in gates]
    return GateReport(passed=all(r.passed for r in results), results=results)


# -------------------------------------------------------------------------------- request checks


def baseline_names(request: EvaluationCreate, task: str) -> list[str]:
    """The names the baselines get in the result, as :mod:`service.jobs.baselines` gives them."""
    baselines = request.baselines
    if baselines is None:
        return []
    names = [
        f"random_{s}"
        for s, flag in (("uniform", baselines.random_uniform), ("prior", baselines.random_prior))
        if flag
    ]
    if baselines.zero_rule:
        names += ["zero_rule", "zero_rule (median)"] if task == "regression" else ["zero_rule"]
    names += [h.name for h in baselines.heuristics]
    names += ["human"] if baselines.human is not None else []
    names += [e.name for e in baselines.existing]
    return names


def gate_issues(request: EvaluationCreate, task: str, computed: Collection[str]) -> list[FieldIssue]:
    """What is wrong with the request's gates before the job runs: a metric this evaluation does
    not compute, a section, slice or baseline the request does not ask for.

    ``computed``: the metric names the evaluation computes (the requested ones or the defaults).
    """
    issues: list[FieldIssue] = []
    for i, gate in enumerate(request.gates or []):
        where = f"gates[{i}]"
        if gate.metric in SECTION_FIGURES:
            section = gate.metric.split(".", 1)[0]
            # latency comes with the batch (its `latency_ms` column), not from a request section
            if section != "latency" and getattr(request, section) is None:
                issues.append(
                    FieldIssue(
                        f"{where}.metric", f"{gate.metric} needs the `{section}` section in this request"
                    )
                )
        elif gate.metric not in computed:
            issues.append(
                FieldIssue(
                    f"{where}.metric",
                    f"{gate.metric!r} is not among the metrics this evaluation computes: {sorted(computed)}",
                )
            )
        if gate.slice is not None:
            issues += _slice_issues(request, gate.slice, f"{where}.slice")
        if gate.vs is not None:
            names = baseline_names(request, task)
            if gate.vs not in names:
                why = f"the requested baselines are {names}" if names else "add a `baselines` section"
                issues.append(FieldIssue(f"{where}.vs", f"no baseline named {gate.vs!r}: {why}"))
    return issues


def _slice_issues(request: EvaluationCreate, spec: GateSlice, where: str) -> list[FieldIssue]:
    slices = request.slices
    if slices is None:
        return [FieldIssue(where, "a slice gate needs the `slices` section in this request")]
    if spec.critical is not None:
        names = [c.name for c in slices.critical]
        if spec.critical not in names:
            return [
                FieldIssue(
                    f"{where}.critical", f"no critical slice named {spec.critical!r}: they are {names}"
                )
            ]
        return []
    groups = [sorted([c]) for c in slices.columns] + [sorted(cross) for cross in slices.crosses]
    if sorted(spec.conditions or {}) not in groups:
        return [
            FieldIssue(
                f"{where}.conditions",
                f"the conditions' columns {sorted(spec.conditions or {})} are not a sliced column or cross: "
                f"{groups}",
            )
        ]
    return []
