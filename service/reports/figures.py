"""matplotlib figures as inline SVG: the one way every page of ours draws a plot.

A report must open with no network (no CDN, no script) and print well, so each figure is an
``<svg>`` element written into the page. Three settings make that work:

- text stays text (``svg.fonttype = "none"``): a figure is a few kilobytes instead of glyph paths,
  and its labels can be searched and read by a screen reader;
- no ``<?xml ...?>`` prologue or DOCTYPE, which are not allowed inside HTML;
- the same figure gives the same bytes (fixed ids from ``svg.hashsalt``, no date metadata), so a
  report of the same result is byte-for-byte the same.

Only the non-interactive Agg backend is used (no display needed), through the object-oriented API
(:class:`matplotlib.figure.Figure`, never ``pyplot``): figures are not registered globally, so
rendering is safe in threads and leaks nothing between requests.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib
from markupsafe import Markup

matplotlib.use("Agg")

from matplotlib.figure import Figure

#: Our colours: the verdict's three and a neutral one for everything else.
PASS, WARN, FAIL, INK, MUTED, ACCENT = "#1a7f37", "#9a6700", "#cf222e", "#1f2328", "#8c959f", "#0969da"

_STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    # user strings (slice values, model names) are drawn as they are: "$5" is not mathtext
    "text.parse_math": False,
    "svg.hashsalt": "yardstick",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d0d7de",
    "grid.linewidth": 0.6,
    "xtick.color": INK,
    "ytick.color": INK,
    "legend.frameon": False,
}

_PROLOGUE = re.compile(rb"^.*?(?=<svg)", re.DOTALL)


#: ``rc_context`` sets matplotlib's global rcParams and restores them on exit: two threads drawing
#: at once would restore each other's settings mid-figure, so drawing is one thread at a time.
_DRAWING = threading.RLock()


@contextmanager
def figure(width: float = 6.0, height: float = 3.6) -> Iterator[Figure]:
    """A new figure (inches; 6 x 3.6 fits a phone screen's width when scaled) in our style.

    Call :func:`to_svg` inside the block: the style and the drawing lock hold until it ends."""
    with _DRAWING, matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig


def to_svg(fig: Figure, *, title: str) -> str:
    """The figure as an ``<svg>`` element that scales with the page, titled for screen readers."""
    with _DRAWING, matplotlib.rc_context(_STYLE):
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Title": title})
    svg = _PROLOGUE.sub(b"", buffer.getvalue(), count=1).decode()
    # Width and height in pt fix the size; the viewBox alone lets CSS scale it to the column, up
    # to its drawn width (wider, its text would grow past the page's).
    svg = re.sub(
        r'<svg([^>]*?) width="([0-9.]+)pt" height="[^"]*"',
        r'<svg\1 role="img" style="max-width: min(100%, \2pt)"',
        svg,
        count=1,
    )
    return svg


@dataclass(frozen=True)
class Plot:
    """A figure ready for a page: its SVG (trusted HTML: matplotlib escapes the text it draws) and
    a caption that says how to read it."""

    svg: Markup
    caption: str


def plot(fig: Figure, *, title: str, caption: str) -> Plot:
    """:func:`to_svg` of ``fig`` with its caption."""
    return Plot(svg=Markup(to_svg(fig, title=title)), caption=caption)


def short(label: object, limit: int = 40) -> str:
    """A tick label cut to ``limit`` characters (the table beside the figure has the whole text)."""
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "…"
