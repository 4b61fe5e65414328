"""The report's building blocks: figures draw user strings as text, the page shell escapes, the
recalibration curves are the worker's maps, and the threshold mark sits on the curve's point."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.calibration import CalibrationScores, Recalibration
from schemas.metrics import ClassMetrics
from service.reports.figures import figure, short, to_svg
from service.reports.page import page
from service.reports.plots.calibration import recalibration_map
from service.reports.plots.classification import _nearest, per_class_bars
from service.reports.templating import number


def test_user_strings_are_text_in_the_svg_not_markup_or_mathtext() -> None:
    hostile = '$5 <b>&"x"</b>'
    svg = per_class_bars({hostile: ClassMetrics(precision=0.5, recall=0.5, f1=0.5, support=3)})
    assert svg is not None
    assert "<b>" not in svg.svg and "&lt;b&gt;" in svg.svg  # escaped by matplotlib, $ left as is
    assert "$5" in svg.svg


def test_page_escapes_its_title_and_keeps_its_body() -> None:
    html = page("<i>m</i>", "<p>body</p>")
    assert "<title>&lt;i&gt;m&lt;/i&gt;</title>" in html and "<p>body</p>" in html
    assert html.startswith("<!DOCTYPE html>") and 'name="viewport"' in html and "@media print" in html


def test_svg_scales_and_has_no_prologue() -> None:
    with figure() as fig:
        fig.add_subplot().plot([0, 1], [1, 0])
        svg = to_svg(fig, title="t")
    assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert 'role="img"' in svg and "viewBox" in svg and ' width="' not in svg.split(">", 1)[0]


def test_recalibration_curves_follow_the_reported_parameters() -> None:
    scores = CalibrationScores(ece=0, mce=0, adaptive_ece=0, brier=0, log_loss=0)
    s = np.array([0.1, 0.5, 0.9])
    platt = Recalibration(method="platt", before=scores, after=scores, parameters={"a": 2.0, "b": -1.0})
    expected = 1 / (1 + np.exp(-(2.0 * np.log(s / (1 - s)) - 1.0)))
    np.testing.assert_allclose(recalibration_map(platt, s), expected, rtol=1e-12)
    iso = Recalibration(
        method="isotonic", before=scores, after=scores, parameters={"x": [0, 1], "y": [0.2, 0.6]}
    )
    np.testing.assert_allclose(recalibration_map(iso, s), [0.24, 0.4, 0.56])
    multiclass = Recalibration(method="isotonic", before=scores, after=scores, parameters={"x.a": [0, 1]})
    assert recalibration_map(multiclass, s) is None


@pytest.mark.parametrize(
    ("thresholds", "value", "expected"),
    [([None, 0.9, 0.6, 0.5, 0.2], 0.5, 3), ([None, 0.9, 0.6, 0.4], 0.5, 2), ([None, 0.4, 0.3], 0.5, 1)],
)
def test_threshold_mark_is_the_lowest_threshold_at_or_above(
    thresholds: list[float | None], value: float, expected: int
) -> None:
    assert _nearest(thresholds, value) == expected


def test_numbers_and_labels() -> None:
    assert number(None) == "—" and number(1234) == "1,234" and number(0.123456) == "0.1235"
    assert short("x" * 50, 10) == "x" * 9 + "…" and short("abc") == "abc"
