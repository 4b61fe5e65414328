"""The ``when``/``where`` expression language: grammar, semantics, errors and safety.

Selections are compared with an independent reference: the same rule written by
hand as pandas masks over nullable dtypes (``Int64``, ``Float64``, ``string``,
``boolean``), whose ``&``, ``|`` and ``~`` follow the same Kleene logic, built from
the same Python lists as the Arrow table rather than converted from it.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import decimal
import math
import os
import pickle
import random
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from service import expressions
from service.expressions import (
    MAX_DEPTH,
    And,
    Column,
    Comparison,
    ExpressionError,
    Literal,
    Not,
    Or,
    check_columns,
    evaluate,
    parse,
)

NAN = float("nan")
DATA: dict[str, list[object]] = {
    "amount": [5, 2000, None, 1500, 3000, 0, -20, 1000, 999, 1001, 250, None],
    "score": [0.1, NAN, None, 2.5, 0.9, -1.0, 3.0, 0.5, 0.5, 1e3, 0.0, 7.0],
    "country": ["BR", "US", "AR", None, "AR", "DE", "BR", "US", "AR", "BR", None, "DE"],
    "region": ["north", "south", None, "north", "east", "east",
               "south", "north", None, "west", "west", "east"],
    "flag": [True, False, None, True, False, True, None, False, True, False, True, False],
    "tenure_days": [10, 400, 29, 30, None, 31, 5, 100, 0, 365, 29, 2],
    "first name": ["ann", "bob", "it's", 'say "hi"', "back\\slash", "ann",
                   None, "bob", "cy", "dee", "ann", "eve"],
}  # fmt: skip


def _arrow_table() -> pa.Table:
    """The data in the shapes the service meets: two chunks, dictionary, int32, large_string."""
    table = pa.table(
        {
            "amount": pa.array(DATA["amount"], pa.int64()),
            "score": pa.array(DATA["score"], pa.float64()),
            "country": pa.array(DATA["country"], pa.string()),
            "region": pa.array(DATA["region"], pa.string()).dictionary_encode(),
            "flag": pa.array(DATA["flag"], pa.bool_()),
            "tenure_days": pa.array(DATA["tenure_days"], pa.int32()),
            "first name": pa.array(DATA["first name"], pa.large_string()),
        }
    )
    return pa.concat_tables([table.slice(0, 5), table.slice(5)])


def _pandas_frame() -> pd.DataFrame:
    """The same data with pandas nullable dtypes; NaN is missing, as in the service."""
    score = [None if isinstance(value, float) and math.isnan(value) else value for value in DATA["score"]]
    return pd.DataFrame(
        {
            "amount": pd.array(DATA["amount"], dtype="Int64"),
            "score": pd.array(score, dtype="Float64"),
            "country": pd.array(DATA["country"], dtype="string"),
            "region": pd.array(DATA["region"], dtype="string"),
            "flag": pd.array(DATA["flag"], dtype="boolean"),
            "tenure_days": pd.array(DATA["tenure_days"], dtype="Int64"),
            "first name": pd.array(DATA["first name"], dtype="string"),
        }
    )


TABLE = _arrow_table()
FRAME = _pandas_frame()


def isin(series: pd.Series, values: list[object]) -> pd.Series:
    """SQL ``in``: unknown (NA) for a missing value, which pandas' ``isin`` calls False."""
    return series.isin(values).astype("boolean").mask(series.isna())


def selected(mask: pd.Series | bool) -> np.ndarray:
    """Collapse a Kleene mask to the rows it selects."""
    if isinstance(mask, bool):
        return np.full(len(FRAME), mask)
    return mask.fillna(False).to_numpy(dtype=bool)


Reference = Callable[[pd.DataFrame], "pd.Series | bool"]

