"""The spec runner: isolation-tester specs run by ``pglocks.run_spec()``, output and facts.

Every expected output here is what PostgreSQL's own ``isolationtester`` (14 and later, run
the way ``pg_regress`` runs it, standard error included) prints for the same spec. Where a
step's timing could change the report (a deadlock victim, a statement released by another
one), the spec uses the tester's own annotations, as PostgreSQL's specs do, so that the
output is the same on every run.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from pytest_pglocks import Pglocks
from pytest_pglocks.isolation import SpecOutcome, StepFact, _runner
from pytest_pglocks.isolation._runner import SpecRunner, notice_text
from pytest_pglocks.monitor import Monitor

CANCEL_SECONDS = re.compile(r"(isolationtester: canceling step \w+ after )\d+( seconds)")


def text(*lines: str) -> str:
    """The lines of an expected output, each ended by a newline."""
    return "".join(line + "\n" for line in lines)


def fact(outcome: SpecOutcome, step: str, permutation: int = 0) -> StepFact:
    """The fact of ``step`` in one permutation (the first by default)."""
    facts = [f for f in outcome.permutations[permutation].facts if f.step == step]
    assert len(facts) == 1, facts
    return facts[0]


Seen = tuple[str, bool, tuple[str, ...], tuple[str, ...]]


def seen(outcome: SpecOutcome, step: str, permutation: int = 0) -> Seen:
    """``(session, waited, blocked_by, sqlstates)`` of ``step`` in one permutation."""
    found = fact(outcome, step, permutation)
    return found.session, found.waited, found.blocked_by, found.sqlstates


def without_seconds(output: str) -> str:
    """``output`` with the seconds of each cancel line replaced by ``N``."""
    return CANCEL_SECONDS.sub(r"\g<1>N\g<2>", output)


# lock waits


ROW_LOCK_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; }
step s1u { UPDATE t SET v = v + 1 WHERE k = 1; }
step s1c { COMMIT; }

session s2
step s2u { UPDATE t SET v = v + 10 WHERE k = 1; }
step s2s { SELECT k, v FROM t ORDER BY k; }

permutation s1u s2u s1c s2s
"""


def test_a_row_lock_wait_is_reported_waiting_then_completed(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(ROW_LOCK_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1u s2u s1c s2s",
        "step s1u: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2u: UPDATE t SET v = v + 10 WHERE k = 1; <waiting ...>",
        "step s1c: COMMIT;",
        "step s2u: <... completed>",
        "step s2s: SELECT k, v FROM t ORDER BY k;",
        "k| v",
        "-+--",
        "1|11",
        "2| 0",
        "(2 rows)",
        "",
    )
    assert outcome.failure is None
    assert [f.step for f in outcome.permutations[0].facts] == ["s1u", "s2u", "s1c", "s2s"]
    assert seen(outcome, "s2u") == ("s2", True, ("s1",), ())
    assert seen(outcome, "s1u") == ("s1", False, (), ())
    assert outcome.facts() == "permutation 1: s1u s2u s1c s2s\n  s2u: waited for s1"


# results and errors


TABLES_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v text); }
setup { INSERT INTO t VALUES (1, 'one'), (2, NULL), (10, ''); }
teardown { DROP TABLE t; }

session s1
setup { SELECT 'not shown' AS first; SELECT 42 AS answer; }
step s1two { SELECT k, v FROM t ORDER BY k; SELECT count(*) AS n, -1.5 AS x FROM t; }
step s1err { SELECT 'before' AS note; SELECT 1 / 0 AS boom; SELECT 'after' AS never; }
step s1none { SELECT k FROM t WHERE false; }

permutation s1two s1err s1none
"""


def test_results_are_tables_and_a_step_shows_all_its_results(pglocks: Pglocks) -> None:
    """Session setup shows its last result; a step every result, up to its error."""
    outcome = pglocks.run_spec(TABLES_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: s1two s1err s1none",
        "answer",
        "------",
        "    42",
        "(1 row)",
        "",
        "step s1two: SELECT k, v FROM t ORDER BY k; SELECT count(*) AS n, -1.5 AS x FROM t;",
        " k|v  ",
        "--+---",
        " 1|one",
        " 2|   ",
        "10|   ",
        "(3 rows)",
        "",
        "n|   x",
        "-+----",
        "3|-1.5",
        "(1 row)",
        "",
        "step s1err: SELECT 'before' AS note; SELECT 1 / 0 AS boom; SELECT 'after' AS never;",
        "note  ",
        "------",
        "before",
        "(1 row)",
        "",
        "ERROR:  division by zero",
        "step s1none: SELECT k FROM t WHERE false;",
        "k",
        "-",
        "(0 rows)",
        "",
    )
    assert fact(outcome, "s1err").sqlstates == ("22012",)
    assert fact(outcome, "s1two").errors == ()


UNIQUE_SPEC = """
setup { CREATE TABLE u (k int CONSTRAINT u_pkey PRIMARY KEY); }
teardown { DROP TABLE u; }

