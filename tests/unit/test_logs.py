"""Operator logs: the text and JSON formatters, the logging set-up, the settings that choose them,
and the peak-memory probe behind each job's end line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.jobs.peak_memory import peak_mib, reset_peak
from service.logs import ACCESS_LOGGER, JsonFormatter, TextFormatter, configure_logging
from service.settings import InvalidSettings, load_settings


def record(
    message: str = "job finished",
    *args: object,
    name: str = "yardstick.worker",
    level: int = logging.INFO,
    extra: dict[str, object] | None = None,
    exc: bool = False,
) -> logging.LogRecord:
    """A record as ``logger.log(level, message, *args, extra=extra, exc_info=exc)`` makes it."""
    exc_info = None
    if exc:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            exc_info = sys.exc_info()
    return logging.getLogger(name).makeRecord(name, level, __file__, 1, message, args, exc_info, extra=extra)


def test_a_json_line_is_one_object_with_the_standard_keys_and_the_extra_fields() -> None:
    rec = record(extra={"job_id": "j_1", "rows": 1000, "duration_seconds": 0.25, "path": Path("/x")})
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "yardstick.worker"
    assert entry["message"] == "job finished"
    assert entry["job_id"] == "j_1" and entry["rows"] == 1000 and entry["duration_seconds"] == 0.25
    assert entry["path"] == "/x"  # what JSON cannot hold is written as its str
    moment = datetime.fromisoformat(entry["time"])
    assert moment.utcoffset() is not None and abs(moment.timestamp() - rec.created) < 0.001


def test_a_json_line_carries_the_traceback_and_the_formatted_message() -> None:
    line = JsonFormatter().format(record("job %s failed", "j_2", level=logging.ERROR, exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "job j_2 failed" and entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback (most recent call last)")
    assert "ZeroDivisionError: division by zero" in entry["exception"]


def test_an_extra_field_cannot_overwrite_the_standard_keys() -> None:
    entry = json.loads(JsonFormatter().format(record(extra={"level": "forged", "time": "forged"})))
    assert entry["level"] == "INFO" and entry["time"] != "forged"


def test_an_access_line_names_its_request_fields() -> None:
    # what uvicorn.protocols.http logs for each request
    rec = record(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:50000", "GET", "/v1/jobs?x=1", "1.1", 404, name=ACCESS_LOGGER
    )
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["message"] == '127.0.0.1:50000 - "GET /v1/jobs?x=1 HTTP/1.1" 404'
    assert (entry["client"], entry["method"], entry["path"], entry["http_version"], entry["status"]) == (
        "127.0.0.1:50000",
        "GET",
        "/v1/jobs?x=1",
        "1.1",
        404,
    )
    # in text the message says it all once
    assert (
        TextFormatter()
        .format(rec)
        .endswith('INFO uvicorn.access: 127.0.0.1:50000 - "GET /v1/jobs?x=1 HTTP/1.1" 404')
    )


def test_text_lines_append_the_fields_as_key_value_before_a_traceback() -> None:
    rec = record(
        "job failed", level=logging.ERROR, extra={"job_id": "j_3", "error": 'batch "b" is gone'}, exc=True
    )
    first, *rest = TextFormatter().format(rec).splitlines()
    assert first.endswith('ERROR yardstick.worker: job failed job_id=j_3 error="batch \\"b\\" is gone"')
    assert rest[0].startswith("Traceback") and rest[-1] == "ZeroDivisionError: division by zero"
    plain = TextFormatter().format(record("worker started"))
    assert plain.endswith("INFO yardstick.worker: worker started")


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The logging set-up of the process, restored after the test changes it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
        for n in ("uvicorn", "uvicorn.error", ACCESS_LOGGER)
    }
    alembic_level = logging.getLogger("alembic").level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(alembic_level)
    for name, (saved, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = saved
        logging.getLogger(name).propagate = propagate


def test_configure_logging_writes_json_to_the_current_stderr_and_replaces_itself(
    root_logging: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger(ACCESS_LOGGER).addHandler(logging.NullHandler())
    logging.getLogger(ACCESS_LOGGER).propagate = False
    configure_logging("text")
    configure_logging("json", "warning")
    ours = [h for h in root_logging.handlers if type(h).__module__ == "service.logs"]
    assert len(ours) == 1 and isinstance(ours[0].formatter, JsonFormatter)
    assert root_logging.level == logging.WARNING
    logging.getLogger("yardstick.test").info("below the level")
    logging.getLogger(ACCESS_LOGGER).warning("through uvicorn's logger", extra={"job_id": "j_4"})
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["through uvicorn's logger"]
    assert json.loads(lines[0])["job_id"] == "j_4"


def test_serve_keeps_an_access_log_through_our_formatter_unless_told_not_to(
    root_logging: logging.Logger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    runs: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: runs.append(kwargs))
    monkeypatch.setenv("YARDSTICK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("YARDSTICK_LOG_FORMAT", "json")
    assert main(["serve", "--port", "1"]) == 0
    assert main(["serve", "--port", "1", "--no-access-log", "--log-level", "warning"]) == 0
    assert [(run["access_log"], run["log_level"]) for run in runs] == [(True, "info"), (False, "warning")]
    # uvicorn must not install its own handlers over ours
    assert all(run["log_config"] is None for run in runs)
    assert any(isinstance(h.formatter, JsonFormatter) for h in root_logging.handlers)
    assert logging.getLogger("alembic").level == logging.WARNING


def test_a_bad_log_format_is_a_clear_start_up_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YARDSTICK_LOG_FORMAT", "xml")
    with pytest.raises(InvalidSettings, match="YARDSTICK_LOG_FORMAT: Input should be 'text' or 'json'"):
        load_settings()
    assert main(["serve", "--port", "1"]) == 2
    assert main(["worker"]) == 2
    err = capsys.readouterr().err
    assert "yardstick serve: YARDSTICK_LOG_FORMAT" in err and "yardstick worker: YARDSTICK_LOG_FORMAT" in err
    assert "Traceback" not in err
    monkeypatch.setenv("YARDSTICK_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"


@pytest.mark.skipif(not reset_peak(), reason="the kernel keeps only the lifetime peak here")
def test_the_peak_covers_what_a_job_allocated_and_resets_between_jobs() -> None:
    mib = 1024 * 1024
    reset_peak()
    before = peak_mib()
    block = np.ones(96 * mib // 8)  # 96 MiB, every page touched
    during = peak_mib()
    assert before is not None and during is not None
    assert during - before >= 90
    del block
    assert peak_mib() == pytest.approx(during, abs=1)  # a peak stays after the memory is freed
    reset_peak()
    after = peak_mib()
    assert after is not None and after <= during - 90  # the next job starts from the current size
