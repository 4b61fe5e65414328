"""The probability metrics (ROC AUC, average precision, log loss, Brier score) of one batch
under any row weighting: the rankings sorted once, the per-row losses computed once."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from service.workers.metrics.arithmetic import weighted_mean
from service.workers.metrics.ranking import Curve, macro_ranking_value
from service.workers.metrics.registry import METRICS, Labels, check_labels


class ScoreStatistics:
    """Sorted rankings and per-row losses for the probability metrics.

    Built once per batch; :meth:`values` then evaluates ROC AUC, average
    precision, log loss and Brier score for any row weighting in O(n) without
    sorting again, which is what the bootstrap needs.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        Class codes.
    scores : ndarray, shape (n,) or (n, K)
        Binary: probability of ``positive``. Multiclass: one column per class.
    n_classes : int
    positive : int or None
        Positive class code (binary) or None (multiclass one-vs-rest).
    names : iterable of str
        The score metrics that will be asked for (the rest is not prepared).
    presorted : tuple of ndarray, optional
        Binary only: :func:`~service.workers.sorting.sort_floats` of ``scores``, when the
        caller sorted them already (say, in another thread while it read other data).
    labels : {"present", "declared"}, default "present"
        Multiclass ROC AUC / average precision: the macro mean over the classes with
        labeled rows (of positive weight) under each weighting, or over every declared
        class (an absent class makes ROC AUC undefined and counts as AP 0).

    Attributes
    ----------
    row_order : ndarray or None
        Permutation applied to the rows: weights given to :meth:`values` must be in
        this order (``sample_weight[row_order]``). Binary rows are stored by
        decreasing score so the single ranking needs no gather per call.
    """

    def __init__(
        self,
        y_true: np.ndarray,
        scores: np.ndarray,
        *,
        n_classes: int,
        positive: int | None,
        names: Iterable[str],
        presorted: tuple[np.ndarray, np.ndarray] | None = None,
        labels: Labels = "present",
    ) -> None:
        self.names = [n for n in names if METRICS[n].source == "scores"]
        self.labels = check_labels(labels)
        want = set(self.names)
        #: the metrics of a ranking (a sort of the scores); the others are means of per-row losses
        self.ranked = {n for n in self.names if METRICS[n].ranked}
        self._binary = positive is not None
        self.curves: list[Curve] = []
        self.row_order: np.ndarray | None = None
        eps = np.finfo(np.float64).eps
        if positive is not None:
            # per-row terms in input order first (the delta method needs them there),
            # then gathered into the ranking's order
            is_pos = y_true == positive
            p_true = np.where(is_pos, scores, 1 - scores)
            brier_rows = None
            if "brier_score" in want:
                brier_rows = is_pos - scores
                brier_rows *= brier_rows
        else:
            if self.ranked:
                columns = np.ascontiguousarray(scores.T)
                self.curves = [Curve.of(y_true == c, columns[c], reorder=True)[0] for c in range(n_classes)]
            p_true = scores[np.arange(y_true.size), y_true]
            brier_rows = None
            if "brier_score" in want:
                diff = np.array(scores, dtype=np.float64)
                diff[np.arange(y_true.size), y_true] -= 1
                brier_rows = np.einsum("ij,ij->i", diff, diff)
                # sklearn brier_score_loss(scale_by_half="auto") halves only with < 3 columns
                if n_classes < 3:
                    brier_rows *= 0.5
        self.n_clipped = int(np.count_nonzero(p_true <= 0))
        """Rows whose true class got probability 0 (log loss clips them to eps)."""
        log_rows = None
        if "log_loss" in want:
            # sklearn 1.9 clips to [eps, 1 - eps] with the eps of the probabilities'
            # dtype, which is float64 here (see check_scores)
            log_rows = np.clip(p_true, eps, 1 - eps, out=p_true if positive is not None else None)
            np.log(log_rows, out=log_rows)
            np.negative(log_rows, out=log_rows)
        #: per-row log loss / Brier terms in input order (their means are the metrics)
        self.row_losses: dict[str, np.ndarray] = {}
        if log_rows is not None:
            self.row_losses["log_loss"] = log_rows
        if brier_rows is not None:
            self.row_losses["brier_score"] = brier_rows
        if positive is not None and self.ranked:
            if presorted is not None and presorted[0].shape != scores.shape:
                raise ValueError(f"presorted holds {presorted[0].shape} rows, scores {scores.shape}.")
            curve, desc = Curve.of(is_pos, scores, reorder=False, presorted=presorted)
            self.curves = [curve]
            self.row_order = desc

    def _losses_in_row_order(self, name: str) -> np.ndarray:
        """Per-row losses in ``row_order`` (gathered once, when weights first ask for them)."""
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_ordered_losses", {})
        if name not in cache:
            rows = self.row_losses[name]
            cache[name] = rows if self.row_order is None else rows[self.row_order]
        return cache[name]

    def values(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """The prepared metrics under ``weights`` (in ``row_order``); NaN = undefined."""
        out: dict[str, float] = {}
        want = set(self.names)
        ranked = self.ranked
        if ranked:
            if self._binary:
                out.update(self.curves[0].roc_auc_and_ap(weights, ranked))
            else:
                per_class = [c.roc_auc_and_ap(weights, ranked) for c in self.curves]
                for name in ranked:
                    out[name] = macro_ranking_value(
                        np.array([c[name] for c in per_class]), name, labels=self.labels
                    )
        # unweighted means do not depend on the row order: no gather needed
        for name in ("log_loss", "brier_score"):
            if name in want:
                rows = self.row_losses[name] if weights is None else self._losses_in_row_order(name)
                out[name] = weighted_mean(rows, weights)
        return {n: out[n] for n in self.names}
