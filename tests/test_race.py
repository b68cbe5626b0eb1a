"""pglocks.race(): scripts side by side for many rounds, their outcomes counted by SQLSTATE."""

from __future__ import annotations

import pytest
from fix_messages import assert_message

from pytest_pglocks import Pglocks, PglocksError, Race, errors

DEADLOCK = "DO $$ BEGIN RAISE deadlock_detected USING DETAIL = 'as told'; END $$"
UPSERT = "INSERT INTO t SELECT k FROM generate_series({}) AS k ON CONFLICT (k) DO NOTHING"


def test_outcomes_are_counted_by_sqlstate_with_one_whole_error_each(pglocks: Pglocks) -> None:
    race = pglocks.race("SELECT 1", ["SELECT 1", DEADLOCK, "SELECT 1/0"], rounds=25)
    assert isinstance(race, Race)
    assert (race.scripts, race.rounds) == (2, 25)
    assert race.counts == {"00000": 25, "40P01": 25}
    assert race.count("40P01") == 25
    assert race.count("23505") == 0
    error = race.errors["40P01"]
    assert error.diag.message_detail == "as told"
    assert set(race.errors) == {"40P01"}  # the script stopped at its error: no 22012
    assert str(race).splitlines() == [
        f"race of 2 scripts, 25 rounds in {race.seconds:.1f} s: 00000 x25, 40P01 x25",
        "  40P01, first in round 1, script 2: deadlock_detected",
        "    DETAIL: as told",
        "    CONTEXT: PL/pgSQL function inline_code_block line 1 at RAISE",
    ]


def test_reset_runs_before_every_round(pglocks: Pglocks) -> None:
    pglocks.execute("CREATE TABLE t (k int PRIMARY KEY); CREATE TABLE rounds (n int)")
    race = pglocks.race(
        "INSERT INTO t VALUES (1)",
        "INSERT INTO t VALUES (2)",
        rounds=10,
        reset="TRUNCATE t; INSERT INTO rounds VALUES (1)",
    )
    assert race.counts == {"00000": 20}
    assert pglocks.execute("SELECT count(*) FROM rounds") == [(10,)]
    assert pglocks.execute("SELECT k FROM t ORDER BY k") == [(1,), (2,)]


def test_an_unfinished_transaction_ends_with_its_script(pglocks: Pglocks) -> None:
    """The first script leaves its row locked; the second would wait for it forever, but the
    lock goes with the first script's run, so every round ends."""
    pglocks.execute("CREATE TABLE t (k int PRIMARY KEY); INSERT INTO t VALUES (1)")
    race = pglocks.race(
        ["BEGIN", "SELECT FROM t WHERE k = 1 FOR UPDATE"],
        ["BEGIN", "SELECT FROM t WHERE k = 1 FOR UPDATE", "COMMIT"],
        rounds=20,
    )
    assert race.counts == {"00000": 40}


def test_stop_on_ends_the_race_at_the_first_such_outcome(pglocks: Pglocks) -> None:
    pglocks.execute("CREATE SEQUENCE n")
    third = "DO $$ BEGIN IF nextval('n') = 3 THEN RAISE deadlock_detected; END IF; END $$"
    race = pglocks.race(third, "SELECT 1", rounds=100, stop_on="40P01")
    assert race.rounds == 3
    assert race.counts == {"00000": 5, "40P01": 1}


def test_seconds_bound_the_race(pglocks: Pglocks) -> None:
    race = pglocks.race("SELECT 1", "SELECT 1", rounds=10**9, seconds=0.2)
    assert 0 < race.rounds < 10**9
    assert race.counts == {"00000": 2 * race.rounds}


def test_upserts_in_opposite_orders_never_deadlock_once_sorted(pglocks: Pglocks) -> None:
    """The fix of an unsorted bulk upsert: in one order, no round deadlocks (the bug, in
    opposite orders, is the example of docs/blocking.md)."""
    pglocks.execute("CREATE TABLE t (k int PRIMARY KEY)")
    sorted_upsert = UPSERT.format("1, 30")
    race = pglocks.race(sorted_upsert, sorted_upsert, rounds=200, reset="TRUNCATE t")
    assert race.count("40P01") == 0, race
    assert race.count("00000") == 400, race


def test_wrong_sql_is_refused_with_the_servers_message(pglocks: Pglocks) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.race("SELECT 1", "SELEKT 1", rounds=5)
    message = str(excinfo.value)
    assert message.startswith("race(): script 2 is wrong SQL, not a race: syntax error at or near")


@pytest.mark.parametrize(
    ("scripts", "template", "fields"),
    [
        (("SELECT 1",), errors.RACE_TOO_FEW, {"count": 1}),
        (("SELECT 1", 42), errors.RACE_BAD_SCRIPT, {"number": 2, "value": 42}),
        (("SELECT 1", []), errors.RACE_BAD_SCRIPT, {"number": 2, "value": []}),
        (("SELECT 1", ["SELECT 1", " "]), errors.RACE_BAD_SCRIPT, {"number": 2}),
    ],
)
def test_bad_scripts_are_named(
    pglocks: Pglocks, scripts: tuple[object, ...], template: str, fields: dict[str, object]
) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.race(*scripts)  # type: ignore[arg-type]
    assert_message(str(excinfo.value), template, **fields)


@pytest.mark.parametrize(("name", "value"), [("rounds", 0), ("rounds", 1.5), ("seconds", -1)])
def test_bad_limits_are_named(pglocks: Pglocks, name: str, value: object) -> None:
    with pytest.raises(PglocksError) as excinfo:
        pglocks.race("SELECT 1", "SELECT 1", **{name: value})  # type: ignore[arg-type]
    assert_message(str(excinfo.value), errors.RACE_BAD_LIMIT, name=name, value=value)
