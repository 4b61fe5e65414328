"""The seeded sample of rows a robustness test sends, and the random streams behind every draw.

Every function that draws takes ``seed`` and derives its own generator from ``(seed, stream)``,
so the sample and each kind of noise use independent streams and the same request always gives
the same sample and copies (row order included). The streams are listed together here so that
two purposes can never share one.
"""

from __future__ import annotations

import numpy as np

# Independent random streams per purpose: the same seed never reuses draws across them.
SAMPLE_STREAM, GAUSSIAN_STREAM, SWAP_STREAM, TYPO_STREAM = 0, 1, 2, 3


def rng_for(seed: int, stream: int) -> np.random.Generator:
    # SeedSequence entropy must be non-negative; the sign goes into its own word.
    return np.random.default_rng(np.random.SeedSequence([abs(int(seed)), int(seed < 0), stream]))


def sample_rows(n_rows: int, *, sample_size: int, seed: int) -> np.ndarray:
    """Row indices of a seeded sample drawn without replacement.

    Parameters
    ----------
    n_rows : int
        Rows in the batch.
    sample_size : int
        Rows wanted; all rows when the batch is not larger.
    seed : int
        Any integer (negative too).

    Returns
    -------
    ndarray of intp, shape (min(n_rows, sample_size),)
        Sorted, distinct indices into ``0 .. n_rows - 1``.

    Examples
    --------
    >>> sample_rows(3, sample_size=10, seed=0).tolist()
    [0, 1, 2]
    >>> len(sample_rows(1000, sample_size=5, seed=0))
    5
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}.")
    if sample_size < 1:
        raise ValueError(f"sample_size must be at least 1, got {sample_size}.")
    if n_rows <= sample_size:
        return np.arange(n_rows, dtype=np.intp)
    drawn = rng_for(seed, SAMPLE_STREAM).choice(n_rows, size=sample_size, replace=False)
    return np.sort(drawn).astype(np.intp, copy=False)
