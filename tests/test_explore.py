"""Scenarios on a real server: one order with run(), every order that matters with explore().

Two small scenarios carry most tests. *Racing inserts*: a and b each insert key 1 in a
transaction and commit; whoever comes second fails with 23505 (or, with ON CONFLICT DO
NOTHING, inserts nothing). *Crossing inserts*: a inserts keys 1 then 2, b inserts 2 then 1;
when both hold their first key before either inserts its second, the second one to wait closes
a cycle and is the deadlock victim.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fix_inner import Inner
from fix_messages import Glob, assert_message, escape, line_pattern

from pytest_pglocks import Interleaving, Outcome, Pglocks, PglocksError, Scenario, errors
from pytest_pglocks._execute import StepConnection

ROW_WAIT = "wait-for graph:\n  {waiter} waits for ShareLock on transaction * held by {holder}"


def racing_inserts(pglocks: Pglocks, insert: str = "INSERT INTO t VALUES (1)") -> Scenario:
    """a and b each run ``insert`` in a transaction (steps a1, b1), then commit."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY)", check="SELECT count(*) FROM t"
    )
    for name in ("a", "b"):
        session = scenario.session(name, setup="BEGIN")
        session.step(f"{name}1", insert).step(f"{name}_commit", "COMMIT")
    return scenario


def crossing_inserts(
    pglocks: Pglocks, a_keys: tuple[int, int], b_keys: tuple[int, int]
) -> Scenario:
    """a inserts its two keys (a1, a2) and commits; so does b (b1, b2)."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY)", check="SELECT count(*) FROM t"
    )
    for name, keys in (("a", a_keys), ("b", b_keys)):
        session = scenario.session(name, setup="BEGIN")
        for number, key in enumerate(keys, 1):
            session.step(f"{name}{number}", f"INSERT INTO t VALUES ({key})")
        session.step(f"{name}_commit", "COMMIT")
    return scenario


def table_pattern(rows: str, run: int, brute_force: int) -> Glob:
    """The outcome table: exactly ``rows`` (header included), then the numbers line."""
    numbers = f"{run} interleavings run of {brute_force} possible, in * s (*/s)"
    return Glob(escape(rows) + "\n" + numbers)


def text(*lines: str) -> str:
    """The lines joined by newlines."""
    return "\n".join(lines)


RACING_TABLE = text(
    "outcome                 count  example order",
    "b1 23505, check=[(1,)]      3  a1 a_commit b1 b_commit",
    "a1 23505, check=[(1,)]      3  b1 a1 a_commit b_commit",
)


# run(): one order


def updating(pglocks: Pglocks) -> Scenario:
    """a adds one to v, b multiplies it by ten, each in a transaction: the order shows."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)",
        check="SELECT v FROM t",
    )
    a = scenario.session("a", setup="BEGIN")
    a.step("a1", "UPDATE t SET v = v + 1 WHERE k = 1").step("a_commit", "COMMIT")
    b = scenario.session("b", setup="BEGIN")
    b.step("b1", "UPDATE t SET v = v * 10 WHERE k = 1").step("b_commit", "COMMIT")
    return scenario


def test_run_reports_the_facts_outcome_check_and_timeline_of_one_order(pglocks: Pglocks) -> None:
    # b_commit comes while b1 still waits for a: it is held back, and a_commit goes first.
    run = updating(pglocks).run(["a1", "b1", "b_commit", "a_commit"])
    assert run.order == ("a1", "b1", "b_commit", "a_commit")
    assert str(run) == "a1 b1 b_commit a_commit"
    facts = [(f.step, f.session, f.waited, f.blocked_by, f.sqlstates) for f in run.facts]
    assert facts == [
        ("a1", "a", False, (), ()),
        ("b1", "b", True, ("a",), ()),
        ("a_commit", "a", False, (), ()),
        ("b_commit", "b", False, (), ()),
    ]
    assert run.check == [(10,)]  # (0 + 1) * 10: b updated after a committed
    assert run.outcome == Outcome(errors=(), check=((10,),))
    assert str(run.outcome) == "ok, check=[(10,)]"
    assert (run.sqlstates, run.deadlocked, run.victims) == ((), False, ())
    assert run.blocked == {"b1": ("a",)}
    timeline = text(
        "",
        "starting permutation: a1 b1 b_commit a_commit",
        "step a1: UPDATE t SET v = v + 1 WHERE k = 1",
        "step b1: UPDATE t SET v = v * 10 WHERE k = 1 <waiting ...>",
        "step a_commit: COMMIT",
        "step b1: <... completed>",
        "step b_commit: COMMIT",
        "",
    )
    assert run.output == timeline
    assert_message(
        run.report(),
        "timeline of {order}:{timeline}\nwhen b1 waited, {graph}",
        order="a1 b1 b_commit a_commit",
        timeline=timeline.rstrip("\n"),
        graph=Glob(ROW_WAIT.format(waiter="b", holder="a")),
    )


