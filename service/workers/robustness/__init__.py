"""Robustness: perturbed copies of a sample, and the reports on a model's answers to them.

Pure computation, seeded: no HTTP, no I/O, no clock, no global random state. The caller (the
robustness job) draws the sample (:func:`sample_rows`), builds the copies here, sends every copy to
the model endpoint, has the endpoint client turn the answers into :class:`Answers`
(:func:`service.integrations.kserve.answers_from_predictions`) and hands both sides back to
:func:`perturbation_result` or :func:`expectation_result`.

Three kinds of test
-------------------
* **Perturbation** (:func:`perturb`): noise on one column -- gaussian noise scaled by the
  column's standard deviation in the sample, a swap to another observed value, or one typo per
  string. Reported: the flip rate (predicted class changed), the mean absolute score change and
  the metric drop on labeled rows.
* **Invariance** (:func:`invariance_copy`): rows holding one of two values get the other; only
  those rows are tested. The answer must stay the same.
* **Directional expectation** (:func:`directional_copy`): ``add``, ``multiply`` or ``set`` a
  column; the score must not move against ``expect``.

Pairs of batches posted by a pipeline (original and perturbed predictions, joined by
``sample_id`` by the caller) are reported by :func:`expectation_result` with ``kind="pair"``.

Modules
-------
``sampling``
    The seeded sample and the independent random streams of every draw.
``columns``
    Reading and writing one Arrow column, keeping its type.
``perturbations``, ``copies``
    The changed copies: noise; invariance swaps and directional changes.
``answers``
    :class:`Answers` and the identity of a class label (1 and "1" are one class).
``comparison``
    Row-by-row comparison of two answer sets, with the tolerance's rounding slack.
``flips``, ``expectations``
    The reports: flip rate and metric drop; violations (the convention table is there).
"""

from service.workers.robustness.answers import Answers
from service.workers.robustness.copies import changed_mask, directional_copy, invariance_copy
from service.workers.robustness.expectations import expectation_result
from service.workers.robustness.flips import perturbation_result
from service.workers.robustness.perturbations import perturb
from service.workers.robustness.sampling import sample_rows

__all__ = [
    "Answers",
    "changed_mask",
    "directional_copy",
    "expectation_result",
    "invariance_copy",
    "perturb",
    "perturbation_result",
    "sample_rows",
]
