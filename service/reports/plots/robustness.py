"""Robustness: how often predictions flip under perturbation, or break an expectation."""

from __future__ import annotations

import numpy as np

from schemas.robustness import RobustnessResult
from service.reports.figures import ACCENT, WARN, Plot, figure, plot, short


def robustness_rates(result: RobustnessResult) -> Plot | None:
    """Horizontal bars: the flip rate of each perturbation and the violation rate of each test."""
    rows: list[tuple[str, float, str]] = [
        (f"{p.column}: {p.noise} {p.scale:g} (flips)", p.flip_rate, ACCENT) for p in result.perturbation
    ]
    for kind, tests in (
        ("invariance", result.invariance),
        ("directional", result.directional),
        ("pair", result.pairs),
    ):
        rows += [
            (f"{t.name} ({kind}, violations)", t.violation_rate, WARN)
            for t in tests
            if t.violation_rate is not None
        ]
    if not rows:
        return None
    y = np.arange(len(rows))[::-1]
    with figure(height=0.9 + 0.32 * len(rows)) as fig:
        ax = fig.add_subplot()
        ax.barh(y, [r[1] for r in rows], color=[r[2] for r in rows], height=0.6)
        for yi, (_, rate, _) in zip(y, rows, strict=True):
            ax.text(rate, yi, f" {rate:.1%}", va="center", fontsize=8)
        ax.set_yticks(y, [short(r[0], 44) for r in rows])
        ax.set_xlim(0, max(0.05, max(r[1] for r in rows) * 1.25))
        ax.set_xlabel("share of tested rows")
        ax.grid(axis="y", visible=False)
        return plot(
            fig,
            title="Robustness rates",
            caption="Blue bars: the share of rows whose predicted class changed when a column was perturbed "
            "(lower is steadier). Amber bars: the share of rows that broke an expectation (an invariance, a "
            "direction, or a pair of batches that should agree). Examples of each are in the tables below.",
        )