GRAMMAR_CASES: list[tuple[str, Reference]] = [
    ("amount > 1000", lambda d: d.amount > 1000),
    ("amount >= 1000", lambda d: d.amount >= 1000),
    ("amount < 1000", lambda d: d.amount < 1000),
    ("amount <= 1000", lambda d: d.amount <= 1000),
    ("amount == 1000", lambda d: d.amount == 1000),
    ("amount = 1000", lambda d: d.amount == 1000),
    ("amount != 1000", lambda d: d.amount != 1000),
    ("1000 < amount", lambda d: d.amount > 1000),
    ("-20 >= amount", lambda d: d.amount <= -20),
    ("amount > 999.5", lambda d: d.amount > 999.5),
    ("amount > -10", lambda d: d.amount > -10),
    ("amount < -1e1", lambda d: d.amount < -10),
    ("amount == 3e3", lambda d: d.amount == 3000),
    ("score == .5", lambda d: d.score == 0.5),
    ("score >= 7.", lambda d: d.score >= 7),
    ("score > 0.5", lambda d: d.score > 0.5),
    ("amount > score", lambda d: d.amount > d.score),
    ("tenure_days < 30", lambda d: d.tenure_days < 30),
    ("tenure_days <= amount", lambda d: d.tenure_days <= d.amount),
    ("country == 'BR'", lambda d: d.country == "BR"),
    ('country != "BR"', lambda d: d.country != "BR"),
    ("country < 'BR'", lambda d: d.country < "BR"),
    ("country in ('BR', 'AR')", lambda d: isin(d.country, ["BR", "AR"])),
    ("country not in ('BR', 'AR')", lambda d: ~isin(d.country, ["BR", "AR"])),
    ("region in ('north', 'west')", lambda d: isin(d.region, ["north", "west"])),
    ("region == 'east'", lambda d: d.region == "east"),
    ("region > 'north'", lambda d: d.region > "north"),
    ("region == country", lambda d: d.region == d.country),
    ("flag", lambda d: d.flag),
    ("not flag", lambda d: ~d.flag),
    ("flag == true", lambda d: d.flag == True),  # noqa: E712 - a pandas mask, not a truth test
    ("flag != false", lambda d: d.flag != False),  # noqa: E712
    ("false == flag", lambda d: d.flag == False),  # noqa: E712
    ("amount is null", lambda d: d.amount.isna()),
    ("amount is not null", lambda d: d.amount.notna()),
    ("score is null", lambda d: d.score.isna()),
    ("region is null", lambda d: d.region.isna()),
    (r"`first name` == 'it\'s'", lambda d: d["first name"] == "it's"),
    (r'`first name` == "say \"hi\""', lambda d: d["first name"] == 'say "hi"'),
    (r"`first name` == 'back\\slash'", lambda d: d["first name"] == "back\\slash"),
    ("`first name` in ('ann', 'bob')", lambda d: isin(d["first name"], ["ann", "bob"])),
    ("amount in (1000, 2000.0, 5)", lambda d: isin(d.amount, [1000, 2000, 5])),
    ("amount not in (5)", lambda d: ~isin(d.amount, [5])),
    ("score in (0.5, 3)", lambda d: isin(d.score, [0.5, 3.0])),
    ("flag in (true)", lambda d: isin(d.flag, [True])),
    (
        "amount > 1000 and country in ('BR', 'AR')",
        lambda d: (d.amount > 1000) & isin(d.country, ["BR", "AR"]),
    ),
    (
        "amount > 1000 or tenure_days < 30 and flag",
        lambda d: (d.amount > 1000) | ((d.tenure_days < 30) & d.flag),
    ),
    (
        "(amount > 1000 or tenure_days < 30) and flag",
        lambda d: ((d.amount > 1000) | (d.tenure_days < 30)) & d.flag,
    ),
    ("not amount > 1000 and flag", lambda d: ~(d.amount > 1000) & d.flag),
    ("not (amount > 1000 and flag)", lambda d: ~((d.amount > 1000) & d.flag)),
    ("not not flag", lambda d: d.flag),
    ("not (country == 'BR' or country == 'AR')", lambda d: ~((d.country == "BR") | (d.country == "AR"))),
    (
        "amount > 1 AND country IN ('BR') Or flag IS NOT NULL",
        lambda d: ((d.amount > 1) & isin(d.country, ["BR"])) | d.flag.notna(),
    ),
    ("true", lambda d: True),
    ("false", lambda d: False),
    ("true and flag", lambda d: d.flag),
    ("false or amount is null", lambda d: d.amount.isna()),
    ("NOT (TRUE)", lambda d: False),
]


@pytest.mark.parametrize(("text", "reference"), GRAMMAR_CASES, ids=[case[0] for case in GRAMMAR_CASES])
def test_selection_matches_pandas_reference(text: str, reference: Reference) -> None:
    mask = evaluate(parse(text), TABLE)
    assert mask.dtype == np.bool_
    assert mask.shape == (TABLE.num_rows,)
    np.testing.assert_array_equal(mask, selected(reference(FRAME)))


