"""The one error every stage of the expression language raises."""

from __future__ import annotations


class ExpressionError(ValueError):
    """A rule text that cannot be parsed, checked against a schema or evaluated.

    Parameters
    ----------
    message : str
        What is wrong and, where possible, how to fix it.
    position : int
        0-based character offset into the expression text that the message is about.

    Examples
    --------
    >>> str(ExpressionError("expected a value after '>'", 7))
    "at position 7: expected a value after '>'"
    """

    def __init__(self, message: str, position: int) -> None:
        # Both go to ``args`` so the error survives pickling (jobs may run in a process pool).
        super().__init__(message, position)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"at position {self.position}: {self.message}"
