"""Slice finder: where does the model do worst, without being told where to look?

Pure computation, deterministic: no I/O, no clock, no global random state.

Input: a per-row error (0/1, or a loss >= 0) and coded slice columns
``(name, codes, labels)``; numeric columns are binned first (:func:`bin_numeric`).

* :mod:`.lattice` -- :func:`find_slices`, SliceLine's level-wise lattice search over
  conjunctions of ``column == value``, pruned by upper bounds on the score, exact
  (the top-k of full enumeration).
* :mod:`.tree` -- :func:`tree_slices`, the leaves of a shallow regression tree on
  the errors, a second opinion with ``!=`` conditions too.
* :mod:`.tables` -- the grouped sufficient statistics both read slices from: one
  reduction of the rows to joint cells, then tables of cells, never rows again.
* :mod:`.hypotheses` -- one-sided tests of each slice against the rest of the batch
  and Benjamini-Hochberg over every slice tested.

Cost (1M rows, 6 columns of 2, 3, 5, 10, 20, 50 values, 2-core dev box,
``benchmarks/bench_slicefinder.py``): see the benchmark's table; the lattice
search reads the rows once (one ``bincount`` pass) whatever the depth.
"""

from service.workers.slicefinder.columns import bin_numeric
from service.workers.slicefinder.hypotheses import benjamini_hochberg
from service.workers.slicefinder.lattice import find_slices
from service.workers.slicefinder.tree import tree_slices

__all__ = ["benjamini_hochberg", "bin_numeric", "find_slices", "tree_slices"]