def test_run_of_another_order_of_the_same_scenario_gives_its_own_result(pglocks: Pglocks) -> None:
    scenario = updating(pglocks)
    first = scenario.run(["b1", "b_commit", "a1", "a_commit"])
    assert (first.check, first.blocked) == ([(1,)], {})  # 0 * 10 + 1
    second = scenario.run(["a1", "b1", "b_commit", "a_commit"])
    assert (second.check, second.blocked) == ([(10,)], {"b1": ("a",)})


def test_run_refuses_an_unknown_step_and_the_scenario_still_runs(pglocks: Pglocks) -> None:
    scenario = updating(pglocks)
    with pytest.raises(PglocksError) as raised:
        scenario.run(["a1", "a2", "a_commit"])
    assert_message(
        str(raised.value),
        errors.SCENARIO_UNKNOWN_STEP,
        name="a2",
        steps="a1, a_commit, b1, b_commit",
    )
    assert scenario.run(["a1", "a_commit", "b1", "b_commit"]).check == [(10,)]


def test_a_run_that_cannot_finish_stops_naming_the_step_and_its_idle_blocker(
    pglocks: Pglocks,
) -> None:
    # b takes the row and has no step left to commit: a1 would wait for ever. The run stops as
    # soon as a1 is seen waiting for idle b, not at the step timeout.
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)"
    )
    scenario.session("a", setup="BEGIN").step("a1", "UPDATE t SET v = 1 WHERE k = 1").step(
        "a_commit", "COMMIT"
    )
    scenario.session("b", setup="BEGIN").step("b1", "UPDATE t SET v = 2 WHERE k = 1")
    with pytest.raises(PglocksError) as raised:
        scenario.run(["b1", "a1", "a_commit"])
    assert_message(
        str(raised.value),
        errors.SCENARIO_STOPPED,
        order="b1 a1 a_commit",
        reason=Glob(
            "step a1 waits for b, idle in a transaction with no step left that could end it; "
            "add a COMMIT or ROLLBACK step to b (teardowns run only after every step has "
            "finished)\n" + ROW_WAIT.format(waiter="a", holder="b")
        ),
        output=text(
            "",
            "starting permutation: b1 a1 a_commit",
            "step b1: UPDATE t SET v = 2 WHERE k = 1",
            "step a1: UPDATE t SET v = 1 WHERE k = 1 <waiting ...>",
            "",
        ),
    )


def test_explore_stops_at_the_first_interleaving_that_cannot_finish(pglocks: Pglocks) -> None:
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)"
    )
    scenario.session("a", setup="BEGIN").step("a1", "UPDATE t SET v = 1 WHERE k = 1").step(
        "a_commit", "COMMIT"
    )
    scenario.session("b", setup="BEGIN").step("b1", "UPDATE t SET v = 2 WHERE k = 1")
    with pytest.raises(PglocksError) as raised:
        scenario.explore()
    # a1 a_commit b1 and a1 b1 a_commit finish; b1 a1 a_commit is the third order.
    assert_message(str(raised.value), errors.SCENARIO_STOPPED, order="b1 a1 a_commit")


@pytest.mark.pglocks(timeout=1)
def test_a_scenario_runs_again_after_a_stopped_run(pglocks: Pglocks) -> None:
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)"
    )
    scenario.session("a", setup="BEGIN").step("a1", "UPDATE t SET v = 1 WHERE k = 1").step(
        "a_commit", "COMMIT"
    )
    scenario.session("b", setup="BEGIN").step("b1", "UPDATE t SET v = 2 WHERE k = 1")
    with pytest.raises(PglocksError):
        scenario.run(["b1", "a1", "a_commit"])
    assert scenario.run(["a1", "a_commit", "b1"]).outcome == Outcome(())


