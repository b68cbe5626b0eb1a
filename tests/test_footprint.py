"""What a step touches, and which orders of the steps exploration tries: no server needed.

Footprints are checked against a hand-made catalog: ``parent`` and ``child`` tied by a foreign
key, a partitioned table ``events`` with its partition, a table with a trigger, a view and a
materialized view. Orders are checked exactly for small cases and, for random independence
relations, against brute force: the reduced orders must reach every class of orders that
differ only by swapping adjacent independent steps.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

import pytest

from pytest_pglocks.explore._footprint import (
    CATALOG_QUERY,
    LINKS_QUERY,
    NOTHING,
    UNKNOWN,
    Catalog,
    Footprint,
    read_catalog,
    session_footprints,
    statement_footprint,
    statements,
    step_footprint,
)
from pytest_pglocks.explore._orders import (
    Independent,
    StepRef,
    brute_force_count,
    count,
    orders,
)

FAMILY = frozenset({"parent", "child"})
EVENTS = frozenset({"events", "events_2024"})


def make_catalog(opaque: Iterable[str] = ("audited",)) -> Catalog:
    """parent/child tied by an FK, events partitioned, audited with a trigger, two views."""
    relkinds = {
        "parent": "r",
        "child": "r",
        "other": "r",
        "audited": "r",
        "events": "p",
        "events_2024": "r",
        "recent": "v",
        "totals": "m",
        "remote": "f",
    }
    links = {"parent": FAMILY, "child": FAMILY, "events": EVENTS, "events_2024": EVENTS}
    return Catalog(relkinds, links, frozenset(opaque))


CATALOG = make_catalog()


def reads(*tables: str) -> Footprint:
    """A plain read of ``tables``."""
    return Footprint(frozenset(tables), writes=False, takes_snapshot=True)


def writes(*tables: str) -> Footprint:
    """A write of ``tables`` (or a read that locks rows)."""
    return Footprint(frozenset(tables), writes=True, takes_snapshot=True)


END = Footprint(frozenset(), writes=True, ends_transaction=True, takes_snapshot=True)


def whole(*tables: str) -> Footprint:
    """What a resolved transaction end (or a snapshot step) touches: the whole session."""
    return Footprint(frozenset(tables), writes=True, takes_snapshot=True)


# statements()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1; SELECT 2", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';' AS semi; SELECT 2", ["SELECT ';' AS semi", "SELECT 2"]),
        ('SELECT 1 AS ";"', ['SELECT 1 AS ";"']),
        ("SELECT 1 -- ; not a statement", ["SELECT 1 -- ; not a statement"]),
        ("SELECT 1 /* ; */ + 1", ["SELECT 1 /* ; */ + 1"]),
        ("BEGIN;;\n  COMMIT;  ", ["BEGIN", "COMMIT"]),
        ("UPDATE other SET n = 1;", ["UPDATE other SET n = 1"]),
        ("", []),
        ("  ;  ", []),
        ("SELECT 'unterminated; SELECT 2", ["SELECT 'unterminated; SELECT 2"]),
    ],
)
def test_statements_split_at_semicolons_outside_quotes_and_comments(
    sql: str, expected: list[str]
) -> None:
    assert statements(sql) == expected


def test_statements_keep_dollar_quoted_strings_whole() -> None:
    assert statements("SELECT $$a;b$$; SELECT 2") == ["SELECT $$a;b$$", "SELECT 2"]


# statement_footprint()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM other", reads("other")),
        ("select * from OTHER", reads("other")),
        ("SELECT * FROM public.other", reads("other")),
        ("SELECT count(*) FROM other WHERE n > 1", reads("other")),
        ("WITH c AS (SELECT k FROM other) SELECT * FROM c", reads("other")),
        ("SELECT * FROM other FOR UPDATE", writes("other")),
        ("SELECT * FROM child FOR KEY SHARE", writes(*FAMILY)),
        ("INSERT INTO child VALUES (1, 1)", writes(*FAMILY)),
        ("DELETE FROM parent WHERE id = 1", writes(*FAMILY)),
        ("UPDATE other SET n = n + 1 WHERE k = 1", writes("other")),
        ("INSERT INTO other SELECT id FROM parent", writes("other", *FAMILY)),
        ("WITH gone AS (DELETE FROM other RETURNING k) SELECT count(*) FROM gone", writes("other")),
        ("SELECT * FROM events_2024", reads(*EVENTS)),
        ("INSERT INTO events VALUES (1)", writes(*EVENTS)),
        ("SELECT * FROM audited", reads("audited")),  # triggers fire on writes only
        ("SELECT 1", reads()),
        ("SELECT now()", reads()),
        ("LOCK TABLE other IN ACCESS EXCLUSIVE MODE", writes("other")),
        ("LOCK other, parent IN SHARE MODE", writes("other", *FAMILY)),
        ("LOCK TABLE ONLY public.other NOWAIT", writes("other")),
    ],
)
def test_statement_footprint_names_the_tables_through_links(sql: str, expected: Footprint) -> None:
    assert statement_footprint(sql, CATALOG) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audited SET n = 1",  # a trigger may write anything
        "INSERT INTO audited VALUES (1)",
        "SELECT * FROM recent",  # a view
        "SELECT * FROM totals",  # a materialized view
        "SELECT * FROM remote",  # a foreign table
        "SELECT * FROM made_by_a_step",  # not in the catalog
        "LOCK TABLE recent",
        "SELECT pg_advisory_lock(1)",
        "SELECT nextval('ids')",
        "SELECT my_function(k) FROM other",
        "CREATE TABLE made_by_a_step (k int)",
        "ALTER TABLE other ADD COLUMN z int",
        "TRUNCATE other",
        "VACUUM other",
        "DO $$ BEGIN PERFORM 1; END $$",
        "CALL refresh()",
        "EXECUTE q",
        "this is not sql",
    ],
)
def test_statement_footprint_is_unknown_when_the_statement_may_do_anything(sql: str) -> None:
    assert statement_footprint(sql, CATALOG) == UNKNOWN


@pytest.mark.parametrize(
    "sql",
    [
        "BEGIN",
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "START TRANSACTION",
        "SET lock_timeout = '1s'",
        "SAVEPOINT sp",
        "RELEASE SAVEPOINT sp",
        "SHOW deadlock_timeout",
        "RESET lock_timeout",
        "PREPARE q AS UPDATE other SET n = 1",  # EXECUTE q is what runs it
    ],
)
def test_statement_footprint_of_session_commands_is_nothing(sql: str) -> None:
    assert statement_footprint(sql, CATALOG) == NOTHING


@pytest.mark.parametrize(
    "sql",
    [
        "COMMIT",
        "commit",
        "END",
        "ROLLBACK",
        "ABORT",
        "ROLLBACK TO SAVEPOINT sp",
        "PREPARE TRANSACTION 'x'",
    ],
)
def test_statement_footprint_marks_transaction_ends(sql: str) -> None:
    assert statement_footprint(sql, CATALOG) == END


def test_set_constraints_immediate_touches_what_the_deferred_checks_touch() -> None:
    linker = session_footprints(
        ["INSERT INTO child VALUES (1, 1)", "SET CONSTRAINTS ALL IMMEDIATE", "COMMIT"],
        "BEGIN",
        CATALOG,
    )
    assert linker[1].conflicts(statement_footprint("DELETE FROM parent WHERE id = 1", CATALOG))


def test_commit_prepared_conflicts_with_the_prepared_transaction() -> None:
    preparer = session_footprints(
        ["UPDATE other SET n = 1", "PREPARE TRANSACTION 'x'"], "BEGIN", CATALOG
    )
    (finisher,) = session_footprints(["COMMIT PREPARED 'x'"], None, CATALOG)
    assert finisher.conflicts(preparer[1])


@pytest.mark.parametrize(
    ("sql", "triggered"),
    [
        ("DELETE FROM parent WHERE id = 1", "child"),
        ("INSERT INTO events VALUES (1)", "events_2024"),
    ],
)
def test_writing_a_table_linked_to_a_triggered_table_is_unknown(sql: str, triggered: str) -> None:
    assert statement_footprint(sql, make_catalog(opaque={triggered})) == UNKNOWN


# step_footprint()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "BEGIN; UPDATE other SET n = 1; SELECT * FROM parent; COMMIT",
            Footprint(
                frozenset({"other", *FAMILY}), True, ends_transaction=True, takes_snapshot=True
            ),
        ),
        ("SELECT * FROM other; SELECT * FROM child", reads("other", *FAMILY)),
        ("SELECT * FROM other; SELECT * FROM recent", UNKNOWN),
        ("SELECT ';' FROM other", reads("other")),
        ("BEGIN; SET lock_timeout = '1s'", NOTHING),
        ("", NOTHING),
    ],
)
def test_step_footprint_is_the_union_of_its_statements(sql: str, expected: Footprint) -> None:
    assert step_footprint(sql, CATALOG) == expected


# session_footprints()


def test_session_footprints_resolve_a_commit_to_everything_the_session_touches() -> None:
    steps: list[str | None] = ["UPDATE other SET n = 1", "SELECT 1", "COMMIT"]
    assert session_footprints(steps, "BEGIN; SELECT * FROM parent", CATALOG) == [
        writes("other"),
        reads(),
        whole("other", *FAMILY),  # the setup's reads count: its locks go at COMMIT too
    ]


def test_session_footprints_keep_begin_and_set_touching_nothing() -> None:
    steps: list[str | None] = [
        "BEGIN",
        "SET lock_timeout = '1s'",
        "SELECT * FROM other",
        "ROLLBACK",
    ]
    assert session_footprints(steps, None, CATALOG) == [
        NOTHING,
        NOTHING,
        reads("other"),
        whole("other"),
    ]


def test_session_footprints_make_a_callable_and_the_commit_after_it_unknown() -> None:
    steps: list[str | None] = ["BEGIN", None, "SELECT * FROM other", "COMMIT"]
    assert session_footprints(steps, None, CATALOG) == [NOTHING, UNKNOWN, reads("other"), UNKNOWN]


@pytest.mark.parametrize(
    ("setup", "first", "first_touches"),
    [
        ("BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT 1", "everything"),
        ("BEGIN", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "nothing"),
        ("SET default_transaction_isolation = 'repeatable read'", "BEGIN", "nothing"),
        (None, "begin isolation level repeatable   read", "nothing"),
    ],
)
def test_session_footprints_widen_every_snapshot_step_under_a_snapshot_isolation_level(
    setup: str | None, first: str, first_touches: str
) -> None:
    steps: list[str | None] = [first, "SELECT * FROM other", "UPDATE parent SET id = 2", "COMMIT"]
    everything = whole("other", *FAMILY)
    widened = everything if first_touches == "everything" else NOTHING
    assert session_footprints(steps, setup, CATALOG) == [
        widened,
        everything,
        everything,
        everything,
    ]


def test_session_footprints_under_read_committed_keep_each_snapshot_step_narrow() -> None:
    steps: list[str | None] = [
        "SELECT 1",
        "SELECT * FROM other",
        "UPDATE parent SET id = 2",
        "COMMIT",
    ]
    assert session_footprints(steps, "BEGIN ISOLATION LEVEL READ COMMITTED", CATALOG) == [
        reads(),
        reads("other"),
        writes(*FAMILY),
        whole("other", *FAMILY),
    ]


def test_session_footprints_of_no_steps_are_empty() -> None:
    assert session_footprints([], "BEGIN", CATALOG) == []


# Footprint.conflicts() and union


SAMPLES = {
    "nothing": NOTHING,
    "read t": reads("t"),
    "read u": reads("u"),
    "read t u": reads("t", "u"),
    "write t": writes("t"),
    "write u": writes("u"),
    "write nothing": writes(),
    "read anything": Footprint(None),
    "unknown": UNKNOWN,
}
CONFLICTING = {
    frozenset(pair)
    for pair in [
        ("read t", "write t"),
        ("read t u", "write t"),
        ("read t u", "write u"),
        ("read u", "write u"),
        ("write t", "write t"),
        ("write u", "write u"),
        ("read anything", "write t"),
        ("read anything", "write u"),
        ("read anything", "unknown"),
        ("unknown", "read t"),
        ("unknown", "read u"),
        ("unknown", "read t u"),
        ("unknown", "write t"),
        ("unknown", "write u"),
        ("unknown", "unknown"),
    ]
}


@pytest.mark.parametrize(("first", "second"), list(itertools.product(SAMPLES, repeat=2)))
def test_conflicts_when_a_common_table_is_written(first: str, second: str) -> None:
    expected = frozenset({first, second}) in CONFLICTING
    assert SAMPLES[first].conflicts(SAMPLES[second]) is expected


def test_union_joins_tables_and_flags_and_unknown_wins() -> None:
    assert reads("t") | writes("u") == writes("t", "u")
    assert NOTHING | END == END
    assert (reads("t") | UNKNOWN).tables is None
    assert END | Footprint(None) == Footprint(
        None, True, ends_transaction=True, takes_snapshot=True
    )


# Catalog.expand() and read_catalog()


def test_expand_follows_links_and_defaults_to_the_table_itself() -> None:
    assert CATALOG.expand(["child"], writes=False) == reads(*FAMILY)
    assert CATALOG.expand(["other", "events"], writes=True) == writes("other", *EVENTS)
    assert CATALOG.expand([], writes=True) == writes()


def test_read_catalog_merges_linked_tables_transitively_and_marks_triggers() -> None:
    answers: dict[str, list[tuple[object, ...]]] = {
        CATALOG_QUERY: [
            ("a", "r", False),
            ("b", "r", False),
            ("c", "r", True),
            ("d", "r", False),
            ("lonely", "r", False),
            ("e", "p", False),
            ("e1", "r", False),
            ("v", "v", False),
        ],
        LINKS_QUERY: [("b", "a"), ("d", "c"), ("c", "b"), ("e1", "e")],  # c-b joins two groups
    }
    asked: list[str] = []

    def run(sql: str) -> list[tuple[object, ...]]:
        asked.append(sql)
        return list(answers[sql])

    catalog = read_catalog(run)
    assert asked == [CATALOG_QUERY, LINKS_QUERY]
    assert catalog.relkinds == {
        "a": "r", "b": "r", "c": "r", "d": "r", "lonely": "r", "e": "p", "e1": "r", "v": "v"
    }  # fmt: skip
    abcd = frozenset("abcd")
    assert dict(catalog.links) == {
        "a": abcd,
        "b": abcd,
        "c": abcd,
        "d": abcd,
        "lonely": frozenset({"lonely"}),
        "e": frozenset({"e", "e1"}),
        "e1": frozenset({"e", "e1"}),
        "v": frozenset({"v"}),
    }
    assert catalog.opaque_writes == frozenset({"c"})


# _orders


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [([], 1), ([3], 1), ([0, 3], 1), ([1, 1, 1], 6), ([2, 2], 6), ([3, 2, 1], 60), ([3, 3], 20)],
)
def test_brute_force_count_is_the_multinomial_coefficient(
    lengths: list[int], expected: int
) -> None:
    assert brute_force_count(lengths) == expected
    assert count(lengths) == expected


def always(a: StepRef, b: StepRef) -> bool:
    """Every pair of steps of different sessions commutes."""
    return True


def only_last_two(a: StepRef, b: StepRef) -> bool:
    """Session 0's second step and session 1's step commute; nothing else does."""
    return {a, b} == {(0, 1), (1, 0)}


@pytest.mark.parametrize(
    ("lengths", "independent", "expected"),
    [
        (
            [2, 1],
            None,
            [[(0, 0), (0, 1), (1, 0)], [(0, 0), (1, 0), (0, 1)], [(1, 0), (0, 0), (0, 1)]],
        ),
        ([2, 1], always, [[(0, 0), (0, 1), (1, 0)]]),
        ([2, 1], only_last_two, [[(0, 0), (0, 1), (1, 0)], [(1, 0), (0, 0), (0, 1)]]),
        ([1, 1, 1], always, [[(0, 0), (1, 0), (2, 0)]]),
        ([0, 2], always, [[(1, 0), (1, 1)]]),
        ([], None, [[]]),
    ],
)
def test_orders_go_session_by_session_first_and_skip_swapped_independent_pairs(
    lengths: list[int], independent: Independent | None, expected: list[list[StepRef]]
) -> None:
    assert list(orders(lengths, independent)) == expected
    assert count(lengths, independent) == len(expected)


def random_relation(rng: random.Random, lengths: list[int], density: float) -> Independent:
    """A symmetric independence relation between steps of different sessions."""
    steps = [(s, i) for s, n in enumerate(lengths) for i in range(n)]
    pairs = {frozenset({a, b}) for a, b in itertools.combinations(steps, 2) if a[0] != b[0]}
    chosen = {pair for pair in sorted(pairs, key=sorted) if rng.random() < density}
    return lambda a, b: frozenset({a, b}) in chosen


def random_cases(number: int) -> list[tuple[list[int], Independent, str]]:
    """Seeded: session lengths (7 steps at most) and a relation of some density."""
    rng = random.Random(20240601)
    cases = []
    for index in range(number):
        lengths = [rng.randint(1, 3) for _ in range(rng.randint(2, 3))]
        while sum(lengths) > 7:
            lengths[lengths.index(max(lengths))] -= 1
        density = [0.0, 0.3, 0.6, 1.0][index % 4]
        cases.append(
            (lengths, random_relation(rng, lengths, density), f"{index}-{lengths}-{density}")
        )
    return cases


CASES = random_cases(40)
CASE_IDS = [name for _, _, name in CASES]


def canonical(order: list[StepRef], independent: Independent) -> tuple[StepRef, ...]:
    """The smallest order equivalent to ``order`` by swapping adjacent independent steps.

    Exhaustive: every equivalent order is reached by such swaps, so the minimum of the class
    names the class.
    """
    start = tuple(order)
    seen = {start}
    frontier = [start]
    while frontier:
        word = frontier.pop()
        for i in range(len(word) - 1):
            a, b = word[i], word[i + 1]
            if a[0] != b[0] and independent(a, b):
                swapped = word[:i] + (b, a) + word[i + 2 :]
                if swapped not in seen:
                    seen.add(swapped)
                    frontier.append(swapped)
    return min(seen)


@pytest.mark.parametrize(("lengths", "independent", "name"), CASES, ids=CASE_IDS)
def test_count_is_the_number_of_orders(
    lengths: list[int], independent: Independent, name: str
) -> None:
    generated = list(orders(lengths, independent))
    assert count(lengths, independent) == len(generated)
    assert len({tuple(order) for order in generated}) == len(generated)  # no order twice


@pytest.mark.parametrize(("lengths", "independent", "name"), CASES, ids=CASE_IDS)
def test_every_order_keeps_each_session_in_sequence(
    lengths: list[int], independent: Independent, name: str
) -> None:
    everything = sorted((s, i) for s, n in enumerate(lengths) for i in range(n))
    for candidate in (independent, None):
        for order in orders(lengths, candidate):
            assert sorted(order) == everything
            for session in range(len(lengths)):
                assert [i for s, i in order if s == session] == list(range(lengths[session]))


@pytest.mark.parametrize(("lengths", "independent", "name"), CASES, ids=CASE_IDS)
def test_reduced_orders_reach_every_class_of_equivalent_orders(
    lengths: list[int], independent: Independent, name: str
) -> None:
    every = [tuple(order) for order in orders(lengths)]
    assert len(every) == len(set(every)) == brute_force_count(lengths)
    reduced = [tuple(order) for order in orders(lengths, independent)]
    assert set(reduced) <= set(every)
    classes = {canonical(list(order), independent) for order in every}
    assert {canonical(list(order), independent) for order in reduced} == classes
    assert len(classes) <= len(reduced) <= len(every)


def test_full_independence_leaves_one_order_and_none_leaves_all() -> None:
    lengths = [3, 2, 2]
    assert count(lengths, always) == 1
    assert count(lengths, lambda a, b: False) == brute_force_count(lengths) == 210
