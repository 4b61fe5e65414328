"""The sentences of a metrics report: why a value is undefined, which convention shaped it.

A reason names the cause on this data and what would make the metric defined; a note
says which scikit-learn convention a defined value follows (``zero_division=0``, classes
left out of a macro average, probabilities clipped to machine epsilon).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from service.workers.metrics.confusion import ClassRates
from service.workers.metrics.registry import METRICS, Labels


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _plural(items: Sequence[str], one: str, many: str) -> str:
    return one if len(items) == 1 else many


def explain(
    values: dict[str, float],
    rates: ClassRates,
    class_names: list[str],
    positive: int | None,
    n_clipped: int,
    undefined: dict[str, str],
    notes: dict[str, str],
    *,
    labels: Labels = "present",
) -> None:
    """Fill the reasons for undefined values and the notes on conventions."""
    absent = [class_names[k] for k in np.flatnonzero(rates.true_sum <= 0)]
    present = [class_names[k] for k in np.flatnonzero(rates.true_sum > 0)]
    occurs = (rates.true_sum + rates.pred_sum) > 0
    # classes neither labeled nor predicted: left out of the macro averages with "present"
    unused = [class_names[k] for k in np.flatnonzero(~occurs)]
    pos = class_names[positive] if positive is not None else None
    for name, value in values.items():
        base, _, average = name.partition("_")
        if np.isnan(value):
            undefined[name] = _reason(name, pos, absent, present)
        elif base in ("precision", "recall", "f1") and average in ("macro", "weighted"):
            counted = occurs if average == "macro" and labels == "present" else np.ones(occurs.size, bool)
            if base == "precision":
                zero = [
                    class_names[k]
                    for k in np.flatnonzero((rates.pred_sum <= 0) & counted)
                    if average == "macro" or rates.true_sum[k] > 0
                ]
                why = _plural(zero, "is never predicted", "are never predicted")
            elif base == "recall":
                zero = [class_names[k] for k in np.flatnonzero((rates.true_sum <= 0) & counted)]
                zero = zero if average == "macro" else []
                why = _plural(zero, "has no labeled rows", "have no labeled rows")
            else:
                zero = [
                    class_names[k]
                    for k in np.flatnonzero((rates.true_sum + rates.pred_sum <= 0) & counted)
                    if average == "macro"
                ]
                why = _plural(zero, "is neither labeled nor predicted", "are neither labeled nor predicted")
            parts = []
            if zero:
                parts.append(
                    f"{_plural(zero, 'class', 'classes')} {_quoted(zero)} {why}: "
                    f"{base} is 0/0 there and counts as 0 in the {average} average "
                    "(scikit-learn zero_division=0)."
                )
            if average == "macro" and labels == "present" and unused:
                parts.append(_left_out(unused, "neither labeled nor predicted", "macro average"))
            if parts:
                notes[name] = " ".join(parts)
        elif name == "balanced_accuracy" and absent:
            notes[name] = (
                f"{_plural(absent, 'class', 'classes')} {_quoted(absent)} "
                f"{_plural(absent, 'has', 'have')} no labeled rows and "
                f"{_plural(absent, 'is', 'are')} left out: the mean recall is over the "
                f"{len(present)} classes present in y_true (as scikit-learn)."
            )
        elif (
            name == "mcc"
            and value == 0.0
            and (np.count_nonzero(rates.true_sum > 0) < 2 or np.count_nonzero(rates.pred_sum > 0) < 2)
        ):
            one = "y_true" if np.count_nonzero(rates.true_sum > 0) < 2 else "y_pred"
            notes[name] = (
                f"{one} holds a single class, so MCC's denominator is 0; reported as 0.0 "
                "like scikit-learn (no better than chance)."
            )
        elif METRICS[name].ranked and positive is None and absent:
            if labels == "present":
                notes[name] = _left_out(absent, "without labeled rows", "one-vs-rest macro average")
            elif name == "average_precision":
                notes[name] = (
                    f"{_plural(absent, 'class', 'classes')} {_quoted(absent)} "
                    f"{_plural(absent, 'has', 'have')} no labeled rows: one-vs-rest average "
                    "precision counts as 0 for it in the macro average (labels='declared', "
                    "as scikit-learn with labels=range(K))."
                )
        elif name == "log_loss" and n_clipped:
            k = n_clipped
            notes[name] = (
                f"{k} row{'s' if k != 1 else ''} give probability 0 to the true class; "
                "clipped to machine epsilon as scikit-learn, each adds about 36 to the summed loss."
            )


def _left_out(classes: list[str], why: str, where: str) -> str:
    return (
        f"{_plural(classes, 'class', 'classes')} {_quoted(classes)} "
        f"({why}) {_plural(classes, 'is', 'are')} left out of the {where} "
        "(labels='present', scikit-learn's default); labels='declared' averages over every declared class."
    )


def _reason(name: str, pos: str | None, absent: list[str], present: list[str]) -> str:
    """A person-readable reason why ``name`` is undefined on this data."""
    if name == "precision":
        return (
            f"no row is predicted as the positive class '{pos}', so precision TP / (TP + FP) is 0/0; "
            "it becomes defined once the model predicts the positive class for some row "
            "(check the threshold or the prediction column)."
        )
    if name == "recall":
        return (
            f"no labeled row has the positive class '{pos}', so recall TP / (TP + FN) is 0/0; "
            "evaluate on rows that include positives (or check positive_class)."
        )
    if name == "f1":
        return (
            f"no row is labeled or predicted as the positive class '{pos}', so F1 "
            "2TP / (2TP + FP + FN) is 0/0; evaluate on rows that include positives."
        )
    if METRICS[name].ranked:
        what = "ROC AUC" if name == "roc_auc" else "average precision"
        if len(present) < 2:
            return (
                f"every labeled row has class {_quoted(present)}, so {what} (how well scores rank "
                "one class above the others) is undefined; it needs labeled rows of at least two classes."
            )
        return (
            f"{_plural(absent, 'class', 'classes')} {_quoted(absent)} "
            f"{_plural(absent, 'has', 'have')} no labeled rows, so the one-vs-rest {what} "
            "is undefined there and so is the macro average over every declared class "
            "(labels='declared'; scikit-learn returns nan); it needs labeled rows of every class, "
            "or labels='present', which leaves such classes out."
        )
    return f"{name} is undefined on this data."


def regression_reasons(
    values: dict[str, float], *, no_rows: bool, zero_targets: int
) -> tuple[dict[str, str], dict[str, str]]:
    """Reasons for the undefined regression values and notes on the defined ones.

    ``no_rows``: nothing to evaluate (no rows, or every weight 0); ``zero_targets``: rows
    with ``y_true == 0``, which MAPE divides by machine epsilon.
    """
    undefined: dict[str, str] = {}
    notes: dict[str, str] = {}
    for name, value in values.items():
        if not np.isnan(value):
            continue
        if no_rows:
            undefined[name] = "no labeled rows (with positive weight) to evaluate."
        elif name == "r2":
            undefined[name] = (
                "y_true is constant on the evaluated rows, so R^2 = 1 - SS_res / SS_tot divides by "
                "SS_tot = 0 (scikit-learn's force_finite would report 0.0 or 1.0); evaluate on rows "
                "with varying targets."
            )
        else:
            undefined[name] = f"{name} is undefined on this data."
    if "mape" in values and not np.isnan(values["mape"]) and zero_targets:
        k = zero_targets
        notes["mape"] = (
            f"{k} row{'s' if k != 1 else ''} have y_true == 0; MAPE divides their error by machine "
            "epsilon (as scikit-learn), so they dominate the value. Prefer mae there."
        )
    return undefined, notes
