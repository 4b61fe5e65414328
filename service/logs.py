"""Log lines an operator can read: plain text for people, JSON lines for log shippers.

``configure_logging`` is called once per process: by ``yardstick serve`` and ``yardstick worker``
and by each worker process they spawn (``YARDSTICK_LOG_FORMAT`` travels with the settings).
Structured fields go in with ``extra=`` (``log.info("job finished", extra={"job_id": ...})``):
the JSON formatter writes each as a key of the line's object, the text formatter appends them as
``key=value`` so the same call reads well both ways. Uvicorn's access log goes through the same
formatters; its JSON lines carry the request's client, method, path, protocol and status as keys.
Standard library only, so a log line never depends on an optional package.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=`` (except
#: uvicorn's ``color_message``, its message with terminal colour codes).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}
#: Libraries whose INFO lines say nothing an operator acts on (``serve``, ``worker`` and
#: ``migrate`` print the schema revision before and after themselves).
_QUIET = ("alembic",)

ACCESS_LOGGER = "uvicorn.access"
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: what ``extra=`` set, plus an access line's request."""
    fields = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path, http version, status)
    if record.name == ACCESS_LOGGER and isinstance(record.args, tuple) and len(record.args) == 5:
        fields = dict(zip(_ACCESS_FIELDS, record.args, strict=True)) | fields
    return fields


class TextFormatter(logging.Formatter):
    """``2025-01-31 12:00:00,123 INFO yardstick.jobs: job finished job_id=j_... status=succeeded``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # the access line already says its request in its message
        fields = {} if record.name == ACCESS_LOGGER else extra_fields(record)
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # fields before a traceback, on the first line
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        return f"{head} {pairs}{newline}{rest}"


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    the record's structured fields, and ``exception`` (the formatted traceback) when there is one.
    Values JSON cannot hold are written as their ``str``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)  # a field never overwrites the four above
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when a line is emitted (as ``logging.lastResort``
    does), so a replaced stderr (a test capturing it) never leaves a stale stream behind."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging(log_format: LogFormat = "text", level: int | str = logging.INFO) -> None:
    """Send every logger's lines (ours, uvicorn's, libraries') to stderr in ``log_format``.

    Our handler on the root logger replaces one an earlier call installed and any
    ``logging.basicConfig`` handler; uvicorn's loggers are emptied so that they propagate to it
    (``uvicorn.run(..., log_config=None)`` keeps it that way)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler) or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", ACCESS_LOGGER):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