@pytest.mark.parametrize(("text", "reference"), GRAMMAR_CASES, ids=[case[0] for case in GRAMMAR_CASES])
def test_canonical_text_parses_back_to_the_same_tree(text: str, reference: Reference) -> None:
    expr = parse(text)
    assert parse(str(expr)) == expr
    assert str(parse(str(expr))) == str(expr)


# -- precedence and tree shape ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "same_as"),
    [
        ("a or b and c", "a or (b and c)"),
        ("not a and b", "(not a) and b"),
        ("not a or b", "(not a) or b"),
        ("a and b or c and d", "(a and b) or (c and d)"),
        ("not x > 1", "not (x > 1)"),
        ("x > 1 and y in (1, 2) or z is null", "((x > 1) and (y in (1, 2))) or (z is null)"),
        ("a AND b oR NoT c", "a and b or not c"),
    ],
)
def test_precedence_not_over_and_over_or(text: str, same_as: str) -> None:
    assert parse(text) == parse(same_as)


def test_and_or_chains_are_one_node_each() -> None:
    tree = parse("a or b and c and d or e")
    assert isinstance(tree, Or)
    assert len(tree.operands) == 3
    assert isinstance(tree.operands[1], And)
    assert len(tree.operands[1].operands) == 3


def test_tree_is_immutable_hashable_and_ignores_positions() -> None:
    tree = parse("amount  =  1")
    assert tree == Comparison("==", Column("amount"), Literal(1))
    assert hash(tree) == hash(parse("amount == 1"))
    assert isinstance(tree, Comparison)
    assert tree.left.position == 0 and tree.right.position == 11
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.op = "<"  # type: ignore[misc]


def test_boolean_literal_is_not_equal_to_number() -> None:
    assert Literal(True) != Literal(1)
    assert parse("a == true") != parse("a == 1")


def test_columns_lists_every_referenced_name() -> None:
    expr = parse("amount > 1000 and (`first name` in ('x') or not flag) or amount < score or region is null")
    assert expr.columns() == frozenset({"amount", "first name", "flag", "score", "region"})
    assert parse("true").columns() == frozenset()


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Amount>1000 AND country IN ('BR','AR')", "Amount > 1000 and country in ('BR', 'AR')"),
        ("a = 1", "a == 1"),
        ("not a > 1", "not (a > 1)"),
        ("NOT flag", "not flag"),
        ("not not flag", "not not flag"),
        ("a > 1 or b > 2 and c > 3", "a > 1 or b > 2 and c > 3"),
        ("(a > 1 or b > 2) and c > 3", "(a > 1 or b > 2) and c > 3"),
        ("(a and b) and c", "(a and b) and c"),
        ("((a > 1))", "a > 1"),
        ("`first name` is not null", "`first name` is not null"),
        ("`ok_name` IS NULL", "ok_name is null"),
        ("`and` == 1", "`and` == 1"),
        (r"`we\`ird` > 1", r"`we\`ird` > 1"),
        ('x == "it\'s"', r"x == 'it\'s'"),
        ("x in (1, 2.50, -3e2, .5)", "x in (1, 2.5, -300.0, 0.5)"),
        ("x NOT IN ('a')", "x not in ('a')"),
        ("TRUE", "true"),
        ("x > 99999999999999999999", "x > 1e+20"),
    ],
)
def test_str_renders_canonical_form(text: str, canonical: str) -> None:
    assert str(parse(text)) == canonical
    assert parse(canonical) == parse(text)


# -- null semantics -----------------------------------------------------------------

