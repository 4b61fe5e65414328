"""Every requested metric for every slice of a column or a cross, with intervals and tests.

:class:`SliceEvaluator` prepares what every group shares once per batch (the
confusion cell of each row, the global score sort, per-row losses and errors);
:meth:`SliceEvaluator.report` then evaluates one column or one cross in a few
bincounts and segment sums. :func:`slice_report` is the one-shot form.

Which interval and which test, per metric
-----------------------------------------
Each entry: metric(s) -- interval -- test of the slice against the rest of the batch. The
label metrics go by the registry's ``kind`` (:mod:`service.workers.metrics.registry`), so a
registered metric of the confusion matrix gets the same treatment as the built-in ones.

* ``proportion``: accuracy, ``*_micro`` and binary precision / recall (proportions over
  their own denominators, the registry's successes and trials) -- Wilson -- pooled
  two-proportion z.
* The other label metrics (balanced_accuracy, f1, macro / weighted averages, mcc) --
  bootstrap percentile from one ``Multinomial(n_s, cells_s / n_s)`` draw of the
  slice's confusion cells per replicate, all slices in one call -- bootstrap z: the
  observed difference over the standard deviation of replicated differences (the
  rest drawn the same way from its own cells). A z rather than the replicates'
  rank, whose p-value could never go below ``2 / (B + 1)``.
* log_loss, brier_score, mae, mape (means of per-row values) -- normal (CLT) from
  per-slice sums and sums of squares -- Welch z on the per-row values.
* rmse -- delta method on the MSE -- Welch z on the squared errors.
* roc_auc -- delta method (DeLong's placements) -- z against the rest's exact AUC
  with its Hanley-McNeil variance (:mod:`.ranking`).
* average_precision, r2 -- delta method -- none: the rest's value is not a sum
  over slices, so it would cost one more ranking per slice.
* median_ae -- order statistics (distribution free) -- none.
* max_error -- none -- none.

Multiclass ``roc_auc``/``average_precision`` (macro one-vs-rest) sum the per-class
per-row gradients before squaring; the rest's macro AUC variance treats the
classes as independent. Intervals are clipped to the metric's range (the registry's
``bounds``).

Which classes are averaged (``labels``)
---------------------------------------
As :mod:`service.workers.metrics`, slice by slice: ``"present"`` (scikit-learn's
default) averages the macro label metrics over the classes in the slice's labels or
predictions, and the multiclass ROC AUC / average precision over the classes with
labeled rows in the slice (undefined below two); ``"declared"`` (scikit-learn's
``labels=range(K)``) over every declared class: a class without rows counts as 0
in the macro label metrics and in AP, and makes the macro ROC AUC undefined. The
rest of the batch, the bootstrap replicates and the delta-method gradients follow
the same rule.

An ``underperforming_slice`` is a slice with at least ``min_support`` rows whose
metric is worse than the rest's (by the registry's ``greater_is_better``) with a
test significant at ``alpha`` after the Benjamini-Hochberg adjustment over all
tests of the group's supported slices (``correction="bh"``; ``"none"`` compares
the raw p-values). Without the adjustment a fair model with 90 slices and 9
metrics would get a dozen findings by chance.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, overload

import numpy as np
from scipy import stats as scipy_stats

from schemas.metrics import Interval
from schemas.slices import Slice, SliceGroup, SliceMetric
from service.workers.metrics import (
    METRICS,
    Labels,
    ScoreStatistics,
    check_classification_inputs,
    check_labels,
    check_regression_inputs,
    confusion_metric_values,
    validate_metric_names,
)
from service.workers.metrics.arithmetic import safe_div
from service.workers.multiple_testing import benjamini_hochberg
from service.workers.significance.counts import two_proportion_z_test
from service.workers.slices.codes import GroupCodes, group_codes
from service.workers.slices.inference import (
    mean_and_variance,
    normal_interval,
    normal_p,
    percentiles,
    unbiased_factor,
    welch_p,
    wilson,
    z_value,
)
from service.workers.slices.ranking import Ranking, SlicedRanking, sliced_ranking

Task = Literal["binary", "multiclass", "regression"]
GroupColumn = tuple[str, np.ndarray, Sequence[Any]]

#: slices under this share of the batch are flagged as minority (whatever their size)
MINORITY_SHARE = 0.05
# keep one multinomial draw block near this many cells (replicates x slices x K^2)
_DRAW_BLOCK_CELLS = 4_000_000


@dataclass
class _Columns:
    """One metric over the slices of a group (NaN = undefined / not available)."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rest: np.ndarray
    p: np.ndarray

    @classmethod
    def of(cls, value: np.ndarray) -> _Columns:
        nan = np.full(value.shape, np.nan)
        return cls(value, nan, nan.copy(), nan.copy(), nan.copy())


class SliceTest(NamedTuple):
    """One slice's metric tested against the rest of the batch (two-sided p-value)."""

    slice: int
    metric: str
    value: float
    rest: float
    p_value: float

    @property
    def worse(self) -> bool:
        """Is the slice worse than the rest (by the registry's direction)?"""
        if METRICS[self.metric].greater_is_better:
            return self.value < self.rest
        return self.value > self.rest


@dataclass(frozen=True)
class SliceTests:
    """Every test of one group's slices with at least ``min_support`` rows, unfiltered, and each
    slice's sums of per-row errors (misclassified rows, or absolute errors for regression) and of
    their squares: what :mod:`~service.workers.slices.flagging` needs to flag and explain slices."""

    columns: list[str]
    conditions: Sequence[dict[str, Any]]
    n: np.ndarray
    errors: np.ndarray
    squares: np.ndarray
    overall: dict[str, float | None]
    tests: list[SliceTest]


