"""Vectorized evaluation of a parsed expression over an Arrow table.

Every node becomes one Arrow compute call over whole columns (for dictionary
columns, over the dictionary, then gathered by the indices), so the cost grows
with the number of nodes, not with rows times nodes in Python. Truth values are
three-valued (Kleene): a comparison with a null is unknown, ``not unknown`` is
unknown, and unknown counts as not selected only at the very end.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.expressions.errors import ExpressionError
from service.expressions.schema import check_columns
from service.expressions.syntax import (
    And,
    Column,
    Comparison,
    Expression,
    Literal,
    Membership,
    Not,
    NullCheck,
    Or,
    Value,
)

Truth: TypeAlias = pa.ChunkedArray | pa.BooleanScalar
ValuesFunction = Callable[[pa.Array | pa.ChunkedArray], pa.Array | pa.ChunkedArray]

_COMPARATORS = {
    "==": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
_INT64_MAX = 2**63 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def evaluate(expr: Expression, table: pa.Table) -> np.ndarray:
    """The rows of ``table`` for which ``expr`` is true.

    Parameters
    ----------
    expr : Expression
        A parsed expression; it is checked against ``table.schema`` first.
    table : pyarrow.Table
        The data, with any chunking; dictionary-encoded columns are not decoded.

    Returns
    -------
    numpy.ndarray
        Boolean mask of shape ``(table.num_rows,)``. Unknown (null) results are False.

    Raises
    ------
    ExpressionError
        From :func:`check_columns`, or if Arrow cannot compare the types involved.

    Notes
    -----
    NaN in a float column counts as null (data from pandas marks missing values
    with NaN), so ``x > 1`` is not true and ``x is null`` is true for it.
    """
    check_columns(expr, table.schema)
    truth = _Evaluator(table).condition(expr)
    if isinstance(truth, pa.Scalar):
        return np.full(table.num_rows, truth.as_py() is True, dtype=bool)
    return np.asarray(pc.fill_null(truth, False).to_numpy(zero_copy_only=False), dtype=bool)


class _Evaluator:
    """Evaluates nodes of one expression over one table, loading each column once."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._columns: dict[str, pa.ChunkedArray] = {}

    def condition(self, node: Expression) -> Truth:
        if isinstance(node, And):
            return reduce(pc.and_kleene, map(self.condition, node.operands))
        if isinstance(node, Or):
            return reduce(pc.or_kleene, map(self.condition, node.operands))
        if isinstance(node, Not):
            return pc.invert(self.condition(node.operand))
        if isinstance(node, Literal):
            return pa.scalar(node.value, pa.bool_())
        try:
            return self._predicate(node)
        except _ARROW_ERRORS as error:
            raise ExpressionError(f"cannot evaluate '{node}' on this data: {error}", node.position) from error

    def _predicate(self, node: Expression) -> pa.ChunkedArray:
        if isinstance(node, Column):
            return _decoded(self._column(node)).cast(pa.bool_())
        if isinstance(node, NullCheck):
            valid = _is_valid(self._column(node.column))
            return valid if node.negated else pc.invert(valid)
        if isinstance(node, Membership):
            return self._membership(node)
        if isinstance(node, Comparison):
            return self._comparison(node)
        raise TypeError(f"not an expression node: {node!r}")

    def _column(self, column: Column) -> pa.ChunkedArray:
        if column.name not in self._columns:
            self._columns[column.name] = _normalized(self._table.column(column.name))
        return self._columns[column.name]

    def _comparison(self, node: Comparison) -> pa.ChunkedArray:
        compare = _COMPARATORS[node.op]
        left, right = node.left, node.right
        if isinstance(left, Column) and isinstance(right, Column):
            return compare(_decoded(self._column(left)), _decoded(self._column(right)))
        if isinstance(left, Column):
            column = self._column(left)
            scalar = _scalar(_literal_value(right), _value_type(column.type))
            return _map_values(column, lambda values: compare(values, scalar))
        column = self._column(_as_column(right))
        scalar = _scalar(_literal_value(left), _value_type(column.type))
        return _map_values(column, lambda values: compare(scalar, values))

    def _membership(self, node: Membership) -> pa.ChunkedArray:
        column = self._column(node.column)
        if pa.types.is_null(_value_type(column.type)):
            return column.cast(pa.bool_())  # all unknown; is_in has no kernel for the null type
        value_set = pa.array([value.value for value in node.values])

        def is_in(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
            # is_in says False for a null; SQL says unknown, which matters under ``not``.
            return pc.if_else(pc.is_valid(values), pc.is_in(values, value_set=value_set), None)

        matched = _map_values(column, is_in)
        return pc.invert(matched) if node.negated else matched


def _as_column(operand: Expression) -> Column:
    if not isinstance(operand, Column):  # pragma: no cover - the parser guarantees a column
        raise TypeError(f"expected a column, got {operand!r}")
    return operand


def _literal_value(operand: Expression) -> Value:
    if not isinstance(operand, Literal):  # pragma: no cover - the caller checked the other side
        raise TypeError(f"expected a literal, got {operand!r}")
    return operand.value


def _value_type(data_type: pa.DataType) -> pa.DataType:
    return data_type.value_type if pa.types.is_dictionary(data_type) else data_type


def _scalar(value: Value, column_type: pa.DataType) -> pa.Scalar:
    """A literal as an Arrow scalar; against float32 it is rounded to float32 like the data was.

    Without this ``x == 0.1`` would be false for a float32 0.1 while ``x in (0.1)`` is
    true, because Arrow widens the column for comparisons but narrows in-list values.
    """
    if (
        pa.types.is_float32(column_type)
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and abs(value) <= _FLOAT32_MAX
    ):
        return pa.scalar(float(value), pa.float32())
    return pa.scalar(value)


def _map_values(column: pa.ChunkedArray, function: ValuesFunction) -> pa.ChunkedArray:
    """Apply a vectorized predicate; on a dictionary column, to each dictionary only."""
    if not pa.types.is_dictionary(column.type):
        return function(column)
    chunks = [pc.take(function(chunk.dictionary), chunk.indices) for chunk in column.chunks]
    return pa.chunked_array(chunks, type=pa.bool_())


def _is_valid(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_dictionary(column.type):
        return pc.is_valid(column)
    # A valid index may point at a null dictionary entry, so look through both.
    return pc.fill_null(_map_values(column, pc.is_valid), False)


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return column.cast(column.type.value_type)
    return column


def _normalized(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Bring a column to types Arrow compares exactly, keeping dictionaries encoded."""
    if not pa.types.is_dictionary(column.type):
        return _normalized_values(column)
    chunks = [
        pa.DictionaryArray.from_arrays(chunk.indices, _normalized_values(chunk.dictionary))
        for chunk in column.chunks
    ]
    if not chunks:
        value_type = _normalized_values(pa.array([], column.type.value_type)).type
        return pa.chunked_array([], pa.dictionary(column.type.index_type, value_type))
    return pa.chunked_array(chunks)


def _normalized_values(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    data_type = values.type
    if pa.types.is_float16(data_type):
        values = values.cast(pa.float32())  # Arrow has no float16 comparison kernels
    elif pa.types.is_decimal(data_type):
        values = values.cast(pa.float64())  # in-lists of decimals fail on rescaling
    elif pa.types.is_uint64(data_type):
        values = _uint64_as_signed(values)
    elif str(data_type) == "string_view":
        values = values.cast(pa.large_string())  # no comparison kernels in pyarrow <= 26
    if pa.types.is_floating(values.type) and pc.any(pc.is_nan(values)).as_py():
        values = pc.if_else(pc.is_nan(values), None, values)
    return values


def _uint64_as_signed(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    # Comparing uint64 with anything signed makes Arrow cast it to int64, which fails
    # for values above 2**63 - 1; only such huge values need the (inexact) float64.
    largest = pc.max(values).as_py()
    if largest is None or largest <= _INT64_MAX:
        return values.cast(pa.int64())
    return values.cast(pa.float64(), safe=False)
