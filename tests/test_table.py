"""Result sets printed like libpq's ``PQprint`` (align, header, ``|``), byte for byte.

The real examples are blocks of PostgreSQL's expected files in the conformance corpus
(``tests/pg-isolation/expected``); the last test finds them there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_pglocks.isolation._table import format_table

CORPUS = Path(__file__).resolve().parent / "pg-isolation"

Rows = Sequence[Sequence[bytes | None]]


def column(name: bytes, *values: bytes | None) -> bytes:
    """The table of a single column."""
    return format_table([name], [[value] for value in values])


def test_numeric_column_is_right_aligned_header_too() -> None:
    assert column(b"id", b"1", b"100") == b" id\n---\n  1\n100\n(2 rows)\n\n"


def test_text_column_is_left_aligned() -> None:
    assert column(b"name", b"ab", b"abcdef") == b"name  \n------\nab    \nabcdef\n(2 rows)\n\n"


@pytest.mark.parametrize(
    "values",
    [(b"12", b"x"), (b"x", b"12")],
    ids=["text-last", "text-first"],
)
def test_one_text_value_makes_the_column_left_aligned(values: tuple[bytes, bytes]) -> None:
    expected = b"v \n--\n" + b"".join(value.ljust(2) + b"\n" for value in values)

    assert column(b"v", *values) == expected + b"(2 rows)\n\n"


def test_empty_and_null_neither_widen_nor_classify() -> None:
    table = format_table(
        [b"a", b"b"],
        [[b"", b"x"], [None, b"yy"], [b"5", None]],
    )

    assert table == b"a|b \n-+--\n |x \n |yy\n5|  \n(3 rows)\n\n"


def test_empty_value_keeps_a_numeric_column_right_aligned() -> None:
    assert column(b"n", b"", b"10", None) == b" n\n--\n  \n10\n  \n(3 rows)\n\n"


def test_column_name_longer_than_values() -> None:
    table = format_table([b"parent_key", b"description"], [[b"2", b"ab"]])

    assert table == (
        b"parent_key|description\n----------+-----------\n         2|ab         \n(1 row)\n\n"
    )


@pytest.mark.parametrize("value", [b"E5", b"e5"])
def test_value_starting_with_e_is_text(value: bytes) -> None:
    assert column(b"x", b"10", value) == b"x \n--\n10\n" + value + b"\n(2 rows)\n\n"


def test_exponent_notation_is_numeric() -> None:
    assert column(b"f", b"1.5e10", b"2") == b"     f\n------\n1.5e10\n     2\n(2 rows)\n\n"


def test_negative_numbers_are_numeric() -> None:
    assert column(b"n", b"-1", b"-250") == b"   n\n----\n  -1\n-250\n(2 rows)\n\n"


def test_blanks_between_digits_are_numeric() -> None:
    assert column(b"n", b"1 2", b"7") == b"  n\n---\n1 2\n  7\n(2 rows)\n\n"


@pytest.mark.parametrize(
    "value",
    [b"1.", b"1 ", b"1,5", b"+1", b"0x1"],
    ids=["trailing-dot", "trailing-blank", "comma", "plus", "hex"],
)
def test_not_numeric(value: bytes) -> None:
    width = max(len(value), 2)
    expected = b"n".ljust(width) + b"\n" + b"-" * width + b"\n"
    expected += b"10".ljust(width) + b"\n" + value.ljust(width) + b"\n(2 rows)\n\n"

    assert column(b"n", b"10", value) == expected


def test_dash_alone_is_left_aligned() -> None:
    assert column(b"n", b"10", b"-") == b"n \n--\n10\n- \n(2 rows)\n\n"


def test_multibyte_utf8_width_is_in_bytes() -> None:
    value = "h\u00e9llo".encode()  # 5 characters, 6 bytes

    assert column(b"name", value, b"abc") == (b"name  \n------\nh\xc3\xa9llo\nabc   \n(2 rows)\n\n")


def test_multibyte_column_name_width_is_in_bytes() -> None:
    assert column("\u00e9".encode(), b"1") == b"\xc3\xa9\n--\n 1\n(1 row)\n\n"


def test_zero_rows() -> None:
    assert format_table([b"a", b"bb"], []) == b"a|bb\n-+--\n(0 rows)\n\n"


def test_one_row() -> None:
    assert column(b"x", b"y") == b"x\n-\ny\n(1 row)\n\n"


@pytest.mark.parametrize("rows", [[], [[]], [[], []]], ids=["no-rows", "one-row", "two-rows"])
def test_no_columns_prints_nothing(rows: Rows) -> None:
    assert format_table([], rows) == b""


# (expected file, column names, rows, the block as the tester printed it)
REAL: list[tuple[str, list[bytes], Rows, bytes]] = [
    (
        "nowait-5",
        [b"pg_advisory_lock"],
        [[b""]],
        b"pg_advisory_lock\n----------------\n                \n(1 row)\n\n",
    ),
    (
        "lock-committed-keyupdate",
        [b"pg_advisory_unlock"],
        [[b"t"]],
        b"pg_advisory_unlock\n------------------\nt                 \n(1 row)\n\n",
    ),
    (
        "lock-committed-keyupdate",
        [b"id", b"value"],
        [[b"1", b"one"], [b"2", b"two"]],
        b"id|value\n--+-----\n 1|one  \n 2|two  \n(2 rows)\n\n",
    ),
    (
        "aborted-keyrevoke",
        [b"key", b"value"],
        [[b"1", b"1"]],
        b"key|value\n---+-----\n  1|    1\n(1 row)\n\n",
    ),
    (
        "fk-concurrent-pk-upd",
        [b"parent_key", b"aux"],
        [[b"2", b"foo"]],
        b"parent_key|aux\n----------+---\n         2|foo\n(1 row)\n\n",
    ),
    (
        "fk-concurrent-pk-upd",
        [b"child_key", b"parent_key"],
        [],
        b"child_key|parent_key\n---------+----------\n(0 rows)\n\n",
    ),
    (
        "insert-conflict-do-update-2",
        [b"key", b"payload"],
        [[b"FOOFOO", b"insert1 updated by insert2"]],
        b"key   |payload                   \n------+--------------------------\n"
        b"FOOFOO|insert1 updated by insert2\n(1 row)\n\n",
    ),
    (
        "insert-conflict-do-update-3",
        [b"key", b"color", b"is_active"],
        [[b"1", b"Red", b"f"], [b"2", b"Green", b"f"], [b"3", b"Blue", b"f"]],
        b"key|color|is_active\n---+-----+---------\n"
        b"  1|Red  |f        \n  2|Green|f        \n  3|Blue |f        \n(3 rows)\n\n",
    ),
]
REAL_IDS = [f"{name}-{b'-'.join(names).decode()}" for name, names, _, _ in REAL]


@pytest.mark.parametrize(("name", "names", "rows", "expected"), REAL, ids=REAL_IDS)
def test_real_result_sets(name: str, names: list[bytes], rows: Rows, expected: bytes) -> None:
    assert format_table(names, rows) == expected


@pytest.mark.parametrize(("name", "names", "rows", "expected"), REAL, ids=REAL_IDS)
def test_real_result_sets_are_in_the_expected_files(
    name: str, names: list[bytes], rows: Rows, expected: bytes
) -> None:
    output = (CORPUS / "expected" / f"{name}.out").read_bytes()

    assert b"\n" + format_table(names, rows) in output