NULLS = pa.table(
    {
        "x": pa.array([1, None, 3]),
        "f": pa.array([1.0, NAN, None]),
        "c": pa.DictionaryArray.from_arrays(pa.array([0, 1, None], pa.int8()), pa.array(["a", None])),
        "y": pa.array([None, 2, 3]),
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x > 1", [False, False, True]),
        ("not x > 1", [True, False, False]),
        ("x != 1", [False, False, True]),
        ("x in (1)", [True, False, False]),
        ("not x in (1)", [False, False, True]),
        ("x not in (1)", [False, False, True]),
        ("x > 1 or true", [True, True, True]),
        ("x > 1 and false", [False, False, False]),
        ("not (x > 1 and false)", [True, True, True]),
        ("not (x > 1 or false)", [True, False, False]),
        ("not (x > 1 or x <= 1)", [False, False, False]),
        ("x is null", [False, True, False]),
        ("not x is null", [True, False, True]),
        ("x == y", [False, False, True]),
        ("not x == y", [False, False, False]),
        # NaN in a float column counts as missing.
        ("f is null", [False, True, True]),
        ("f is not null", [True, False, False]),
        ("f > 0", [True, False, False]),
        ("not f > 0", [False, False, False]),
        ("f != 1", [False, False, False]),
        ("f not in (1)", [False, False, False]),
        # A valid index may point at a null dictionary entry.
        ("c is null", [False, True, True]),
        ("c == 'a'", [True, False, False]),
        ("not c == 'a'", [False, False, False]),
        ("c not in ('a')", [False, False, False]),
    ],
)
def test_null_is_unknown_and_unknown_is_not_selected(text: str, expected: list[bool]) -> None:
    np.testing.assert_array_equal(evaluate(parse(text), NULLS), expected)


# -- column types -------------------------------------------------------------------


