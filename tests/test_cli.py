"""``python -m pytest_pglocks isolation SPEC``: a spec's output from a server it starts and stops.

Every run is a subprocess with the outer run's PostgreSQL passed through ``PGLOCKS_*`` and a
private ``TMPDIR`` (the ``inner`` fixture), so that what a run leaves behind can be listed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fix_inner import Inner, processes_mentioning
from fix_messages import Glob, assert_message

from pytest_pglocks import Server, errors

CORPUS = Path(__file__).resolve().parent / "pg-isolation"

ONE_STEP = "session s1\nstep one { SELECT 1 AS one; }\n"

# Permutation 1: s2l waits for s1's lock until --timeout cancels it; no teardown drops t, so
# permutation 2's setup fails and the run stops there, as the isolation tester would.
CANCEL_THEN_STOP = """\
setup { CREATE TABLE t (a int); }

session s1
setup { BEGIN; }
step s1l { LOCK TABLE t; }
teardown { COMMIT; }

session s2
setup { BEGIN; }
step s2l { LOCK TABLE t; }
teardown { COMMIT; }

permutation s1l s2l
permutation s1l
"""

CANCEL_THEN_STOP_OUTPUT = """\
Parsed test spec with 2 sessions

starting permutation: s1l s2l
step s1l: LOCK TABLE t;
step s2l: LOCK TABLE t; <waiting ...>
isolationtester: canceling step s2l after 1 seconds
step s2l: <... completed>
ERROR:  canceling statement due to user request

starting permutation: s1l
setup failed: ERROR:  relation "t" already exists
"""

# s2l waits for s1's lock until the step timeout; the test interrupts the run before that.
WAITS = """\
setup { CREATE TABLE t (a int); }
teardown { DROP TABLE t; }

session s1
setup { BEGIN; }
step s1l { LOCK TABLE t; }
teardown { COMMIT; }

session s2
setup { BEGIN; }
step s2l { LOCK TABLE t; }
teardown { COMMIT; }

permutation s1l s2l
"""


@dataclass
class Cli:
    """Runs ``python -m pytest_pglocks isolation ...`` in the ``inner`` project's folder."""

    inner: Inner

    @property
    def path(self) -> Path:
        return self.inner.pytester.path

    def command(self, *args: str | Path) -> list[str]:
        return [sys.executable, "-m", "pytest_pglocks", "isolation", *map(str, args)]

    def run(self, *args: str | Path) -> pytest.RunResult:
        """One run; the timeout only guards against a hang."""
        return self.inner.pytester.run(*self.command(*args), timeout=120)

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def assert_nothing_left(self) -> None:
        """No server process, watchdog or run directory outlived the command."""
        __tracebackhide__ = True
        assert processes_mentioning(str(self.inner.public)) == []
        assert self.inner.leftovers() == []


@pytest.fixture
def cli(inner: Inner) -> Cli:
    return Cli(inner)


@pytest.fixture
def dsn_cli(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """For --dsn runs: a version from the environment would clash with the DSN."""
    monkeypatch.delenv("PGLOCKS_PG", raising=False)
    return cli


@pytest.fixture
def deadlock_simple() -> tuple[Path, Path]:
    """PostgreSQL's deadlock-simple spec and its expected output, from the corpus."""
    return CORPUS / "specs/deadlock-simple.spec", CORPUS / "expected/deadlock-simple.out"


def error_line(result: pytest.RunResult) -> str:
    """The one line a refused run writes on standard error."""
    __tracebackhide__ = True
    assert result.ret == 2, result.errlines
    assert result.outlines == []
    assert len(result.errlines) == 1, result.errlines
    return result.errlines[0]


def test_prints_the_isolation_testers_output_and_the_facts_and_stops_its_server(
    cli: Cli, deadlock_simple: tuple[Path, Path], pglocks_server: Server
) -> None:
    spec, expected = deadlock_simple
    result = cli.run(spec, "--facts")
    assert result.ret == 0
    assert "\n".join(result.outlines) + "\n" == expected.read_text(encoding="utf-8")
    result.stderr.fnmatch_lines(
        [
            f"pglocks: PostgreSQL {pglocks_server.version} (local, *)",
            "permutation 1: s1as s2as s1ae s2ae s1c s2c",
            "  s1ae: waited for s2",
            "  s2ae: ERROR 40P01: deadlock detected",
        ],
        consecutive=True,
    )
    assert len(result.errlines) == 4
    cli.assert_nothing_left()


def test_expected_output_that_matches_one_alternate_prints_nothing_and_says_which(
    cli: Cli, deadlock_simple: tuple[Path, Path]
) -> None:
    spec, expected = deadlock_simple
    cli.write("other.out", "Parsed test spec with 2 sessions\n")
    result = cli.run(spec, "--expected", "other.out", "--expected", expected)
    assert result.ret == 0
    assert result.outlines == []
    # The last alternate matched; other.out did not.
    result.stderr.fnmatch_lines([f"{spec}: output matches {expected} (*.?? s)"])
    assert len(result.errlines) == 2  # the server line, then the match
    cli.assert_nothing_left()


def test_a_mismatch_prints_a_unified_diff_against_the_closest_expected_file_and_exits_1(
    cli: Cli, deadlock_simple: tuple[Path, Path]
) -> None:
    spec, expected = deadlock_simple
    text = expected.read_text(encoding="utf-8")
    cli.write("far.out", "nothing like it\n")
    cli.write("near.out", text.replace("ERROR:  deadlock detected", "ERROR:  deadlock averted"))
    result = cli.run(spec, "--expected", "far.out", "--expected", "near.out")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "--- near.out",
            "+++ actual output",
            "@@ -*,* +*,* @@",
            " step s2ae: LOCK TABLE a1 IN ACCESS EXCLUSIVE MODE;",
            "-ERROR:  deadlock averted",
            "+ERROR:  deadlock detected",
            " step s1ae: <... completed>",
        ]
    )
    assert not any("far.out" in line for line in result.outlines)
    assert not any("matches" in line for line in result.errlines)
    cli.assert_nothing_left()


