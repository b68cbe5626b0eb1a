"""Gates in scenarios: a step stops inside its statement, another step opens the gate, and
explore() puts the opening at every point, so the rows of one statement interleave."""

from __future__ import annotations

import pytest
from fix_messages import assert_message

from pytest_pglocks import Pglocks, PglocksError, Scenario, errors

UPSERT = "INSERT INTO stock VALUES {} ON CONFLICT DO NOTHING"


def bulk_upserts(
    pglocks: Pglocks, a_rows: str, b_rows: str, a_second: int, b_second: int
) -> Scenario:
    """Two one-statement upserts, each held before its second row until its gate opens."""
    scenario = pglocks.scenario(
        setup="CREATE TABLE stock (k int PRIMARY KEY)", check="SELECT count(*) FROM stock"
    )
    scenario.session("a").step("a_upsert", UPSERT.format(a_rows))
    scenario.session("b").step("b_upsert", UPSERT.format(b_rows))
    scenario.gate(
        "stock", "before insert", when=f"NEW.k = {a_second}", session="a", open_step="a_go"
    )
    scenario.gate(
        "stock", "before insert", when=f"NEW.k = {b_second}", session="b", open_step="b_go"
    )
    return scenario


def test_a_held_step_counts_as_waiting_and_its_gate_step_lets_it_go(pglocks: Pglocks) -> None:
    scenario = bulk_upserts(pglocks, "(1), (2)", "(2), (1)", 2, 1)
    assert [session.name for session in scenario.sessions] == ["a", "b", "a_go", "b_go"]
    run = scenario.run(["a_upsert", "b_upsert", "a_go", "b_go"])
    assert run.deadlocked
    assert run.victims == ("b_upsert",)  # b's wait closed the cycle when its gate opened
    lines = run.output.splitlines()
    assert lines[2:6] == [
        "step a_upsert: INSERT INTO stock VALUES (1), (2) ON CONFLICT DO NOTHING <waiting ...>",
        "step b_upsert: INSERT INTO stock VALUES (2), (1) ON CONFLICT DO NOTHING <waiting ...>",
        "step a_go: <open gate stock before insert>",
        "step b_go: <open gate stock before insert>",
    ]
    # Then both complete, in the order the runner sees them end (as the isolation tester).
    victim = lines.index("step b_upsert: <... completed>")
    assert lines[victim + 1] == "ERROR:  deadlock detected"
    assert sorted(lines[6:]) == sorted(
        [
            "step a_upsert: <... completed>",
            "step b_upsert: <... completed>",
            "ERROR:  deadlock detected",
        ]
    )


def test_an_early_opening_lets_the_statement_through_without_a_stop(pglocks: Pglocks) -> None:
    scenario = bulk_upserts(pglocks, "(1), (2)", "(2), (1)", 2, 1)
    run = scenario.run(["a_go", "a_upsert", "b_go", "b_upsert"])
    assert not run.deadlocked
    assert run.sqlstates == ()
    assert run.check == [(2,)]


def test_explore_finds_the_deadlock_of_unsorted_rows_and_none_once_sorted(
    pglocks: Pglocks,
) -> None:
    exploration = bulk_upserts(pglocks, "(1), (2)", "(1), (2)", 2, 2).explore(
        allowed={"ok"},
        control=bulk_upserts(pglocks, "(1), (2)", "(2), (1)", 2, 1),
    )
    assert exploration.run == 24
    assert exploration.control is not None
    victims = {g.outcome.errors: g.count for g in exploration.control.outcomes()}
    # A deadlock wherever one statement is held after its first row while the other inserts
    # that row's key: both held (4 orders), or one held and the other free (2 + 2); the
    # victim is always the statement whose gate opened last.
    deadlocked = {((step, "40P01"),): 4 for step in ("a_upsert", "b_upsert")}
    assert victims == {(): 16, **deadlocked}, exploration.control.table()


def test_a_gate_of_an_unknown_session_is_refused(pglocks: Pglocks) -> None:
    scenario = pglocks.scenario(setup="CREATE TABLE stock (k int PRIMARY KEY)")
    with pytest.raises(PglocksError) as excinfo:
        scenario.gate("stock", "before insert", session="a", open_step="go")
    assert_message(str(excinfo.value), errors.SCENARIO_GATE_SESSION, session="a")
    scenario.session("a").step("go_a", "SELECT 1")
    with pytest.raises(PglocksError) as excinfo:
        scenario.gate("stock", "before insert", session="a", open_step="go_a")
    assert_message(str(excinfo.value), errors.SCENARIO_DUPLICATE, what="step", name="go_a")
