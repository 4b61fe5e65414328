"""The Jinja2 environment every page of ours renders with: templates in ``templates/``, autoescaped.

Autoescaping is on for every template, so a model name, a slice value or a gate's reason is
escaped wherever a template prints it; only what we mark as :class:`markupsafe.Markup` (the SVG of
a matplotlib figure, a rendered page body) goes in as HTML. Strict undefined: a misspelt name is an
error in the tests, not an empty cell in a report.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


def number(value: float | int | None, digits: int = 4) -> str:
    """A figure as a report prints it: 4 significant digits, an em dash when undefined."""
    if value is None:
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}%}"


def cell(value: object) -> str:
    """Any JSON value in a table cell: an em dash for null."""
    return "—" if value is None else str(value)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("service.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = number
    env.filters["percent"] = percent
    env.filters["cell"] = cell
    return env


def render(template: str, **context: Any) -> str:
    """``templates/<template>`` rendered with ``context``."""
    return environment().get_template(template).render(**context)


def stylesheet() -> str:
    """The one stylesheet, inlined into every page (a page loads nothing)."""
    return environment().get_template("report.css").render()
