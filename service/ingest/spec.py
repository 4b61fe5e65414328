"""What the client said about a batch, before its classes are resolved against the data.

The JSON envelope carries typed values (``"positive_class": 1``); query parameters
are always text (``positive_class=1``). :class:`RawSpec` keeps both as given, plus
the field names to blame, and :mod:`service.ingest.label_kind` coerces them once the
label type is known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.canonical import DEFAULT_THRESHOLD, TASKS, Task
from service.ingest.issues import Issues
from service.ingest.limits import MAX_CLASS_CHARS, MAX_MODEL_CHARS, text_issue

#: C0 controls and DEL: a model name or version is an identifier that lists and logs print
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# A class as the client wrote it: JSON scalars, or text from a query parameter.
RawClass = int | str | bool | float


@dataclass(frozen=True)
class RawSpec:
    model_name: str
    model_version: str
    task: Task
    positive_class: RawClass | None
    classes: list[RawClass] | None
    #: True when positive_class/classes are text that may stand for integers
    textual: bool
    #: where positive_class and classes came from, for issues
    positive_class_field: str = "positive_class"
    classes_field: str = "classes"
    #: binary: missing predictions are ``score >= threshold``
    threshold: float = DEFAULT_THRESHOLD


def spec_from_params(params: Mapping[str, str]) -> RawSpec:
    """Read ``model``, ``version``, ``task``, ``positive_class``, ``classes`` and ``threshold`` query
    parameters.

    Other parameters are ignored: the API may share the mapping with its own options.
    ``classes`` is comma-separated; an empty ``positive_class`` or ``classes`` means absent.
    """
    issues = Issues()
    name = _text(params.get("model"), "model", issues)
    version = _text(params.get("version"), "version", issues)
    task = _task(params.get("task"), "task", issues)
    positive = (params.get("positive_class") or "").strip() or None
    _class_text(positive, "positive_class", issues)
    classes_text = params.get("classes") or ""
    classes: list[RawClass] | None = None
    if classes_text.strip():
        parts = [part.strip() for part in classes_text.split(",")]
        if any(not part for part in parts):
            issues.add("classes", "classes is a comma-separated list of non-empty class names")
        for i, part in enumerate(parts):
            if _class_text(part, f"classes[{i}]", issues):
                break
        classes = list(parts)
    threshold = _threshold(params.get("threshold"), task, issues)
    issues.raise_if_any()
    assert name is not None and version is not None and task is not None  # each None recorded an issue
    return RawSpec(name, version, task, positive, classes, textual=True, threshold=threshold)


def spec_from_envelope(doc: Mapping[str, Any], issues: Issues) -> RawSpec | None:
    """Read the spec fields of a JSON batch envelope; ``None`` when an issue was recorded."""
    name = version = None
    model = doc.get("model")
    if not isinstance(model, dict):
        issues.add("model", 'model is required: {"name": ..., "version": ...}')
    else:
        for key in model.keys() - {"name", "version"}:
            issues.add(f"model.{key}", "unknown field; model has only name and version")
        name = _text(model.get("name"), "model.name", issues)
        raw_version = model.get("version")
        # Versions are often numbers in pipelines ("version": 7); they are stored as text.
        if isinstance(raw_version, int) and not isinstance(raw_version, bool):
            raw_version = str(raw_version)
        version = _text(raw_version, "model.version", issues)
    task = _task(doc.get("task"), "task", issues)

    positive = doc.get("positive_class")
    if positive is not None and not _is_class_value(positive):
        issues.add("positive_class", "positive_class must be a string or an integer")
    _class_text(positive, "positive_class", issues)
    classes = doc.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or not classes:
            issues.add("classes", "classes must be a non-empty array of strings or integers")
        else:
            for i, value in enumerate(classes):
                if not _is_class_value(value):
                    issues.add(f"classes[{i}]", "a class must be a string or an integer")
                    break
                if _class_text(value, f"classes[{i}]", issues):
                    break
    threshold = _threshold(doc.get("threshold"), task, issues)
    if issues or name is None or version is None or task is None:
        return None
    return RawSpec(name, version, task, positive, classes, textual=False, threshold=threshold)


def _threshold(value: object, task: str | None, issues: Issues) -> float:
    """The threshold that derives missing binary predictions from scores (query text or JSON number)."""
    if value is None or value == "":
        return DEFAULT_THRESHOLD
    number: float | None = None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None or not 0 < number < 1:
        issues.add("threshold", f"threshold must be a number strictly between 0 and 1, got {value!r}")
        return DEFAULT_THRESHOLD
    if task is not None and task != "binary":
        issues.add("threshold", "threshold applies to binary batches only (predictions = score >= threshold)")
    return number


def _is_class_value(value: object) -> bool:
    return isinstance(value, str | int) or (isinstance(value, float) and value.is_integer())


def _text(value: object, field: str, issues: Issues) -> str | None:
    """A model name or version: non-empty, at most :data:`MAX_MODEL_CHARS`, no control characters."""
    if not isinstance(value, str) or not value.strip():
        issues.add(field, f"{field} is required and must be a non-empty string")
        return None
    if text_issue(value, field, MAX_MODEL_CHARS, issues, what=field):
        return None
    control = _CONTROL.search(value)
    if control is not None:
        issues.add(field, f"{field} contains the control character {control.group()!r}; use printable text")
        return None
    return value


def _class_text(value: object, field: str, issues: Issues) -> bool:
    """A class given as text (``positive_class``, each of ``classes``) over MAX_CLASS_CHARS is an issue."""
    return text_issue(value, field, MAX_CLASS_CHARS, issues, what="class")


def _task(value: object, field: str, issues: Issues) -> Task | None:
    for task in TASKS:
        if value == task:
            return task
    shown = "missing" if value is None else repr(value)
    issues.add(field, f"unknown task {shown}; expected one of {', '.join(TASKS)}")
    return None