# explore(): outcomes


def test_explore_runs_every_interleaving_and_groups_the_outcomes(pglocks: Pglocks) -> None:
    exploration = crossing_inserts(pglocks, (1, 2), (2, 1)).explore()
    assert (exploration.run, exploration.brute_force) == (20, 20)  # every step touches t
    assert exploration.interleavings[0].order == ("a1", "a2", "a_commit", "b1", "b2", "b_commit")
    groups = [(str(g.outcome), g.count, str(g.example)) for g in exploration.outcomes()]
    assert groups == [
        ("b2 40P01 (deadlock), check=[(2,)]", 6, "a1 b1 a2 a_commit b2 b_commit"),
        ("a2 40P01 (deadlock), check=[(2,)]", 6, "a1 b1 b2 a2 a_commit b_commit"),
        ("b1 23505, b2 25P02, check=[(2,)]", 4, "a1 a2 a_commit b1 b2 b_commit"),
        ("a1 23505, a2 25P02, check=[(2,)]", 4, "b1 b2 a1 a2 a_commit b_commit"),
    ]
    for group in exploration.outcomes():
        assert group.example.outcome == group.outcome
        assert group.example in exploration.interleavings
    assert_message(
        exploration.table(),
        "{table}",
        table=table_pattern(
            text(
                "outcome                            count  example order",
                "b2 40P01 (deadlock), check=[(2,)]      6  a1 b1 a2 a_commit b2 b_commit",
                "a2 40P01 (deadlock), check=[(2,)]      6  a1 b1 b2 a2 a_commit b_commit",
                "b1 23505, b2 25P02, check=[(2,)]       4  a1 a2 a_commit b1 b2 b_commit",
                "a1 23505, a2 25P02, check=[(2,)]       4  b1 b2 a1 a2 a_commit b_commit",
            ),
            run=20,
            brute_force=20,
        ),
    )
    assert str(exploration) == exploration.table()
    assert exploration.seconds > 0
    assert exploration.control is None


def test_the_deadlock_victim_is_always_the_step_that_closed_the_cycle(pglocks: Pglocks) -> None:
    scenario = crossing_inserts(pglocks, (1, 2), (2, 1))
    exploration = scenario.explore()
    deadlocked = 0
    for run in exploration.interleavings:
        at = {step: index for index, step in enumerate(run.order)}
        # A cycle needs both first inserts before both second ones; the later second closes it.
        cycle = max(at["a1"], at["b1"]) < min(at["a2"], at["b2"])
        assert run.deadlocked is cycle, run.report()
        if cycle:
            deadlocked += 1
            closer, waiter = sorted(("a2", "b2"), key=at.__getitem__, reverse=True)
            assert run.victims == (closer,), run.report()
            assert run.blocked[waiter] == ({"a2": "b", "b2": "a"}[waiter],)
            assert run.sqlstates == ("40P01",)
        else:
            assert run.victims == ()
    assert deadlocked == 12
    for _ in range(3):  # the same order, the same victim
        assert scenario.run(["b1", "a1", "a2", "b2", "a_commit", "b_commit"]).victims == ("b2",)


# explore(): allowed=, expect=


def test_allowed_outcomes_let_the_exploration_pass(pglocks: Pglocks) -> None:
    scenario = racing_inserts(pglocks)
    exploration = scenario.explore(allowed={"23505"})
    assert exploration.run == 6
    assert {g.outcome.sqlstates for g in exploration.outcomes()} == {("23505",)}
    assert scenario.explore(allowed=[("23505",), ("23505", "40001"), "ok"]).run == 6


def test_a_forbidden_outcome_names_the_interleaving_its_timeline_and_the_table(
    pglocks: Pglocks,
) -> None:
    with pytest.raises(AssertionError) as raised:
        racing_inserts(pglocks).explore(allowed={"ok"})
    assert_message(
        str(raised.value),
        errors.FORBIDDEN_OUTCOME,
        index=1,
        run=6,
        order="a1 a_commit b1 b_commit",
        outcome="b1 23505, check=[(1,)]",
        why=" (SQLSTATEs ['23505'] are not among allowed [()])",
        report=text(
            "timeline of a1 a_commit b1 b_commit:",
            "starting permutation: a1 a_commit b1 b_commit",
            "step a1: INSERT INTO t VALUES (1)",
            "step a_commit: COMMIT",
            "step b1: INSERT INTO t VALUES (1)",
            'ERROR:  duplicate key value violates unique constraint "t_pkey"',
            "step b_commit: COMMIT",
        ),
        table=table_pattern(RACING_TABLE, run=6, brute_force=6),
    )