def test_a_step_past_the_timeout_is_cancelled_and_a_run_that_stops_early_exits_1(
    cli: Cli,
) -> None:
    spec = cli.write("cancel.spec", CANCEL_THEN_STOP)
    result = cli.run(spec, "--timeout", "1", "--facts")
    assert result.ret == 1
    assert "\n".join(result.outlines) + "\n" == CANCEL_THEN_STOP_OUTPUT
    result.stderr.fnmatch_lines(
        [
            "permutation 1: s1l s2l",
            "  s2l: waited for s1; ERROR 57014: canceling statement due to user request",
            "permutation 2: s1l",
            "  no step waited or failed",
        ],
        consecutive=True,
    )
    cli.assert_nothing_left()


# The work under test: blocks slower than the step timeout, which must not cancel them.
SLOW = "SELECT pg_sleep(1.5) AS slept;"  # sleep-ok: a setup slower than the step timeout
SLOW_SETUP = f"""\
setup {{ {SLOW} }}
teardown {{ {SLOW} }}

session s1
step one {{ SELECT 1 AS one; }}
"""


def test_setup_and_teardown_are_not_limited_by_the_step_timeout(cli: Cli) -> None:
    spec = cli.write("slow.spec", SLOW_SETUP)
    result = cli.run(spec, "--timeout", "1")
    assert result.ret == 0, result.errlines
    slept = ["slept", "-----", "     ", "(1 row)", ""]
    one = ["step one: SELECT 1 AS one;", "one", "---", "  1", "(1 row)", ""]
    assert result.outlines == [
        "Parsed test spec with 1 sessions",
        "",
        "starting permutation: one",
        *slept,
        *one,
        *slept,
    ]


def test_an_existing_server_given_by_dsn_gets_a_fresh_database_that_is_dropped(
    dsn_cli: Cli, pglocks_server: Server
) -> None:
    spec = dsn_cli.write("db.spec", "session s1\nstep db { SELECT current_database(); }\n")
    result = dsn_cli.run(spec, "--dsn", pglocks_server.dsn)
    assert result.ret == 0
    names = [line for line in result.outlines if re.fullmatch(r"pglocks_\w+", line)]
    assert len(names) == 1, result.outlines
    assert re.fullmatch(r"pglocks_[0-9a-f]+_main_0001", names[0])
    assert len(result.errlines) == 1
    result.stderr.fnmatch_lines([f"pglocks: PostgreSQL {pglocks_server.version} (dsn, *)"])
    run_prefix = names[0].rsplit("_", 2)[0]  # pglocks_<run id>
    with psycopg.connect(pglocks_server.dsn) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (run_prefix,)
        ).fetchall()
    assert left == []  # the spec's database and the run's template are gone
    dsn_cli.assert_nothing_left()


# A program started with SIGINT ignored keeps ignoring it (so does Python, and so does this
# command): a background job of a non-interactive shell is started that way, and a test run
# launched like that would pass the ignoring on. This launcher gives the command the
# terminal's default, as an interactive Ctrl-C meets it.
WITH_DEFAULT_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'pytest_pglocks'; runpy.run_module('pytest_pglocks', run_name='__main__')"
)


