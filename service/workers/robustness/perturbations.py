"""Perturbation: noise on one column of the sample, to see how often the model changes its mind.

Gaussian noise scaled by the column's standard deviation in the sample, a swap to another
observed value, or one typo per string; :func:`~service.workers.robustness.flips.perturbation_result`
reports what the model made of it. Pure and seeded: each kind of noise draws from its own stream
(:mod:`service.workers.robustness.sampling`).
"""

from __future__ import annotations

import math
import string

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.robustness import Perturbation
from service.workers.robustness.columns import (
    column_values,
    decoded,
    is_numeric,
    missing_rows,
    replace_column,
    restore_type,
)
from service.workers.robustness.sampling import GAUSSIAN_STREAM, SWAP_STREAM, TYPO_STREAM, rng_for

_TYPO_ALPHABET = string.ascii_lowercase


def perturb(table: pa.Table, spec: Perturbation, *, seed: int) -> pa.Table:
    """A copy of ``table`` with noise on ``spec.column``; every other column is untouched.

    Parameters
    ----------
    table : pyarrow.Table
        The sampled rows.
    spec : Perturbation
        ``noise`` is one of

        * ``gaussian`` (integer, floating or decimal column): ``x + N(0, (scale *
          std(x))^2)``, with the population standard deviation of the column's
          non-null, non-NaN values in ``table``. The column becomes float64;
          nulls and NaN stay as they are.
        * ``swap`` (any flat type): every non-missing value becomes another
          distinct value observed in the column, uniformly among the others
          (never itself). Nulls (and NaN) stay and are never drawn.
        * ``typo`` (string column): one random edit per non-empty string --
          insert or substitute a lowercase ASCII letter, delete a character, or
          transpose two adjacent different characters -- so every such string
          changes. Null and empty strings stay.
    seed : int
        Same seed and table, same copy.

    Returns
    -------
    pyarrow.Table
        Same rows in the same order.

    Raises
    ------
    ValueError
        The column is missing or of the wrong type for the noise, has no spread
        (gaussian: std 0 or fewer than two values) or fewer than two distinct
        values (swap).

    Examples
    --------
    >>> t = pa.table({"city": ["Oslo", "Rome", "Oslo"]})
    >>> perturb(t, Perturbation(column="city", noise="swap"), seed=0).column("city").to_pylist()
    ['Rome', 'Oslo', 'Rome']
    """
    arr = column_values(table, spec.column)
    if spec.noise == "gaussian":
        new = _gaussian(arr, spec.scale, rng_for(seed, GAUSSIAN_STREAM), column=spec.column)
    elif spec.noise == "swap":
        new = _swap(arr, rng_for(seed, SWAP_STREAM), column=spec.column)
    else:
        new = _typo(arr, rng_for(seed, TYPO_STREAM), column=spec.column)
    return replace_column(table, spec.column, new)


def _gaussian(arr: pa.Array, scale: float, rng: np.random.Generator, *, column: str) -> pa.Array:
    if not is_numeric(arr.type):
        raise ValueError(
            f"gaussian noise needs a numeric column; {column!r} is of type {arr.type} "
            "(use `swap` for categories, `typo` for strings)."
        )
    missing = missing_rows(arr)
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(arr.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64)
    present = values[~missing]
    std = float(present.std()) if present.size else 0.0
    if present.size < 2 or not (std > 0 and math.isfinite(std)):
        raise ValueError(
            f"gaussian noise on column {column!r} is scaled by its standard deviation, which is "
            f"{std!r} over the {present.size} non-missing values of the sample: nothing would change."
        )
    # One draw per row whatever the nulls, so a row's noise depends only on its position.
    noise = rng.standard_normal(values.size) * (scale * std)
    out = np.where(missing, values, values + noise)
    return pa.array(out, type=pa.float64(), mask=nulls)


def _swap(arr: pa.Array, rng: np.random.Generator, *, column: str) -> pa.Array:
    plain = decoded(arr)
    if pa.types.is_nested(plain.type):
        raise ValueError(f"swap noise needs a flat column; {column!r} is of type {plain.type}.")
    missing = missing_rows(plain)
    observed = pc.unique(plain.filter(pa.array(~missing)))  # first-appearance order: deterministic
    k = len(observed)
    if k < 2:
        raise ValueError(
            f"swap noise on column {column!r} needs at least two distinct values in the sample; "
            f"it has {k}{'' if k == 0 else f' ({observed[0].as_py()!r})'}."
        )
    codes = np.asarray(
        pc.index_in(plain, value_set=observed).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
    )
    # Uniform over the k - 1 other values: draw in 0..k-2 and skip over the row's own code.
    drawn = rng.integers(0, k - 1, size=len(plain))
    new_codes = drawn + (drawn >= codes)
    swapped = observed.take(pa.array(new_codes, mask=missing))
    # Missing rows keep their value (null, or NaN in a floating column).
    out = pc.if_else(pa.array(missing), plain, swapped)
    return restore_type(out, arr.type)


def _typo(arr: pa.Array, rng: np.random.Generator, *, column: str) -> pa.Array:
    plain = decoded(arr)
    if not (pa.types.is_string(plain.type) or pa.types.is_large_string(plain.type)):
        raise ValueError(f"typo noise needs a string column; {column!r} is of type {plain.type}.")
    out = [v if not v else _one_typo(v, rng) for v in plain.to_pylist()]
    return restore_type(pa.array(out, type=plain.type), arr.type)


def _one_typo(s: str, rng: np.random.Generator) -> str:
    """One edit that always changes ``s`` (non-empty): insert, delete, substitute or transpose."""
    transposable = [i for i in range(len(s) - 1) if s[i] != s[i + 1]]
    ops = ["insert", "delete", "substitute"] + (["transpose"] if transposable else [])
    op = ops[int(rng.integers(len(ops)))]
    if op == "insert":
        pos = int(rng.integers(len(s) + 1))
        return s[:pos] + _TYPO_ALPHABET[int(rng.integers(len(_TYPO_ALPHABET)))] + s[pos:]
    if op == "delete":
        pos = int(rng.integers(len(s)))
        return s[:pos] + s[pos + 1 :]
    if op == "substitute":
        pos = int(rng.integers(len(s)))
        choices = _TYPO_ALPHABET.replace(s[pos], "")
        return s[:pos] + choices[int(rng.integers(len(choices)))] + s[pos + 1 :]
    i = transposable[int(rng.integers(len(transposable)))]
    return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