def a_inserted_first(run: Interleaving) -> bool:
    """Only b failed: a's insert came first."""
    return run.outcome.errors == (("b1", "23505"),)


def test_expect_is_asked_about_every_interleaving(pglocks: Pglocks) -> None:
    asked: list[tuple[str, ...]] = []

    def one_row(run: Interleaving) -> bool:
        asked.append(run.order)
        return run.check == [(1,)]

    exploration = racing_inserts(pglocks).explore(expect=one_row)
    assert asked == [run.order for run in exploration.interleavings]
    assert len(set(asked)) == 6


def test_an_expectation_that_returns_false_fails_with_its_name_and_the_wait_graph(
    pglocks: Pglocks,
) -> None:
    with pytest.raises(AssertionError) as raised:
        racing_inserts(pglocks).explore(expect=a_inserted_first)
    timeline = text(
        "timeline of b1 a1 a_commit b_commit:",
        "starting permutation: b1 a1 a_commit b_commit",
        "step b1: INSERT INTO t VALUES (1)",
        "step a1: INSERT INTO t VALUES (1) <waiting ...>",
        "step b_commit: COMMIT",
        "step a1: <... completed>",
        'ERROR:  duplicate key value violates unique constraint "t_pkey"',
        "step a_commit: COMMIT",
    )
    assert_message(
        str(raised.value),
        errors.FORBIDDEN_OUTCOME,
        index=4,
        run=6,
        order="b1 a1 a_commit b_commit",
        outcome="a1 23505, check=[(1,)]",
        why=" (expect=a_inserted_first returned false)",
        report=Glob(
            escape(timeline) + "\nwhen a1 waited, " + ROW_WAIT.format(waiter="a", holder="b")
        ),
        table=table_pattern(RACING_TABLE, run=6, brute_force=6),
    )


# explore(): control=


def test_a_control_that_shows_the_bug_lets_the_fix_pass(pglocks: Pglocks) -> None:
    fixed = racing_inserts(pglocks, "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING")
    exploration = fixed.explore(allowed={"ok"}, control=racing_inserts(pglocks))
    assert [(str(g.outcome), g.count) for g in exploration.outcomes()] == [("ok, check=[(1,)]", 6)]
    control = exploration.control
    assert control is not None
    assert [(str(g.outcome), g.count) for g in control.outcomes()] == [
        ("b1 23505, check=[(1,)]", 3),
        ("a1 23505, check=[(1,)]", 3),
    ]


def test_a_control_as_good_as_the_fix_fails_the_exploration(pglocks: Pglocks) -> None:
    insert = "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING"
    with pytest.raises(AssertionError) as raised:
        racing_inserts(pglocks, insert).explore(
            allowed={"ok"}, control=racing_inserts(pglocks, insert)
        )
    assert_message(
        str(raised.value),
        errors.CONTROL_PASSED,
        run=6,
        table=table_pattern(
            text(
                "outcome           count  example order",
                "ok, check=[(1,)]      6  a1 a_commit b1 b_commit",
            ),
            run=6,
            brute_force=6,
        ),
    )


def test_without_allowed_or_expect_the_control_must_deadlock(pglocks: Pglocks) -> None:
    sorted_keys = crossing_inserts(pglocks, (1, 2), (1, 2))
    exploration = sorted_keys.explore(control=crossing_inserts(pglocks, (1, 2), (2, 1)))
    assert not any(run.deadlocked for run in exploration.interleavings)
    assert exploration.control is not None
    assert sum(run.deadlocked for run in exploration.control.interleavings) == 12
    with pytest.raises(AssertionError) as raised:
        sorted_keys.explore(control=crossing_inserts(pglocks, (1, 2), (1, 2)))
    assert_message(str(raised.value), errors.CONTROL_PASSED, run=20)


