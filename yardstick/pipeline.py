"""``yardstick evaluate FILE``: one CI step that posts a batch, evaluates it and says pass or fail.

A CI system reads three things from it: the exit status (0 pass or warn, 1 the verdict is fail,
2 the step itself broke: a bad file or config, an HTTP error, a failed job), the verdict printed
first on stdout, and the gates as JUnit XML. Progress goes to stderr, plain lines unless stderr
is a terminal, so a CI log shows one line per stage.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pyarrow as pa
import yaml

from yardstick.calls import evaluation_request
from yardstick.client import Client
from yardstick.errors import YardstickError
from yardstick.retry import RetryPolicy
from yardstick.verdict import EXIT_ERROR, exit_status, gate_lines, verdict_lines

#: config keys that describe the batch (query parameters of the upload), not the evaluation
BATCH_KEYS = ("task", "positive_class", "classes", "threshold")
READERS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "arrow", ".feather": "arrow",
           ".ipc": "arrow", ".arrows": "arrow"}  # fmt: skip


class InputError(YardstickError):
    """A file or config the step cannot use (exit 2, before anything is sent)."""


def read_table(path: Path) -> pa.Table:
    """The batch file as an Arrow table; its extension says the format."""
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise InputError(
            f"{path}: unknown extension; use .parquet, .csv or .arrow (Arrow IPC file or stream)"
        )
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if kind == "csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path)
        import pyarrow.ipc as ipc

        with pa.memory_map(str(path)) as source:
            try:
                return ipc.open_file(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                return ipc.open_stream(source).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: cannot read it as {kind}: {exc}") from exc


@dataclass
class EvaluationConfig:
    """``evaluation.yaml``: the batch's task options and the evaluation request's sections."""

    batch: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)


def load_config(path: Path | None) -> EvaluationConfig:
    """Read and check the YAML config: every section is validated as the service would, so a typo
    fails here, naming the key, before the upload."""
    if path is None:
        return EvaluationConfig()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the config: {exc}".replace("\n", " ")) from exc
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InputError(f"{path}: the config must be a mapping of evaluation sections (metrics, gates, ...)")
    batch = {key: document.pop(key) for key in BATCH_KEYS if key in document}
    if "batch_id" in document:
        raise InputError(f"{path}: batch_id: the batch is the FILE argument; remove batch_id from the config")
    try:
        evaluation_request("config-check", document)
    except YardstickError as exc:
        raise InputError(f"{path}: {exc}", problem=exc.problem) from None
    return EvaluationConfig(batch=batch, sections=document)


def evaluate_file(
    path: Path,
    *,
    model: str,
    version: str,
    url: str | None,
    api_key: str | None,
    config: Path | None = None,
    task: str | None = None,
    positive_class: str | None = None,
    junit: Path | None = None,
    report: Path | None = None,
    retries: int = 4,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Post ``path``, evaluate it as the config says, print the verdict; the exit status."""
    try:
        settings = load_config(config)
        options = settings.batch | {
            k: v for k, v in {"task": task, "positive_class": positive_class}.items() if v
        }
        if "task" not in options:
            raise InputError(
                "the task is unknown: pass --task (binary, multiclass, regression) or set it in --config"
            )
        table = read_table(path)
        with Client(url, api_key=api_key, retry=RetryPolicy(attempts=retries + 1)) as client:
            batch = client.post_batch(table, model=model, version=version, **options)
            print(f"batch {batch.id}: {batch.rows} rows, {batch.labeled_rows} labeled", file=err)
            job = client.evaluate(batch, **settings.sections)
            result = job.wait(progress=True, stream=err)
            print("\n".join([*verdict_lines(result), *gate_lines(result)]), file=out)
            if junit is not None:
                job.junit(junit)
                print(f"JUnit: {junit}", file=out)
            if report is not None:
                job.report(report)
                print(f"report: {report}", file=out)
            print(f"job {job.id}; result at {client.url}/v1/jobs/{job.id}/result", file=out)
    except YardstickError as exc:
        print(f"yardstick evaluate: {exc}", file=err)
        return EXIT_ERROR
    except OSError as exc:  # writing the JUnit or report file
        print(f"yardstick evaluate: {exc}", file=err)
        return EXIT_ERROR
    return exit_status(result)


def save_report(
    job_id: str, output: Path, *, url: str | None, api_key: str | None, err: TextIO = sys.stderr
) -> int:
    """``yardstick report JOB_ID -o FILE``."""
    try:
        with Client(url, api_key=api_key) as client:
            client.report(job_id, output)
    except (YardstickError, OSError) as exc:
        print(f"yardstick report: {exc}", file=err)
        return EXIT_ERROR
    return 0
