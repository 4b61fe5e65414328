"""Checking a parsed expression against the columns and types of the data."""

from __future__ import annotations

import difflib

import pyarrow as pa

from service.expressions.errors import ExpressionError
from service.expressions.syntax import (
    And,
    Column,
    Comparison,
    Expression,
    Literal,
    Membership,
    Not,
    Or,
    ValueKind,
)
from service.expressions.tokens import NUMBER_PATTERN

_ORDERED = frozenset({"<", "<=", ">", ">="})
_KIND_WORDS = {
    ValueKind.NUMBER: "numbers",
    ValueKind.STRING: "strings",
    ValueKind.BOOLEAN: "booleans",
    ValueKind.NULL: "only nulls",
    ValueKind.OTHER: "values of another kind",
}
_MAX_LISTED_COLUMNS = 10


def kind_of_type(data_type: pa.DataType) -> ValueKind:
    """How expressions treat an Arrow type; dictionary columns count as their values."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    if pa.types.is_null(data_type):
        return ValueKind.NULL
    if pa.types.is_boolean(data_type):
        return ValueKind.BOOLEAN
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return ValueKind.NUMBER
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type) or _is_string_view(data_type):
        return ValueKind.STRING
    return ValueKind.OTHER


def _is_string_view(data_type: pa.DataType) -> bool:
    # ``is_string_view`` appeared in pyarrow 16; we support 15.
    is_string_view = getattr(pa.types, "is_string_view", None)
    return bool(is_string_view and is_string_view(data_type))


def check_columns(expr: Expression, schema: pa.Schema) -> None:
    """Raise unless every column exists once in ``schema`` and every comparison fits its types.

    Parameters
    ----------
    expr : Expression
        A parsed expression.
    schema : pyarrow.Schema
        The schema of the table the expression will be evaluated on.

    Raises
    ------
    ExpressionError
        At the position of the offending column name: an unknown column (with close
        matches), a column present more than once, or a type mismatch such as a string
        column compared with a number, ``<`` on booleans, or a non-boolean column used
        as a condition.
    """
    for node in expr.walk():
        if isinstance(node, Column):
            _check_known(node, schema)
    _check_condition(expr, schema)


def _check_known(column: Column, schema: pa.Schema) -> None:
    found = len(schema.get_all_field_indices(column.name))
    if found == 1:
        return
    if found > 1:
        raise ExpressionError(f"column {column.name!r} appears {found} times in the data", column.position)
    raise ExpressionError(
        f"unknown column {column.name!r}; {_suggestion(column.name, schema.names)}", column.position
    )


def _suggestion(name: str, names: list[str]) -> str:
    same_but_case = [candidate for candidate in names if candidate.lower() == name.lower()]
    close = same_but_case + [
        match for match in difflib.get_close_matches(name, names, n=3) if match not in same_but_case
    ]
    if close:
        return f"did you mean {' or '.join(map(repr, close[:3]))}?"
    if not names:
        return "the data has no columns"
    listed = ", ".join(names[:_MAX_LISTED_COLUMNS])
    more = f" and {len(names) - _MAX_LISTED_COLUMNS} more" if len(names) > _MAX_LISTED_COLUMNS else ""
    return f"the data has columns {listed}{more}"


def _check_condition(node: Expression, schema: pa.Schema) -> None:
    """Walk the boolean structure; each leaf is checked in the role it plays."""
    if isinstance(node, And | Or | Not):
        for child in node.children():
            _check_condition(child, schema)
    elif isinstance(node, Column):
        _check_boolean_column(node, schema)
    elif isinstance(node, Comparison):
        _check_comparison(node, schema)
    elif isinstance(node, Membership):
        _check_membership(node, schema)
    # NullCheck applies to every type; a Literal condition is true/false (the parser saw to it).


def _column_kind(column: Column, schema: pa.Schema) -> tuple[ValueKind, pa.DataType]:
    data_type = schema.field(column.name).type
    return kind_of_type(data_type), data_type


def _holds(column: Column, kind: ValueKind, data_type: pa.DataType) -> str:
    return f"column {column.name!r} holds {_KIND_WORDS[kind]} ({data_type})"


def _check_boolean_column(column: Column, schema: pa.Schema) -> None:
    kind, data_type = _column_kind(column, schema)
    if kind not in (ValueKind.BOOLEAN, ValueKind.NULL):
        raise ExpressionError(
            f"{_holds(column, kind, data_type)}, not true/false, so it is not a condition on its own; "
            f"compare it, e.g. {column} == ...",
            column.position,
        )


def _comparable_kind(column: Column, schema: pa.Schema) -> tuple[ValueKind, pa.DataType]:
    kind, data_type = _column_kind(column, schema)
    if kind is ValueKind.OTHER:
        raise ExpressionError(
            f"column {column.name!r} has type {data_type}, which expressions cannot compare; "
            "only 'is null' and 'is not null' apply to it",
            column.position,
        )
    return kind, data_type


def _check_comparison(node: Comparison, schema: pa.Schema) -> None:
    columns = [side for side in (node.left, node.right) if isinstance(side, Column)]
    kinds = [_comparable_kind(column, schema) for column in columns]
    if node.op in _ORDERED:
        for column, (kind, _) in zip(columns, kinds, strict=True):
            if kind is ValueKind.BOOLEAN:
                raise ExpressionError(
                    f"column {column.name!r} holds booleans, which only == and != compare",
                    column.position,
                )
    if len(columns) == 2:
        _check_column_pair(columns, kinds)
        return
    literal = next(side for side in (node.left, node.right) if isinstance(side, Literal))
    _check_literal_fits(columns[0], kinds[0], literal)


def _check_column_pair(columns: list[Column], kinds: list[tuple[ValueKind, pa.DataType]]) -> None:
    (left_kind, left_type), (right_kind, right_type) = kinds
    if ValueKind.NULL in (left_kind, right_kind) or left_kind is right_kind:
        return
    left, right = columns
    raise ExpressionError(
        f"{_holds(right, right_kind, right_type)} and cannot be compared with "
        f"{_holds(left, left_kind, left_type)}",
        right.position,
    )


def _check_literal_fits(column: Column, column_kind: tuple[ValueKind, pa.DataType], literal: Literal) -> None:
    kind, data_type = column_kind
    if kind in (ValueKind.NULL, literal.kind):
        return
    raise ExpressionError(
        f"{_holds(column, kind, data_type)} and cannot be compared with the {literal.kind.value} "
        f"{literal}{_fix_hint(kind, literal)}",
        column.position,
    )


def _fix_hint(column_kind: ValueKind, literal: Literal) -> str:
    if column_kind is ValueKind.STRING and literal.kind is ValueKind.NUMBER:
        return f"; quote it: '{literal}'"
    if column_kind is ValueKind.BOOLEAN:
        return "; use true or false"
    if literal.kind is ValueKind.STRING and NUMBER_PATTERN.fullmatch(str(literal.value)):
        return "; remove the quotes"
    return ""


def _check_membership(node: Membership, schema: pa.Schema) -> None:
    kind, data_type = _comparable_kind(node.column, schema)
    if kind in (ValueKind.NULL, node.values[0].kind):  # the parser made the list one kind
        return
    raise ExpressionError(
        f"{_holds(node.column, kind, data_type)} and cannot match a list of "
        f"{_KIND_WORDS[node.values[0].kind]}",
        node.column.position,
    )