def test_dictionaries_that_differ_between_chunks() -> None:
    column = pa.chunked_array(
        [pa.array(["a", "b", None]).dictionary_encode(), pa.array(["c", "b", "a"]).dictionary_encode()]
    )
    table = pa.table({"k": column})
    np.testing.assert_array_equal(evaluate(parse("k in ('a', 'c')"), table), [1, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(evaluate(parse("k >= 'b'"), table), [0, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(evaluate(parse("k is null"), table), [0, 0, 1, 0, 0, 0])


def test_dictionary_encoded_numbers_and_booleans() -> None:
    table = pa.table(
        {
            "n": pa.array([1.5, NAN, 3.0, 1.5]).dictionary_encode(),
            "b": pa.array([True, False, None, True]).dictionary_encode(),
        }
    )
    np.testing.assert_array_equal(evaluate(parse("n > 2"), table), [0, 0, 1, 0])
    np.testing.assert_array_equal(evaluate(parse("n is null"), table), [0, 1, 0, 0])
    np.testing.assert_array_equal(evaluate(parse("b"), table), [1, 0, 0, 1])
    np.testing.assert_array_equal(evaluate(parse("not b"), table), [0, 1, 0, 0])
    np.testing.assert_array_equal(evaluate(parse("b == false or n == 3"), table), [0, 1, 1, 0])


@pytest.mark.parametrize(
    ("column", "text", "expected"),
    [
        (pa.array([1, 2, 127], pa.int8()), "x > 1000", [0, 0, 0]),
        (pa.array([1, 2, 127], pa.int8()), "x > 1.5", [0, 1, 1]),
        (pa.array([1, 2, 127], pa.int8()), "x in (2.0, 127)", [0, 1, 1]),
        (pa.array([1, 2, 127], pa.int8()), "x in (1.5)", [0, 0, 0]),
        (pa.array([1, 2, 3], pa.uint8()), "x > -1", [1, 1, 1]),
        (pa.array([1, 2, 2**63 + 10], pa.uint64()), "x > -1", [1, 1, 1]),
        (pa.array([1, 2, 2**63 + 10], pa.uint64()), "x in (2)", [0, 1, 0]),
        (pa.array([1, 2, 3], pa.uint64()), "x == 3", [0, 0, 1]),
        (pa.array([1, 2, 3], pa.int64()), "x < 99999999999999999999", [1, 1, 1]),
        (pa.array([0.1, 0.2, 0.3], pa.float32()), "x == 0.1", [1, 0, 0]),
        (pa.array([0.1, 0.2, 0.3], pa.float32()), "x in (0.1, 0.3)", [1, 0, 1]),
        (pa.array([0.1, 0.2, 0.3], pa.float32()), "x < 1e300", [1, 1, 1]),
        (pa.array(np.array([0.5, 1.5, NAN], np.float16)), "x > 1", [0, 1, 0]),
        (pa.array([decimal.Decimal("1.25"), decimal.Decimal("2.50"), None]), "x > 2", [0, 1, 0]),
        (pa.array([decimal.Decimal("1.25"), decimal.Decimal("2.50"), None]), "x in (2.5, 1)", [0, 1, 0]),
        (pa.array(["a", "b", None], pa.large_string()), "x in ('b')", [0, 1, 0]),
        (pa.nulls(3), "x == 1", [0, 0, 0]),
        (pa.nulls(3), "x in ('a')", [0, 0, 0]),
        (pa.nulls(3), "x", [0, 0, 0]),
        (pa.nulls(3), "x is null", [1, 1, 1]),
        (pa.array([1, 2, 3], pa.timestamp("s")), "x is not null", [1, 1, 1]),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_numeric_and_other_column_types(column: pa.Array, text: str, expected: list[int]) -> None:
    np.testing.assert_array_equal(evaluate(parse(text), pa.table({"x": column})), np.array(expected, bool))


@pytest.mark.skipif(not hasattr(pa, "string_view"), reason="pyarrow without string_view")
def test_string_view_column() -> None:
    table = pa.table({"x": pa.array(["a", "b", None], pa.string_view())})
    np.testing.assert_array_equal(evaluate(parse("x != 'a'"), table), [0, 1, 0])


def test_int_and_float_columns_compare_with_each_other() -> None:
    table = pa.table({"i": pa.array([1, 2, 3], pa.int16()), "f": pa.array([1.0, 2.5, NAN])})
    np.testing.assert_array_equal(evaluate(parse("i < f"), table), [0, 1, 0])
    np.testing.assert_array_equal(evaluate(parse("i == f"), table), [1, 0, 0])


def test_empty_tables() -> None:
    dictionary = pa.dictionary(pa.int32(), pa.string())
    no_chunks = pa.table({"x": pa.chunked_array([], pa.int64()), "k": pa.chunked_array([], dictionary)})
    sliced = pa.table({"x": [1, 2], "k": pa.array(["a", "b"]).dictionary_encode()}).slice(0, 0)
    for table in (no_chunks, sliced):
        for text in ("x > 1", "k == 'a'", "x in (1) or k is null", "not k", "true"):
            if text == "not k":
                with pytest.raises(ExpressionError):
                    evaluate(parse(text), table)
                continue
            mask = evaluate(parse(text), table)
            assert mask.dtype == np.bool_ and mask.shape == (0,)


# -- parse errors -------------------------------------------------------------------

PARSE_ERRORS = [
    ("", 0, "the expression is empty"),
    (" \t\n", 0, "the expression is empty"),
    ("a >", 3, "expected a value after '>', found the end of the expression"),
    ("a > and b", 4, "expected a value after '>', found 'and'"),
    ("a > 1 and", 9, "expected a condition after 'and'"),
    ("a > 1 or", 8, "expected a condition after 'or'"),
    ("not", 3, "expected a condition after 'not'"),
    ("and a", 0, "expected a condition, found 'and'"),
    ("a > 1 and and b", 10, "expected a condition after 'and', found 'and'"),
    ("(a > 1", 6, "expected ')' to close the '(' at position 0"),
    ("((a > 1) and b", 14, "expected ')' to close the '(' at position 0"),
    ("(a > 1 b", 7, "expected ')' to close the '(' at position 0, found 'b'"),
    ("()", 1, "expected a condition after '(', found ')'"),
    ("a > 1)", 5, "unexpected ')' with no matching '('"),
    ("a > 1 b", 6, "unexpected 'b' after a complete condition"),
    ("a > 1 'x'", 6, "after a complete condition"),
    ("'abc", 0, "string starting here is never closed"),
    ('a == "abc', 5, "string starting here is never closed"),
    ("a == 'x\\'", 5, "never closed"),
    ("`col", 0, "quoted column name starting here is never closed"),
    ("``", 0, "empty column name"),
    ("a == 'x\\n'", 7, "unknown escape '\\n'"),
    ("a # 1", 2, "unexpected character '#'"),
    ("a > 1 && b", 6, "unexpected character '&': use 'and'"),
    ("a > 1 || b", 6, "use 'or'"),
    ("!a", 0, "use 'not'"),
    ("a ~ 1", 2, "unexpected character '~'"),
    ("a > - 1", 4, "arithmetic is not supported"),
    ("a\u00a0> 1", 1, "unexpected character '\\xa0'"),
    ("prénom == 'x'", 2, "backquotes"),
    ("a in ()", 6, "an 'in' list needs at least one value"),
    ("a in (1,)", 8, "expected a value after ',', found ')'"),
    ("a in (1 2)", 8, "expected ',' or ')' in the list opened at position 5, found '2'"),
    ("a in (1", 7, "expected ',' or ')' in the list opened at position 5"),
    ("a in 1", 5, "expected '(' starting a list of values after 'in'"),
    ("a in (1, 'x')", 9, "the list mixes numbers and strings"),
    ("a in (true, 1)", 12, "the list mixes booleans and numbers"),
    ("a in (1, null)", 9, "null never matches"),
    ("a in (b)", 6, "holds values, not columns"),
    ("'BR' in (a)", 0, "the left side of 'in' must be a column"),
    ("a not like 'x'", 6, "expected 'in' after 'not', found 'like'"),
    ("a is 1", 5, "expected 'null' or 'not null' after 'is'"),
    ("a is not true", 9, "expected 'null' or 'not null' after 'is'"),
    ("1 is null", 0, "the left side of 'is' must be a column"),
    ("a < b < c", 6, "comparisons cannot be chained"),
    ("1 < a <= 3", 6, "comparisons cannot be chained"),
    ("a == null", 5, "a comparison with null is never true; write 'a is null'"),
    ("null != a", 0, "write 'a is not null'"),
    ("1 == 1", 0, "a comparison needs a column on at least one side"),
    ("'a' < 'b'", 0, "a comparison needs a column"),
    ("5", 0, "the value 5 on its own is not a condition"),
    ("'x' and a", 0, "on its own is not a condition"),
    ("null", 0, "on its own is not a condition"),
    ("a 5", 2, "expected a comparison operator between 'a' and '5'"),
    ("a b", 2, "expected a comparison operator between 'a' and 'b'"),
    ("1e", 0, "malformed number '1e'"),
    ("a > 1.2.3", 4, "malformed number '1.2.3'"),
    ("a > 1x", 4, "malformed number '1x'"),
    ("a > 1e999", 4, "number '1e999' is too large"),
    ("a > " + "9" * 400, 4, "is too large"),
    ("a <> 1", 2, "use '!=' for not equal"),
    ("a === 1", 4, "expected a value after '==', found '='"),
]


@pytest.mark.parametrize(
    ("text", "position", "message"), PARSE_ERRORS, ids=[case[0][:40] for case in PARSE_ERRORS]
)
def test_parse_errors_name_their_position(text: str, position: int, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.position == position
    assert message in caught.value.message
    assert str(caught.value) == f"at position {position}: {caught.value.message}"


def test_error_message_format() -> None:
    with pytest.raises(ExpressionError) as caught:
        parse("a > 1 and b >")
    assert str(caught.value) == "at position 13: expected a value after '>', found the end of the expression"
    assert isinstance(caught.value, ValueError)


def test_error_survives_pickling() -> None:
    error = ExpressionError("expected a value after '>'", 7)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.position, str(copy)) == (error.message, 7, str(error))


def test_length_limit() -> None:
    assert parse("a" * 2000) == Column("a" * 2000)
    with pytest.raises(ExpressionError) as caught:
        parse("a" * 2001)
    assert caught.value.position == 2000
    assert "2001 characters long; the limit is 2000" in caught.value.message
    with pytest.raises(ExpressionError) as caught:
        parse("amount > 1000", max_length=10)
    assert caught.value.position == 10


def test_non_string_input_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("opening", "closing", "levels"),
    [("(", ")", 1), ("not ", "", 1), ("not (", ")", 2)],
)
def test_nesting_limit(opening: str, closing: str, levels: int) -> None:
    """Parentheses and ``not`` each count one level; the first level too many is reported."""
    deepest = MAX_DEPTH // levels
    assert parse(opening * deepest + "a" + closing * deepest) is not None
    too_deep = opening * (deepest + 1) + "a" + closing * (deepest + 1)
    with pytest.raises(ExpressionError) as caught:
        parse(too_deep)
    assert caught.value.position == len(opening) * deepest
    assert "nests more than 50 levels" in caught.value.message


@pytest.mark.parametrize("text", ["(" * 10_000, "(" * 10_000 + "a" + ")" * 10_000, "not " * 10_000 + "a"])
def test_ten_thousand_deep_nest_is_an_expression_error_not_recursion_error(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.position == 2000  # refused by length first
    with pytest.raises(ExpressionError) as caught:
        parse(text, max_length=len(text))
    assert "nests more than" in caught.value.message


# -- schema checks ------------------------------------------------------------------

SCHEMA_ERRORS = [
    ("amont > 1", 0, "unknown column 'amont'; did you mean 'amount'?"),
    ("amount > 1 and contry == 'BR'", 15, "did you mean 'country'?"),
    ("Amount > 1", 0, "did you mean 'amount'"),
    ("zzz > 1", 0, "the data has columns amount, score, country"),
    ("`first_name` == 'x'", 0, "did you mean 'first name'?"),
    ("amount == 'x'", 0, "column 'amount' holds numbers (int64) and cannot be compared with the string 'x'"),
    ("amount == '5'", 0, "remove the quotes"),
    ("country < 5", 0, "column 'country' holds strings (string) and cannot be compared with the number 5"),
    ("5 < country", 4, "cannot be compared with the number 5"),
    ("region == 1", 0, "column 'region' holds strings (dictionary<"),
    ("amount > country", 9, "column 'country' holds strings (string) and cannot be compared with column"),
    ("flag < true", 0, "holds booleans, which only == and != compare"),
    ("flag == 1", 0, "use true or false"),
    ("amount == true", 0, "cannot be compared with the boolean true"),
    ("amount", 0, "not true/false, so it is not a condition on its own"),
    ("flag and not (country)", 14, "column 'country' holds strings"),
    ("amount in ('a')", 0, "holds numbers (int64) and cannot match a list of strings"),
    ("region in (1, 2)", 0, "cannot match a list of numbers"),
    ("when_ts > 1", 0, "has type timestamp[s], which expressions cannot compare"),
    ("when_ts == when_ts", 0, "which expressions cannot compare"),
    ("when_ts in (1)", 0, "which expressions cannot compare"),
    ("dup == 1", 0, "column 'dup' appears 2 times in the data"),
]


@pytest.mark.parametrize(
    ("text", "position", "message"), SCHEMA_ERRORS, ids=[case[0] for case in SCHEMA_ERRORS]
)
def test_schema_errors_name_the_column(text: str, position: int, message: str) -> None:
    schema = TABLE.schema.append(pa.field("when_ts", pa.timestamp("s")))
    schema = schema.append(pa.field("dup", pa.int64())).append(pa.field("dup", pa.int64()))
    with pytest.raises(ExpressionError) as caught:
        check_columns(parse(text), schema)
    assert caught.value.position == position
    assert message in caught.value.message


def test_unknown_column_is_reported_before_type_errors_and_by_evaluate() -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(parse("amount == 'x' or nope > 1"), TABLE)
    assert caught.value.position == 17
    assert "unknown column 'nope'" in caught.value.message


def test_is_null_works_on_any_type() -> None:
    schema = pa.schema([("ts", pa.timestamp("s")), ("l", pa.list_(pa.int64()))])
    check_columns(parse("ts is null and l is not null"), schema)


def test_long_column_lists_are_shortened() -> None:
    schema = pa.schema([(f"c{index}", pa.int64()) for index in range(30)])
    with pytest.raises(ExpressionError) as caught:
        check_columns(parse("zzz > 1"), schema)
    assert caught.value.message.endswith("c9 and 20 more")


# -- injection and fuzzing ----------------------------------------------------------


@pytest.fixture
def code_execution_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches an evaluator of code or a shell."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("code was executed")

    for owner, name in [
        (builtins, "eval"),
        (builtins, "exec"),
        (builtins, "compile"),
        (ast, "literal_eval"),
        (os, "system"),
        (pd, "eval"),
        (pd.DataFrame, "query"),
        (pd.DataFrame, "eval"),
    ]:
        monkeypatch.setattr(owner, name, forbidden)


INJECTIONS = [
    ("__import__('os').system('x')", 10),
    ("amount.__class__", 6),
    ("`amount`.__class__", 8),
    ("1; import os", 1),
    ("amount > 1; import os", 10),
    ("lambda: 1", 6),
    ("amount > 1 or exec('x')", 18),
    ("amount > exec('x')", 13),
    ("[x for x in y]", 0),
    ("amount + 1 > 2", 7),
    ("amount > 1 + 1", 11),
    ("f'{amount}' == 'x'", 0),
    ('amount > 1 or f"{1}" == country', 14),
    ("amount[0] > 1", 6),
    ("globals()", 7),
    ("amount > 1 if amount else 0", 11),
    ("amount > 1 # comment", 11),
    ("amount > 1\nimport os", 11),
    ("amount > (1)", 9),
    ("amount > 1 or (lambda: 1)()", 21),
    ("country == 'x' or __builtins__['eval']('1')", 30),
    ("{'a': 1}", 0),
    ("amount == @x", 10),
]


@pytest.mark.usefixtures("code_execution_forbidden")
@pytest.mark.parametrize(("text", "position"), INJECTIONS, ids=[case[0] for case in INJECTIONS])
def test_injection_attempts_are_rejected_at_parse_time(text: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.position == position


@pytest.mark.usefixtures("code_execution_forbidden")
def test_dunder_names_are_only_column_names() -> None:
    expr = parse("amount > 1 or __import__")
    with pytest.raises(ExpressionError) as caught:
        evaluate(expr, TABLE)
    assert (caught.value.position, caught.value.message.split(";")[0]) == (14, "unknown column '__import__'")


def test_source_never_calls_code_evaluators() -> None:
    package = Path(expressions.__file__).parent
    forbidden = re.compile(r"(?<![\w.])(eval|exec|compile|literal_eval)\s*\(|\.(query|eval)\(|__import__")
    for path in package.glob("*.py"):
        assert not forbidden.search(path.read_text()), path


FUZZ_TOKENS = [
    "amount", "score", "flag", "country", "region", "`first name`", "nope", "1", "-2.5", "1e3", ".5",
    "'BR'", '"x"', "'it\\'s'", "true", "false", "null", "==", "=", "!=", "<", "<=", ">", ">=",
    "in", "not", "is", "and", "or", "AND", "(", "(", ")", ")", ",", "'", "`", "\\", ".", "+",
    "-", "[", ";", "é", "\t", "e", "1e", "<>",
]  # fmt: skip


@pytest.mark.usefixtures("code_execution_forbidden")
def test_fuzz_only_ever_raises_expression_error() -> None:
    rng = random.Random(20240601)
    parsed = 0
    for _ in range(4000):
        pieces = rng.choices(FUZZ_TOKENS, k=rng.randint(1, 12))
        text = rng.choice([" ", ""]).join(pieces)
        try:
            expr = parse(text)
        except ExpressionError as error:
            assert 0 <= error.position <= len(text)
            continue
        parsed += 1
        assert parse(str(expr)) == expr
        try:
            mask = evaluate(expr, TABLE)
        except ExpressionError as error:
            assert 0 <= error.position <= len(text)
            continue
        assert mask.shape == (TABLE.num_rows,)
        np.testing.assert_array_equal(mask, evaluate(parse(str(expr)), TABLE))
    assert parsed > 50  # the alphabet does produce valid expressions too


def test_fuzz_random_characters() -> None:
    rng = random.Random(7)
    alphabet = "ab_1 .-'\"`\\()=<>!,\tnotandrisul\u00e9\x00"
    for _ in range(3000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 20)))
        try:
            parse(text)
        except ExpressionError as error:
            assert 0 <= error.position <= len(text)


# -- scale ---------------------------------------------------------------------------


def test_million_rows_vectorized() -> None:
    rows = 1_000_000
    rng = np.random.default_rng(42)
    amount = rng.normal(1000, 500, rows)
    amount[rng.random(rows) < 0.01] = np.nan
    countries = rng.choice(np.array(["BR", "AR", "US", "DE"]), rows)
    tenure = rng.integers(0, 400, rows)
    tenure_missing = rng.random(rows) < 0.02
    quarter = rows // 4
    table = pa.table(
        {
            "amount": pa.chunked_array([amount[i : i + quarter] for i in range(0, rows, quarter)]),
            # Each chunk has its own dictionary, as from separately decoded batches.
            "country": pa.chunked_array(
                [pa.array(countries[i : i + quarter]).dictionary_encode() for i in range(0, rows, quarter)]
            ),
            "tenure_days": pa.array(tenure, mask=tenure_missing),
        }
    )
    valid_amount = ~np.isnan(amount)
    high = valid_amount & (amount > 1000)
    not_high = valid_amount & (amount <= 1000)
    latam = np.isin(countries, ["BR", "AR"])
    new = ~tenure_missing & (tenure < 30)

    mask = evaluate(parse("amount > 1000 and country in ('BR', 'AR') or tenure_days < 30"), table)
    np.testing.assert_array_equal(mask, (high & latam) | new)
    text = "not (amount > 1000 and country in ('BR', 'AR')) and tenure_days is not null"
    mask = evaluate(parse(text), table)
    np.testing.assert_array_equal(mask, (not_high | ~latam) & ~tenure_missing)


def test_public_api_is_exported() -> None:
    assert {"parse", "check_columns", "evaluate", "ExpressionError", "Expression"} <= set(expressions.__all__)
    assert isinstance(parse("not a"), Not)
