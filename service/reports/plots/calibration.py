"""Calibration and confidence: the reliability diagram with its histogram, the risk-coverage curve."""

from __future__ import annotations

import numpy as np

from schemas.calibration import ConfidenceResult, Recalibration, ReliabilityDiagram
from service.reports.figures import ACCENT, FAIL, INK, MUTED, PASS, WARN, Plot, figure, plot
from service.workers.calibration.recalibration import apply_recalibration

_RECALIBRATED = {"platt": PASS, "isotonic": WARN, "temperature": FAIL}


def recalibration_map(method: Recalibration, s: np.ndarray) -> np.ndarray | None:
    """The fitted map from a binary score to its recalibrated probability, from the reported
    parameters (None when they do not describe a binary map)."""
    try:
        return apply_recalibration(s, method.method, method.parameters)
    except (KeyError, ValueError):
        return None


def reliability(
    diagram: ReliabilityDiagram, *, recalibration: list[Recalibration], what: str = "score"
) -> Plot | None:
    """Observed frequency against mean score per bin, the recalibration maps, and the histogram."""
    bins = [
        b for b in diagram.bins if b.count > 0 and b.mean_predicted is not None and b.observed is not None
    ]
    if not bins:
        return None
    outcome = "labeled positive" if what == "score" else "the predicted class was right"
    with figure(height=4.6) as fig:
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        top.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="perfectly calibrated")
        top.plot(
            [b.mean_predicted for b in bins],
            [b.observed for b in bins],
            "o-",
            color=ACCENT,
            linewidth=1.8,
            label="model",
        )
        grid = np.linspace(0, 1, 201)
        for method in recalibration:
            mapped = recalibration_map(method, grid)
            if mapped is not None:
                top.plot(
                    grid,
                    mapped,
                    color=_RECALIBRATED.get(method.method, INK),
                    linewidth=1.2,
                    label=f"{method.method} (ECE {method.after.ece:.3g} after)",
                )
        top.set(ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1.02))
        top.legend(loc="upper left", fontsize=7)
        lows = [b.low for b in diagram.bins]
        widths = [b.high - b.low for b in diagram.bins]
        bottom.bar(
            lows,
            [b.count for b in diagram.bins],
            width=widths,
            align="edge",
            color=MUTED,
            edgecolor="white",
            linewidth=0.5,
        )
        bottom.set(xlabel=f"mean {what} in the bin", ylabel="rows")
        bottom.grid(axis="x", visible=False)
        return plot(
            fig,
            title="Reliability diagram",
            caption=f"Top: for the rows in each {what} bin, the share that came true ({outcome}) against "
            f"their mean {what}. On the dashed diagonal a {what} of 0.8 comes true 80% of the time; below "
            "it the model is overconfident, above it underconfident. Coloured lines, where present, are "
            f"the recalibration maps fitted on this batch ({what} in, corrected probability out). Bottom: "
            f"how many rows fall in each bin, so a point resting on few rows is read with care.",
        )


def risk_coverage(confidence: ConfidenceResult) -> Plot | None:
    """Error rate of the rows kept against the share kept, when keeping only the most confident."""
    points = confidence.risk_coverage
    if not points:
        return None
    with figure(height=3.2) as fig:
        ax = fig.add_subplot()
        ax.plot(
            [p.coverage for p in points], [p.risk for p in points], color=ACCENT, linewidth=1.8, label="model"
        )
        choice = confidence.threshold
        if choice is not None:
            ax.axhline(
                1 - choice.target_accuracy,
                color=MUTED,
                linestyle="--",
                linewidth=1,
                label=f"target error {1 - choice.target_accuracy:.3g}",
            )
            if choice.threshold is not None and choice.accuracy is not None:
                ax.plot(
                    [choice.coverage],
                    [1 - choice.accuracy],
                    "o",
                    color=FAIL,
                    label=f"chosen threshold {choice.threshold:.3g}",
                )
        ax.set(
            xlabel="coverage (share of rows kept)", ylabel="risk (error rate of kept rows)", xlim=(0, 1.01)
        )
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", fontsize=7)
        return plot(
            fig,
            title="Risk-coverage curve",
            caption="Keep only the rows the model is most confident about: moving left keeps fewer rows, "
            "and a useful confidence makes their error rate fall. The red dot is the lowest confidence "
            "threshold whose kept rows reach the target accuracy (dashed line: the error allowed), and "
            "the share of rows it keeps.",
        )
