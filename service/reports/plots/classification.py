"""Classification figures: ROC and precision-recall curves, per-class bars, the confusion matrix."""

from __future__ import annotations

import numpy as np

from schemas.metrics import ClassMetrics, ConfusionMatrix
from schemas.results import Curves
from service.reports.figures import ACCENT, FAIL, INK, MUTED, PASS, Plot, figure, plot, short
from service.reports.templating import number

#: Above this many classes the cells of the heat map carry no numbers (they would not fit).
MAX_ANNOTATED_CLASSES = 15


def roc_and_pr(curves: Curves, *, metrics: dict[str, float | None], threshold: float | None) -> Plot:
    """The ROC curve beside the precision-recall curve, the operating threshold marked on both."""
    roc, pr = curves.roc, curves.precision_recall
    with figure(height=3.4) as fig:
        left, right = fig.subplots(1, 2)
        left.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="chance")
        left.plot(
            roc.fpr,
            roc.tpr,
            color=ACCENT,
            linewidth=1.8,
            label=f"model (AUC {number(metrics.get('roc_auc'))})",
        )
        left.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02))
        left.set_title("ROC", fontsize=9)
        # scikit-learn's first PR point predicts every row positive: its precision is the prevalence
        prevalence = pr.precision[0]
        right.axhline(prevalence, color=MUTED, linestyle="--", linewidth=1, label="chance (prevalence)")
        ap = metrics.get("average_precision")
        right.plot(
            pr.recall,
            pr.precision,
            color=ACCENT,
            linewidth=1.8,
            drawstyle="steps-post",
            label=f"model (AP {number(ap)})",
        )
        right.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        right.set_title("Precision-recall", fontsize=9)
        if threshold is not None:
            i = _nearest(roc.threshold, threshold)
            j = _nearest(pr.threshold, threshold)
            left.plot([roc.fpr[i]], [roc.tpr[i]], "o", color=FAIL, label=f"threshold {threshold:g}")
            right.plot([pr.recall[j]], [pr.precision[j]], "o", color=FAIL, label=f"threshold {threshold:g}")
        left.legend(loc="lower right", fontsize=7)
        right.legend(loc="lower left", fontsize=7)
        return plot(
            fig,
            title="ROC and precision-recall curves",
            caption="Left: each point is a score threshold, with the share of positives caught (true "
            "positive rate) against the share of negatives wrongly flagged (false positive rate); the "
            "closer the curve hugs the top-left corner the better, the dashed diagonal is guessing. "
            "Right: precision against recall over the same thresholds; the dashed line is the share of "
            "positives, what a random ranking gets. The red dot is the threshold the predictions use.",
        )


def _nearest(thresholds: list[float | None], value: float) -> int:
    """The point whose threshold is the smallest at or above ``value`` (predictions are ``>=``)."""
    at_or_above = [(t, i) for i, t in enumerate(thresholds) if t is not None and t >= value]
    if at_or_above:
        return min(at_or_above)[1]
    return min(((abs(t - value), i) for i, t in enumerate(thresholds) if t is not None), default=(0, 0))[1]


def per_class_bars(per_class: dict[str, ClassMetrics]) -> Plot | None:
    """Grouped bars: precision, recall and F1 of each class (one versus the rest)."""
    if not per_class:
        return None
    names = list(per_class)
    x = np.arange(len(names))
    width = 0.27
    with figure(width=max(6.0, 0.5 * len(names)), height=3.4) as fig:
        ax = fig.add_subplot()
        for k, (key, colour) in enumerate((("precision", ACCENT), ("recall", PASS), ("f1", INK))):
            values = [getattr(per_class[n], key) for n in names]
            ax.bar(
                x + (k - 1) * width,
                [v if v is not None else 0.0 for v in values],
                width,
                color=colour,
                label=key,
            )
        ax.set_xticks(
            x,
            [short(n, 16) for n in names],
            rotation=30 if len(names) > 6 else 0,
            ha="right" if len(names) > 6 else "center",
        )
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        ax.legend(ncols=3, loc="upper center", bbox_to_anchor=(0.5, 1.15), fontsize=8)
        ax.grid(axis="x", visible=False)
        return plot(
            fig,
            title="Per-class precision, recall and F1",
            caption="For each class treated as the positive one: precision (of the rows predicted as the "
            "class, the share that are), recall (of the rows of the class, the share found) and F1 (their "
            "harmonic mean). A short bar points at the class the model confuses; an undefined value is "
            "drawn as 0 and named in the table.",
        )


def confusion_heatmap(matrix: ConfusionMatrix) -> Plot:
    """The confusion matrix, each row coloured by its share of the true class; counts in the cells."""
    counts = np.asarray(matrix.matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    k = len(matrix.labels)
    side = min(6.0, max(3.2, 0.45 * k + 1.6))
    labels = [short(label, 16) for label in matrix.labels]
    with figure(width=side + 1.0, height=side) as fig:
        ax = fig.add_subplot()
        # vector cells (pcolormesh), not imshow: that would embed a PNG in the SVG
        image = ax.pcolormesh(shares, cmap="Blues", vmin=0, vmax=1, edgecolors="white", linewidth=0.5)
        ax.set_xlim(0, k)
        ax.set_ylim(k, 0)
        ax.set_aspect("equal")
        centres = np.arange(k) + 0.5
        ax.set_xticks(centres, labels, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
        ax.set_yticks(centres, labels)
        ax.set(xlabel="predicted class", ylabel="true class")
        ax.grid(False)
        if k <= MAX_ANNOTATED_CLASSES:
            for i in range(k):
                for j in range(k):
                    ax.text(
                        j + 0.5,
                        i + 0.5,
                        f"{int(counts[i, j]):,}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if shares[i, j] > 0.5 else INK,
                    )
        # ten steps: a smooth colour bar of 50+ steps is embedded as a PNG
        fig.colorbar(
            image, ax=ax, label="share of the true class", shrink=0.8, boundaries=np.linspace(0, 1, 11)
        )
        return plot(
            fig,
            title="Confusion matrix",
            caption="Rows are the true classes, columns the predicted ones; each cell holds the number of "
            "rows and is shaded by its share of the row (the true class). A perfect model is dark on the "
            "diagonal only; a dark cell off it is a confusion between two classes.",
        )
