"""The pieces of ``yardstick evaluate`` that need no server: reading the batch file, checking the
config before anything is sent, the verdict's lines and the exit status they imply."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from schemas.common import ModelRef
from schemas.gates import GateReport, GateResult
from schemas.results import EvaluationResult, PrimaryMetric, Verdict
from yardstick.frames import encode, to_arrow
from yardstick.pipeline import InputError, load_config, read_table
from yardstick.verdict import EXIT_PASS, EXIT_VERDICT_FAIL, exit_status, gate_lines, verdict_lines

TABLE = pa.table({"sample_id": ["a", "b", "c"], "label": [0, 1, 1], "score": [0.1, 0.8, 0.6]})


def write(path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(TABLE, path)
    elif path.suffix == ".csv":
        pacsv.write_csv(TABLE, path)
    elif path.name.endswith("stream.arrow"):
        with pa.ipc.new_stream(path, TABLE.schema) as writer:
            writer.write_table(TABLE)
    else:
        with pa.ipc.new_file(path, TABLE.schema) as writer:
            writer.write_table(TABLE)
    return path


@pytest.mark.parametrize("name", ["b.parquet", "b.csv", "b.arrow", "b-stream.arrow"])
def test_read_table_by_extension(tmp_path: Path, name: str) -> None:
    assert read_table(write(tmp_path / name)).equals(TABLE)


def test_read_table_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown extension"):
        read_table(tmp_path / "b.xlsx")
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "b.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="cannot read it as parquet"):
        read_table(tmp_path / "junk.parquet")


def test_config_splits_batch_options_from_sections(tmp_path: Path) -> None:
    path = tmp_path / "evaluation.yaml"
    path.write_text(
        "task: binary\npositive_class: 1\nmetrics: [roc_auc]\ngates:\n  - {metric: roc_auc, min: 0.8}\n"
    )
    config = load_config(path)
    assert config.batch == {"task": "binary", "positive_class": 1}
    assert config.sections == {"metrics": ["roc_auc"], "gates": [{"metric": "roc_auc", "min": 0.8}]}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("metrics: [roc_auc]\nbootstrapp: {samples: 100}\n", "bootstrapp"),
        ("gates:\n  - {metric: roc_auc, mn: 0.8}\n", "gates.0.mn"),
        ("- metrics\n", "mapping"),
        ("metrics: [roc_auc\n", "cannot read the config"),
        ("batch_id: b_1\n", "batch_id"),
    ],
)
def test_a_bad_config_fails_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "evaluation.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_config(path)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)  # one line on stderr


def result(status: str, gates: list[GateResult]) -> EvaluationResult:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    primary = PrimaryMetric(name="roc_auc", value=0.91, chosen_because="first in the request")
    verdict = Verdict(status=status, reasons=["reason one", "reason two"], primary_metric=primary,  # type: ignore[arg-type]
                      rows=10, labeled_rows=8, label_coverage=0.8)  # fmt: skip
    return EvaluationResult(
        job_id="j", batch_id="b", model=ModelRef(name="m", version="1"), task="binary", verdict=verdict,
        created_at=now, finished_at=now, rows=10, labeled_rows=8, evaluated_rows=8, metrics={"roc_auc": 0.91},
        gates=GateReport(passed=all(g.passed for g in gates), results=gates),
    )  # fmt: skip


GATES = [
    GateResult(metric="roc_auc", value=0.91, min=0.8, max=None, passed=True),
    GateResult(metric="accuracy", value=0.6, min=0.7, max=None, passed=False, reason="accuracy 0.6 < 0.7"),
]


@pytest.mark.parametrize(
    ("status", "code"), [("pass", EXIT_PASS), ("warn", EXIT_PASS), ("fail", EXIT_VERDICT_FAIL)]
)
def test_exit_status_follows_the_verdict(status: str, code: int) -> None:
    assert exit_status(result(status, GATES)) == code


def test_verdict_first_then_one_line_per_gate() -> None:
    doc = result("fail", GATES)
    lines = verdict_lines(doc)
    assert lines[0].startswith("VERDICT: FAIL  (roc_auc 0.9100; 8 of 10 rows labeled)")
    assert lines[-2:] == ["  - reason one", "  - reason two"]
    gates = gate_lines(doc)
    assert gates[0] == "gates: FAILED"
    assert gates[1].startswith("  ok   roc_auc (value 0.9100; min 0.8)")
    assert gates[2] == "  FAIL accuracy (value 0.6000; min 0.7): accuracy 0.6 < 0.7"


@pytest.mark.parametrize("kind", ["pandas", "polars", "pyarrow"])
@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_encode_streams_chunks_that_read_back_as_the_frame(kind: str, fmt: str) -> None:
    frame = {"pandas": TABLE.to_pandas, "polars": lambda: __import__("polars").from_arrow(TABLE),
             "pyarrow": lambda: TABLE}[kind]()  # fmt: skip
    chunks = list(encode(to_arrow(frame), fmt, chunk_rows=1))  # type: ignore[arg-type]
    assert len(chunks) > 3  # written as it goes, not as one buffer
    data = b"".join(chunks)
    back = pq.read_table(io.BytesIO(data)) if fmt == "parquet" else pa.ipc.open_stream(data).read_all()
    assert back.to_pylist() == TABLE.to_pylist()  # pandas may widen strings to large_string


def test_to_arrow_names_what_it_takes() -> None:
    with pytest.raises(TypeError, match="pandas or polars DataFrame or a pyarrow Table"):
        to_arrow([{"sample_id": "a"}])