# the no_deadlock marker and the limit, in inner runs

INNER_SCENARIOS = """
import pytest

def crossing(pglocks, a_keys, b_keys):
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY)", check="SELECT count(*) FROM t"
    )
    for name, keys in (("a", a_keys), ("b", b_keys)):
        session = scenario.session(name, setup="BEGIN")
        for number, key in enumerate(keys, 1):
            session.step(f"{name}{number}", f"INSERT INTO t VALUES ({key})")
        session.step(f"{name}_commit", "COMMIT")
    return scenario
"""


def test_no_deadlock_makes_every_deadlock_of_the_scenario_forbidden(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_scenarios=INNER_SCENARIOS
        + """
@pytest.mark.no_deadlock
def test_marked_explore(pglocks):
    crossing(pglocks, (1, 2), (2, 1)).explore()

@pytest.mark.no_deadlock
def test_marked_run(pglocks):
    crossing(pglocks, (1, 2), (2, 1)).run(["a1", "b1", "a2", "b2", "a_commit", "b_commit"])

def test_unmarked_explore(pglocks):
    exploration = crossing(pglocks, (1, 2), (2, 1)).explore()
    assert sum(run.deadlocked for run in exploration.interleavings) == 12

@pytest.mark.no_deadlock
def test_marked_with_a_deadlocking_control(pglocks):
    exploration = crossing(pglocks, (1, 2), (1, 2)).explore(
        control=crossing(pglocks, (1, 2), (2, 1))
    )
    assert any(run.deadlocked for run in exploration.control.interleavings)
"""
    )
    result = inner.run("-rf")
    result.assert_outcomes(passed=2, failed=2)
    why = " (a deadlock, and the test is marked no_deadlock)"
    result.stdout.fnmatch_lines(
        [
            "*_ test_marked_explore _*",
            line_pattern(
                errors.FORBIDDEN_OUTCOME,
                index=5,
                run=20,
                order="a1 b1 a2 a_commit b2 b_commit",
                outcome="b2 40P01 (deadlock), check=[(2,)]",
                why=why,
            ),
            "*_ test_marked_run _*",
            line_pattern(
                errors.FORBIDDEN_RUN,
                order="a1 b1 a2 b2 a_commit b_commit",
                outcome="b2 40P01 (deadlock), check=[(2,)]",
                why=why,
            ),
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "FAILED test_scenarios.py::test_marked_explore - *",
            "FAILED test_scenarios.py::test_marked_run - *",
        ]
    )


def test_the_explore_limit_option_refuses_a_larger_exploration(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_limits=INNER_SCENARIOS
        + """
def test_over_the_option(pglocks):
    crossing(pglocks, (1, 2), (2, 1)).explore()

def test_the_argument_wins(pglocks):
    assert crossing(pglocks, (1, 2), (2, 1)).explore(limit=20).run == 20
"""
    )
    result = inner.run("-rf", "--pglocks-explore-limit=19")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            line_pattern(errors.EXPLORE_LIMIT, count=20, brute_force=20, limit=19),
            "FAILED test_limits.py::test_over_the_option - *",
        ]
    )


def test_explore_refuses_above_the_limit_before_running_any_step(pglocks: Pglocks) -> None:
    ran: list[str] = []
    scenario = racing_inserts(pglocks)
    scenario.session("c").step("c1", lambda conn: ran.append(conn.name))
    assert scenario.count() == (30, 30)  # a callable step conflicts with everything
    with pytest.raises(PglocksError) as raised:
        scenario.explore(limit=29)
    assert_message(str(raised.value), errors.EXPLORE_LIMIT, count=30, brute_force=30, limit=29)
    assert ran == []
    assert scenario.explore(limit=30).run == len(ran) == 30


# reduction


SCHEMAS = {
    "unrelated tables": ("CREATE TABLE t (k int); CREATE TABLE u (k int)", 1),
    "FK-linked tables": (
        "CREATE TABLE t (k int PRIMARY KEY); CREATE TABLE u (k int REFERENCES t)",
        6,
    ),
    "inheritance": ("CREATE TABLE t (k int); CREATE TABLE u () INHERITS (t)", 6),
    "partition": (
        "CREATE TABLE t (k int) PARTITION BY LIST (k);"
        " CREATE TABLE u PARTITION OF t FOR VALUES IN (1)",
        6,
    ),
    "trigger on u": (
        "CREATE TABLE t (k int); CREATE TABLE u (k int);"
        " CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
        " CREATE TRIGGER f BEFORE INSERT ON u FOR EACH ROW EXECUTE FUNCTION f()",
        6,
    ),
    "u is a view": ("CREATE TABLE t (k int); CREATE VIEW u AS SELECT k FROM t", 6),
}


