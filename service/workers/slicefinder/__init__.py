"""Slice finder: where does the model do worst, without being told where to look?

Pure computation, deterministic: no I/O, no clock, no global random state.

Input: a per-row error (0/1, or a loss >= 0) and coded slice columns
``(name, codes, labels)``, numeric columns binned, as
:func:`service.workers.slices.codes.slice_codes` codes them.

* :mod:`.lattice` -- :func:`find_slices`, SliceLine's level-wise lattice search over
  conjunctions of ``column == value``, pruned by upper bounds on the score, exact
  (the top-k of full enumeration).
* :mod:`.tree` -- :func:`tree_slices`, the leaves of a shallow regression tree on
  the errors, a second opinion with ``!=`` conditions too.
* :mod:`.tables` -- the grouped sufficient statistics both read slices from: one
  reduction of the rows to joint cells, then tables of cells, never rows again.
* :mod:`.hypotheses` -- one-sided tests of each slice against the rest of the batch
  and Benjamini-Hochberg over every slice tested.

Cost (1M 0/1 errors, 6 columns of 2, 3, 5, 10, 20, 50 values, 2-core dev box,
``benchmarks/bench_slicefinder.py``): :func:`find_slices` ~25 ms at depth 2 or 3
(numpy enumeration of all 32,131 slices: 0.21 s; the ``sliceline`` package at
depth 2: 26 s and 7.3 GB, at depth 3 out of memory under a 12 GB cap), peak
~15 MB allocated; :func:`tree_slices` ~0.35 s. The rows are read once (one
``bincount`` pass) whatever the depth.
"""

from service.workers.slicefinder.hypotheses import benjamini_hochberg
from service.workers.slicefinder.lattice import find_slices
from service.workers.slicefinder.tree import tree_slices

__all__ = ["benjamini_hochberg", "find_slices", "tree_slices"]