session s1
setup { BEGIN; }
step s1i { INSERT INTO u VALUES (1); }
step s1c { COMMIT; }

session s2
step s2i { INSERT INTO u VALUES (1); }

permutation s1i s2i s1c
"""


def test_a_failed_step_prints_its_error_and_its_sqlstate_is_a_fact(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(UNIQUE_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1i s2i s1c",
        "step s1i: INSERT INTO u VALUES (1);",
        "step s2i: INSERT INTO u VALUES (1); <waiting ...>",
        "step s1c: COMMIT;",
        "step s2i: <... completed>",
        'ERROR:  duplicate key value violates unique constraint "u_pkey"',
    )
    s2i = fact(outcome, "s2i")
    assert (s2i.waited, s2i.blocked_by, s2i.sqlstates) == (True, ("s1",), ("23505",))
    assert [(e.severity, e.message) for e in s2i.errors] == [
        ("ERROR", 'duplicate key value violates unique constraint "u_pkey"')
    ]
    assert outcome.permutations[0].deadlocks() == []


EXIT_SPEC = """
session s1
step s1exit { SELECT pg_terminate_backend(pg_backend_pid()); }
session s2
step s2one { SELECT 1 AS one; }
permutation s1exit s2one
"""


def test_a_step_that_ends_its_own_connection_prints_libpqs_message_too(pglocks: Pglocks) -> None:
    """As the isolation tester does: the server's FATAL line, then libpq's own result, which
    the libpq of 14 and older begins with the server's message again."""
    outcome = pglocks.run_spec(EXIT_SPEC)
    fatal = "FATAL:  terminating connection due to administrator command"
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1exit s2one",
        "step s1exit: SELECT pg_terminate_backend(pg_backend_pid());",
        fatal,
        *([fatal] if pglocks.server.major < 15 else []),
        "server closed the connection unexpectedly",
        "\tThis probably means the server terminated abnormally",
        "\tbefore or while processing the request.",
        "",
        "step s2one: SELECT 1 AS one;",
        "one",
        "---",
        "  1",
        "(1 row)",
        "",
    )


DETAIL_SPEC = """
session s1
step s1do { DO $$BEGIN RAISE NOTICE 'extras' USING DETAIL = 'd1', HINT = 'h1'; END$$; }
step s1err { DO $$BEGIN RAISE EXCEPTION 'failed' USING DETAIL = 'd2', ERRCODE = 'P0002'; END$$; }
permutation s1do s1err
"""


def test_a_step_error_shows_only_its_primary_message_a_notice_all(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(DETAIL_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: s1do s1err",
        "s1: NOTICE:  extras",
        "DETAIL:  d1",
        "HINT:  h1",
        "step s1do: DO $$BEGIN RAISE NOTICE 'extras' USING DETAIL = 'd1', HINT = 'h1'; END$$;",
        "step s1err: DO $$BEGIN RAISE EXCEPTION 'failed' USING DETAIL = 'd2', ERRCODE = 'P0002';"
        " END$$;",
        "ERROR:  failed",
    )
    [error] = fact(outcome, "s1err").errors
    assert (error.sqlstate, error.message, error.detail) == ("P0002", "failed", "d2")


# deadlocks


DEADLOCK_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0), (2, 0); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; SET deadlock_timeout = '10s'; }
step s1a { UPDATE t SET v = v + 1 WHERE k = 1; }
step s1b { UPDATE t SET v = v + 1 WHERE k = 2; }
step s1c { COMMIT; }

session s2
setup { BEGIN; SET deadlock_timeout = '10ms'; }
step s2a { UPDATE t SET v = v + 1 WHERE k = 2; }
step s2b { UPDATE t SET v = v + 1 WHERE k = 1; }
step s2c { COMMIT; }

