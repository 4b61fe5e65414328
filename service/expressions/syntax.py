"""The syntax tree: immutable nodes that know their columns and render canonical text.

Positions are 0-based offsets into the parsed text, kept for error messages and
excluded from equality, so ``parse("a=1") == parse("a == 1")``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from service.expressions.tokens import KEYWORDS

Value = int | float | str | bool | None

_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ValueKind(Enum):
    """What a literal or a column holds, as far as comparisons are concerned."""

    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    NULL = "null"
    OTHER = "other"  # columns only: dates, binary, lists... (only ``is null`` applies)


def kind_of_value(value: Value) -> ValueKind:
    """The kind of a Python literal value (``bool`` checked before ``int``, its base class)."""
    if value is None:
        return ValueKind.NULL
    if isinstance(value, bool):
        return ValueKind.BOOLEAN
    if isinstance(value, int | float):
        return ValueKind.NUMBER
    return ValueKind.STRING


class Expression:
    """Base of every node; a parsed expression is its root node."""

    __slots__ = ()
    position: int

    def children(self) -> tuple[Expression, ...]:
        """Direct sub-nodes, in text order."""
        return ()

    def walk(self) -> Iterator[Expression]:
        """This node and all below it, depth first in text order."""
        yield self
        for child in self.children():
            yield from child.walk()

    def columns(self) -> frozenset[str]:
        """Names of all columns the expression references."""
        return frozenset(node.name for node in self.walk() if isinstance(node, Column))


@dataclass(frozen=True, slots=True)
class Column(Expression):
    """A column reference; on its own it is a condition on a boolean column."""

    name: str
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        if _BARE_NAME.fullmatch(self.name) and self.name.lower() not in KEYWORDS:
            return self.name
        escaped = self.name.replace("\\", "\\\\").replace("`", "\\`")
        return f"`{escaped}`"


@dataclass(frozen=True, slots=True)
class Literal(Expression):
    """A number, string, ``true``/``false`` or ``null``; a boolean on its own is a condition."""

    value: Value
    position: int = field(default=0, compare=False)
    # Part of equality so that ``true`` != ``1`` although ``True == 1`` in Python.
    kind: ValueKind = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", kind_of_value(self.value))

    def __str__(self) -> str:
        if self.kind is ValueKind.NULL:
            return "null"
        if self.kind is ValueKind.BOOLEAN:
            return "true" if self.value else "false"
        if self.kind is ValueKind.STRING:
            escaped = str(self.value).replace("\\", "\\\\").replace("'", "\\'")
            return f"'{escaped}'"
        return repr(self.value)


Operand = Column | Literal


@dataclass(frozen=True, slots=True)
class Comparison(Expression):
    """``left op right``; ``op`` is canonical (``=`` is stored as ``==``)."""

    op: str
    left: Operand
    right: Operand
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.left, self.right)

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True, slots=True)
class Membership(Expression):
    """``column in (v1, v2, ...)`` or, with ``negated``, ``column not in (...)``."""

    column: Column
    values: tuple[Literal, ...]
    negated: bool = False
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.column, *self.values)

    def __str__(self) -> str:
        keyword = "not in" if self.negated else "in"
        return f"{self.column} {keyword} ({', '.join(map(str, self.values))})"


@dataclass(frozen=True, slots=True)
class NullCheck(Expression):
    """``column is null`` or, with ``negated``, ``column is not null``."""

    column: Column
    negated: bool = False
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.column,)

    def __str__(self) -> str:
        return f"{self.column} is {'not ' if self.negated else ''}null"


@dataclass(frozen=True, slots=True)
class Not(Expression):
    """Kleene negation: ``not unknown`` stays unknown."""

    operand: Expression
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return (self.operand,)

    def __str__(self) -> str:
        if isinstance(self.operand, Column | Literal | Not):
            return f"not {self.operand}"
        # Parentheses are not needed for a comparison, but ``not (a > 1)`` reads unambiguously.
        return f"not ({self.operand})"


@dataclass(frozen=True, slots=True)
class And(Expression):
    """Kleene conjunction of two or more conditions (``a and b and c`` is one node)."""

    operands: tuple[Expression, ...]
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return self.operands

    def __str__(self) -> str:
        return " and ".join(_grouped(operand, when=(And, Or)) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Or(Expression):
    """Kleene disjunction of two or more conditions (``a or b or c`` is one node)."""

    operands: tuple[Expression, ...]
    position: int = field(default=0, compare=False)

    def children(self) -> tuple[Expression, ...]:
        return self.operands

    def __str__(self) -> str:
        return " or ".join(_grouped(operand, when=(Or,)) for operand in self.operands)


def _grouped(node: Expression, *, when: tuple[type[Expression], ...]) -> str:
    # A nested And/Or only exists where the text had parentheses; keeping them makes
    # the rendering parse back to the same tree.
    return f"({node})" if isinstance(node, when) else str(node)
