"""The packed-key argsort equals numpy's stable argsort, on the cases that stress its prefix."""

from __future__ import annotations

import numpy as np
import pytest

from service.workers.sorting import argsort_floats, sort_floats

N = 50_000  # above the size where packing starts


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    base = np.repeat(rng.random(N // 10), 10)
    # runs of ten values a few ulps apart: the same key prefix, in scrambled order
    ulps = np.nextafter(base, 2.0) - base
    close = base + ulps * rng.integers(0, 200, N)
    return {
        "uniform": rng.random(N),
        "rounded_ties": rng.random(N).round(2),
        "normal_with_negatives": rng.normal(size=N),
        "a few ulps apart": close,
        "close and negative": -close,
        "signed zeros": np.where(rng.random(N) < 0.5, 0.0, -0.0),
        "infinities": np.concatenate([rng.normal(size=N - 4), [np.inf, -np.inf, np.inf, -np.inf]]),
        "all within 1e-12": 1 - rng.random(N) * 1e-12,
        "constant": np.full(N, 0.3),
        "float32 scores": rng.random(N).astype(np.float32),
        "small": rng.random(100),
        "empty": np.array([]),
    }


@pytest.mark.parametrize(("name", "values"), list(_cases().items()))
def test_equals_numpys_stable_argsort(name: str, values: np.ndarray) -> None:
    expected = np.argsort(values.astype(np.float64), kind="stable")
    order, ordered = sort_floats(values)
    np.testing.assert_array_equal(order, expected, err_msg=name)
    np.testing.assert_array_equal(ordered, values.astype(np.float64)[expected])
    np.testing.assert_array_equal(argsort_floats(values), expected)
    assert order.dtype == np.intp


def test_scrambled_shared_prefixes_are_actually_exercised() -> None:
    """The 'a few ulps apart' case must defeat the prefix alone, or it tests nothing."""
    values = _cases()["a few ulps apart"]
    bits = (values.size - 1).bit_length()
    prefix = (values.view(np.uint64) << np.uint64(1)) >> np.uint64(bits)
    by_prefix = np.lexsort((np.arange(values.size), prefix))
    assert not np.array_equal(by_prefix, np.argsort(values, kind="stable"))


def test_rejects_matrices() -> None:
    with pytest.raises(ValueError, match="1-D"):
        argsort_floats(np.zeros((3, 3)))


@pytest.mark.parametrize("n", [1023, 1024, 1025, 4095, 4096, 4097, 8192, 8193, 65536, 65537])
def test_sizes_around_the_row_bit_boundaries(n: int) -> None:
    """Packing starts at 1,024 rows and the row number's width changes at powers of two: ties and
    near-ties at every size around them."""
    rng = np.random.default_rng(n)
    base = rng.random(n // 4 + 1).round(4)
    values = rng.choice(base, n) + rng.integers(0, 3, n) * np.spacing(1.0) * 0.25
    np.testing.assert_array_equal(argsort_floats(values), np.argsort(values, kind="stable"))