# s2 closes the cycle and checks for deadlocks after 10ms, s1 only after 10s: s2 is the
# victim. As in PostgreSQL's deadlock-hard spec, (*) makes the victim's short wait always
# reported and (s2b) reports s1b, released by the victim's failure, after it.
permutation s1a s2a s1b(s2b) s2b(*) s1c s2c
"""


def test_a_deadlock_victim_fails_and_the_other_session_goes_on(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(DEADLOCK_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1a s2a s1b s2b s1c s2c",
        "step s1a: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2a: UPDATE t SET v = v + 1 WHERE k = 2;",
        "step s1b: UPDATE t SET v = v + 1 WHERE k = 2; <waiting ...>",
        "step s2b: UPDATE t SET v = v + 1 WHERE k = 1; <waiting ...>",
        "step s2b: <... completed>",
        "ERROR:  deadlock detected",
        "step s1b: <... completed>",
        "step s1c: COMMIT;",
        "step s2c: COMMIT;",
    )
    permutation = outcome.permutations[0]
    assert permutation.title == "s1a s2a s1b s2b s1c s2c"
    [victim] = permutation.deadlocks()
    assert (victim.step, victim.session, victim.waited, victim.sqlstates) == (
        "s2b",
        "s2",
        True,
        ("40P01",),
    )
    assert victim.errors[0].message == "deadlock detected"
    assert seen(outcome, "s1b") == ("s1", True, ("s2",), ())
    assert outcome.facts() == (
        "permutation 1: s1a s2a s1b s2b s1c s2c\n"
        "  s1b: waited for s2\n"
        "  s2b: reported waiting; ERROR 40P01: deadlock detected"
    )


# blocker annotations


STAR_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
teardown { DROP TABLE t; }

session s1
step s1sel { SELECT v FROM t WHERE k = 1; }

session s2
step s2sel { SELECT v + 1 AS w FROM t WHERE k = 1; }

permutation s1sel(*) s2sel
permutation s2sel(*) s1sel
"""


def test_a_star_step_is_reported_waiting_once_then_completed(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(STAR_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1sel s2sel",
        "step s1sel: SELECT v FROM t WHERE k = 1; <waiting ...>",
        "step s2sel: SELECT v + 1 AS w FROM t WHERE k = 1;",
        "w",
        "-",
        "1",
        "(1 row)",
        "",
        "step s1sel: <... completed>",
        "v",
        "-",
        "0",
        "(1 row)",
        "",
        "",
        "starting permutation: s2sel s1sel",
        "step s2sel: SELECT v + 1 AS w FROM t WHERE k = 1; <waiting ...>",
        "step s1sel: SELECT v FROM t WHERE k = 1;",
        "v",
        "-",
        "0",
        "(1 row)",
        "",
        "step s2sel: <... completed>",
        "w",
        "-",
        "1",
        "(1 row)",
        "",
    )
    assert seen(outcome, "s1sel", 0) == ("s1", True, (), ())
    assert seen(outcome, "s2sel", 0) == ("s2", False, (), ())
    assert seen(outcome, "s2sel", 1) == ("s2", True, (), ())


OTHER_STEP_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; }
step s1u { UPDATE t SET v = v + 1 WHERE k = 1; }
step s1c { COMMIT; }

session s2
step s2u { UPDATE t SET v = v + 10 WHERE k = 1 RETURNING v; }

permutation s1u s2u s1c(s2u)
permutation s1u s2u s1c
"""


def test_an_other_step_blocker_holds_the_report_until_that_step_completes(
    pglocks: Pglocks,
) -> None:
    """s1c ends at once; with ``(s2u)`` it is reported after the step it released."""
    outcome = pglocks.run_spec(OTHER_STEP_SPEC)
    s2u_result = (" v", "--", "11", "(1 row)", "")
    assert outcome.permutations[0].output == text(
        "",
        "starting permutation: s1u s2u s1c",
        "step s1u: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2u: UPDATE t SET v = v + 10 WHERE k = 1 RETURNING v; <waiting ...>",
        "step s1c: COMMIT; <waiting ...>",
        "step s2u: <... completed>",
        *s2u_result,
        "step s1c: <... completed>",
    )
    assert outcome.permutations[1].output == text(
        "",
        "starting permutation: s1u s2u s1c",
        "step s1u: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2u: UPDATE t SET v = v + 10 WHERE k = 1 RETURNING v; <waiting ...>",
        "step s1c: COMMIT;",
        "step s2u: <... completed>",
        *s2u_result,
    )
    assert outcome.output == text("Parsed test spec with 2 sessions") + "".join(
        p.output for p in outcome.permutations
    )
    # Held back by an annotation, not by a lock: waited, but blocked by no session.
    assert seen(outcome, "s1c", 0) == ("s1", True, (), ())
    assert seen(outcome, "s1c", 1) == ("s1", False, (), ())
    assert fact(outcome, "s2u", 0).blocked_by == fact(outcome, "s2u", 1).blocked_by == ("s1",)


NOTICES_BLOCKER_SPEC = """
session s1
step s1n { SELECT 'reported late' AS note; }

session s2
step s2do { DO $$ BEGIN
  PERFORM pg_advisory_xact_lock(1);
  RAISE NOTICE 'got lock';
END $$; }

session s3
step s3lock { SELECT pg_advisory_lock(1); }
step s3unlock { SELECT pg_advisory_unlock(1); }