def test_an_interrupted_run_stops_its_server_and_exits_130(cli: Cli) -> None:
    spec = cli.write("waits.spec", WAITS)
    command = cli.command(spec, "--timeout", "60")
    assert command[1:3] == ["-m", "pytest_pglocks"]
    process = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *command[3:]],
        cwd=cli.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:  # the output comes as it happens
            seen.append(line)
            if line.endswith("<waiting ...>\n"):
                break
        assert seen[-1:] == ["step s2l: LOCK TABLE t; <waiting ...>\n"]
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert rest == ""
    assert len(err.splitlines()) == 1  # the server line: no traceback
    assert err.startswith("pglocks: PostgreSQL ")
    cli.assert_nothing_left()


@pytest.mark.parametrize(
    ("args", "template", "fields"),
    [
        pytest.param(["missing.spec"], errors.SPEC_NOT_FOUND, {"path": "missing.spec"}, id="spec"),
        pytest.param(
            ["one.spec", "--expected", "missing.out"],
            errors.EXPECTED_NOT_FOUND,
            {"path": "missing.out"},
            id="expected",
        ),
        pytest.param(
            ["one.spec", "--pg", "99"],
            errors.UNSUPPORTED_MAJOR,
            {"value": "99", "major": 99},
            id="unsupported-major",
        ),
        pytest.param(
            ["one.spec", "--pg", "nine"], errors.BAD_VERSION, {"value": "nine"}, id="bad-version"
        ),
        pytest.param(
            ["one.spec", "--timeout", "soon"],
            errors.BAD_SECONDS,
            {"value": "soon"},
            id="bad-timeout",
        ),
    ],
)
def test_bad_input_is_refused_before_any_server_starts_with_one_error_line(
    cli: Cli, args: list[str], template: str, fields: dict[str, object]
) -> None:
    cli.write("one.spec", ONE_STEP)
    line = error_line(cli.run(*args))
    assert_message(line, "error: " + template, **fields)
    cli.assert_nothing_left()


