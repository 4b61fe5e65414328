"""Release gates on a hand-built result: bounds, interval ends, row counts, baselines, slices,
section figures; the request-time checks; the JUnit rendering."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.evaluations import EvaluationCreate
from schemas.gates import SECTION_FIGURES, Gate, GateReport
from schemas.results import EvaluationResult
from service.jobs.gates import FIGURES, check_gate, check_gates, gate_issues
from service.reports.junit import gate_name, render_junit


def baseline(name: str, **metrics: float | None) -> dict[str, Any]:
    model = {"roc_auc": 0.80, "log_loss": 0.40}
    lift = {m: None if v is None else model[m] - v for m, v in metrics.items()}
    significance = {
        m: {
            "model": model[m],
            "baseline": v,
            "lift": lift[m],
            "normalized_gain": None,
            "test": "paired_bootstrap",
            "difference_interval": None
            if v is None
            else {"low": model[m] - v - 0.05, "high": model[m] - v + 0.05},
            "verdict": "no_significant_difference",
        }
        for m, v in metrics.items()
    }
    return {
        "kind": "existing",
        "name": name,
        "metrics": metrics,
        "undefined": {m: "one class in the baseline's rows" for m, v in metrics.items() if v is None},
        "lift": lift,
        "significance": significance,
        "pairing": {"mode": "paired", "shared_rows": 10},
        "beats": None,
        "primary_metric": "roc_auc",
    }


def make_result(**overrides: Any) -> EvaluationResult:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    doc: dict[str, Any] = {
        "job_id": "j_1",
        "batch_id": "b_1",
        "model": {"name": "fraud-gbm", "version": "7"},
        "task": "binary",
        "created_at": now,
        "finished_at": now,
        "rows": 12,
        "labeled_rows": 10,
        "evaluated_rows": 10,
        "metrics": {"roc_auc": 0.80, "log_loss": 0.40, "precision": None},
        "undefined": {"precision": "nothing was predicted positive"},
        "intervals": {"roc_auc": {"low": 0.55, "high": 0.95}},
        "baselines": [baseline("champion", roc_auc=0.83, log_loss=0.35), baseline("flat", roc_auc=None)],
        "calibration": {
            "strategy": "uniform",
            "bins": 10,
            "ece": 0.08,
            "mce": 0.2,
            "adaptive_ece": 0.07,
            "ece_interval": {"low": 0.03, "high": 0.15},
            "brier": {"brier": 0.15, "reliability": 0.02, "resolution": 0.1, "uncertainty": 0.23},
            "log_loss": 0.4,
            "slope": 0.9,
            "intercept": 0.05,
        },
        "confidence": {
            "aurc": 0.12,
            "level": 0.9,
            "overconfidence_rate": 0.1,
            "underconfidence_rate": 0.3,
            "threshold": {
                "target_accuracy": 0.95,
                "threshold": 0.7,
                "coverage": 0.4,
                "accuracy": 0.96,
                "kept_rows": 4,
            },
        },
        "robustness": {
            "sampled_rows": 10,
            "calls": 3,
            "perturbation": [
                {
                    "column": "amount",
                    "noise": "gaussian",
                    "scale": 0.05,
                    "rows": 10,
                    "flip_rate": 0.1,
                    "mean_abs_score_change": 0.02,
                },
                {
                    "column": "country",
                    "noise": "swap",
                    "scale": 0.05,
                    "rows": 10,
                    "flip_rate": 0.3,
                    "mean_abs_score_change": 0.05,
                },
            ],
            "invariance": [
                {
                    "name": "gender",
                    "kind": "invariance",
                    "expect": "same",
                    "rows": 10,
                    "violations": 1,
                    "violation_rate": 0.1,
                },
            ],
        },
        "slices": {
            "groups": [
                {
                    "columns": ["country"],
                    "slices": [
                        {
                            "conditions": {"country": "AR"},
                            "n": 4,
                            "share": 0.4,
                            "minority": True,
                            "metrics": {"roc_auc": {"value": 0.6, "interval": {"low": 0.3, "high": 0.9}}},
                        },
                        {
                            "conditions": {"country": "BR"},
                            "n": 6,
                            "share": 0.6,
                            "minority": False,
                            "metrics": {"roc_auc": {"value": 0.9, "interval": {"low": 0.75, "high": 1.0}}},
                        },
                    ],
                }
            ],
            "critical": [
                {
                    "name": "new-users",
                    "where": "tenure_days < 30",
                    "n": 3,
                    "share": 0.3,
                    "metrics": {"roc_auc": {"value": 0.5, "interval": None}},
                },
            ],
        },
    }
    doc.update(overrides)
    return EvaluationResult.model_validate(doc)


def gate(**fields: Any) -> Gate:
    return Gate.model_validate(fields)


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "roc_auc", "min": math.nan}, "finite"),
        ({"metric": "roc_auc", "max": math.inf}, "finite"),
        ({"metric": "roc_auc", "min": -math.inf}, "finite"),
        ({"metric": "roc_auc", "min": 0.9, "max": 0.7}, "greater than `max`"),
        ({"metric": "roc_auc"}, "needs `min`, `max` or `vs`"),
        ({"metric": "roc_auc", "min_rows": 100}, "needs `min`, `max` or `vs`"),
        ({"metric": "roc_auc", "min": 0.7, "min_rows": 0}, "greater than or equal to 1"),
        ({"metric": "roc_auc", "vs": "champion", "max_drop": -0.1}, "greater than or equal to 0"),
        ({"metric": "roc_auc", "vs": "champion", "max_drop": math.nan}, "finite"),
        ({"metric": "roc_auc", "min": 0.7, "max_drop": 0.1}, "`max_drop` needs `vs`"),
        ({"metric": "roc_auc", "min": 0.7, "use": "median"}, "lower_bound"),
        ({"metric": "calibration.bogus", "max": 0.1}, "unknown section figure"),
        ({"metric": "calibration.ece", "max": 0.1, "slice": {"critical": "x"}}, "not a section figure"),
        ({"metric": "roc_auc", "vs": "champion", "slice": {"critical": "x"}}, "`vs` compares overall"),
        ({"metric": "calibration.ece", "vs": "champion"}, "`vs` compares overall"),
        ({"metric": "roc_auc", "min": 0.7, "slice": {}}, "exactly one of"),
        (
            {"metric": "roc_auc", "min": 0.7, "slice": {"critical": "a", "conditions": {"c": 1}}},
            "exactly one",
        ),
        ({"metric": "roc_auc", "min": 0.7, "slice": {"conditions": {}}}, "at least one column"),
        ({"metric": "roc_auc", "min": 0.7, "surprise": 1}, "Extra inputs"),
    ],
)
def test_invalid_gates_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Gate.model_validate(fields)


def test_equal_bounds_and_the_old_shape_are_valid() -> None:
    assert gate(metric="roc_auc", min=0.7, max=0.7).use == "value"
    old = gate(metric="accuracy", min=0.5)
    assert (old.max, old.min_rows, old.vs, old.max_drop, old.slice) == (None, None, None, None, None)


def test_every_documented_section_figure_is_readable() -> None:
    assert FIGURES.keys() == SECTION_FIGURES.keys()
    result = make_result()
    for name in SECTION_FIGURES:
        outcome = check_gate(gate(metric=name, min=-1e9), result)
        # every figure of the hand-built result is present except multiclass / regression ones
        expected = name not in {
            "calibration.top_label_ece",
            "calibration.classwise_ece",
            "confidence.interval_coverage",
            "confidence.interval_width",
            "robustness.directional_violation_rate",
            "robustness.pair_violation_rate",
        } and not name.startswith("latency.")  # the hand-built batch has no latency_ms column
        assert outcome.passed is expected, (name, outcome.reason)
        if not expected:
            assert outcome.reason


# -------------------------------------------------------------------------------------- outcomes


def test_the_old_shape_decides_on_the_point_estimate() -> None:
    report = check_gates(
        [
            gate(metric="roc_auc", min=0.7),
            gate(metric="log_loss", max=0.3),
            gate(metric="precision", min=0.1),
        ],
        make_result(),
    )
    assert not report.passed
    ok, high, undefined = report.results
    assert ok.passed and ok.value == ok.observed == 0.8 and ok.reason is None
    assert ok.interval is not None and ok.interval.low == 0.55 and ok.rows == 10
    assert not high.passed and high.reason == "log_loss = 0.4 is above the maximum 0.3"
    assert not undefined.passed and undefined.value is None
    assert undefined.reason == "undefined: nothing was predicted positive"


def test_lower_bound_fails_where_the_point_estimate_passes() -> None:
    point, low, high = check_gates(
        [
            gate(metric="roc_auc", min=0.7),
            gate(metric="roc_auc", min=0.7, use="lower_bound"),
            gate(metric="roc_auc", max=0.9, use="upper_bound"),
        ],
        make_result(),
    ).results
    assert point.passed
    assert not low.passed and low.value == 0.55 and low.observed == 0.8
    assert low.reason is not None and "lower bound = 0.55 is below the minimum 0.7" in low.reason
    assert "point estimate 0.8" in low.reason and "[0.55, 0.95]" in low.reason
    assert (
        not high.passed
        and high.value == 0.95
        and "upper bound = 0.95 is above the maximum 0.9" in (high.reason or "")
    )


def test_lower_bound_without_an_interval_fails_saying_what_to_add() -> None:
    outcome = check_gate(gate(metric="roc_auc", min=0.1, use="lower_bound"), make_result(intervals={}))
    assert not outcome.passed and outcome.value is None and outcome.observed == 0.8
    assert outcome.reason == "no interval for roc_auc: add a `bootstrap` section"


def test_min_rows() -> None:
    few, enough = check_gates(
        [gate(metric="roc_auc", min=0.7, min_rows=100), gate(metric="roc_auc", min=0.7, min_rows=10)],
        make_result(),
    ).results
    assert not few.passed and few.rows == 10 and few.min_rows == 100 and few.value == 0.8
    assert few.reason == "the evaluation has 10 labeled rows; the gate needs at least 100 (`min_rows`)"
    assert enough.passed
    # every failing condition is reported, rows first
    both = check_gate(gate(metric="roc_auc", min=0.9, min_rows=100), make_result())
    assert both.reason is not None and both.reason.startswith("the evaluation has 10 labeled rows")
    assert "is below the minimum 0.9" in both.reason


def test_vs_a_baseline_in_the_metric_direction() -> None:
    result = make_result()
    worse_auc, tolerated, losses, not_worse = check_gates(
        [
            gate(metric="roc_auc", vs="champion"),
            gate(metric="roc_auc", vs="champion", max_drop=0.05),
            gate(metric="log_loss", vs="champion", max_drop=0.01),
            gate(metric="log_loss", vs="champion", max_drop=0.05),
        ],
        result,
    ).results
    # roc_auc: greater is better, 0.80 against 0.83 is a drop of 0.03
    assert not worse_auc.passed and worse_auc.max_drop == 0.0
    assert worse_auc.drop == pytest.approx(0.03) and worse_auc.baseline_value == 0.83
    assert worse_auc.reason is not None and "worse than 'champion'" in worse_auc.reason
    assert tolerated.passed and tolerated.reason is None
    # log_loss: lower is better, 0.40 against 0.35 is a drop of 0.05
    assert losses.drop == pytest.approx(0.05) and not losses.passed
    assert not_worse.passed


def test_vs_with_an_interval_end_uses_the_difference_interval() -> None:
    # roc_auc lift -0.03, difference interval [-0.08, 0.02]: the worst case drop is 0.08
    low = check_gate(gate(metric="roc_auc", vs="champion", max_drop=0.05, use="lower_bound"), make_result())
    assert not low.passed and low.drop == pytest.approx(0.08)
    assert "lower bound" in (low.reason or "")
    high = check_gate(gate(metric="roc_auc", vs="champion", max_drop=0.05, use="upper_bound"), make_result())
    assert high.passed and high.drop == pytest.approx(-0.02)


def test_vs_with_bounds_checks_both() -> None:
    outcome = check_gate(gate(metric="roc_auc", min=0.85, vs="champion", max_drop=0.1), make_result())
    assert not outcome.passed and outcome.drop == pytest.approx(0.03)
    assert outcome.reason == "roc_auc = 0.8 is below the minimum 0.85"


def test_vs_an_unknown_or_undefined_baseline_fails_with_the_names() -> None:
    unknown = check_gate(gate(metric="roc_auc", vs="champ"), make_result())
    assert not unknown.passed
    assert unknown.reason == "no baseline named 'champ': the baselines are ['champion', 'flat']"
    none = check_gate(gate(metric="roc_auc", vs="champ"), make_result(baselines=[]))
    assert (
        none.reason == "no baseline named 'champ': the evaluation has no baselines; add a `baselines` section"
    )
    undefined = check_gate(gate(metric="roc_auc", vs="flat"), make_result())
    assert not undefined.passed and "one class in the baseline's rows" in (undefined.reason or "")


def test_slice_gates_read_group_and_critical_slices() -> None:
    result = make_result()
    ar, br, critical, critical_low, missing = check_gates(
        [
            gate(metric="roc_auc", min=0.7, slice={"conditions": {"country": "AR"}}),
            gate(
                metric="roc_auc",
                min=0.7,
                min_rows=5,
                use="lower_bound",
                slice={"conditions": {"country": "BR"}},
            ),
            gate(metric="roc_auc", min=0.4, min_rows=3, slice={"critical": "new-users"}),
            gate(metric="roc_auc", min=0.4, use="lower_bound", slice={"critical": "new-users"}),
            gate(metric="roc_auc", min=0.4, slice={"conditions": {"country": "UY"}}),
        ],
        result,
    ).results
    assert not ar.passed and ar.value == 0.6 and ar.rows == 4
    assert ar.reason == "roc_auc in slice country=AR = 0.6 is below the minimum 0.7"
    assert br.passed and br.value == 0.75 and br.rows == 6
    assert critical.passed and critical.rows == 3
    assert (
        not critical_low.passed
        and critical_low.reason == "no interval for roc_auc in slice critical new-users"
    )
    assert not missing.passed and "no slice has the conditions {'country': 'UY'}" in (missing.reason or "")
    few = check_gate(
        gate(metric="roc_auc", min=0.1, min_rows=5, slice={"conditions": {"country": "AR"}}), result
    )
    assert few.reason == "the slice country=AR has 4 labeled rows; the gate needs at least 5 (`min_rows`)"
    absent = check_gate(gate(metric="roc_auc", min=0.1, slice={"critical": "x"}), make_result(slices=None))
    assert absent.reason == "roc_auc in slice critical x was not computed: add a `slices` section"


def test_section_figures() -> None:
    result = make_result()
    ece, ece_low, flips, violations, coverage = check_gates(
        [
            gate(metric="calibration.ece", max=0.1),
            gate(metric="calibration.ece", max=0.1, use="upper_bound"),
            gate(metric="robustness.flip_rate", max=0.2),
            gate(metric="robustness.violation_rate", max=0.2),
            gate(metric="confidence.coverage", min=0.5),
        ],
        result,
    ).results
    assert ece.passed and ece.value == 0.08
    assert not ece_low.passed and ece_low.value == 0.15
    assert not flips.passed and flips.value == 0.3  # the worst perturbation
    assert flips.reason == "robustness.flip_rate = 0.3 is above the maximum 0.2"
    assert violations.passed and violations.value == 0.1
    assert not coverage.passed and coverage.value == 0.4
    no_interval = check_gate(gate(metric="robustness.flip_rate", max=0.5, use="upper_bound"), result)
    assert not no_interval.passed and "no interval for robustness.flip_rate" in (no_interval.reason or "")
    absent = check_gate(gate(metric="calibration.ece", max=0.1), make_result(calibration=None))
    assert absent.reason == "calibration.ece was not computed: add a `calibration` section"
    no_tests = check_gate(gate(metric="robustness.pair_violation_rate", max=0.1), result)
    assert (
        no_tests.reason
        == "robustness.pair_violation_rate: no such robustness test ran; add `robustness.pairs`"
    )


def test_no_gates_pass() -> None:
    assert check_gates([], make_result()) == GateReport(passed=True, results=[])


# ---------------------------------------------------------------------------------- request checks


def test_gate_issues_name_what_the_request_lacks() -> None:
    request = EvaluationCreate.model_validate(
        {
            "batch_id": "b",
            "gates": [
                {"metric": "roc_auc", "min": 0.7},
                {"metric": "r2", "min": 0.5},
                {"metric": "calibration.ece", "max": 0.1},
                {"metric": "roc_auc", "vs": "champion"},
                {"metric": "roc_auc", "min": 0.7, "slice": {"critical": "new-users"}},
            ],
        }
    )
    issues = gate_issues(request, "binary", {"roc_auc", "accuracy"})
    assert [i.field for i in issues] == [
        "gates[1].metric",
        "gates[2].metric",
        "gates[3].vs",
        "gates[4].slice",
    ]
    complete = EvaluationCreate.model_validate(
        {
            "batch_id": "b",
            "calibration": {},
            "baselines": {"zero_rule": True, "existing": [{"name": "champion", "batch_id": "b2"}]},
            "slices": {"columns": ["country"], "critical": [{"name": "new-users", "where": "x < 1"}]},
            "gates": [
                {"metric": "calibration.ece", "max": 0.1},
                {"metric": "roc_auc", "vs": "champion"},
                {"metric": "roc_auc", "vs": "zero_rule"},
                {"metric": "roc_auc", "vs": "human"},
                {"metric": "roc_auc", "min": 0.7, "slice": {"critical": "new-users"}},
                {"metric": "roc_auc", "min": 0.7, "slice": {"conditions": {"country": "AR"}}},
                {"metric": "roc_auc", "min": 0.7, "slice": {"critical": "old-users"}},
                {"metric": "roc_auc", "min": 0.7, "slice": {"conditions": {"amount": 1}}},
            ],
        }
    )
    issues = gate_issues(complete, "binary", {"roc_auc"})
    assert [i.field for i in issues] == [
        "gates[3].vs",
        "gates[6].slice.critical",
        "gates[7].slice.conditions",
    ]
    assert "['zero_rule', 'champion']" in issues[0].message


# ------------------------------------------------------------------------------------------ JUnit


def test_junit_has_one_test_case_per_gate_and_counts_failures() -> None:
    gates = [
        gate(metric="roc_auc", min=0.7),
        gate(metric="roc_auc", min=0.7, use="lower_bound"),
        gate(metric="log_loss", vs="champion", max_drop=0.01, min_rows=5),
        gate(metric="roc_auc", min=0.7, slice={"conditions": {"country": "AR"}}),
    ]
    report = check_gates(gates, make_result())
    xml = render_junit(
        report, suite="yardstick gates: fraud-gbm 7 (job j_1)", timestamp="2024-05-01T00:00:00Z"
    )
    assert xml.startswith(b"<?xml")
    suite = ET.fromstring(xml)
    assert suite.tag == "testsuite" and suite.get("name") == "yardstick gates: fraud-gbm 7 (job j_1)"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "3", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "roc_auc >= 0.7",
        "roc_auc >= 0.7 (lower_bound)",
        "log_loss vs champion (max drop 0.01), rows >= 5",
        "roc_auc [country=AR] >= 0.7",
    ]
    assert {c.get("classname") for c in cases} == {"yardstick.gates"}
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("message") == report.results[1].reason
    assert cases[1].findtext("system-out") == "value=0.55 observed=0.8 interval=[0.55, 0.95] rows=10"


def test_junit_escapes_and_handles_no_gates() -> None:
    empty = ET.fromstring(render_junit(GateReport(passed=True), suite='a <"b"> & c'))
    assert empty.get("name") == 'a <"b"> & c' and empty.get("tests") == "0" and not list(empty)
    named = gate_name(check_gate(gate(metric="roc_auc", vs="champion"), make_result()))
    assert named == "roc_auc vs champion (not worse)"