permutation s3lock s2do s1n(s2do notices 1) s3unlock
"""

S2DO_SQL = (
    "DO $$ BEGIN",
    "  PERFORM pg_advisory_xact_lock(1);",
    "  RAISE NOTICE 'got lock';",
    "END $$;",
)


def test_a_notices_blocker_holds_the_report_until_the_session_got_more_notices(
    pglocks: Pglocks,
) -> None:
    """s1n ends at once but is reported after s2 received one notice more: 'got lock'."""
    outcome = pglocks.run_spec(NOTICES_BLOCKER_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 3 sessions",
        "",
        "starting permutation: s3lock s2do s1n s3unlock",
        "step s3lock: SELECT pg_advisory_lock(1);",
        "pg_advisory_lock",
        "----------------",
        "                ",
        "(1 row)",
        "",
        "step s2do: " + S2DO_SQL[0],
        *S2DO_SQL[1:-1],
        S2DO_SQL[-1] + " <waiting ...>",
        "step s1n: SELECT 'reported late' AS note; <waiting ...>",
        "step s3unlock: SELECT pg_advisory_unlock(1);",
        "pg_advisory_unlock",
        "------------------",
        "t                 ",
        "(1 row)",
        "",
        "s2: NOTICE:  got lock",
        "step s2do: <... completed>",
        "step s1n: <... completed>",
        "note         ",
        "-------------",
        "reported late",
        "(1 row)",
        "",
    )
    assert seen(outcome, "s2do") == ("s2", True, ("s3",), ())
    assert seen(outcome, "s1n") == ("s1", True, (), ())


NOTICES_RELEASER_SPEC = """
session s1
step s1lock { SELECT pg_advisory_lock(1); }
step s1unlock { SELECT pg_advisory_unlock(1); }

session s2
step s2do { DO $$ BEGIN
  PERFORM pg_advisory_xact_lock(1);
  RAISE NOTICE 'got lock';
END $$; }

permutation s1lock s2do s1unlock(s2do notices 1)
"""


def test_a_notices_blocker_on_the_step_it_releases_is_reported_after_it(
    pglocks: Pglocks,
) -> None:
    """The pattern of PostgreSQL's specs: a step releases another and waits for its notices."""
    outcome = pglocks.run_spec(NOTICES_RELEASER_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1lock s2do s1unlock",
        "step s1lock: SELECT pg_advisory_lock(1);",
        "pg_advisory_lock",
        "----------------",
        "                ",
        "(1 row)",
        "",
        "step s2do: " + S2DO_SQL[0],
        *S2DO_SQL[1:-1],
        S2DO_SQL[-1] + " <waiting ...>",
        "step s1unlock: SELECT pg_advisory_unlock(1); <waiting ...>",
        "s2: NOTICE:  got lock",
        "step s2do: <... completed>",
        "step s1unlock: <... completed>",
        "pg_advisory_unlock",
        "------------------",
        "t                 ",
        "(1 row)",
        "",
    )


# notices and notifications


NOTICE_SPEC = """
session s1
step s1do { DO $$ BEGIN RAISE NOTICE 'hello from %', 's1'; RAISE NOTICE 'second'; END $$; }
step s1sel { SELECT 1 AS one; }

session s2
step s2do { DO $$ BEGIN RAISE NOTICE 'in s2'; RAISE WARNING 'careful'; END $$; }

permutation s1do s2do s1sel
"""