def test_a_dsn_with_a_version_from_the_environment_is_refused(
    dsn_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGLOCKS_PG", "17")
    spec = dsn_cli.write("one.spec", ONE_STEP)
    line = error_line(dsn_cli.run(spec, "--dsn", "host=/nonexistent"))
    assert_message(line, "error: " + errors.DSN_AND_PG, pg_source="PGLOCKS_PG")
    dsn_cli.assert_nothing_left()


def test_pg_and_dsn_together_is_a_usage_error(cli: Cli) -> None:
    spec = cli.write("one.spec", ONE_STEP)
    result = cli.run(spec, "--pg", "17", "--dsn", "host=/nonexistent")
    assert result.ret == 2
    assert result.outlines == []
    assert result.errlines[-1] == (
        "python -m pytest_pglocks isolation: error: argument --dsn: not allowed with argument --pg"
    )
    cli.assert_nothing_left()


def test_a_spec_that_does_not_parse_is_refused_with_its_line_and_column(cli: Cli) -> None:
    cli.write("broken.spec", "session s1\nstep one { SELECT 1; }\npermutation one two\n")
    result = cli.run("broken.spec")
    assert result.ret == 2
    assert result.outlines == []
    assert result.errlines == [
        'error: broken.spec:3:17: undefined step "two" specified in permutation',
        "  permutation one two",
        "                  ^",
    ]
    cli.assert_nothing_left()


def test_an_unreachable_dsn_is_refused_with_what_to_check(dsn_cli: Cli, closed_port: int) -> None:
    spec = dsn_cli.write("one.spec", ONE_STEP)
    dsn = f"host=127.0.0.1 port={closed_port} user=postgres connect_timeout=10"
    line = error_line(dsn_cli.run(spec, "--dsn", dsn))
    assert_message(line, "error: " + errors.DSN_UNREACHABLE, why=Glob("*refused*"), dsn=dsn)
    dsn_cli.assert_nothing_left()


@pytest.mark.parametrize(
    ("args", "template", "fields"),
    [
        pytest.param(
            ["--pg", "99"], errors.UNSUPPORTED_MAJOR, {"value": "99", "major": 99}, id="pg"
        ),
        pytest.param(["--timeout", "soon"], errors.BAD_SECONDS, {"value": "soon"}, id="timeout"),
    ],
)
def test_messages_name_the_option_as_given_on_this_command_line(
    cli: Cli, args: list[str], template: str, fields: dict[str, object]
) -> None:
    spec = cli.write("one.spec", ONE_STEP)
    line = error_line(cli.run(spec, *args))
    assert_message(line, "error: " + template, source=args[0], **fields)


def test_the_unreachable_dsn_message_names_the_dsn_option_of_this_command_line(
    dsn_cli: Cli, closed_port: int
) -> None:
    spec = dsn_cli.write("one.spec", ONE_STEP)
    dsn = f"host=127.0.0.1 port={closed_port} user=postgres connect_timeout=10"
    line = error_line(dsn_cli.run(spec, "--dsn", dsn))
    assert_message(line, "error: " + errors.DSN_UNREACHABLE, source="--dsn", why=Glob("*"), dsn=dsn)
    assert "--pglocks-dsn" not in line


@pytest.mark.parametrize("which", ["spec", "expected"])
def test_a_file_that_is_not_utf8_is_refused_with_an_error_line(cli: Cli, which: str) -> None:
    cli.write("one.spec", ONE_STEP)
    cli.write("latin.spec", b"# caf\xe9\n" + ONE_STEP.encode())
    cli.write("latin.out", b"caf\xe9\n")
    args = ["latin.spec"] if which == "spec" else ["one.spec", "--expected", "latin.out"]
    result = cli.run(*args)
    assert result.ret == 2
    assert result.errlines[-1].startswith(f"error: latin.{'spec' if which == 'spec' else 'out'}")
    assert not any("Traceback" in line for line in result.errlines)


def test_several_specs_run_in_one_database_with_one_line_each_like_pg_isolation_regress(
    cli: Cli,
) -> None:
    folder = cli.path / "suite"
    (folder / "specs").mkdir(parents=True)
    (folder / "expected").mkdir()
    for name in ("deadlock-simple", "nowait"):
        for part, suffix in (("specs", ".spec"), ("expected", ".out")):
            source = CORPUS / part / f"{name}{suffix}"
            (folder / part / source.name).write_bytes(source.read_bytes())
    (folder / "expected" / "nowait.out").write_text("not the output\n", encoding="utf-8")
    (folder / "schedule").write_text("# a comment\ntest: nowait\n", encoding="utf-8")
    result = cli.run(folder / "specs" / "deadlock-simple.spec", "--schedule", folder / "schedule")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "ok     1     - deadlock-simple * ms",
            "not ok 2     - nowait * ms",
            "1..2",
            "# 1 of 2 tests failed.",
        ],
        consecutive=True,
    )
    assert len(result.outlines) == 4
    result.stderr.fnmatch_lines(["--- */expected/nowait.out", "+++ actual output"])
    cli.assert_nothing_left()


def test_the_whole_corpus_schedule_names_only_specs_of_the_corpus() -> None:
    from pytest_pglocks.isolation import read_schedule

    specs = read_schedule(CORPUS / "isolation_schedule")
    assert len(specs) > 100
    assert (CORPUS / "specs" / "deadlock-simple.spec") in specs


def test_a_bad_schedule_line_is_refused_with_its_place(cli: Cli) -> None:
    cli.write("schedule", "test: nowait\ntests nowait\n")
    result = cli.run("--schedule", "schedule")
    assert result.ret == 2
    assert result.errlines == [
        "error: schedule:2: 'tests nowait' is not a schedule line; write 'test: NAME ...' "
        "(names of specs/NAME.spec beside the schedule), or a '#' comment"
    ]


def test_expected_with_several_specs_is_refused(
    cli: Cli, deadlock_simple: tuple[Path, Path]
) -> None:
    spec, expected = deadlock_simple
    result = cli.run(spec, spec, "--expected", expected)
    assert result.ret == 2
    assert result.errlines == [f"error: {errors.EXPECTED_WITH_SEVERAL}"]


def test_the_database_name_and_pgoptions_are_the_ones_given(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = cli.write(
        "where.spec",
        "session s1\nstep db { SELECT current_database(); }\nstep lt { SHOW lock_timeout; }\n",
    )
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=1234")
    result = cli.run(spec, "--dbname", "isolation_regression")
    assert result.ret == 0, result.errlines
    values = [line.strip() for line in result.outlines]
    assert "isolation_regression" in values
    assert "1234ms" in values
    cli.assert_nothing_left()


def test_the_default_step_timeout_is_the_isolation_testers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_pglocks.isolation import max_step_wait

    monkeypatch.delenv("PG_TEST_TIMEOUT_DEFAULT", raising=False)
    assert max_step_wait() == 360
    monkeypatch.setenv("PG_TEST_TIMEOUT_DEFAULT", "5")
    assert max_step_wait() == 10