class _Conditions(Sequence[dict[str, Any]]):
    """Each slice's conditions (column -> label), made when asked for: a cross of several columns
    can have tens of thousands of slices, of which only the tested and the reported need theirs."""

    def __init__(self, names: list[str], labels: list[list[Any]], members: np.ndarray) -> None:
        self._names = names
        self._labels = labels
        self._members = members
        self._index: dict[tuple[int, ...], int] | None = None
        self._codes: list[dict[Any, int]] | None = None

    def __len__(self) -> int:
        return int(self._members.shape[0])

    @overload
    def __getitem__(self, i: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, i: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, i: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self._members[i]
        return {name: _plain(self._labels[j][int(row[j])]) for j, name in enumerate(self._names)}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def find(self, conditions: Mapping[str, Any]) -> int | None:
        """The slice with exactly these conditions (compared as ``==``, like dicts), or None."""
        if set(conditions) != set(self._names):
            return None
        if self._index is None or self._codes is None:
            self._index = {tuple(row): i for i, row in enumerate(self._members.tolist())}
            self._codes = [{} for _ in self._names]
            for j, labels in enumerate(self._labels):
                for code, label in enumerate(labels):
                    self._codes[j].setdefault(_plain(label), code)
        try:
            key = tuple(self._codes[j][conditions[name]] for j, name in enumerate(self._names))
        except (KeyError, TypeError):  # a value no slice has, or an unhashable one
            return None
        return self._index.get(key)


@dataclass
class EvaluatedGroup:
    """One column's or cross's slices as arrays (:meth:`SliceEvaluator.evaluate_group`): their
    tests for flagging, and what :meth:`build` needs to make the result model of any of them."""

    columns: list[str]
    metrics: list[str]
    n: np.ndarray
    share: np.ndarray
    minority: np.ndarray
    values: dict[str, _Columns]
    overall: dict[str, float | None]
    conditions: _Conditions
    tests: SliceTests

    @property
    def size(self) -> int:
        """Slices with at least one row."""
        return int(self.n.size)

    def badness(self, metric: str) -> np.ndarray:
        """How much worse than the whole batch each slice is on ``metric`` (:func:`_badness`)."""
        return _badness(metric, self.values[metric], self.overall.get(metric))

    def build(self, keep: np.ndarray | None = None) -> SliceGroup:
        """The result model of the slices ``keep`` (indices; default all), in label order, with
        ``omitted`` counting the others."""
        chosen = range(self.size) if keep is None else sorted(int(i) for i in keep)
        slices: list[Slice] = []
        for i in chosen:
            metrics: dict[str, SliceMetric] = {}
            for m in self.metrics:
                col = self.values[m]
                v = _finite(col.value[i])
                lo, hi = _finite(col.low[i]), _finite(col.high[i])
                base = self.overall[m]
                metrics[m] = SliceMetric(
                    value=v,
                    interval=Interval(low=lo, high=hi)
                    if v is not None and lo is not None and hi is not None
                    else None,
                    difference=v - base if v is not None and base is not None else None,
                    p_value=_finite(col.p[i]) if v is not None else None,
                )
            slices.append(
                Slice(
                    conditions=self.conditions[i],
                    n=int(self.n[i]),
                    share=float(self.share[i]),
                    minority=bool(self.minority[i]),
                    metrics=metrics,
                )
            )
        return SliceGroup(columns=self.columns, slices=slices, omitted=self.size - len(slices))


def _badness(metric: str, col: _Columns, overall: float | None) -> np.ndarray:
    """``metric``'s shortfall from the whole batch's value (from the rest's without one), in the
    direction where it is worse: positive is worse; -inf where the slice's value is undefined."""
    reference = col.rest if overall is None else np.full(col.value.shape, overall)
    gap = reference - col.value if METRICS[metric].greater_is_better else col.value - reference
    return np.where(np.isnan(gap), -np.inf, gap)


def select_slices(
    groups: Sequence[EvaluatedGroup],
    *,
    rank_by: str,
    flagged: Sequence[tuple[Sequence[str], Mapping[str, Any], float]] = (),
    keep: Sequence[Mapping[str, Any]] = (),
    per_group: int | None = None,
    per_result: int | None = None,
) -> list[np.ndarray]:
    """Which slices of each group to report when there may be too many: indices per group.

    At most ``per_group`` slices of each group and ``per_result`` over all of them, taken in this
    order: the slices named in ``keep`` (the request's slice gates); the ``flagged`` ones, given
    as (columns, conditions, impact), highest impact first; the other slices of at least
    ``min_support`` rows and 5% of the batch, worst first on ``rank_by`` (their shortfall from
    the batch's value); then the minority slices the same way, larger first among equals.
    Nothing is left out when both caps are None.
    """
    tiers: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for group in groups:
        metric = rank_by if rank_by in group.values else group.metrics[0]
        tier = np.where(group.minority, 3, 2)
        score = group.badness(metric)
        for columns, conditions, impact in flagged:
            i = group.conditions.find(conditions) if list(columns) == group.columns else None
            if i is not None:
                tier[i], score[i] = 1, impact
        for conditions in keep:
            i = group.conditions.find(conditions)
            if i is not None:
                tier[i] = 0
        tiers.append(tier)
        scores.append(score)
    chosen: list[np.ndarray] = []
    for group, tier, score in zip(groups, tiers, scores, strict=True):
        order = np.lexsort((-group.n, -score, tier))
        chosen.append(order if per_group is None else order[:per_group])
    if per_result is not None and sum(c.size for c in chosen) > per_result:
        owner = np.concatenate([np.full(c.size, g, dtype=np.intp) for g, c in enumerate(chosen)])
        index = np.concatenate(chosen)
        tier = np.concatenate([t[c] for t, c in zip(tiers, chosen, strict=True)])
        score = np.concatenate([s[c] for s, c in zip(scores, chosen, strict=True)])
        n = np.concatenate([g.n[c] for g, c in zip(groups, chosen, strict=True)])
        top = np.lexsort((-n, -score, tier))[:per_result]
        chosen = [index[top[owner[top] == g]] for g in range(len(groups))]
    return [np.sort(c) for c in chosen]


def _stacked(values: list[np.ndarray | None]) -> np.ndarray:
    """``np.stack`` of one array per class, each computed (the metric was asked for)."""
    arrays = [v for v in values if v is not None]
    assert len(arrays) == len(values)
    return np.stack(arrays)


def _proportion_parts(
    name: str, cm: np.ndarray, positive: int | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(successes, trials) of a label metric that the registry calls a proportion of rows, else None."""
    info = METRICS[name]
    if info.kind != "proportion" or info.proportion is None:
        return None
    return info.proportion(cm, positive)


def _clip_to_bounds(out: dict[str, _Columns]) -> None:
    """Clip every interval to its metric's range (the registry's ``bounds``): a normal interval of
    a loss does not go below 0, one of a ROC AUC not above 1."""
    for name, col in out.items():
        low, high = METRICS[name].bounds
        col.low = np.clip(col.low, low, high)
        col.high = np.clip(col.high, low, high)


class SliceEvaluator:
    """Slice metrics of one batch: prepared once, evaluated for any number of columns and crosses.

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (n,)
        Classification: class codes ``0 .. n_classes - 1``. Regression: values.
        Unlabeled rows removed (as for :mod:`service.workers.metrics`).
    task : {"binary", "multiclass", "regression"}
    n_classes : int, optional
        Classification only.
    positive : int, optional
        Binary only: the positive class code.
    scores : ndarray, optional
        Binary (n,) probability of ``positive``; multiclass (n, n_classes).
    metrics : sequence of str
        Registry names (validated like the metrics worker's).
    overall : dict, optional
        The batch's value of each metric (the metrics worker's); ``difference`` is
        ``slice - overall`` and None where the overall value is missing.
    min_support : int
        Slices with fewer rows are minority and never flagged.
    alpha : float
        Significance of ``underperforming_slice`` findings.
    bootstrap_samples : int
        Replicates of the multinomial bootstrap of label metrics.
    seed : int
        Seed of the bootstrap (``numpy.random.default_rng``).
    confidence : float
        Coverage of every interval.
    correction : {"bh", "none"}
        Multiple-testing adjustment of the findings (see the module notes).
    labels : {"present", "declared"}, default "present"
        Classification: the classes of each slice's macro averages and multiclass ROC
        AUC / average precision (see the module notes); pass the ``labels`` the
        ``overall`` values were computed with.
    """

    def __init__(
        self,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        *,
        task: Task,
        n_classes: int | None = None,
        positive: int | None = None,
        scores: np.ndarray | None = None,
        metrics: Sequence[str],
        overall: Mapping[str, float | None] | None = None,
        min_support: int = 30,
        alpha: float = 0.05,
        bootstrap_samples: int = 200,
        seed: int = 0,
        confidence: float = 0.95,
        correction: Literal["bh", "none"] = "bh",
        labels: Labels = "present",
    ) -> None:
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"Unknown task {task!r}; expected binary, multiclass or regression.")
        if isinstance(min_support, bool) or not isinstance(min_support, int | np.integer) or min_support < 1:
            raise ValueError(f"min_support must be a positive integer, got {min_support!r}.")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1) (e.g. 0.05), got {alpha!r}.")
        if (
            isinstance(bootstrap_samples, bool)
            or not isinstance(bootstrap_samples, int | np.integer)
            or (bootstrap_samples < 1)
        ):
            raise ValueError(f"bootstrap_samples must be a positive integer, got {bootstrap_samples!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"seed must be an integer, got {seed!r}.")
        if correction not in ("bh", "none"):
            raise ValueError(f"correction must be 'bh' or 'none', got {correction!r}.")
        self._z = z_value(confidence)
        self.task = task
        self.names = list(metrics)
        validate_metric_names(task, self.names, has_scores=scores is not None)
        self.overall = dict(overall or {})
        self.min_support = int(min_support)
        self.alpha = float(alpha)
        self.confidence = float(confidence)
        self.samples = int(bootstrap_samples)
        self.seed = int(seed)
        self.correction = correction
        self.labels: Labels = check_labels(labels)
        self.positive = positive
        self.k = 0
        self._rankings: list[Ranking] = []
        self._losses: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if task == "regression":
            yt, yp = check_regression_inputs(y_true, y_pred)
            self.n = yt.size
            self._prepare_regression(yt, yp)
        else:
            if n_classes is None:
                raise ValueError(f"n_classes is required for {task} tasks.")
            if (task == "binary") != (positive is not None):
                raise ValueError(
                    "positive is the positive class code of a binary task (None for multiclass)."
                )
            yt, yp, sc = check_classification_inputs(
                y_true, y_pred, n_classes=n_classes, positive=positive, scores=scores
            )
            self.n = yt.size
            self.k = n_classes
            self._prepare_classification(yt, yp, sc)

    # ------------------------------------------------------------------ preparation

    def _prepare_classification(self, yt: np.ndarray, yp: np.ndarray, scores: np.ndarray | None) -> None:
        k = self.k
        self._cells = yt * k + yp
        self._label_names = [m for m in self.names if METRICS[m].source == "confusion"]
        score_names = [m for m in self.names if METRICS[m].source == "scores"]
        # means of per-row losses; the ranked metrics (ROC AUC, average precision) need a sort
        loss_names = [m for m in score_names if not METRICS[m].ranked]
        if loss_names:
            assert scores is not None  # validate_metric_names
            rows = ScoreStatistics(
                yt, scores, n_classes=k, positive=self.positive, names=loss_names
            ).row_losses
            self._losses = {m: (rows[m], rows[m] * rows[m]) for m in loss_names}
        self._want_auc = "roc_auc" in score_names
        self._want_ap = "average_precision" in score_names
        if self._want_auc or self._want_ap:
            assert scores is not None
            if self.positive is not None:
                self._rankings = [Ranking.of(yt == self.positive, scores, placements=self._want_auc)]
            else:
                self._rankings = [
                    Ranking.of(yt == c, np.ascontiguousarray(scores[:, c]), placements=self._want_auc)
                    for c in range(k)
                ]

    def _prepare_regression(self, yt: np.ndarray, yp: np.ndarray) -> None:
        self._y = yt
        err = yp - yt
        self._abs = np.abs(err)
        self._sq = err * err
        names = set(self.names)
        if "mape" in names:
            self._ape = self._abs / np.maximum(np.abs(yt), np.finfo(np.float64).eps)
        if "rmse" in names or "r2" in names:
            self._sq2 = self._sq * self._sq
        self._abs_order: np.ndarray | None = None
        if "median_ae" in names:
            self._abs_order = np.argsort(self._abs)
            self._abs_sorted = self._abs[self._abs_order]

    # ------------------------------------------------------------------ evaluation

    def report(self, group_columns: Sequence[GroupColumn]) -> tuple[SliceGroup, list[dict[str, Any]]]:
        """The slices of one column (one entry) or one cross (several entries).

        Parameters
        ----------
        group_columns : sequence of (name, codes, labels)
            ``codes`` (n,) integers into ``labels`` (:func:`~service.workers.slices.codes.slice_codes`).

        Returns
        -------
        group : SliceGroup
            Every slice with at least one row, in label order (lexicographic for a cross).
        underperforming : list of dict
            ``{columns, conditions, metric, value, overall, difference, p_value, n, rest, p_adjusted}``
            per significantly worse (slice, metric), most significant first, adjusted over this
            group's tests alone. An evaluation of several groups adjusts over all of them at once
            instead (:meth:`evaluate` and :func:`~service.workers.slices.flagging.flag_slices`).
        """
        group, tests = self.evaluate(group_columns)
        return group, self._underperforming(tests)

    def evaluate(self, group_columns: Sequence[GroupColumn]) -> tuple[SliceGroup, SliceTests]:
        """As :meth:`report`, with every test of the group unfiltered (:class:`SliceTests`)."""
        group = self.evaluate_group(group_columns)
        return group.build(), group.tests

    def evaluate_group(
        self,
        group_columns: Sequence[GroupColumn],
        *,
        limit: int | None = None,
        rank_by: str | None = None,
        keep: Sequence[Mapping[str, Any]] = (),
    ) -> EvaluatedGroup:
        """Every slice's values, intervals and tests as arrays: the result models are made
        afterwards, for the slices reported only (:meth:`EvaluatedGroup.build`).

        ``limit``: at most this many of the group's slices will be reported, chosen by
        :func:`select_slices` with the same ``rank_by`` and ``keep``. Every slice of at least
        ``min_support`` rows is still tested; the bootstrap intervals of label metrics are then
        drawn only for those, the ``limit`` worst smaller ones on ``rank_by`` and those in ``keep``
        (the others could not be reported), which is most of a many-column cross's cost.
        """
        names, columns = self._check_groups(group_columns)
        gc = group_codes(columns, n=self.n)
        codes = gc.codes.astype(np.intp, copy=False)
        conditions = _Conditions(names, [list(g[2]) for g in group_columns], gc.members)
        if self.task == "regression":
            support = np.bincount(codes, minlength=gc.n_groups)
            values = self._regression_columns(gc, codes, support)
            errors = np.bincount(codes, weights=self._abs, minlength=gc.n_groups)
            squares = np.bincount(codes, weights=self._sq, minlength=gc.n_groups)
        else:
            k2 = self.k * self.k
            flat = codes * k2
            flat += self._cells
            cm = np.bincount(flat, minlength=gc.n_groups * k2).reshape(gc.n_groups, self.k, self.k)
            support = cm.sum(axis=(1, 2))
            rest_cm = cm.sum(axis=0) - cm
            values, boot = self._classification_columns(gc, codes, cm, rest_cm, support)
            if boot:
                subset = None
                if limit is not None and gc.n_groups > limit:
                    wanted = [conditions.find(c) for c in keep]
                    subset = self._bootstrap_subset(
                        support, values, limit, rank_by, [i for i in wanted if i is not None]
                    )
                self._bootstrap(boot, cm, rest_cm, values, subset)
            # misclassified rows: a 0/1 error per row, so its squares sum to the same count
            errors = (support - np.trace(cm, axis1=1, axis2=2)).astype(np.float64)
            squares = errors
        _clip_to_bounds(values)
        return self._assemble(names, conditions, support, values, errors, squares)

    def _bootstrap_subset(
        self,
        support: np.ndarray,
        values: dict[str, _Columns],
        limit: int,
        rank_by: str | None,
        keep: list[int],
    ) -> np.ndarray:
        """The slices that are tested or could be reported (see :meth:`evaluate_group`)."""
        tested = support >= self.min_support
        metric = rank_by if rank_by in values else self.names[0]
        bad = _badness(metric, values[metric], _finite(self.overall.get(metric)))
        small = np.flatnonzero(~tested)  # all of them minority slices: ranked as select_slices does
        worst = small[np.lexsort((-support[small], -bad[small]))[:limit]]
        return np.unique(np.concatenate([np.flatnonzero(tested), worst, np.asarray(keep, dtype=np.intp)]))

    def _check_groups(
        self, group_columns: Sequence[GroupColumn]
    ) -> tuple[list[str], list[tuple[np.ndarray, int]]]:
        if not group_columns:
            raise ValueError("group_columns must name at least one column.")
        names = [str(g[0]) for g in group_columns]
        if len(set(names)) != len(names):
            raise ValueError(f"a cross names a column twice: {names}.")
        out: list[tuple[np.ndarray, int]] = []
        for name, codes, labels in group_columns:
            c = np.asarray(codes)
            if c.shape != (self.n,):
                raise ValueError(f"codes of column {name!r} must have shape ({self.n},), got {c.shape}.")
            if c.size and not np.issubdtype(c.dtype, np.integer):
                raise ValueError(f"codes of column {name!r} must be integers into labels, got {c.dtype}.")
            if c.size and (int(c.min()) < 0 or int(c.max()) >= len(labels)):
                raise ValueError(
                    f"codes of column {name!r} must lie in 0..{len(labels) - 1} (one per label), "
                    f"got {int(c.min())}..{int(c.max())}."
                )
            out.append((c, len(labels)))
        return names, out

    # classification ----------------------------------------------------------

    def _classification_columns(
        self, gc: GroupCodes, codes: np.ndarray, cm: np.ndarray, rest_cm: np.ndarray, support: np.ndarray
    ) -> tuple[dict[str, _Columns], list[str]]:
        """Every metric's columns, and the label metrics whose intervals and tests still need the
        bootstrap (:meth:`_bootstrap`, run by the caller on the slices that need them)."""
        out: dict[str, _Columns] = {}
        boot: list[str] = []
        if self._label_names:
            point = confusion_metric_values(cm, self._label_names, positive=self.positive, labels=self.labels)
            rest = confusion_metric_values(
                rest_cm, self._label_names, positive=self.positive, labels=self.labels
            )
            for name in self._label_names:
                col = _Columns.of(point[name])
                col.rest = rest[name]
                parts = _proportion_parts(name, cm, self.positive)
                if parts is None:
                    boot.append(name)
                else:
                    x, trials = parts
                    rest_parts = _proportion_parts(name, rest_cm, self.positive)
                    assert rest_parts is not None  # None or not by the name and positive only
                    rx, rn = rest_parts
                    col.low, col.high = wilson(x, trials, z=self._z)
                    _, col.p = two_proportion_z_test(x, trials, rx, rn)
                out[name] = col
        for name, (rows, squares) in self._losses.items():
            out[name] = self._mean_columns(codes, support, rows, squares)
        if self._rankings:
            out.update(self._ranking_columns(gc, codes, support))
        return out, boot

    def _bootstrap(
        self,
        names: list[str],
        cm: np.ndarray,
        rest_cm: np.ndarray,
        out: dict[str, _Columns],
        subset: np.ndarray | None = None,
    ) -> None:
        """Percentile intervals and bootstrap-z tests of label metrics, all slices at once (or the
        slices ``subset``, increasing indices: the others keep NaN)."""
        index = np.arange(cm.shape[0]) if subset is None else subset
        g, k = index.size, self.k
        b = self.samples
        cells = k * k
        slice_rng, rest_rng = np.random.default_rng(self.seed).spawn(2)
        flat = cm[index].reshape(g, cells).astype(np.float64)
        rest = rest_cm[index].reshape(g, cells).astype(np.float64)
        n_s = flat.sum(axis=1)
        n_r = rest.sum(axis=1)
        uniform = np.full(cells, 1.0 / cells)
        p_s = np.where(n_s[:, None] > 0, safe_div(flat, n_s[:, None]), uniform)
        p_r = np.where(n_r[:, None] > 0, safe_div(rest, n_r[:, None]), uniform)
        q = ((1 - self.confidence) / 2, 1 - (1 - self.confidence) / 2)
        block = max(1, _DRAW_BLOCK_CELLS // max(1, b * cells))
        for lo in range(0, g, block):
            hi = min(g, lo + block)
            m = hi - lo
            draws_s = slice_rng.multinomial(n_s[lo:hi].astype(np.int64), p_s[lo:hi], size=(b, m))
            draws_r = rest_rng.multinomial(n_r[lo:hi].astype(np.int64), p_r[lo:hi], size=(b, m))
            vs = confusion_metric_values(
                draws_s.reshape(b, m, k, k), names, positive=self.positive, labels=self.labels
            )
            vr = confusion_metric_values(
                draws_r.reshape(b, m, k, k), names, positive=self.positive, labels=self.labels
            )
            at = index[lo:hi]
            for name in names:
                col = out[name]
                iv = percentiles(vs[name], q)
                col.low[at], col.high[at] = iv[0], iv[1]
                se = _replicate_sd(vs[name] - vr[name])
                col.p[at] = normal_p(col.value[at] - col.rest[at], se)

    def _mean_columns(
        self,
        codes: np.ndarray,
        support: np.ndarray,
        rows: np.ndarray,
        squares: np.ndarray,
        *,
        root: bool = False,
    ) -> _Columns:
        """A metric that is the mean of per-row values (or its square root, ``root``); the interval
        is clipped to the metric's bounds afterwards (:func:`_clip_to_bounds`)."""
        g = support.size
        sums = np.bincount(codes, weights=rows, minlength=g)
        sq = np.bincount(codes, weights=squares, minlength=g)
        mean, var = mean_and_variance(sums, sq, support)
        rest_n = self.n - support
        rest_mean, rest_var = mean_and_variance(sums.sum() - sums, sq.sum() - sq, rest_n)
        se = np.sqrt(safe_div(var, support))
        col = _Columns.of(np.sqrt(mean) if root else mean)
        if root:
            col.rest = np.sqrt(rest_mean)
            # delta method: se(sqrt(m)) = se(m) / (2 sqrt(m)); a slice without error is a point
            rse = np.where(mean > 0, safe_div(se, 2.0 * col.value), np.where(np.isfinite(se), 0.0, np.nan))
            col.low, col.high = normal_interval(col.value, rse, z=self._z)
        else:
            col.rest = rest_mean
            col.low, col.high = normal_interval(mean, se, z=self._z)
        col.p = welch_p(mean, var, support, rest_mean, rest_var, rest_n)
        return col

    def _ranking_columns(self, gc: GroupCodes, codes: np.ndarray, support: np.ndarray) -> dict[str, _Columns]:
        multiclass = self.positive is None
        per_class: list[SlicedRanking] = [
            sliced_ranking(
                r,
                codes,
                support,
                sort_codes=gc.codes,
                auc=self._want_auc,
                ap=self._want_ap,
                row_gradients=multiclass,
            )
            for r in self._rankings
        ]
        out: dict[str, _Columns] = {}
        if not multiclass:
            s = per_class[0]
            if self._want_auc:
                assert s.auc is not None and s.auc_var is not None
                assert s.rest_auc is not None and s.rest_auc_var is not None
                col = _Columns.of(s.auc)
                col.low, col.high = normal_interval(s.auc, np.sqrt(s.auc_var), z=self._z)
                col.rest = s.rest_auc
                col.p = normal_p(s.auc - s.rest_auc, np.sqrt(s.auc_var + s.rest_auc_var))
                out["roc_auc"] = col
            if self._want_ap:
                assert s.ap is not None and s.ap_var is not None
                col = _Columns.of(s.ap)
                col.low, col.high = normal_interval(s.ap, np.sqrt(s.ap_var), z=self._z)
                out["average_precision"] = col
        else:
            g = support.size
            if self._want_auc:
                aucs = _stacked([s.auc for s in per_class])
                value, counted = _macro_ranking_values(aucs, "roc_auc", labels=self.labels)
                var = self._macro_variance(codes, g, [(s.rows, s.auc_rows) for s in per_class], counted)
                col = _Columns.of(value)
                col.low, col.high = normal_interval(value, np.sqrt(var), z=self._z)
                rest_aucs = _stacked([s.rest_auc for s in per_class])
                col.rest, rest_counted = _macro_ranking_values(rest_aucs, "roc_auc", labels=self.labels)
                rest_vars = _stacked([s.rest_auc_var for s in per_class])
                rest_var = safe_div(
                    np.where(rest_counted, rest_vars, 0.0).sum(axis=0), rest_counted.sum(axis=0) ** 2
                )
                col.p = normal_p(value - col.rest, np.sqrt(var + rest_var))
                out["roc_auc"] = col
            if self._want_ap:
                aps = _stacked([s.ap for s in per_class])
                value, counted = _macro_ranking_values(aps, "average_precision", labels=self.labels)
                var = self._macro_variance(codes, g, [(s.rows, s.ap_rows) for s in per_class], counted)
                col = _Columns.of(value)
                col.low, col.high = normal_interval(value, np.sqrt(var), z=self._z)
                out["average_precision"] = col
        return out

    def _macro_variance(
        self,
        codes: np.ndarray,
        g: int,
        parts: list[tuple[np.ndarray | None, np.ndarray | None]],
        counted: np.ndarray,
    ) -> np.ndarray:
        """Delta-method variance of a macro average: per-row gradients summed over classes, then squared.

        ``counted`` (K, G): the classes each slice's mean is over (:func:`_macro_ranking_values`);
        a class left out of a slice's mean adds nothing to its rows' gradients.
        """
        acc = np.zeros(self.n)
        every = bool(counted.all())
        for c, (rows, grad) in enumerate(parts):
            assert rows is not None and grad is not None
            # rows is a permutation: a weighted bincount is a scatter into input order
            scattered = np.bincount(rows, weights=grad, minlength=self.n)
            if not every:
                scattered *= counted[c][codes]
            acc += scattered
        acc *= safe_div(np.ones(g), counted.sum(axis=0))[codes]
        return np.bincount(codes, weights=acc * acc, minlength=g)

    # regression --------------------------------------------------------------

    def _regression_columns(
        self, gc: GroupCodes, codes: np.ndarray, support: np.ndarray
    ) -> dict[str, _Columns]:
        out: dict[str, _Columns] = {}
        g = support.size
        names = set(self.names)
        if "mae" in names:
            out["mae"] = self._mean_columns(codes, support, self._abs, self._sq)
        if "mape" in names:
            out["mape"] = self._mean_columns(codes, support, self._ape, self._ape * self._ape)
        if "rmse" in names:
            out["rmse"] = self._mean_columns(codes, support, self._sq, self._sq2, root=True)
        if "r2" in names:
            out["r2"] = self._r2_columns(codes, support)
        if names & {"median_ae", "max_error"}:
            seg_last = np.cumsum(support) - 1
            starts = seg_last + 1 - support
            if self._abs_order is not None:
                perm = np.argsort(gc.codes[self._abs_order], kind="stable")
                ordered = self._abs_sorted[perm]  # by slice, then by |error|
            else:
                ordered = self._abs[np.argsort(gc.codes, kind="stable")]
            if "max_error" in names:
                if self._abs_order is not None:
                    out["max_error"] = _Columns.of(ordered[seg_last] if g else np.zeros(0))
                else:
                    out["max_error"] = _Columns.of(np.maximum.reduceat(ordered, starts) if g else np.zeros(0))
            if "median_ae" in names:
                lo = ordered[starts + (support - 1) // 2] if g else np.zeros(0)
                hi = ordered[starts + support // 2] if g else np.zeros(0)
                col = _Columns.of((lo + hi) / 2)
                col.low, col.high = self._median_interval(ordered, starts, support)
                out["median_ae"] = col
        return {m: out[m] for m in self.names}

    def _r2_columns(self, codes: np.ndarray, support: np.ndarray) -> _Columns:
        g = support.size
        y = self._y
        mean = safe_div(np.bincount(codes, weights=y, minlength=g), support)
        d = y - mean[codes]
        d2 = d * d
        sst = np.bincount(codes, weights=d2, minlength=g)
        ssr = np.bincount(codes, weights=self._sq, minlength=g)
        # constant y_true in a slice: exactly, not through a rounded mean
        ref = np.empty(g)
        ref[codes] = y
        varying = np.bincount(codes, weights=(y != ref[codes]), minlength=g) > 0
        value = np.where(varying, 1.0 - safe_div(ssr, sst), np.nan)
        # delta method: g_i = (-(e_i^2 - MSE) + (MSE/V)(d_i^2 - V)) / (n V)
        e4 = np.bincount(codes, weights=self._sq2, minlength=g)
        d4 = np.bincount(codes, weights=d2 * d2, minlength=g)
        e2d2 = np.bincount(codes, weights=self._sq * d2, minlength=g)
        n = support.astype(np.float64)
        mse = safe_div(ssr, n)
        v = safe_div(sst, n)
        c = safe_div(mse, v)
        num = (e4 - n * mse * mse) - 2.0 * c * (e2d2 - n * mse * v) + c * c * (d4 - n * v * v)
        # the sample variance of the influence function: over n - 1 rows
        var = safe_div(np.maximum(num, 0.0), (n * v) ** 2) * unbiased_factor(n)
        col = _Columns.of(value)
        col.low, col.high = normal_interval(value, np.where(varying, np.sqrt(var), np.nan), z=self._z)
        return col

    def _median_interval(
        self, ordered: np.ndarray, starts: np.ndarray, support: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distribution-free interval ``[x_(j), x_(n+1-j)]`` of each slice's median.

        ``j - 1`` is the largest ``m`` with ``P(Binom(n, 1/2) <= m) <= (1 - confidence) / 2``;
        the coverage ``1 - 2 P(Binom <= j - 1)`` is at least ``confidence``. Slices too small
        for any such ``j`` (6 rows at 95%) get no interval.
        """
        half = (1 - self.confidence) / 2
        n = support.astype(np.float64)
        k = scipy_stats.binom.ppf(half, n, 0.5)
        m = np.where(scipy_stats.binom.cdf(k, n, 0.5) <= half, k, k - 1)
        ok = m >= 0
        mi = np.where(ok, m, 0).astype(np.intp)
        low = np.where(ok, ordered[starts + mi] if starts.size else np.zeros(0), np.nan)
        high = np.where(ok, ordered[starts + support - 1 - mi] if starts.size else np.zeros(0), np.nan)
        return low, high

    # output ------------------------------------------------------------------

    def _assemble(
        self,
        names: list[str],
        conditions: _Conditions,
        support: np.ndarray,
        values: dict[str, _Columns],
        errors: np.ndarray,
        squares: np.ndarray,
    ) -> EvaluatedGroup:
        share = support / self.n if self.n else support.astype(np.float64)
        minority = (support < self.min_support) | (share < MINORITY_SHARE)
        overall = {m: _finite(self.overall.get(m)) for m in self.names}
        eligible = support >= self.min_support
        tests: list[SliceTest] = []
        for m in self.names:
            col = values[m]
            testable = eligible & ~np.isnan(col.p) & ~np.isnan(col.value) & ~np.isnan(col.rest)
            for row in np.flatnonzero(testable):
                i = int(row)
                tests.append(SliceTest(i, m, float(col.value[i]), float(col.rest[i]), float(col.p[i])))
        slice_tests = SliceTests(
            columns=names,
            conditions=conditions,
            n=support.astype(np.int64),
            errors=errors,
            squares=squares,
            overall=overall,
            tests=tests,
        )
        return EvaluatedGroup(
            columns=names,
            metrics=list(self.names),
            n=support.astype(np.int64),
            share=share,
            minority=minority,
            values=values,
            overall=overall,
            conditions=conditions,
            tests=slice_tests,
        )

    def _underperforming(self, tests: SliceTests) -> list[dict[str, Any]]:
        if not tests.tests:
            return []
        p = np.array([t.p_value for t in tests.tests])
        adjusted = benjamini_hochberg(p) if self.correction == "bh" else p
        found: list[dict[str, Any]] = []
        for t, adj in zip(tests.tests, adjusted, strict=True):
            if not (adj <= self.alpha and t.worse):
                continue
            base = tests.overall.get(t.metric)
            found.append(
                {
                    "columns": list(tests.columns),
                    "conditions": dict(tests.conditions[t.slice]),
                    "metric": t.metric,
                    "value": t.value,
                    "overall": base,
                    "difference": t.value - base if base is not None else None,
                    "p_value": t.p_value,
                    "n": int(tests.n[t.slice]),
                    "rest": t.rest,
                    "p_adjusted": float(adj),
                }
            )
        found.sort(key=lambda f: (f["p_adjusted"], f["p_value"]))
        return found


def _macro_ranking_values(
    per_class: np.ndarray, name: str, *, labels: Labels
) -> tuple[np.ndarray, np.ndarray]:
    """Macro mean of one-vs-rest ROC AUCs / APs per slice (``per_class`` of shape (K, G), NaN where
    a class has no positives or no negatives in the slice), and which classes it is over (K, G).

    The rule of :func:`service.workers.metrics._macro_ranking_value`, for every slice at once:
    undefined below two defined classes; ``present``: the mean over the defined classes;
    ``declared``: over all K, ROC AUC undefined as soon as a class is, AP counting it as 0.
    """
    defined = ~np.isnan(per_class)
    count = defined.sum(axis=0)
    if labels == "present":
        counted = defined
        value = safe_div(np.where(defined, per_class, 0.0).sum(axis=0), count)
    else:
        counted = np.ones_like(defined)
        if name == "roc_auc":
            value = per_class.mean(axis=0)
        else:
            value = np.nan_to_num(per_class, nan=0.0).mean(axis=0)
    return np.where(count >= 2, value, np.nan), counted


def _replicate_sd(d: np.ndarray) -> np.ndarray:
    """Sample standard deviation of each column of replicates, NaN-dropping; NaN if most are NaN."""
    ok = ~np.isnan(d)
    cnt = ok.sum(axis=0)
    x = np.where(ok, d, 0.0)
    mean = safe_div(x.sum(axis=0), cnt)
    dev = np.where(ok, d - mean, 0.0)
    var = safe_div((dev * dev).sum(axis=0), cnt - 1.0)
    return np.where(2 * cnt >= d.shape[0], np.sqrt(var), np.nan)


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if np.isfinite(v) else None


def _plain(label: Any) -> Any:
    """A label as a JSON-safe Python value (numpy scalars unwrapped)."""
    return label.item() if isinstance(label, np.generic) else label


def slice_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    group_columns: Sequence[GroupColumn],
    task: Task,
    n_classes: int | None = None,
    positive: int | None = None,
    scores: np.ndarray | None = None,
    metrics: Sequence[str],
    overall: Mapping[str, float | None] | None = None,
    min_support: int = 30,
    alpha: float = 0.05,
    bootstrap_samples: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    correction: Literal["bh", "none"] = "bh",
    labels: Labels = "present",
) -> tuple[SliceGroup, list[dict[str, Any]]]:
    """Metrics, intervals and tests of every slice of one column or one cross.

    The one-shot form of ``SliceEvaluator(...).report(group_columns)``; to evaluate
    several columns of one batch, build one :class:`SliceEvaluator` and call
    :meth:`~SliceEvaluator.report` per column (the score sort and per-row losses are
    then computed once, not once per column).

    Parameters
    ----------
    y_true, y_pred, task, n_classes, positive, scores, metrics, overall, min_support,
    alpha, bootstrap_samples, seed, confidence, correction, labels
        As :class:`SliceEvaluator`.
    group_columns : sequence of (name, codes, labels)
        One entry for a column, several for a cross (:func:`~service.workers.slices.codes.slice_codes`).

    Returns
    -------
    (SliceGroup, list of dict)
        The slices and the ``underperforming_slice`` candidates (see :meth:`SliceEvaluator.report`).

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    >>> pred = np.array([1, 1, 0, 0, 0, 0, 1, 1])
    >>> site = ("site", np.array([0] * 4 + [1] * 4), ["a", "b"])
    >>> group, found = slice_report(y, pred, group_columns=[site], task="binary", n_classes=2,
    ...     positive=1, metrics=["accuracy"], overall={"accuracy": 0.5}, min_support=1)
    >>> [(s.conditions, s.metrics["accuracy"].value, s.metrics["accuracy"].difference) for s in group.slices]
    [({'site': 'a'}, 1.0, 0.5), ({'site': 'b'}, 0.0, -0.5)]
    """
    evaluator = SliceEvaluator(
        y_true,
        y_pred,
        task=task,
        n_classes=n_classes,
        positive=positive,
        scores=scores,
        metrics=metrics,
        overall=overall,
        min_support=min_support,
        alpha=alpha,
        bootstrap_samples=bootstrap_samples,
        seed=seed,
        confidence=confidence,
        correction=correction,
        labels=labels,
    )
    return evaluator.report(group_columns)