def test_notices_are_printed_with_the_session_name_before_the_step(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(NOTICE_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1do s2do s1sel",
        "s1: NOTICE:  hello from s1",
        "s1: NOTICE:  second",
        "step s1do: DO $$ BEGIN RAISE NOTICE 'hello from %', 's1'; RAISE NOTICE 'second'; END $$;",
        "s2: NOTICE:  in s2",
        "s2: WARNING:  careful",
        "step s2do: DO $$ BEGIN RAISE NOTICE 'in s2'; RAISE WARNING 'careful'; END $$;",
        "step s1sel: SELECT 1 AS one;",
        "one",
        "---",
        "  1",
        "(1 row)",
        "",
    )
    assert all(not f.errors and not f.waited for f in outcome.permutations[0].facts)


LISTEN_IN_SETUP_SPEC = """
session s1
step s1notify { NOTIFY chan, 'p'; }

session s2
setup { LISTEN chan; }
step s2sel { SELECT 2 AS y; }

permutation s1notify s2sel
"""


def test_a_notification_is_printed_after_the_listeners_next_step(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(LISTEN_IN_SETUP_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1notify s2sel",
        "step s1notify: NOTIFY chan, 'p';",
        "step s2sel: SELECT 2 AS y;",
        "y",
        "-",
        "2",
        "(1 row)",
        "",
        's2: NOTIFY "chan" with payload "p" from s1',
    )


LISTEN_STEP_SPEC = """
session s1
step s1notify { NOTIFY chan, 'p'; }
step s1sel { SELECT 1 AS x; }

session s2
step s2listen { LISTEN chan; }
step s2sel { SELECT 2 AS y; }
step s2self { NOTIFY chan, 'to me'; }

permutation s2listen s1notify s1sel s2sel s2self
"""


def test_a_session_that_listened_in_a_step_gets_later_notifications(
    pglocks: Pglocks,
) -> None:
    outcome = pglocks.run_spec(LISTEN_STEP_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s2listen s1notify s1sel s2sel s2self",
        "step s2listen: LISTEN chan;",
        "step s1notify: NOTIFY chan, 'p';",
        "step s1sel: SELECT 1 AS x;",
        "x",
        "-",
        "1",
        "(1 row)",
        "",
        "step s2sel: SELECT 2 AS y;",
        "y",
        "-",
        "2",
        "(1 row)",
        "",
        's2: NOTIFY "chan" with payload "p" from s1',
        "step s2self: NOTIFY chan, 'to me';",
        's2: NOTIFY "chan" with payload "to me" from s2',
    )


# a step for a session that is still waiting


BUSY_SESSION_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; }
step s1u { UPDATE t SET v = v + 1 WHERE k = 1; }
step s1c { COMMIT; }

session s2
setup { SET lock_timeout = '10ms'; }
step s2u { UPDATE t SET v = v + 10 WHERE k = 1; }
step s2sel { SELECT v FROM t WHERE k = 1; }

# As in PostgreSQL's timeouts spec, (*) reports the wait, however short lock_timeout makes it.
permutation s1u s2u(*) s2sel s1c
"""


def test_a_step_for_a_waiting_session_first_waits_for_its_earlier_step(
    pglocks: Pglocks,
) -> None:
    """s2sel is sent only once s2u, failed by its lock timeout, is reported completed."""
    outcome = pglocks.run_spec(BUSY_SESSION_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1u s2u s2sel s1c",
        "step s1u: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2u: UPDATE t SET v = v + 10 WHERE k = 1; <waiting ...>",
        "step s2u: <... completed>",
        "ERROR:  canceling statement due to lock timeout",
        "step s2sel: SELECT v FROM t WHERE k = 1;",
        "v",
        "-",
        "0",
        "(1 row)",
        "",
        "step s1c: COMMIT;",
    )
    s2u = fact(outcome, "s2u")
    assert (s2u.waited, s2u.sqlstates) == (True, ("55P03",))
    assert [f.step for f in outcome.permutations[0].facts] == ["s1u", "s2u", "s2sel", "s1c"]


# permutations


EVERY_ORDER_SPEC = """
session s1
step s1a { SELECT 1 AS a; }
step s1b { SELECT 2 AS b; }

session s2
step s2a { SELECT 3 AS c; }
step s2b { SELECT 4 AS d; }
"""


def test_without_permutations_every_interleaving_runs_in_the_testers_order(
    pglocks: Pglocks,
) -> None:
    outcome = pglocks.run_spec(EVERY_ORDER_SPEC)
    titles = re.findall(r"^starting permutation: (.*)$", outcome.output, re.MULTILINE)
    assert titles == [
        "s1a s1b s2a s2b",
        "s1a s2a s1b s2b",
        "s1a s2a s2b s1b",
        "s2a s1a s1b s2b",
        "s2a s1a s2b s1b",
        "s2a s2b s1a s1b",
    ]
    assert outcome.output.count("\nstarting permutation: ") == 6
    assert [p.title for p in outcome.permutations] == titles
    assert outcome.permutations[3].output == text(
        "",
        "starting permutation: s2a s1a s1b s2b",
        "step s2a: SELECT 3 AS c;",
        *("c", "-", "3", "(1 row)", ""),
        "step s1a: SELECT 1 AS a;",
        *("a", "-", "1", "(1 row)", ""),
        "step s1b: SELECT 2 AS b;",
        *("b", "-", "2", "(1 row)", ""),
        "step s2b: SELECT 4 AS d;",
        *("d", "-", "4", "(1 row)", ""),
    )
    assert not outcome.output.startswith("unused")


UNUSED_SPEC = """
session s1
step s1z { SELECT 1; }
step s1a { SELECT 'a' AS a; }

session s2
step s2b { SELECT 2; }
step s2c { SELECT 3; }

permutation s1a s2c
"""


def test_unused_steps_are_warned_about_first_in_name_order(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(UNUSED_SPEC)
    assert outcome.preamble == text(
        "unused step name: s1z",
        "unused step name: s2b",
        "Parsed test spec with 2 sessions",
    )
    assert outcome.output == outcome.preamble + text(
        "",
        "starting permutation: s1a s2c",
        "step s1a: SELECT 'a' AS a;",
        *("a", "-", "a", "(1 row)", ""),
        "step s2c: SELECT 3;",
        *("?column?", "--------", "       3", "(1 row)", ""),
    )


STATE_SPEC = """
session s1
step s1show { SELECT current_setting('pglocks_test.marker', true) AS marker; }
step s1set { SET pglocks_test.marker = 'from permutation 2'; }
step s1temp { CREATE TEMP TABLE kept (n int); INSERT INTO kept VALUES (7); }
step s1read { SELECT n FROM kept; }

permutation s1show
permutation s1set s1temp
permutation s1show s1read
"""


def test_sessions_keep_their_connection_and_state_across_permutations(
    pglocks: Pglocks,
) -> None:
    outcome = pglocks.run_spec(STATE_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: s1show",
        "step s1show: SELECT current_setting('pglocks_test.marker', true) AS marker;",
        *("marker", "------", "      ", "(1 row)", ""),
        "",
        "starting permutation: s1set s1temp",
        "step s1set: SET pglocks_test.marker = 'from permutation 2';",
        "step s1temp: CREATE TEMP TABLE kept (n int); INSERT INTO kept VALUES (7);",
        "",
        "starting permutation: s1show s1read",
        "step s1show: SELECT current_setting('pglocks_test.marker', true) AS marker;",
        *("marker            ", "------------------", "from permutation 2", "(1 row)", ""),
        "step s1read: SELECT n FROM kept;",
        *("n", "-", "7", "(1 row)", ""),
    )


# setup and teardown failures


SETUP_FAILS_SPEC = """
setup { CREATE TABLE t (k int); }
setup { SELECT 1 / 0; }
teardown { DROP TABLE t; }

session s1
step s1a { SELECT 1 AS a; }

permutation s1a
permutation s1a
"""


def test_a_failing_global_setup_ends_the_run(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(SETUP_FAILS_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: s1a",
        "setup failed: ERROR:  division by zero",
    )
    assert outcome.failure == "setup failed: ERROR:  division by zero\n"
    assert len(outcome.permutations) == 1
    assert outcome.permutations[0].facts == []
    # Like the tester, which exits: no teardown ran, the first setup's table is still there.
    assert pglocks.execute("SELECT to_regclass('t')::text") == [("t",)]


SESSION_SETUP_FAILS_SPEC = """
session s1
setup { SELECT 1 / 0; }
step s1a { SELECT 1 AS a; }

session s2
step s2a { SELECT 2 AS b; }
"""


def test_a_failing_session_setup_ends_the_run(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(SESSION_SETUP_FAILS_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1a s2a",
        "setup of session s1 failed: ERROR:  division by zero",
    )
    assert outcome.failure == "setup of session s1 failed: ERROR:  division by zero\n"
    assert [p.title for p in outcome.permutations] == ["s1a s2a"]


SETUP_CONTEXT_SPEC = """
setup { DO $$ BEGIN RAISE EXCEPTION 'no such luck'; END $$; }
session s1
step s1a { SELECT 1 AS a; }
"""


def test_a_setup_failure_shows_the_errors_context_like_libpq(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(SETUP_CONTEXT_SPEC)
    assert outcome.failure == text(
        "setup failed: ERROR:  no such luck",
        "CONTEXT:  PL/pgSQL function inline_code_block line 1 at RAISE",
    )


SETUP_POSITION_SPEC = """
setup { SELECT * FROM nope; }
session s1
step s1a { SELECT 1 AS a; }
"""


def test_a_setup_failure_shows_the_errors_position_like_libpq(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(SETUP_POSITION_SPEC)
    assert outcome.failure == text(
        'setup failed: ERROR:  relation "nope" does not exist',
        "LINE 1: SELECT * FROM nope;",
        "                      ^",
    )


TEARDOWN_FAILS_SPEC = """
session s1
step s1a { SELECT 1 AS a; }
teardown { SELECT 1 / 0; }

session s2
step s2a { SELECT 2 AS b; }
teardown { SELECT 'torn down' AS s2_teardown; }

permutation s1a s2a
permutation s2a s1a
"""


def test_a_failing_session_teardown_is_reported_and_the_run_goes_on(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(TEARDOWN_FAILS_SPEC)
    teardowns = (
        "teardown of session s1 failed: ERROR:  division by zero",
        *("s2_teardown", "-----------", "torn down  ", "(1 row)", ""),
    )
    s1a = ("step s1a: SELECT 1 AS a;", "a", "-", "1", "(1 row)", "")
    s2a = ("step s2a: SELECT 2 AS b;", "b", "-", "2", "(1 row)", "")
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1a s2a",
        *s1a,
        *s2a,
        *teardowns,
        "",
        "starting permutation: s2a s1a",
        *s2a,
        *s1a,
        *teardowns,
    )
    assert outcome.failure is None
    assert all(f.errors == () for p in outcome.permutations for f in p.facts)


# steps that cannot complete


NEVER_NOTIFIED_SPEC = """
session s1
step s1n { SELECT 'never reported' AS note; }

session s2
step s2n { SELECT 'quiet' AS note; }

permutation s2n s1n(s2n notices 1)
permutation s2n
"""


def test_a_blocker_that_never_clears_fails_the_run_as_mutually_blocking(
    pglocks: Pglocks,
) -> None:
    outcome = pglocks.run_spec(NEVER_NOTIFIED_SPEC, timeout=5)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s2n s1n",
        "step s2n: SELECT 'quiet' AS note;",
        *("note ", "-----", "quiet", "(1 row)", ""),
        "step s1n: SELECT 'never reported' AS note; <waiting ...>",
        "failed to complete permutation due to mutually-blocking steps",
    )
    assert outcome.failure == "failed to complete permutation due to mutually-blocking steps\n"
    assert len(outcome.permutations) == 1


LOCKED_AT_THE_END_SPEC = """
setup { CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; }
step s1u { UPDATE t SET v = v + 1 WHERE k = 1; }
teardown { ROLLBACK; }

session s2
step s2u { UPDATE t SET v = v + 10 WHERE k = 1; }
step s2sel { SELECT v FROM t WHERE k = 1; }

permutation s1u s2u
permutation s1u s2u s2sel
permutation s2sel
"""


def test_a_step_still_blocked_at_the_timeout_is_cancelled_and_the_run_goes_on(
    pglocks: Pglocks,
) -> None:
    """Blocked when its permutation ends, or when its session's next step is due."""
    outcome = pglocks.run_spec(LOCKED_AT_THE_END_SPEC, timeout=1)
    cancelled = (
        "isolationtester: canceling step s2u after N seconds",
        "step s2u: <... completed>",
        "ERROR:  canceling statement due to user request",
    )
    assert len(CANCEL_SECONDS.findall(outcome.output)) == 2
    assert without_seconds(outcome.output) == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1u s2u",
        "step s1u: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2u: UPDATE t SET v = v + 10 WHERE k = 1; <waiting ...>",
        *cancelled,
        "",
        "starting permutation: s1u s2u s2sel",
        "step s1u: UPDATE t SET v = v + 1 WHERE k = 1;",
        "step s2u: UPDATE t SET v = v + 10 WHERE k = 1; <waiting ...>",
        *cancelled,
        "step s2sel: SELECT v FROM t WHERE k = 1;",
        *("v", "-", "0", "(1 row)", ""),
        "",
        "starting permutation: s2sel",
        "step s2sel: SELECT v FROM t WHERE k = 1;",
        *("v", "-", "0", "(1 row)", ""),
    )
    assert outcome.failure is None
    for permutation in (0, 1):
        s2u = fact(outcome, "s2u", permutation)
        assert (s2u.blocked_by, s2u.sqlstates) == (("s1",), ("57014",))


