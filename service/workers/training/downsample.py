"""Shrinking a long metric series to a few hundred points without losing its shape.

A loss curve of 100k steps drawn on a 1,000-pixel axis needs 1,000 points, but taking every
hundredth point hides spikes and the drop right after a learning-rate change. Two methods that
keep what the eye looks for:

- ``lttb`` (largest-triangle-three-buckets, S. Steinarsson, "Downsampling Time Series for Visual
  Representation", MSc thesis, University of Iceland, 2013): the first and last points, then one
  point per bucket, the one that spans the largest triangle with the point kept before it and the
  mean of the next bucket. It keeps peaks, troughs and bends.
- ``min_max``: per bucket its smallest and largest value (in step order). It keeps every extreme
  exactly, at the cost of two points per bucket.

Both return the *indices* of the points kept, in increasing order, so the caller slices every
column of the series (step, value, timestamp, worker) alike and each point kept is a real point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]

METHODS = ("lttb", "min_max")


def _bucket_edges(n: int, buckets: int) -> npt.NDArray[np.intp]:
    """Edges splitting the inner points ``1..n-2`` into ``buckets`` nearly equal runs."""
    return np.linspace(1, n - 1, buckets + 1).astype(np.intp)


def lttb(x: FloatArray, y: FloatArray, max_points: int) -> Indices:
    """Indices of at most ``max_points`` points chosen by largest-triangle-three-buckets.

    Parameters
    ----------
    x, y : arrays of shape (n,)
        The series, ``x`` increasing (steps or seconds).
    max_points : int
        At least 3; a series already that short is returned whole.
    """
    n = len(x)
    if max_points < 3:
        raise ValueError("max_points must be at least 3 for lttb (the two ends and one bucket).")
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    edges = _bucket_edges(n, max_points - 2)
    kept = np.empty(max_points, dtype=np.intp)
    kept[0], kept[-1] = 0, n - 1
    previous = 0
    for b in range(max_points - 2):
        start, stop = edges[b], edges[b + 1]
        # the next bucket's mean (the last point itself after the last bucket)
        if b + 2 <= max_points - 2:
            nxt = slice(edges[b + 1], edges[b + 2])
            cx, cy = float(x[nxt].mean()), float(y[nxt].mean())
        else:
            cx, cy = float(x[-1]), float(y[-1])
        ax, ay = float(x[previous]), float(y[previous])
        # twice the triangle's area, up to sign: (b - a) x (c - a)
        area = np.abs((x[start:stop] - ax) * (cy - ay) - (cx - ax) * (y[start:stop] - ay))
        previous = int(start + np.argmax(area))
        kept[b + 1] = previous
    return kept


def min_max(y: FloatArray, max_points: int) -> Indices:
    """Indices of each bucket's smallest and largest value, at most ``max_points`` in all.

    The first and last points are always kept, so the curve starts and ends where it does.
    """
    n = len(y)
    if max_points < 4:
        raise ValueError("max_points must be at least 4 for min_max (the two ends and one bucket).")
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    buckets = (max_points - 2) // 2
    edges = _bucket_edges(n, buckets)
    inner = y[1 : n - 1]
    # per-bucket arg-min/arg-max through a sort of (bucket, value): one pass, no Python loop
    bucket_of = np.repeat(np.arange(buckets), np.diff(edges))
    order = np.lexsort((inner, bucket_of))
    counts = np.diff(edges)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lows = order[firsts]
    highs = order[firsts + counts - 1]
    kept = np.unique(np.concatenate(([0, n - 1], lows + 1, highs + 1)))
    return kept.astype(np.intp)


def downsample(x: FloatArray, y: FloatArray, max_points: int, method: str = "lttb") -> Indices:
    """Indices to keep of the series ``(x, y)``: ``method`` is ``lttb`` or ``min_max``."""
    if method == "lttb":
        return lttb(x, y, max_points)
    if method == "min_max":
        return min_max(y, max_points)
    raise ValueError(f"unknown downsampling method {method!r}; use one of {', '.join(METHODS)}.")
