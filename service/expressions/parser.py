"""Recursive-descent parser: text to syntax tree, never to code.

Grammar (EBNF; keywords are case-insensitive)::

    expression  = disjunction END ;
    disjunction = conjunction { "or" conjunction } ;
    conjunction = negation { "and" negation } ;
    negation    = "not" negation | primary ;
    primary     = "(" disjunction ")" | predicate ;
    predicate   = operand [ comparator operand
                          | [ "not" ] "in" "(" literal { "," literal } ")"
                          | "is" [ "not" ] "null" ] ;
    operand     = column | literal ;
    comparator  = "==" | "=" | "!=" | "<" | "<=" | ">" | ">=" ;
    column      = NAME | "`" quoted-name "`" ;
    literal     = NUMBER | STRING | "true" | "false" | "null" ;

Rules the grammar alone does not say: a comparison has a column on at least one
side and no ``null`` (that is what ``is null`` is for); ``in`` and ``is`` take a
column on the left; ``in`` lists hold non-null values of one kind; a predicate
without an operator is a column (checked to be boolean later) or ``true``/``false``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from service.expressions.errors import ExpressionError
from service.expressions.syntax import (
    And,
    Column,
    Comparison,
    Expression,
    Literal,
    Membership,
    Not,
    NullCheck,
    Operand,
    Or,
    ValueKind,
)
from service.expressions.tokens import Kind, Token, tokenize

DEFAULT_MAX_LENGTH = 2000
MAX_DEPTH = 50
_KEYWORD_VALUES = {"true": True, "false": False, "null": None}
_WHITESPACE = " \t\r\n"


def parse(text: str, *, max_length: int = DEFAULT_MAX_LENGTH) -> Expression:
    """Parse an expression such as ``amount > 1000 and country in ('BR', 'AR')``.

    Parameters
    ----------
    text : str
        The expression, as the user wrote it.
    max_length : int, default 2000
        Longer texts are refused before any parsing.

    Returns
    -------
    Expression
        The root of an immutable syntax tree; ``str()`` of it is the canonical form.

    Raises
    ------
    ExpressionError
        With the position of the first problem: empty or too long text, unexpected
        character or token, unterminated string, missing parenthesis, dangling
        operator, trailing input, or nesting deeper than ``MAX_DEPTH``.

    Examples
    --------
    >>> str(parse("Amount>1000 AND country IN ('BR','AR')"))
    "Amount > 1000 and country in ('BR', 'AR')"
    """
    if not isinstance(text, str):
        raise TypeError(f"expression text must be a str, not {type(text).__name__}")
    if len(text) > max_length:
        raise ExpressionError(
            f"the expression is {len(text)} characters long; the limit is {max_length}", max_length
        )
    if not text.strip(_WHITESPACE):
        raise ExpressionError("the expression is empty", 0)
    return _Parser(text).expression()


class _Parser:
    """One pass over a token stream with one token of lookahead."""

    def __init__(self, text: str) -> None:
        self._tokens = tokenize(text)
        self._current = next(self._tokens)
        self._previous: Token | None = None
        self._depth = 0

    # -- token stream -------------------------------------------------------------

    def _advance(self) -> Token:
        token = self._current
        self._previous = token
        if token.kind is not Kind.END:
            self._current = next(self._tokens)
        return token

    def _at(self, kind: Kind, *keywords: str) -> bool:
        current = self._current
        return current.kind is kind and (not keywords or current.value in keywords)

    def _at_operand(self) -> bool:
        starts_value = self._current.kind in (Kind.COLUMN, Kind.NUMBER, Kind.STRING)
        return starts_value or self._at(Kind.KEYWORD, *_KEYWORD_VALUES)

    def _error_expected(self, what: str) -> ExpressionError:
        found = self._current.describe()
        after = f" after {self._previous.describe()}" if self._previous else ""
        return ExpressionError(f"expected {what}{after}, found {found}", self._current.position)

    @contextmanager
    def _nested(self, token: Token) -> Iterator[None]:
        # Bounded depth keeps every recursive walk (parser, checks, evaluation,
        # rendering) far from Python's recursion limit, whatever the input.
        if self._depth == MAX_DEPTH:
            raise ExpressionError(
                f"the expression nests more than {MAX_DEPTH} levels of parentheses and 'not'",
                token.position,
            )
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    # -- boolean structure ----------------------------------------------------------

    def expression(self) -> Expression:
        tree = self._disjunction()
        if self._at(Kind.RPAREN):
            raise ExpressionError("unexpected ')' with no matching '('", self._current.position)
        if not self._at(Kind.END):
            raise ExpressionError(
                f"unexpected {self._current.describe()} after a complete condition; "
                "join conditions with 'and' or 'or'",
                self._current.position,
            )
        return tree

    def _disjunction(self) -> Expression:
        operands = [self._conjunction()]
        while self._at(Kind.KEYWORD, "or"):
            self._advance()
            operands.append(self._conjunction())
        return operands[0] if len(operands) == 1 else Or(tuple(operands), position=operands[0].position)

    def _conjunction(self) -> Expression:
        operands = [self._negation()]
        while self._at(Kind.KEYWORD, "and"):
            self._advance()
            operands.append(self._negation())
        return operands[0] if len(operands) == 1 else And(tuple(operands), position=operands[0].position)

    def _negation(self) -> Expression:
        if not self._at(Kind.KEYWORD, "not"):
            return self._primary()
        token = self._advance()
        with self._nested(token):
            return Not(self._negation(), position=token.position)

    def _primary(self) -> Expression:
        if self._at(Kind.LPAREN):
            opening = self._advance()
            with self._nested(opening):
                inner = self._disjunction()
            if not self._at(Kind.RPAREN):
                raise ExpressionError(
                    f"expected ')' to close the '(' at position {opening.position}, "
                    f"found {self._current.describe()}",
                    self._current.position,
                )
            self._advance()
            return inner
        if self._at_operand():
            return self._predicate()
        raise self._error_expected("a condition")

    # -- predicates -----------------------------------------------------------------

    def _predicate(self) -> Expression:
        left = self._operand()
        if self._at(Kind.OPERATOR):
            return self._comparison(left)
        if self._at(Kind.KEYWORD, "in"):
            self._advance()
            return self._membership(left, negated=False)
        if self._at(Kind.KEYWORD, "not"):
            self._advance()
            if not self._at(Kind.KEYWORD, "in"):
                raise self._error_expected("'in'")
            self._advance()
            return self._membership(left, negated=True)
        if self._at(Kind.KEYWORD, "is"):
            self._advance()
            return self._null_check(left)
        return self._bare(left)

    def _bare(self, operand: Operand) -> Expression:
        """An operand used as a whole condition: a boolean column, ``true`` or ``false``."""
        if isinstance(operand, Column):
            if self._at_operand():
                raise ExpressionError(
                    f"expected a comparison operator between {operand.name!r} and {self._current.describe()}",
                    self._current.position,
                )
            return operand
        if operand.kind is ValueKind.BOOLEAN:
            return operand
        raise ExpressionError(
            f"the value {operand} on its own is not a condition; compare a column with it, "
            f"e.g. column == {operand}",
            operand.position,
        )

    def _operand(self) -> Operand:
        if not self._at(Kind.COLUMN):
            return self._literal()
        token = self._advance()
        self._refuse_call_syntax(token)
        return Column(str(token.value), position=token.position)

    def _literal(self) -> Literal:
        token = self._advance()
        if token.kind is Kind.KEYWORD:
            return Literal(_KEYWORD_VALUES[str(token.value)], position=token.position)
        return Literal(token.value, position=token.position)

    def _refuse_call_syntax(self, name: Token) -> None:
        if self._at(Kind.LPAREN):
            raise ExpressionError(
                f"function calls are not supported ({name.describe()} is read as a column name)",
                self._current.position,
            )
        if self._at(Kind.STRING) and self._current.position == name.end:
            raise ExpressionError(
                f"string prefixes such as {name.text}'...' are not supported; write a plain 'string'",
                name.position,
            )

    def _comparison(self, left: Operand) -> Comparison:
        operator = self._advance()
        if not self._at_operand():
            raise self._error_expected("a value")
        right = self._operand()
        if self._at(Kind.OPERATOR):
            raise ExpressionError(
                "comparisons cannot be chained; join them with 'and', e.g. 'a < b and b < c'",
                self._current.position,
            )
        for side, other in ((left, right), (right, left)):
            if isinstance(side, Literal) and side.kind is ValueKind.NULL:
                test = "is not null" if operator.value == "!=" else "is null"
                subject = other if isinstance(other, Column) else "column"
                raise ExpressionError(
                    f"a comparison with null is never true; write '{subject} {test}'", side.position
                )
        if not (isinstance(left, Column) or isinstance(right, Column)):
            raise ExpressionError("a comparison needs a column on at least one side", left.position)
        op = "==" if operator.value == "=" else str(operator.value)
        return Comparison(op, left, right, position=left.position)

    def _membership(self, left: Operand, *, negated: bool) -> Membership:
        if not isinstance(left, Column):
            raise ExpressionError("the left side of 'in' must be a column", left.position)
        if not self._at(Kind.LPAREN):
            raise self._error_expected("'(' starting a list of values")
        opening = self._advance()
        if self._at(Kind.RPAREN):
            raise ExpressionError("an 'in' list needs at least one value", self._current.position)
        values = [self._list_value()]
        while self._at(Kind.COMMA):
            self._advance()
            values.append(self._list_value())
        if not self._at(Kind.RPAREN):
            raise ExpressionError(
                f"expected ',' or ')' in the list opened at position {opening.position}, "
                f"found {self._current.describe()}",
                self._current.position,
            )
        self._advance()
        _require_one_kind(values)
        return Membership(left, tuple(values), negated=negated, position=left.position)

    def _list_value(self) -> Literal:
        if self._at(Kind.KEYWORD, "null"):
            raise ExpressionError(
                "null never matches in an 'in' list; add 'or column is null' instead",
                self._current.position,
            )
        if self._at(Kind.COLUMN):
            raise ExpressionError(
                f"an 'in' list holds values, not columns; quote {self._current.describe()} if it is a string",
                self._current.position,
            )
        if not self._at_operand():
            raise self._error_expected("a value")
        return self._literal()

    def _null_check(self, left: Operand) -> NullCheck:
        if not isinstance(left, Column):
            raise ExpressionError("the left side of 'is' must be a column", left.position)
        negated = self._at(Kind.KEYWORD, "not")
        if negated:
            self._advance()
        if not self._at(Kind.KEYWORD, "null"):
            raise ExpressionError(
                f"expected 'null' or 'not null' after 'is', found {self._current.describe()} "
                "(compare booleans with == true)",
                self._current.position,
            )
        self._advance()
        return NullCheck(left, negated=negated, position=left.position)


def _require_one_kind(values: list[Literal]) -> None:
    first = values[0]
    for value in values[1:]:
        if value.kind is not first.kind:
            raise ExpressionError(
                f"the list mixes {first.kind.value}s and {value.kind.value}s; all values must be of one kind",
                value.position,
            )