# reading a step's input, limits


NOTICE_BEFORE_WAIT_SPEC = """
setup { CREATE TABLE t (k int); }
teardown { DROP TABLE t; }

session s1
step s1lock { BEGIN; LOCK TABLE t; }
step s1c { COMMIT; }

session s2
step s2read { DO $$ BEGIN RAISE NOTICE 'about to wait'; PERFORM * FROM t; END $$; }

permutation s1lock s2read s1c
"""


def test_a_notice_sent_before_a_step_waits_is_printed_before_its_waiting_line(
    pglocks: Pglocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However late the session's thread reads it: here it holds the notice until a waiting
    line is printed, or a second has passed."""
    waiting_printed = threading.Event()
    out = SpecRunner.out

    def watched(runner: SpecRunner, text: str) -> None:
        out(runner, text)
        if text.endswith("<waiting ...>\n"):
            waiting_printed.set()

    def slow_reader(diagnostic: Any) -> str:
        if diagnostic.message_primary == "about to wait":
            waiting_printed.wait(1.0)
        return notice_text(diagnostic)

    monkeypatch.setattr(SpecRunner, "out", watched)
    monkeypatch.setattr(_runner, "notice_text", slow_reader)
    outcome = pglocks.run_spec(NOTICE_BEFORE_WAIT_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s1lock s2read s1c",
        "step s1lock: BEGIN; LOCK TABLE t;",
        "s2: NOTICE:  about to wait",
        "step s2read: DO $$ BEGIN RAISE NOTICE 'about to wait'; PERFORM * FROM t; END $$; "
        "<waiting ...>",
        "step s1c: COMMIT;",
        "step s2read: <... completed>",
    )
    assert seen(outcome, "s2read") == ("s2", True, ("s1",), ())


SLOW_SETUP_SPEC = """
setup { SELECT pg_sleep(1.5); }  # sleep-ok: the slow block under test, not a wait
teardown { SELECT pg_sleep(1.5); }  # sleep-ok: the slow block under test, not a wait

session s1
setup { SELECT pg_sleep(1.5); }  # sleep-ok: the slow block under test, not a wait
step s1 { SELECT 1 AS one; }

permutation s1
"""


def test_setup_and_teardown_blocks_are_not_limited_by_the_step_timeout(pglocks: Pglocks) -> None:
    outcome = pglocks.run_spec(SLOW_SETUP_SPEC, timeout=1)
    assert outcome.failure is None
    assert outcome.output == text(
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: s1",
        *("pg_sleep", "--------", "        ", "(1 row)", ""),
        *("pg_sleep", "--------", "        ", "(1 row)", ""),
        "step s1: SELECT 1 AS one;",
        *("one", "---", "  1", "(1 row)", ""),
        *("pg_sleep", "--------", "        ", "(1 row)", ""),
    )


SLOW_STEP_SPEC = """
session s1
step s1sleep { SELECT pg_sleep(4); }  # sleep-ok: the step the timeout cancels

permutation s1sleep
"""


def test_without_a_timeout_given_a_step_gets_the_isolation_testers_limit(
    pglocks: Pglocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twice ``PG_TEST_TIMEOUT_DEFAULT`` (1 s here), not ``--pglocks-timeout``'s default."""
    if pglocks._context.settings.timeout_given:
        pytest.skip("--pglocks-timeout is set for this run")
    monkeypatch.setenv("PG_TEST_TIMEOUT_DEFAULT", "1")
    outcome = pglocks.run_spec(SLOW_STEP_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: s1sleep",
        "isolationtester: canceling step s1sleep after 2 seconds",
        "step s1sleep: SELECT pg_sleep(4);",  # sleep-ok: its printed line
        "ERROR:  canceling statement due to user request",
    )


BACKENDS_SPEC = """
session s1
step s1count {
  SELECT count(*) AS backends FROM pg_stat_activity
  WHERE datname = current_database() AND backend_type = 'client backend';
}

session s2
step s2lock { SELECT pg_advisory_lock(1); }
step s2unlock { SELECT pg_advisory_unlock(1) AS unlocked; }

session s3
step s3wait { SELECT pg_advisory_lock(1) AS locked; }
step s3unlock { SELECT pg_advisory_unlock(1) AS unlocked; }

permutation s2lock s3wait s1count s2unlock s3unlock
"""


def test_the_lock_monitor_is_not_among_the_backends_of_the_specs_database(
    pglocks: Pglocks,
) -> None:
    """A step waited (so the monitor was asked): the control connection and 3 sessions."""
    count = pglocks.run_spec(BACKENDS_SPEC).permutations[0].output
    assert "step s3wait: SELECT pg_advisory_lock(1) AS locked; <waiting ...>" in count
    assert "backends\n--------\n       4\n(1 row)\n" in count


def test_a_monitor_elsewhere_names_relations_by_oid_and_without_that_database_stays_here(
    pglocks: Pglocks,
) -> None:
    session = pglocks.session("s")
    session.execute("CREATE TABLE watched (k int)")
    session.begin()
    session.execute("LOCK TABLE watched")
    dbname, oid = pglocks.execute("SELECT current_database(), 'watched'::regclass::oid::text")[0]

    def seen_by(monitor: Monitor) -> tuple[str, set[str | None]]:
        try:
            database = monitor.query("SELECT current_database()")[0][0]
            locks = monitor.snapshot({session.pid: "s"}).locks
        finally:
            monitor.close()
        return database, {row.relation for row in locks if row.mode == "AccessExclusiveLock"}

    assert seen_by(Monitor(pglocks.dsn, database="postgres")) == ("postgres", {oid})
    fallback = Monitor(pglocks.dsn, database="pglocks_no_such_database")
    assert seen_by(fallback) == (dbname, {"watched"})
    session.rollback()


STAR_NOTICE_SPEC = """
session s1
step s1sel { SELECT 1 AS one; }

session s2
step s2do { DO $$ BEGIN RAISE NOTICE 'right away'; END $$; }

permutation s2do(*) s1sel
"""


def test_a_star_steps_notices_print_when_it_completes_even_if_they_came_before(
    pglocks: Pglocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tester prints ``<waiting ...>`` for ``(*)`` without reading the connection; here
    the notice has reached the session's thread before that line is due."""
    delivered = threading.Event()
    send = SpecRunner._send

    def noted(diagnostic: Any) -> str:
        delivered.set()
        return notice_text(diagnostic)

    def send_and_wait(runner: SpecRunner, pstep: Any, step: Any) -> Any:
        active = send(runner, pstep, step)
        if step.name == "s2do":
            assert delivered.wait(30), "the notice never came"
        return active

    monkeypatch.setattr(_runner, "notice_text", noted)
    monkeypatch.setattr(SpecRunner, "_send", send_and_wait)
    outcome = pglocks.run_spec(STAR_NOTICE_SPEC)
    assert outcome.output == text(
        "Parsed test spec with 2 sessions",
        "",
        "starting permutation: s2do s1sel",
        "step s2do: DO $$ BEGIN RAISE NOTICE 'right away'; END $$; <waiting ...>",
        "step s1sel: SELECT 1 AS one;",
        *("one", "---", "  1", "(1 row)", ""),
        "s2: NOTICE:  right away",
        "step s2do: <... completed>",
    )
