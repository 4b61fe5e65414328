"""Slice finder: where does the model do worst, without being told where to look?

Pure computation, deterministic: no I/O, no clock, no global random state.

Input: a per-row error (0/1, or a loss >= 0) and coded slice columns
``(name, codes, labels)``, numeric columns binned, as
:func:`service.workers.slices.codes.slice_codes` codes them.

* :mod:`.lattice` -- :func:`find_slices`: every conjunction of ``column == value`` with at
  least ``min_support`` rows (up to ``max_conditions`` conditions) is tested against the
  rest of the batch; ``min_support`` is the only floor on size.
* :mod:`.selection` -- which significant slices are reported: Benjamini-Hochberg over
  every slice tested, ``min_effect``, slices explained by a broader, a narrower or an
  overlapping slice or by a trend set aside; ranked by ``share^(1 - error_weight) x
  relative effect``; the counts of where the others went and why fewer than ``top_k``.
* :mod:`.trends` -- base-rate trends of the error along numeric columns' bins
  (Cochran-Armitage), reported apart so that they do not crowd out the slices.
* :mod:`.tree` -- :func:`tree_slices`, the leaves of a shallow regression tree on
  the errors, a second opinion with ``!=`` conditions too.
* :mod:`.tables` -- the grouped sufficient statistics both read slices from: one
  reduction of the rows to joint cells, then tables of cells, never rows again.
* :mod:`.hypotheses` -- one-sided tests of slices against other rows (Fisher's exact,
  Welch's t) and Benjamini-Hochberg.

Cost (1M 0/1 errors, 6 columns of 2, 3, 5, 10, 20, 50 values, 2-core dev box,
``benchmarks/bench_slicefinder.py``): :func:`find_slices` ~30 ms at depth 2 (all 2,621
slices tested) and ~60 ms at depth 3 (all 32,131), 0.3x a plain numpy count of every
slice; peak ~20 MB; :func:`tree_slices` ~0.4 s. The rows are read once (one ``bincount``
pass) whatever the depth; the cost then grows with the number of column combinations,
``C(k, L)`` at depth ``L``, each one reduction of the joint cells (at most one per row):
20 columns of 2 to 11 values on 1M rows take ~1.9 s at depth 2 and ~13 s at depth 3
(389,095 slices tested).
"""

from service.workers.multiple_testing import benjamini_hochberg
from service.workers.slicefinder.lattice import DEFAULT_ERROR_WEIGHT, DEFAULT_MIN_EFFECT, find_slices
from service.workers.slicefinder.tree import tree_slices

__all__ = ["DEFAULT_ERROR_WEIGHT", "DEFAULT_MIN_EFFECT", "benjamini_hochberg", "find_slices", "tree_slices"]