@pytest.mark.parametrize(("schema", "expected"), SCHEMAS.values(), ids=SCHEMAS.keys())
def test_count_reduces_orders_of_steps_on_tables_that_cannot_interfere(
    pglocks: Pglocks, schema: str, expected: int
) -> None:
    scenario = pglocks.scenario(setup=schema)
    scenario.session("a").step("a1", "INSERT INTO t VALUES (1)").step("a2", "DELETE FROM t")
    scenario.session("b").step("b1", "INSERT INTO u VALUES (1)").step("b2", "DELETE FROM u")
    assert scenario.count() == (expected, 6)
    assert scenario.count(reduce=False) == (6, 6)


def test_reduction_runs_one_order_of_transactions_on_unrelated_tables(pglocks: Pglocks) -> None:
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int); CREATE TABLE u (k int)",
        check="SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM u)",
    )
    for name, table in (("a", "t"), ("b", "u")):
        session = scenario.session(name, setup="BEGIN")
        session.step(f"{name}1", f"INSERT INTO {table} VALUES (1)")
        session.step(f"{name}2", f"UPDATE {table} SET k = k + 1")
        session.step(f"{name}_commit", "COMMIT")
    assert scenario.count() == (1, 20)
    exploration = scenario.explore()
    assert (exploration.run, exploration.brute_force) == (1, 20)
    assert exploration.interleavings[0].order == ("a1", "a2", "a_commit", "b1", "b2", "b_commit")
    assert [(str(g.outcome), g.count) for g in scenario.explore(reduce=False).outcomes()] == [
        ("ok, check=[(1, 1)]", 20)
    ]


def test_readers_of_one_table_are_reduced_and_a_writer_is_not(pglocks: Pglocks) -> None:
    scenario = pglocks.scenario(setup="CREATE TABLE t (k int)")
    scenario.session("a").step("a1", "SELECT * FROM t").step("a2", "SELECT count(*) FROM t")
    scenario.session("b").step("b1", "SELECT * FROM t").step("b2", "SELECT * FROM t FOR UPDATE")
    # Only a1 a2 b1 b2, a1 b1 a2 b2 and a1 b1 b2 a2: b1 before a1 or a2 is a swap of readers,
    # and b2 locks rows, so a2 on either side of it counts.
    assert scenario.count() == (3, 6)


def mixed_writers(pglocks: Pglocks) -> Scenario:
    """a writes t then u; b writes t; c writes u: some pairs commute, some do not."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (v int); CREATE TABLE u (n int);"
        " INSERT INTO t VALUES (1); INSERT INTO u VALUES (1)",
        check="SELECT (SELECT v FROM t), (SELECT n FROM u)",
    )
    a = scenario.session("a", setup="BEGIN")
    a.step("a1", "UPDATE t SET v = v + 1").step("a2", "UPDATE u SET n = n * 10")
    a.step("a_commit", "COMMIT")
    b = scenario.session("b", setup="BEGIN")
    b.step("b1", "UPDATE t SET v = v * 3").step("b_commit", "COMMIT")
    scenario.session("c").step("c1", "UPDATE u SET n = n + 5")
    return scenario


def snapshot_counter(pglocks: Pglocks) -> Scenario:
    """a takes a REPEATABLE READ snapshot with SELECT 1, then updates; b updates in between."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (v int); INSERT INTO t VALUES (1); CREATE TABLE u (n int)",
        check="SELECT v FROM t",
    )
    a = scenario.session("a", setup="BEGIN ISOLATION LEVEL REPEATABLE READ")
    a.step("a1", "SELECT 1").step("a2", "UPDATE t SET v = v + 1").step("a_commit", "COMMIT")
    b = scenario.session("b")
    b.step("b1", "UPDATE t SET v = v * 3").step("b2", "INSERT INTO u VALUES (1)")
    return scenario


