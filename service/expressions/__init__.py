"""The small safe expression language of ``when`` (heuristic rules) and ``where`` (slices).

``amount > 1000 and country in ('BR', 'AR')`` is tokenized and parsed by our own
recursive-descent parser into an immutable syntax tree, checked against the data's
schema, and evaluated with Arrow compute over whole columns. No text is ever run
as Python code; anything outside the grammar is an :class:`ExpressionError`
naming its position, which the API reports as a 422.

Modules: ``tokens`` (text to tokens), ``parser`` (tokens to tree; the grammar is in
its docstring), ``syntax`` (tree nodes), ``schema`` (names and types against a
``pa.Schema``), ``evaluation`` (tree and table to a boolean mask).
"""

from service.expressions.errors import ExpressionError
from service.expressions.evaluation import evaluate
from service.expressions.parser import DEFAULT_MAX_LENGTH, MAX_DEPTH, parse
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
    ValueKind,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MAX_DEPTH",
    "And",
    "Column",
    "Comparison",
    "Expression",
    "ExpressionError",
    "Literal",
    "Membership",
    "Not",
    "NullCheck",
    "Or",
    "ValueKind",
    "check_columns",
    "evaluate",
    "parse",
]
