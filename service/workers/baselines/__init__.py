"""The baseline panel: what a model is compared with, and whether it beats it.

Pure computation: arrays in, :class:`~schemas.metrics.MetricsReport` /
:class:`~schemas.baselines.MetricComparison` out; randomness only from ``seed``.
Loading batches, joining by ``sample_id``, heuristic rules and findings belong to
the caller.

Baselines
---------
* ``random_uniform`` / ``random_prior`` (:func:`expected_random_metrics`): the
  expected metrics of predicting a class at random, uniformly or with the label
  distribution, in closed form. A predictor that draws its class from ``q``
  independently of the row has expected confusion matrix ``E[C_ij] = n_i q_j``;
  the label metrics are those of that matrix (computed by the metrics worker's
  confusion code, so exactly the model's formulas), the score metrics those of the
  constant probabilities ``q``: ROC AUC 0.5, average precision = prevalence, and
  the log loss / Brier score of always predicting ``q``. Ratios such as F1 are
  evaluated at the expected counts (their expectation differs by O(1/n)).
* ``zero_rule`` (:func:`zero_rule_predictions`, :func:`zero_rule_metrics`): always
  the most frequent class (ties: the lowest code) with the label prior as scores;
  regression: the mean (:func:`constant_regression_predictions`, also the median).
* ``human`` / ``existing`` / ``heuristic``: other predictions, compared with
  :func:`compare` (paired on shared rows, unpaired otherwise).

Significance
------------
:func:`compare` and :func:`compare_to_expected` test every metric; see
:mod:`service.workers.significance` for the tests and why score metrics use the
delta method (DeLong for ROC AUC) rather than a row bootstrap.

Which classes are averaged
--------------------------
``labels`` (``"present"``, the default, or ``"declared"``) is the option of
:mod:`service.workers.metrics`: the macro averages (and the multiclass ROC AUC /
average precision) over the classes that occur, as scikit-learn's default, or over
every declared class, as scikit-learn's ``labels=range(K)``. A prepared side keeps
its ``labels``; its report, the baselines' closed forms and every replicate and
influence term of a comparison use it (bootstrap replicates apply it to each
resample), and :func:`compare` refuses sides prepared with different ones.

Modules
-------
``sides``
    :class:`Side`, :func:`prepare_side`: each side validated and prepared once.
``closed_form``
    The random baselines and the zero rule from label counts.
``comparison``
    :func:`compare`, :func:`compare_to_expected`: lifts, tests and verdicts, using
    ``resampling`` (bootstrap replicates) and ``intervals`` (intervals of differences).
"""

from __future__ import annotations

from service.workers.baselines.closed_form import (
    Strategy,
    constant_regression_predictions,
    expected_confusion,
    expected_random_metrics,
    prepare_zero_rule,
    zero_rule_metrics,
    zero_rule_predictions,
)
from service.workers.baselines.comparison import (
    AUTO_BOOTSTRAP_DRAWS,
    Comparison,
    IntervalMethod,
    compare,
    compare_to_expected,
    resamples_smooth_metrics,
)
from service.workers.baselines.sides import (
    NO_PROBABILITIES,
    PreparedSide,
    Side,
    prepare_side,
)

__all__ = [
    "AUTO_BOOTSTRAP_DRAWS",
    "NO_PROBABILITIES",
    "Comparison",
    "IntervalMethod",
    "PreparedSide",
    "Side",
    "Strategy",
    "compare",
    "compare_to_expected",
    "constant_regression_predictions",
    "expected_confusion",
    "expected_random_metrics",
    "prepare_side",
    "prepare_zero_rule",
    "resamples_smooth_metrics",
    "zero_rule_metrics",
    "zero_rule_predictions",
]
