"""Naming what is wrong with a body in the words of the format the client sent.

Validation runs on canonical column names (``score__cat``, ``amount``); a
:class:`Locator` turns those back into the client's path: ``rows[3].scores.cat``
for the JSON row form, ``columns.score__cat`` for the column form and plain
``score__cat`` for CSV, Parquet and Arrow, where the row travels in ``FieldIssue.row``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.canonical import SCORE_PREFIX
from service.errors import FieldIssue, InvalidInput

# The pseudo-column for issues about a whole row of multiclass scores (their sum).
SCORES = "scores"


@dataclass(frozen=True)
class Locator:
    """Column-and-row to field name.

    With no ``prefix`` (CSV, Parquet, Arrow) the field is the column itself;
    the JSON column form uses ``prefix="columns"`` (``columns.score``).
    """

    prefix: str = ""

    @property
    def batch(self) -> str:
        """The field named when the batch as a whole is at fault (no rows at all)."""
        return self.prefix or "body"

    def field(self, column: str, row: int | None = None) -> str:
        name = f"{SCORE_PREFIX}*" if column == SCORES else column
        return f"{self.prefix}.{name}" if self.prefix else name


@dataclass(frozen=True)
class RowsLocator(Locator):
    """JSON row form: ``{"rows": [{"scores": {...}, "features": {...}}]}``.

    ``score_keys`` maps a canonical score column to the key it came from inside
    ``scores``; ``features`` are the columns that came from inside ``features``.
    """

    prefix: str = "rows"
    features: frozenset[str] = frozenset()
    score_keys: Mapping[str, str] = field(default_factory=dict)

    def field(self, column: str, row: int | None = None) -> str:
        at = f"{self.prefix}[{'*' if row is None else row}]"
        if column in self.score_keys:
            return f"{at}.scores.{self.score_keys[column]}"
        if column in self.features:
            return f"{at}.features.{column}"
        return f"{at}.{column}"


class Issues:
    """Collects every problem of one validation stage, then raises them together.

    Rules that do not depend on each other report in one response, so a client
    fixes a body in one round trip instead of one per rule.
    """

    def __init__(self, locator: Locator | None = None) -> None:
        self.locator = locator or Locator()
        self.items: list[FieldIssue] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, field: str, message: str, row: int | None = None) -> None:
        self.items.append(FieldIssue(field=field, message=message, row=row))

    def at(self, column: str, message: str, row: int | None = None) -> None:
        """Report an issue about ``column`` (a canonical name), optionally at ``row``."""
        self.add(self.locator.field(column, row), message, row)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        more = len(self.items) - 1
        detail = f"{first.field}: {first.message}"
        if more:
            detail += f" (and {more} more issue{'s' if more > 1 else ''})"
        raise InvalidInput(detail=detail, issues=list(self.items))


def invalid(field: str, message: str, row: int | None = None) -> InvalidInput:
    """A one-issue :class:`InvalidInput`, for rules that stop everything at once."""
    return InvalidInput(detail=f"{field}: {message}", issues=[FieldIssue(field, message, row)])
