"""The gate report as JUnit XML, for CI systems that show test results (one test case per gate).

.. code-block:: xml

    <testsuite name="yardstick gates: fraud-gbm 7 (job j_...)" tests="2" failures="1" ...>
      <testcase classname="yardstick.gates" name="roc_auc &gt;= 0.7 (lower_bound)" time="0">
        <failure message="roc_auc lower bound = 0.62 is below the minimum 0.7 (...)" type="gate">...
        <system-out>value=0.62 observed=0.75 interval=[0.62, 0.88] rows=10</system-out>
      </testcase>
      ...
    </testsuite>
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from schemas.gates import GateReport, GateResult
from service.jobs.gates import slice_label

CLASSNAME = "yardstick.gates"


def _num(value: float) -> str:
    return f"{value:g}"


def gate_name(gate: GateResult) -> str:
    """A readable name of the gate: ``roc_auc >= 0.7 (lower_bound)``, ``log_loss vs champion``..."""
    subject = gate.metric
    if gate.slice is not None:
        subject += f" [{slice_label(gate.slice)}]"
    parts = []
    if gate.min is not None:
        parts.append(f">= {_num(gate.min)}")
    if gate.max is not None:
        parts.append(f"<= {_num(gate.max)}")
    if gate.vs is not None:
        drop = gate.max_drop or 0.0
        parts.append(f"vs {gate.vs}" + (f" (max drop {_num(drop)})" if drop else " (not worse)"))
    name = " ".join([subject, ", ".join(parts)]) if parts else subject
    if gate.min_rows is not None:
        name += f", rows >= {gate.min_rows}"
    if gate.use != "value":
        name += f" ({gate.use})"
    return name


def _details(gate: GateResult) -> str:
    fields: list[str] = []
    if gate.value is not None:
        fields.append(f"value={_num(gate.value)}")
    if gate.observed is not None:
        fields.append(f"observed={_num(gate.observed)}")
    if gate.interval is not None:
        fields.append(f"interval=[{_num(gate.interval.low)}, {_num(gate.interval.high)}]")
    if gate.rows is not None:
        fields.append(f"rows={gate.rows}")
    if gate.baseline_value is not None:
        fields.append(f"baseline={_num(gate.baseline_value)}")
    if gate.drop is not None:
        fields.append(f"drop={_num(gate.drop)}")
    return " ".join(fields)


def render_junit(report: GateReport, *, suite: str, timestamp: str | None = None) -> bytes:
    """One ``<testsuite>`` named ``suite`` with one ``<testcase>`` per gate, as UTF-8 XML bytes."""
    failures = sum(not r.passed for r in report.results)
    root = ET.Element(
        "testsuite",
        {
            "name": suite,
            "tests": str(len(report.results)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
            "time": "0",
        },
    )
    if timestamp is not None:
        root.set("timestamp", timestamp)
    for gate in report.results:
        case = ET.SubElement(root, "testcase", {"classname": CLASSNAME, "name": gate_name(gate), "time": "0"})
        if not gate.passed:
            reason = gate.reason or "the gate failed"
            failure = ET.SubElement(case, "failure", {"message": reason, "type": "gate"})
            failure.text = reason
        details = _details(gate)
        if details:
            ET.SubElement(case, "system-out").text = details
    ET.indent(root)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def suite_name(result: dict[str, object]) -> str:
    """``yardstick gates: fraud-gbm 7 (job j_...)`` from a stored result document."""
    model = result.get("model")
    label = ""
    if isinstance(model, dict):
        label = f" {model.get('name', '')} {model.get('version', '')}".rstrip()
    return f"yardstick gates:{label} (job {result.get('job_id', '?')})"
