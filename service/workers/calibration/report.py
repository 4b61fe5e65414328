"""The calibration section of a result document: :func:`calibration_report`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas.calibration import (
    BrierDecomposition,
    CalibrationResult,
    CalibrationScores,
    LogitClipping,
    Recalibration,
    ReliabilityDiagram,
)
from schemas.metrics import Interval
from service.workers.bootstrap import check_confidence, check_samples, percentile_intervals
from service.workers.calibration.binning import STRATEGIES, BinnedStatistics, BrierTerms, bin_edges
from service.workers.calibration.recalibration import (
    EPS,
    METHODS,
    cross_fit,
    fit_logistic,
    fold_ids,
    logit,
    overlapping,
)
from service.workers.metrics import ScoreStatistics, check_codes, check_scores


def _check_options(
    *,
    n_classes: int,
    positive: int | None,
    class_names: Sequence[str],
    bins: int,
    strategy: str,
    recalibrate: Sequence[str],
    folds: int,
    seed: int,
    bootstrap_samples: int | None,
    confidence: float,
) -> None:
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}.")
    if positive is not None and (n_classes != 2 or positive not in (0, 1)):
        raise ValueError("positive is the code (0 or 1) of the positive class of a 2-class task.")
    if len(class_names) != n_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {n_classes} classes.")
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer (e.g. 10), got {bins!r}.")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}.")
    if isinstance(recalibrate, str):
        raise ValueError(f"recalibrate must be a list of methods, not the string {recalibrate!r}.")
    unknown = [m for m in recalibrate if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown recalibration methods {unknown}; use some of {', '.join(METHODS)}.")
    if len(set(recalibrate)) != len(recalibrate):
        raise ValueError(f"recalibrate lists a method twice: {list(recalibrate)}.")
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2 (e.g. 5), got {folds!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}.")  # None would seed from the OS
    if bootstrap_samples is not None:
        check_samples(bootstrap_samples)
    check_confidence(confidence)


@dataclass(frozen=True)
class _Summary:
    """What the headline scores are read from, for one set of probabilities."""

    main: BinnedStatistics  # positive class (binary) or top label (multiclass), at ``strategy``
    adaptive: BinnedStatistics  # the same column with equal-mass (quantile) bins
    brier: float
    log_loss: float

    def scores(self) -> CalibrationScores:
        return CalibrationScores(
            ece=self.main.ece(),
            mce=self.main.mce(),
            adaptive_ece=self.adaptive.ece(),
            brier=self.brier,
            log_loss=self.log_loss,
        )


def _binned(p: np.ndarray, hit: np.ndarray, *, bins: int, strategy: str) -> BinnedStatistics:
    edges = bin_edges(p, bins=bins, strategy=strategy)
    return BinnedStatistics.of(p, hit, edges, uniform=strategy == "uniform")


def _headline_column(
    scores: np.ndarray, y: np.ndarray, positive: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(probability, hit): P(positive) vs the label, or the top-label confidence vs correctness."""
    if positive is not None:
        return scores, y == positive
    predicted = scores.argmax(axis=1)
    return scores[np.arange(y.size), predicted], predicted == y


def _summarise(
    scores: np.ndarray, y: np.ndarray, *, n_classes: int, positive: int | None, bins: int, strategy: str
) -> _Summary:
    p, hit = _headline_column(scores, y, positive)
    main = _binned(p, hit, bins=bins, strategy=strategy)
    adaptive = main if strategy == "quantile" else _binned(p, hit, bins=bins, strategy="quantile")
    losses = ScoreStatistics(
        y, scores, n_classes=n_classes, positive=positive, names=["brier_score", "log_loss"]
    ).values()
    return _Summary(main=main, adaptive=adaptive, brier=losses["brier_score"], log_loss=losses["log_loss"])


def _has_finite_fit(x: np.ndarray, hit: np.ndarray, stats: BinnedStatistics) -> bool:
    """Whether the logistic fit of ``hit`` on ``x = logit(clip(p))`` has a finite optimum.

    It has one iff the classes' ranges of x overlap (:func:`overlapping`). The bins
    usually prove it without another pass over the rows: a hit in a lower bin than
    a miss has a strictly smaller p (bins are disjoint intervals), and a strictly
    smaller x too when the edge between them lies in [eps, 1 - eps), where
    clipping cannot tie them. Likewise a miss below a hit.
    """
    hits = np.flatnonzero(stats.counts[:, 1])
    misses = np.flatnonzero(stats.counts[:, 0])
    if hits.size and misses.size:
        inner = stats.edges[1:-1]
        interior = inner.size and inner.min() >= EPS and inner.max() < 1 - EPS
        if interior and hits[0] < misses[-1] and misses[0] < hits[-1]:
            return True
    return overlapping(x, hit)


