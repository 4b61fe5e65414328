"""The HTML shell every page of ours shares: one self-contained document, no network at view time.

Owned by the report renderer; the model page uses it too. ``page(title, body)`` puts body HTML
(rendered by the caller from its own autoescaped template) into ``templates/page.html`` with the
inline stylesheet ``templates/report.css`` (readable on a phone and printed).
"""

from __future__ import annotations

from markupsafe import Markup

from service.reports.templating import render, stylesheet


def page(title: str, body: str) -> str:
    """A whole HTML document around ``body`` (already HTML); ``title`` is escaped."""
    return render("page.html", title=title, body=Markup(body), css=Markup(stylesheet()))