@pytest.mark.parametrize("make", [mixed_writers, snapshot_counter])
def test_reduction_finds_the_same_outcomes_as_every_order(
    pglocks: Pglocks, make: Callable[[Pglocks], Scenario]
) -> None:
    scenario = make(pglocks)
    reduced, everything = scenario.explore(), scenario.explore(reduce=False)
    assert reduced.run < everything.run == everything.brute_force == reduced.brute_force
    outcomes = {g.outcome for g in everything.outcomes()}
    assert len(outcomes) > 1
    assert {g.outcome for g in reduced.outcomes()} == outcomes


UNSOUND = {
    # d1 before l1 makes l1's FK check wait for d and fail; every order run puts l1 first.
    "SET CONSTRAINTS": (
        "CREATE TABLE parent (id int PRIMARY KEY);"
        " CREATE TABLE child (pid int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);"
        " INSERT INTO parent VALUES (1)",
        "SELECT count(*) FROM child",
        {
            "l": (
                "BEGIN; INSERT INTO child VALUES (1)",
                ["SET CONSTRAINTS ALL IMMEDIATE", "COMMIT"],
            ),
            "d": ("BEGIN", ["DELETE FROM parent WHERE id = 1", "COMMIT"]),
        },
    ),
    # The cascade deletes a child row whose trigger inserts into log: who comes second fails.
    "trigger behind a cascade": (
        "CREATE TABLE parent (id int PRIMARY KEY);"
        " CREATE TABLE child (pid int REFERENCES parent ON DELETE CASCADE);"
        " CREATE TABLE log (id int PRIMARY KEY);"
        " CREATE FUNCTION logit() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN INSERT INTO log VALUES (OLD.pid); RETURN OLD; END $$;"
        " CREATE TRIGGER logit AFTER DELETE ON child FOR EACH ROW EXECUTE FUNCTION logit();"
        " INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1)",
        None,
        {
            "a": (None, ["DELETE FROM parent WHERE id = 1"]),
            "b": (None, ["INSERT INTO log VALUES (1)"]),
        },
    ),
    # The row goes to partition p1, whose trigger inserts into log: who comes second fails.
    "trigger on a partition": (
        "CREATE TABLE p (id int) PARTITION BY LIST (id);"
        " CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);"
        " CREATE TABLE log (id int PRIMARY KEY);"
        " CREATE FUNCTION logit() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN INSERT INTO log VALUES (NEW.id); RETURN NEW; END $$;"
        " CREATE TRIGGER logit AFTER INSERT ON p1 FOR EACH ROW EXECUTE FUNCTION logit()",
        None,
        {"a": (None, ["INSERT INTO p VALUES (1)"]), "b": (None, ["INSERT INTO log VALUES (1)"])},
    ),
    # Both tables' defaults draw from one sequence: who inserts first gets id 1.
    "shared sequence default": (
        "CREATE SEQUENCE ids; CREATE TABLE t (id int DEFAULT nextval('ids'));"
        " CREATE TABLE u (id int DEFAULT nextval('ids'))",
        "SELECT (SELECT id FROM t), (SELECT id FROM u)",
        {
            "a": (None, ["INSERT INTO t DEFAULT VALUES"]),
            "b": (None, ["INSERT INTO u DEFAULT VALUES"]),
        },
    ),
}


@pytest.mark.parametrize(("setup", "check", "sessions"), UNSOUND.values(), ids=UNSOUND.keys())
def test_reduction_is_sound_where_footprints_miss_what_a_statement_touches(
    pglocks: Pglocks,
    setup: str,
    check: str | None,
    sessions: dict[str, tuple[str | None, list[str]]],
) -> None:
    scenario = pglocks.scenario(setup=setup, check=check)
    for name, (session_setup, steps) in sessions.items():
        session = scenario.session(name, setup=session_setup)
        for number, sql in enumerate(steps, 1):
            session.step(f"{name}{number}", sql)
    everything = {g.outcome for g in scenario.explore(reduce=False).outcomes()}
    assert len(everything) == 2
    assert {g.outcome for g in scenario.explore().outcomes()} == everything


# steps in Python


