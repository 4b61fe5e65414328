"""Is a model's metric significantly different from a baseline's? Tests and intervals of differences.

Pure computation, seeded: no I/O, no clock, no global random state.

Three families, chosen per metric by what is exact and what is affordable on
millions of rows (1M binary rows: a row-resampling bootstrap replicate of a score
metric costs ~28 ms, so 1000 of them cost ~30 s per comparison):

* **Exact / classical tests** on counts (:mod:`.counts`): :func:`mcnemar_exact` (paired
  accuracy), :func:`binomial_test` (accuracy against a fixed expected value),
  :func:`two_proportion_z` (unpaired proportions). Which metric gets which is the
  registry's ``count_tests`` (:mod:`service.workers.metrics.registry`).
* **Bootstrap of the difference** for the label metrics and the non-smooth
  regression metrics. Label metrics are functions of confusion matrices: a paired
  resample of n rows is one ``Multinomial(n, c / n)`` draw over the joint cells
  ``(true, pred_model, pred_baseline)`` (``K^3`` cells, only the non-empty ones are
  drawn), whose two marginals are the two resampled confusion matrices -- exactly
  resampling the same rows for both sides, in milliseconds on any n. Unpaired
  resamples are independent draws of each side
  (:func:`~service.workers.bootstrap.classification_replicates`); :mod:`.replicates`.
* **Delta method** for the metrics the registry calls ``smooth`` (scores and values):
  ROC AUC (this is DeLong's variance), average precision, log loss, Brier score, MAE,
  RMSE, MAPE, R^2 (:mod:`.influence`, :mod:`.ranking_influence`, :mod:`.differences`).
  Each metric is a smooth function of row weights; its gradient
  ``g_k = d metric / d w_k`` at ``w = 1`` linearises the bootstrap::

      metric(w) - metric(1) ~ sum_k g_k (w_k - 1)

  ``n g_k`` is the empirical influence function, and the variance uses its sample
  variance with the unbiased ``n - 1`` denominator: ``Var = n / (n - 1) sum_k g_k^2``
  (the gradients sum to 0: every metric here is invariant to scaling all weights).
  ROC AUC is a two-sample U-statistic, so its variance is DeLong, DeLong &
  Clarke-Pearson (1988)'s ``S10 / m + S01 / n`` whose structural-component variances
  use ``m - 1`` (positives) and ``n - 1`` (negatives). :func:`score_influence`,
  :func:`regression_influence` and the constant-score shortcuts return the
  *influence terms* ``h_k`` -- the gradients scaled by these finite-sample factors,
  ``sqrt(n / (n - 1))``, for AUC ``sqrt(m / (m - 1))`` on positives and
  ``sqrt(n / (n - 1))`` on negatives (``ddof=0`` gives the bare gradients) -- so
  that every standard error is ``sqrt(sum_k (h_k - mean h)^2)`` (:func:`influence_se`):
  the paired difference ``sqrt(sum (h_model - h_base)^2)`` (both sides have the
  same rows, hence the same factors: DeLong's covariance of two correlated AUCs),
  the unpaired one ``sqrt(se_model^2 + se_base^2)``, and the interval is
  ``diff +- z se`` in O(n) after one sort per side (none for constant probabilities,
  :func:`constant_score_influence`). For a mean of per-row losses this is the plain
  CLT interval of a (paired) difference of means with the sample standard deviation
  (``ddof=1``); for ROC AUC it is DeLong's. A multiclass macro AUC averages the
  per-class influence terms, each with its own class's factors. Average precision
  has no textbook paired test; its gradient is derived in :func:`_ranking_gradients`
  and checked against finite differences and the paired bootstrap in the tests.

The count tests are exact at any n; the bootstrap and delta-method intervals are
asymptotic, so with a few dozen rows their verdicts are optimistic (a bootstrap of
2 rows "proves" little). A degenerate delta-method variance (e.g. a perfect ranking,
every placement 1) gives a zero-width interval.

Verdicts (:mod:`.verdicts`) read the interval of the difference in the direction the
metric prefers.
"""

from __future__ import annotations

from service.workers.significance.counts import (
    McNemar,
    ZTest,
    binomial_test,
    joint_mcnemar,
    mcnemar_counts,
    mcnemar_exact,
    paired_joint_counts,
    two_proportion_z,
    two_proportion_z_test,
)
from service.workers.significance.differences import (
    DifferenceInterval,
    bootstrap_difference,
    class_constant_paired_se,
    delta_method_difference,
    influence_se,
    normal_difference,
    paired_influence_se,
)
from service.workers.significance.influence import (
    constant_score_class_influence,
    constant_score_influence,
    regression_influence,
    score_influence,
)
from service.workers.significance.replicates import (
    paired_confusion_replicates,
    paired_regression_replicates,
    paired_row_replicates,
    unpaired_classification_replicates,
    unpaired_regression_replicates,
)
from service.workers.significance.verdicts import (
    Decision,
    Verdict,
    decide,
    interval_verdict,
    normalized_gain,
    p_value_verdict,
)

__all__ = [
    "Decision",
    "DifferenceInterval",
    "McNemar",
    "Verdict",
    "ZTest",
    "binomial_test",
    "bootstrap_difference",
    "class_constant_paired_se",
    "constant_score_class_influence",
    "constant_score_influence",
    "decide",
    "delta_method_difference",
    "influence_se",
    "interval_verdict",
    "joint_mcnemar",
    "mcnemar_counts",
    "mcnemar_exact",
    "normal_difference",
    "normalized_gain",
    "p_value_verdict",
    "paired_confusion_replicates",
    "paired_influence_se",
    "paired_joint_counts",
    "paired_regression_replicates",
    "paired_row_replicates",
    "regression_influence",
    "score_influence",
    "two_proportion_z",
    "two_proportion_z_test",
    "unpaired_classification_replicates",
    "unpaired_regression_replicates",
]
