"""Tokenizer: expression text to a stream of tokens, lazily.

Tokens are produced on demand so that the first error reported is the first one
in the text, whichever of the tokenizer or the parser finds it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from service.expressions.errors import ExpressionError

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
COMPARISON_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "=")

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBER_PATTERN = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# What may not touch the end of a number: it would make ``1e``, ``1.2.3`` or ``2x`` ambiguous.
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+")
_WHITESPACE = frozenset(" \t\r\n")
_ESCAPABLE = frozenset("'\"`\\")
_HINTS = {
    "+": "arithmetic is not supported",
    "-": "arithmetic is not supported",
    "*": "arithmetic is not supported",
    "/": "arithmetic is not supported",
    "%": "arithmetic is not supported",
    ".": "attribute access is not supported",
    "[": "indexing and list syntax are not supported; write value lists as in (a, b)",
    "]": "indexing and list syntax are not supported; write value lists as in (a, b)",
    "{": "braces are not supported",
    "}": "braces are not supported",
    ";": "only one expression is allowed",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not', or '!=' for not equal",
}


class Kind(Enum):
    """Token categories the parser dispatches on."""

    COLUMN = "column name"
    NUMBER = "number"
    STRING = "string"
    KEYWORD = "keyword"
    OPERATOR = "operator"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    END = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, decoded value, source text and where it starts and ends.

    ``value`` is the column name (unquoted), the number, the string (unescaped),
    the lower-cased keyword or the operator text.
    """

    kind: Kind
    value: str | int | float
    text: str
    position: int
    end: int

    def describe(self) -> str:
        """How an error message names this token: ``'>'``, ``'amount'``, ``end of expression``."""
        if self.kind is Kind.END:
            return "the end of the expression"
        return repr(self.text if len(self.text) <= 30 else self.text[:27] + "...")


def tokenize(text: str) -> Iterator[Token]:
    """Yield the tokens of ``text``, then one ``END`` token.

    Raises
    ------
    ExpressionError
        At the first character that cannot start a token, an unterminated string or
        quoted name, an unknown escape, or a malformed or out-of-range number.
    """
    position = 0
    while position < len(text):
        char = text[position]
        if char in _WHITESPACE:
            position += 1
            continue
        token = _next_token(text, position)
        yield token
        position = token.end
    yield Token(Kind.END, "", "", len(text), len(text))


def _next_token(text: str, position: int) -> Token:
    char = text[position]
    if char == "(":
        return Token(Kind.LPAREN, "(", "(", position, position + 1)
    if char == ")":
        return Token(Kind.RPAREN, ")", ")", position, position + 1)
    if char == ",":
        return Token(Kind.COMMA, ",", ",", position, position + 1)
    if char in "'\"":
        return _quoted(text, position, kind=Kind.STRING)
    if char == "`":
        return _quoted(text, position, kind=Kind.COLUMN)
    if char in "0123456789" or (char in "-." and NUMBER_PATTERN.match(text, position)):
        return _number(text, position)
    identifier = _IDENTIFIER.match(text, position)
    if identifier:
        word = identifier.group()
        if word.lower() in KEYWORDS:
            return Token(Kind.KEYWORD, word.lower(), word, position, identifier.end())
        return Token(Kind.COLUMN, word, word, position, identifier.end())
    return _operator(text, position)


def _operator(text: str, position: int) -> Token:
    if text.startswith("<>", position):
        raise ExpressionError("'<>' is not an operator; use '!=' for not equal", position)
    for operator in COMPARISON_OPERATORS:
        if text.startswith(operator, position):
            return Token(Kind.OPERATOR, operator, operator, position, position + len(operator))
    raise ExpressionError(_unexpected_character(text[position]), position)


def _unexpected_character(char: str) -> str:
    message = f"unexpected character {char!r}"
    if char in _HINTS:
        return f"{message}: {_HINTS[char]}"
    if char.isalnum():
        return f"{message}: write column names with such characters in backquotes, e.g. `prénom`"
    return message


def _quoted(text: str, start: int, *, kind: Kind) -> Token:
    """A string literal (``'...'``/``"..."``) or a backquoted column name, unescaped."""
    quote = text[start]
    what = "string" if kind is Kind.STRING else "quoted column name"
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            value = "".join(chars)
            if kind is Kind.COLUMN and not value:
                raise ExpressionError("empty column name between backquotes", start)
            return Token(kind, value, text[start : position + 1], start, position + 1)
        if char == "\\":
            if position + 1 >= len(text):
                break
            escaped = text[position + 1]
            if escaped not in _ESCAPABLE:
                raise ExpressionError(
                    f"unknown escape '\\{escaped}' in a {what}; only \\' \\\" \\` and \\\\ are allowed",
                    position,
                )
            chars.append(escaped)
            position += 2
            continue
        chars.append(char)
        position += 1
    raise ExpressionError(f"{what} starting here is never closed; add a closing {quote}", start)


def _number(text: str, start: int) -> Token:
    match = NUMBER_PATTERN.match(text, start)
    if match is None:  # pragma: no cover - _next_token only calls us on a match or a digit
        raise ExpressionError(_unexpected_character(text[start]), start)
    literal = match.group()
    tail = _NUMBER_TAIL.match(text, match.end())
    if tail:
        raise ExpressionError(f"malformed number {literal + tail.group()!r}", start)
    return Token(Kind.NUMBER, _number_value(literal, start), literal, start, match.end())


def _number_value(literal: str, position: int) -> int | float:
    """Ints stay exact while they fit int64 (what Arrow compares them as); the rest are floats."""
    is_integer = not any(c in literal for c in ".eE")
    # The digit cap keeps int() away from Python's 4300-digit conversion limit.
    if is_integer and len(literal) <= 20:
        value = int(literal)
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
    number = float(literal)
    if not math.isfinite(number):
        raise ExpressionError(f"number {literal[:30]!r} is too large", position)
    return number