def _decomposition(brier: float, terms: BrierTerms) -> BrierDecomposition:
    return BrierDecomposition(
        brier=brier,
        reliability=terms.reliability,
        resolution=terms.resolution,
        uncertainty=terms.uncertainty,
        within_bin_variance=terms.within_bin_variance,
        within_bin_covariance=terms.within_bin_covariance,
    )


def calibration_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    n_classes: int,
    positive: int | None,
    class_names: Sequence[str],
    bins: int = 10,
    strategy: str = "uniform",
    recalibrate: Sequence[str] = (),
    folds: int = 5,
    seed: int = 0,
    bootstrap_samples: int | None = None,
    confidence: float = 0.95,
) -> CalibrationResult:
    """Reliability diagrams, calibration scores and cross-fitted recalibration of one batch.

    Parameters
    ----------
    y_true : ndarray of int, shape (n,)
        Class codes ``0 .. n_classes - 1`` of the labeled rows.
    scores : ndarray, shape (n,) or (n, n_classes)
        Binary (``positive`` given): probability of the positive class.
        Multiclass (``positive`` None): one probability per class.
    n_classes : int
    positive : int or None
        Code of the positive class of a 2-class task; None for multiclass.
    class_names : sequence of str
        Names of the codes, keys of ``per_class``.
    bins : int, default=10
    strategy : {"uniform", "quantile"}, default="uniform"
        Equal-width bins on [0, 1] or equal-mass bins (percentiles of the scores).
    recalibrate : sequence of {"platt", "isotonic", "temperature"}, default=()
        Methods to cross-fit; all are defined for binary and multiclass scores.
    folds : int, default=5
        Cross-fitting folds (needs at least ``folds`` rows).
    seed : int, default=0
        Seeds the ECE bootstrap and the fold assignment (independent streams).
    bootstrap_samples : int, optional
        Replicates for the percentile interval of ``ece``; None for no interval.
    confidence : float, default=0.95
        Coverage of that interval.

    Returns
    -------
    CalibrationResult
        Binary: ``reliability`` of the positive class; ``ece``, ``mce`` and
        ``adaptive_ece`` are on the positive-class probability (not on the
        top-label confidence), and ``slope``/``intercept`` are filled (None when
        the logistic fit has no finite optimum: one class, or classes separated
        by the score). Multiclass: ``top_label`` and ``per_class`` diagrams;
        ``ece``, ``mce``, ``adaptive_ece`` are top-label (= ``top_label_ece``),
        ``classwise_ece`` is the mean over classes of each class's one-vs-rest
        ECE; ``slope``/``intercept`` are None.

    Raises
    ------
    ValueError
        For invalid options or data, no rows, or fewer rows than ``folds`` when
        recalibrating.

    Notes
    -----
    With ``n_b`` rows, mean probability ``f_b`` and observed frequency ``o_b`` in bin ``b``::

        ece = sum_b n_b / n |o_b - f_b|        mce = max_b |o_b - f_b|

    ``adaptive_ece`` is the ECE over ``bins`` equal-mass (``quantile``) bins.
    ``brier`` and ``log_loss`` equal scikit-learn's ``brier_score_loss`` and
    ``log_loss`` (and the metrics worker). The Brier decomposition uses the
    reliability bins, so it carries the within-bin terms and satisfies
    ``brier = reliability - resolution + uncertainty + within_bin_variance -
    within_bin_covariance`` exactly; multiclass terms are sums of the per-class
    one-vs-rest terms (halved for 2 classes, as ``brier_score_loss``).
    ``slope``/``intercept`` are the unpenalised logistic fit of the label on
    ``logit(p)``, p clipped to [eps, 1 - eps] (float64 eps, |logit| <= 36.04);
    ``clipped`` counts the scores raised to eps (exact zeros included) and lowered to
    1 - eps (exact ones included). The ECE interval resamples rows
    with the bin edges held fixed (see ``BinnedStatistics.ece_replicates``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(10_000)
    >>> y = (rng.random(10_000) < p).astype(int)
    >>> r = calibration_report(y, p, n_classes=2, positive=1, class_names=["no", "yes"])
    >>> r.ece < 0.02, round(r.slope, 1)
    (True, 1.0)
    """
    _check_options(
        n_classes=n_classes,
        positive=positive,
        class_names=class_names,
        bins=bins,
        strategy=strategy,
        recalibrate=recalibrate,
        folds=folds,
        seed=seed,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
    )
    y = check_codes(y_true, n_classes=n_classes, name="y_true")
    s = check_scores(scores, n=y.size, n_classes=n_classes, binary=positive is not None)
    n = y.size
    if n == 0:
        raise ValueError("calibration needs labeled rows; this batch has none.")
    if recalibrate and n < folds:
        raise ValueError(f"recalibration with {folds} folds needs at least {folds} labeled rows, got {n}.")
    # independent streams: asking for recalibration does not move the ECE interval
    boot_rng, fold_rng = np.random.default_rng(seed).spawn(2)
    bins = int(bins)

    summary = _summarise(s, y, n_classes=n_classes, positive=positive, bins=bins, strategy=strategy)
    before = summary.scores()
    reliability: ReliabilityDiagram | None = None
    top_label: ReliabilityDiagram | None = None
    per_class: dict[str, ReliabilityDiagram] | None = None
    top_label_ece: float | None = None
    classwise_ece: float | None = None
    slope: float | None = None
    intercept: float | None = None
    clipped: LogitClipping | None = None
    if positive is not None:
        reliability = summary.main.diagram()
        terms = summary.main.brier_terms()
        hit = y == positive
        x = logit(s)
        fitted = fit_logistic(x, hit) if _has_finite_fit(x, hit, summary.main) else None
        if fitted is not None:
            slope, intercept = fitted
        clipped = LogitClipping(
            epsilon=EPS,
            at_zero=int(np.count_nonzero(s < EPS)),
            at_one=int(np.count_nonzero(s > 1 - EPS)),
        )
    else:
        top_label = summary.main.diagram()
        top_label_ece = before.ece
        columns = np.ascontiguousarray(s.T)  # one copy; strided columns would make every pass 3x slower
        stats = [_binned(columns[c], y == c, bins=bins, strategy=strategy) for c in range(n_classes)]
        per_class = {name: st.diagram() for name, st in zip(class_names, stats, strict=True)}
        classwise_ece = float(np.mean([st.ece() for st in stats]))
        terms = stats[0].brier_terms()
        for st in stats[1:]:
            terms = terms + st.brier_terms()
        if n_classes == 2:
            terms = terms.scaled(0.5)

    ece_interval: Interval | None = None
    if bootstrap_samples is not None:
        replicates = summary.main.ece_replicates(samples=int(bootstrap_samples), rng=boot_rng)
        ece_interval = percentile_intervals({"ece": replicates}, confidence=confidence)["ece"]

    recalibration: list[Recalibration] = []
    if recalibrate:
        labels = y == positive if positive is not None else y
        ids = fold_ids(labels, folds=int(folds), rng=fold_rng)
        for method in recalibrate:
            out_of_fold, fitted_map = cross_fit(method, s, labels, assignment=ids, folds=int(folds))
            after = _summarise(
                out_of_fold, y, n_classes=n_classes, positive=positive, bins=bins, strategy=strategy
            )
            recalibration.append(
                Recalibration(
                    method=method,
                    before=before,
                    after=after.scores(),
                    parameters=fitted_map.parameters(class_names),
                )
            )

    return CalibrationResult(
        strategy=strategy,
        bins=bins,
        reliability=reliability,
        top_label=top_label,
        per_class=per_class,
        ece=before.ece,
        mce=before.mce,
        adaptive_ece=before.adaptive_ece,
        top_label_ece=top_label_ece,
        classwise_ece=classwise_ece,
        ece_interval=ece_interval,
        brier=_decomposition(summary.brier, terms),
        log_loss=summary.log_loss,
        slope=slope,
        intercept=intercept,
        clipped=clipped,
        recalibration=recalibration,
    )
