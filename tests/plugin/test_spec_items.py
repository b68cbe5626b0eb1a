"""Spec files as pytest items: ``pglocks_specs`` folders, expected files, directives, facts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fix_inner import Inner
from fix_messages import line_pattern

from pytest_pglocks import Server, errors

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "pg-isolation"

ONE_STEP = "session s1\nstep one { SELECT 1 AS one; }\n"
ONE_STEP_OUTPUT = """\
Parsed test spec with 1 sessions

starting permutation: one
step one: SELECT 1 AS one;
one
---
  1
(1 row)

"""
OTHER_STEP = "session s1\nstep one { SELECT 2 AS two; }\n"
# OTHER_STEP's output but for one line; NOT_IT is further from it.
NEARLY_OTHER_OUTPUT = """\
Parsed test spec with 1 sessions

starting permutation: one
step one: SELECT 2 AS two;
two
---
  3
(1 row)

"""
NOT_IT = "nothing like it\n" * 20


@pytest.fixture
def deadlock_simple() -> tuple[Path, Path]:
    """PostgreSQL's deadlock-simple spec and its expected output, from the corpus."""
    spec, expected = CORPUS / "specs/deadlock-simple.spec", CORPUS / "expected/deadlock-simple.out"
    if not (spec.is_file() and expected.is_file()):
        pytest.skip(f"conformance corpus not found at {CORPUS}")
    return spec, expected