def test_a_python_step_runs_on_its_session_thread_and_a_database_error_is_its_error(
    pglocks: Pglocks,
) -> None:
    seen: list[tuple[str, str, Any]] = []

    def insert_twice(conn: StepConnection) -> None:
        seen.append((conn.name, threading.current_thread().name, None))
        conn.execute("INSERT INTO t VALUES (%s)", (1,))
        conn.execute("INSERT INTO t VALUES (%s)", (1,))  # 23505

    def count_rows(conn: StepConnection) -> None:
        rows = conn.connection.execute("SELECT count(*) FROM t").fetchall()
        seen.append((conn.name, threading.current_thread().name, rows))

    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int PRIMARY KEY)", check="SELECT count(*) FROM t"
    )
    scenario.session("a").step("a1", insert_twice)
    scenario.session("b").step("b1", count_rows)
    run = scenario.run(["a1", "b1"])
    assert seen == [("a", "pglocks:a", None), ("b", "pglocks:b", [(1,)])]
    assert run.outcome == Outcome(errors=(("a1", "23505"),), check=((1,),))
    assert (
        run.facts[0].errors[0].message == 'duplicate key value violates unique constraint "t_pkey"'
    )
    assert run.output == text(
        "",
        "starting permutation: a1 b1",
        f"step a1: <{insert_twice.__qualname__}>",
        'ERROR:  duplicate key value violates unique constraint "t_pkey"',
        f"step b1: <{count_rows.__qualname__}>",
        "",
    )


# setup, teardown and check


def test_every_interleaving_starts_from_the_setup_in_a_fresh_schema(pglocks: Pglocks) -> None:
    scenario = pglocks.scenario(
        setup="CREATE TABLE t (k int); INSERT INTO t VALUES (0)",
        check="SELECT current_schema(), count(*) FROM t",
    )
    scenario.session("a", teardown="INSERT INTO t VALUES (9)").step(
        "a1", "INSERT INTO t VALUES (1)"
    ).step("a2", "INSERT INTO t VALUES (2)")
    scenario.session("b").step("b1", "INSERT INTO t VALUES (3)")
    exploration = scenario.explore()
    assert exploration.run == 3
    # The setup's row, three inserts and a's teardown (run before the check): never more.
    assert [run.check for run in exploration.interleavings] == [[("pglocks_scenario", 5)]] * 3
    assert pglocks.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'pglocks_scenario'"
    ) == [(0,)]


def test_a_setup_with_its_own_teardown_runs_where_it_is_without_a_fresh_schema(
    pglocks: Pglocks,
) -> None:
    # The teardown keeps the table: its rows pile up from one interleaving to the next.
    scenario = pglocks.scenario(
        setup="CREATE TABLE IF NOT EXISTS kept (k int)",
        teardown="INSERT INTO kept VALUES (0)",
        check="SELECT current_schema(), count(*) FROM kept",
    )
    scenario.session("a").step("a1", "INSERT INTO kept VALUES (1)")
    scenario.session("b").step("b1", "INSERT INTO kept VALUES (2)")
    exploration = scenario.explore()
    # Reading the catalog ran setup and teardown once: one row before the first run.
    assert [run.check for run in exploration.interleavings] == [
        [("public", 3)],
        [("public", 6)],
    ]
    assert pglocks.execute("SELECT count(*) FROM public.kept") == [(7,)]


# building


def test_names_are_unique_across_sessions_and_steps_and_fixed_after_the_first_run(
    pglocks: Pglocks,
) -> None:
    scenario = pglocks.scenario(setup="CREATE TABLE t (k int)")
    with pytest.raises(PglocksError) as empty:
        scenario.run([])
    assert_message(str(empty.value), errors.SCENARIO_EMPTY)
    a = scenario.session("a")
    a.step("a1", "SELECT 1")
    with pytest.raises(PglocksError) as raised:
        a.step("a", "SELECT 2")
    assert_message(str(raised.value), errors.SCENARIO_DUPLICATE, what="step", name="a")
    with pytest.raises(PglocksError) as raised:
        scenario.session("a1")
    assert_message(str(raised.value), errors.SCENARIO_DUPLICATE, what="session", name="a1")
    assert scenario.steps() == ["a1"]
    assert scenario.run(["a1"]).outcome == Outcome(())
    with pytest.raises(PglocksError) as raised:
        a.step("a2", "SELECT 2")
    assert_message(str(raised.value), errors.SCENARIO_STARTED, what="step", name="a2")
