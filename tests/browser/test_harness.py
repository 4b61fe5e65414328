"""The browser harness itself: it must see what the page tests rely on it to see.

Each check is proved on a page that fails it (a blank figure, a console error, a request out) next
to one that passes, so a harness that silently saw nothing would fail here first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2 import Environment

from service.reports.figures import figure, to_svg
from tests.browser.conftest import OpenPage

pytestmark = pytest.mark.browser

# A test page, not a product one: two figures from matplotlib, and whatever extra the case adds.
_TEMPLATE = Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html><head><title>{{ title }}</title></head><body>"
    "<figure>{{ drawn | safe }}</figure><figure>{{ empty | safe }}</figure>{{ extra | safe }}"
    "</body></html>"
)


def write_page(tmp_path: Path, name: str, extra: str = "") -> str:
    with figure() as fig:
        fig.add_subplot().plot([0, 1, 2], [0, 1, 0.5])
        drawn = to_svg(fig, title="drawn")
    with figure() as fig:
        empty = to_svg(fig, title="empty")
    path = tmp_path / f"{name}.html"
    path.write_text(_TEMPLATE.render(title=name, drawn=drawn, empty=empty, extra=extra))
    return path.as_uri()


def test_a_drawn_figure_has_ink_and_an_empty_one_is_blank(open_page: OpenPage, tmp_path: Path) -> None:
    check = open_page(write_page(tmp_path, "figures"), "figures.png")
    assert check.title == "figures"
    assert check.figures == 2
    assert check.blank_figures == [1]
    assert check.console_errors == []
    assert check.other_requests == []
    assert check.screenshot is not None and check.screenshot.stat().st_size > 0


def test_console_errors_and_uncaught_exceptions_are_recorded(open_page: OpenPage, tmp_path: Path) -> None:
    extra = "<script>console.error('boom'); console.log('fine'); throw new Error('uncaught one');</script>"
    check = open_page(write_page(tmp_path, "errors", extra), "errors.png")
    assert "boom" in check.console_errors
    assert any("uncaught one" in error for error in check.console_errors)
    assert not any("fine" in error for error in check.console_errors)


def test_a_request_leaving_the_page_is_recorded(open_page: OpenPage, tmp_path: Path) -> None:
    extra = '<img src="http://127.0.0.1:9/pixel.png" alt="">'
    check = open_page(write_page(tmp_path, "requests", extra), "requests.png")
    assert "http://127.0.0.1:9/pixel.png" in check.other_requests