def write(root: Path, files: dict[str, str]) -> None:
    """Create ``files`` (relative path: text) under ``root``, with their folders."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_specs_are_compared_with_the_expected_files_of_each_layout_and_report_their_facts(
    inner: Inner, deadlock_simple: tuple[Path, Path]
) -> None:
    root = inner.pytester.path
    inner.pytester.makeini("[pytest]\npglocks_specs = pg beside nested\n")
    (root / "pg/specs").mkdir(parents=True)
    (root / "pg/expected").mkdir()
    shutil.copy(deadlock_simple[0], root / "pg/specs")
    shutil.copy(deadlock_simple[1], root / "pg/expected")
    write(
        root,
        {
            # PostgreSQL's layout; the run matches neither alternate: diff against the closer.
            "pg/specs/mismatch.spec": OTHER_STEP,
            "pg/expected/mismatch.out": NOT_IT,
            "pg/expected/mismatch_1.out": NEARLY_OTHER_OUTPUT,
            # Beside the spec; that folder is looked in first, so expected/ is not consulted.
            "beside/one.spec": ONE_STEP,
            "beside/one.out": ONE_STEP_OUTPUT,
            "beside/expected/one.out": NOT_IT,
            # expected/ inside the spec's folder; the second alternate matches.
            "nested/alt.spec": ONE_STEP,
            "nested/expected/alt.out": NOT_IT,
            "nested/expected/alt_2.out": ONE_STEP_OUTPUT,
            # Not in a pglocks_specs folder, not named on the command line: not collected.
            "elsewhere/ignored.spec": ONE_STEP,
        },
    )
    result = inner.run("-rA")
    result.assert_outcomes(passed=3, failed=1)
    far, near = root / "pg/expected/mismatch.out", root / "pg/expected/mismatch_1.out"
    result.stdout.fnmatch_lines(
        [
            "*_ isolation spec mismatch.spec _*",
            line_pattern(errors.SPEC_MISMATCH, spec="mismatch.spec", expected=f"{far} or {near}"),
            f"--- {near}",
            "+++ actual output",
            "@@ -*,* +*,* @@",
            " ---",
            "-  3",
            "+  2",
            " (1 row)",
            "*- Captured pglocks facts call -*",
            "permutation 1: one",
            "  no step waited or failed",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ isolation spec deadlock-simple.spec _*",
            "*- Captured pglocks facts call -*",
            "permutation 1: s1as s2as s1ae s2ae s1c s2c",
            "  s1ae: waited for s2",
            "  s2ae: ERROR 40P01: deadlock detected",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "PASSED pg/specs/deadlock-simple.spec::deadlock-simple",
            "PASSED beside/one.spec::one",
            "PASSED nested/alt.spec::alt",
            "FAILED pg/specs/mismatch.spec::mismatch - the output of mismatch.spec differs*",
        ]
    )
    assert f"--- {far}" not in result.outlines
    assert "ignored" not in result.stdout.str()
    inner.assert_nothing_left(inner.records())


def test_update_expected_writes_missing_files_where_the_layout_says_and_overwrites_none(
    inner: Inner,
) -> None:
    root = inner.pytester.path
    inner.pytester.makeini("[pytest]\npglocks_specs = pg lonely other keep\n")
    (root / "pg/expected").mkdir(parents=True)
    (root / "other/expected").mkdir(parents=True)
    write(
        root,
        {
            "pg/specs/new_a.spec": ONE_STEP,  # specs/ beside an expected/ folder: in there
            "lonely/specs/new_b.spec": ONE_STEP,  # specs/ without expected/: beside the spec
            "other/tests/new_c.spec": ONE_STEP,  # not a specs/ folder: beside the spec
            "keep/specs/kept.spec": OTHER_STEP,  # has an expected file that does not match
            "keep/expected/kept.out": ONE_STEP_OUTPUT,
        },
    )
    result = inner.run("-n", "2", "--pglocks-update-expected")
    result.assert_outcomes(passed=3, failed=1)
    written = [
        root / "pg/expected/new_a.out",
        root / "lonely/specs/new_b.out",
        root / "other/tests/new_c.out",
    ]
    result.stdout.fnmatch_lines_random(
        [f"pglocks: wrote the expected output {path}" for path in written]
    )
    assert len([line for line in result.outlines if "wrote the expected output" in line]) == 3
    for path in written:
        assert path.read_text(encoding="utf-8") == ONE_STEP_OUTPUT
    assert not (root / "pg/specs/new_a.out").exists()
    assert not (root / "other/expected/new_c.out").exists()
    kept = root / "keep/expected/kept.out"
    result.stdout.fnmatch_lines(
        [line_pattern(errors.SPEC_MISMATCH, spec="kept.spec", expected=kept)]
    )
    assert kept.read_text(encoding="utf-8") == ONE_STEP_OUTPUT
    assert not (root / "keep/specs/kept.out").exists()
    inner.assert_nothing_left(inner.records())


def test_without_an_expected_file_directives_decide_and_bad_specs_are_collection_errors(
    inner: Inner, deadlock_simple: tuple[Path, Path], pglocks_server: Server
) -> None:
    root = inner.pytester.path
    inner.pytester.makeini("[pytest]\npglocks_specs = flat\n")
    (root / "flat/expected").mkdir(parents=True)
    deadlock = deadlock_simple[0].read_text(encoding="utf-8")
    write(
        root,
        {
            "flat/plain.spec": ONE_STEP,
            "flat/specs/fresh.spec": ONE_STEP,
            "flat/calm.spec": "# pglocks: no_deadlock, min_version=14\n" + ONE_STEP,
            "flat/deadlocks.spec": "# pglocks: no_deadlock\n" + deadlock,
            "flat/newer.spec": "# pglocks: min_version=99\n" + ONE_STEP,
            "flat/older.spec": "# pglocks: max_version=13\n" + ONE_STEP,
            "flat/early.spec": "setup { SELECT 1/0; }\n" + ONE_STEP,
            "flat/misspelt.spec": "# a comment\n# pglocks: no_deadlock, tiemout=3\n" + ONE_STEP,
            "flat/own_timeout.spec": "# pglocks: deadlock_timeout=10ms\n" + ONE_STEP,
            "flat/broken.spec": "session s1\nstep one { SELECT 1; }\npermutation one two\n",
            # Outside pglocks_specs: collected only when named on the command line.
            "loose/cmd.spec": ONE_STEP,
            "loose/cmd.out": ONE_STEP_OUTPUT,
            "loose/unnamed.spec": ONE_STEP,
        },
    )
    result = inner.run("flat", "loose/cmd.spec", "--continue-on-collection-errors", "-rA")
    result.assert_outcomes(passed=2, failed=4, skipped=2, errors=3)
    flat = root / "flat"
    result.stdout.fnmatch_lines_random(
        [
            "PASSED flat/calm.spec::calm",
            "PASSED loose/cmd.spec::cmd",
            "FAILED flat/plain.spec::plain - *",
            "FAILED flat/specs/fresh.spec::fresh - *",
            "FAILED flat/deadlocks.spec::deadlocks - *",
            "FAILED flat/early.spec::early - *",
            f"SKIPPED [[]1[]] *: needs PostgreSQL >= 99, the server is {pglocks_server.version}",
            f"SKIPPED [[]1[]] *: needs PostgreSQL <= 13, the server is {pglocks_server.version}",
            "ERROR flat/misspelt.spec",
            "ERROR flat/own_timeout.spec",
            "ERROR flat/broken.spec",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            line_pattern(
                errors.MISSING_EXPECTED,
                spec="plain.spec",
                name="plain",
                folders=f"{flat}, {flat / 'expected'}, {root / 'expected'}",
                new=flat / "plain.out",
            )
        ]
    )
    result.stdout.fnmatch_lines(
        [
            line_pattern(
                errors.MISSING_EXPECTED,
                spec="fresh.spec",
                name="fresh",
                folders=f"{flat / 'specs'}, {flat / 'specs/expected'}, {flat / 'expected'}",
                new=flat / "expected/fresh.out",
            )
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ isolation spec deadlocks.spec _*",
            line_pattern(errors.DEADLOCK_SEEN),
            "deadlock: s2 was chosen as the victim while running "
            "'LOCK TABLE a1 IN ACCESS EXCLUSIVE MODE;'",
            "*- Captured pglocks facts call -*",
            "permutation 1: s1as s2as s1ae s2ae s1c s2c",
            "  s1ae: waited for s2",
            "  s2ae: ERROR 40P01: deadlock detected",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            line_pattern(
                errors.SPEC_FAILED,
                spec="early.spec",
                reason="setup failed: ERROR:  division by zero",
            )
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            line_pattern(
                errors.BAD_DIRECTIVE,
                path=flat / "misspelt.spec",
                line=2,
                text="no_deadlock, tiemout=3",
                why="unknown entry 'tiemout=3'",
            ),
            line_pattern(
                errors.BAD_DIRECTIVE,
                path=flat / "own_timeout.spec",
                line=1,
                text="deadlock_timeout=10ms",
                why="unknown entry 'deadlock_timeout=10ms'",
            ),
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR collecting flat/broken.spec _*",
            f'{flat / "broken.spec"}:3:17: undefined step "two" specified in permutation',
            "  permutation one two",
            "                  ^",
        ]
    )
    assert "unnamed" not in result.stdout.str()
    assert sorted(path.name for path in root.rglob("*.out")) == ["cmd.out"]  # none written
    inner.assert_nothing_left(inner.records())


# The work under test, not a wait for it: a statement slower than the step timeout.
NAP = "SELECT pg_sleep(3);"  # sleep-ok: the slow statement a timeout must (not) cancel
SLOW_STEP = f"session s1\nstep nap {{ {NAP} }}\n"
NAP_CANCELLED_OUTPUT = f"""\
Parsed test spec with 1 sessions

starting permutation: nap
isolationtester: canceling step nap after 2 seconds
step nap: {NAP}
ERROR:  canceling statement due to user request
"""
NAP_OUTPUT = (
    "Parsed test spec with 1 sessions\n\nstarting permutation: nap\n"
    f"step nap: {NAP}\npg_sleep\n--------\n        \n(1 row)\n\n"
)


def test_a_spec_step_gets_the_isolation_testers_limit_unless_a_timeout_is_given(
    inner: Inner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twice ``PG_TEST_TIMEOUT_DEFAULT`` (1 s here) without a timeout; a directive's wins."""
    monkeypatch.setenv("PG_TEST_TIMEOUT_DEFAULT", "1")
    monkeypatch.delenv("PGLOCKS_TIMEOUT", raising=False)
    write(
        inner.pytester.path,
        {
            "default.spec": SLOW_STEP,
            "default.out": NAP_CANCELLED_OUTPUT,
            "given.spec": "# pglocks: timeout=30\n" + SLOW_STEP,
            "given.out": NAP_OUTPUT,
        },
    )
    result = inner.run("default.spec", "given.spec", "-rA")
    result.assert_outcomes(passed=2)
