"""The spec parser: PostgreSQL's isolation-tester grammar, its checks, and errors with positions.

No server is needed. The last tests parse PostgreSQL's own specs from the conformance corpus
(``tests/pg-isolation``) and compare with the tester's recorded output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fix_corpus import CORPUS, NOTES, OLD_FORMAT, OTHER_SPEC, SPECS

from pytest_pglocks.isolation._spec import (
    Blocker,
    PermutationStep,
    Session,
    Spec,
    SpecError,
    Step,
    parse,
    parse_file,
)

FULL = """\
# Every part of the grammar.
setup { CREATE TABLE a (i int); }
setup
{
  INSERT INTO a VALUES (1);
}
teardown { DROP TABLE a; }

session s1
setup { BEGIN; }
step s1a { SELECT 1; }
step s1b { UPDATE a SET i = 2; }
teardown { COMMIT; }

session s2
step s2a { LOCK a; }
step s2b { SELECT 2; }

session s3
setup { SET lock_timeout = 0; }
step s3a { SELECT 3; }

permutation s1a s2a(*) s1b(s2a) s2b s3a
permutation s1a s1b(s2a notices 1, *) s2a s3a s2b
"""


def step(name: str, sql: str, session: str, line: int) -> Step:
    return Step(name=name, sql=sql, session=session, line=line)


def names(runs: list[tuple[PermutationStep, ...]]) -> list[list[str]]:
    return [[pstep.name for pstep in run] for run in runs]


def error_of(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse(text, "t.spec")
    return caught.value


def test_full_spec_round_trip() -> None:
    spec = parse(FULL, "full.spec")

    assert spec == Spec(
        path="full.spec",
        setup=["CREATE TABLE a (i int);", "\n  INSERT INTO a VALUES (1);\n"],
        teardown="DROP TABLE a;",
        sessions=[
            Session(
                "s1",
                [step("s1a", "SELECT 1;", "s1", 11), step("s1b", "UPDATE a SET i = 2;", "s1", 12)],
                setup="BEGIN;",
                teardown="COMMIT;",
            ),
            Session("s2", [step("s2a", "LOCK a;", "s2", 16), step("s2b", "SELECT 2;", "s2", 17)]),
            Session("s3", [step("s3a", "SELECT 3;", "s3", 21)], setup="SET lock_timeout = 0;"),
        ],
        permutations=[
            (
                PermutationStep("s1a"),
                PermutationStep("s2a", (Blocker("once"),)),
                PermutationStep("s1b", (Blocker("step", "s2a"),)),
                PermutationStep("s2b"),
                PermutationStep("s3a"),
            ),
            (
                PermutationStep("s1a"),
                PermutationStep("s1b", (Blocker("notices", "s2a", 1), Blocker("once"))),
                PermutationStep("s2a"),
                PermutationStep("s3a"),
                PermutationStep("s2b"),
            ),
        ],
        directives=[],
        warnings=[],
    )
    assert spec.runs() == spec.permutations
    assert [" ".join(str(pstep) for pstep in run) for run in spec.runs()] == [
        "s1a s2a(*) s1b(s2a) s2b s3a",
        "s1a s1b(s2a notices 1, *) s2a s3a s2b",
    ]
    assert list(spec.steps()) == ["s1a", "s1b", "s2a", "s2b", "s3a"]


def test_parse_file_keeps_path_and_name(tmp_path: Path) -> None:
    path = tmp_path / "two-steps.spec"
    path.write_text("session s\nstep a { SELECT 1; }\nstep b { SELECT 2; }\n", encoding="utf-8")

    spec = parse_file(path)

    assert (spec.path, spec.name) == (str(path), "two-steps")
    assert [(s.name, s.sql) for s in spec.sessions[0].steps] == [
        ("a", "SELECT 1;"),
        ("b", "SELECT 2;"),
    ]


def test_quoted_names_with_doubled_quotes() -> None:
    spec = parse(
        'session "my session"\n'
        'step "say ""hi""" { SELECT 1; }\n'
        'step """" { SELECT 2; }\n'
        'step "step" { SELECT 3; }\n'
        'permutation "say ""hi""" """" "step"\n'
    )

    assert spec.sessions[0].name == "my session"
    assert [s.name for s in spec.sessions[0].steps] == ['say "hi"', '"', "step"]
    assert names(spec.permutations) == [['say "hi"', '"', "step"]]


def test_keywords_only_as_whole_words() -> None:
    spec = parse("session setups\nstep steps { SELECT 1; }\nstep step_2 { SELECT 2; }\n")

    assert spec.sessions[0].name == "setups"
    assert [s.name for s in spec.sessions[0].steps] == ["steps", "step_2"]


@pytest.mark.parametrize(
    ("block", "sql"),
    [
        ("{  x  }", "x"),
        ("{\tSELECT 1;\t}", "SELECT 1;"),
        ("{ a  b }", "a  b"),
        ("{\n  SELECT 1;\n}", "\n  SELECT 1;\n"),
        ("{ \t\n  SELECT 1;\n  \t}", "\n  SELECT 1;\n"),
        ("{\n\tBEGIN;\n\tCOMMIT;\n\n}", "\n\tBEGIN;\n\tCOMMIT;\n\n"),
        ("{ SELECT 1; # not a comment }", "SELECT 1; # not a comment"),
        ("{}", ""),
    ],
)
def test_sql_block_trims_only_blanks_next_to_the_braces(block: str, sql: str) -> None:
    spec = parse(f"session s\nstep a {block}\n")

    assert spec.sessions[0].steps[0].sql == sql


def test_line_numbers_count_newlines_inside_sql_blocks() -> None:
    spec = parse("setup {\n  a;\n  b;\n}\nsession s\nstep x {\n  c;\n}\nstep y { d; }\n")

    assert [(s.name, s.line) for s in spec.sessions[0].steps] == [("x", 6), ("y", 9)]


def test_comments_anywhere_and_directives() -> None:
    spec = parse(
        "# pglocks: no_deadlock\n"
        "# a plain comment that mentions pglocks: nothing\n"
        "setup { SELECT 0; } # after a token\n"
        "session s1 # after a name\n"
        "  #pglocks:   slow  \n"
        "step a { SELECT 1; }\n"
        "# between sessions\n"
        "session s2\n"
        "step b { SELECT 2; }\n"
        "permutation a # inside a permutation line\n"
        "permutation b a\n"
        "# at the end, without a newline"
    )

    assert [(d.text, d.line) for d in spec.directives] == [("no_deadlock", 1), ("slow", 5)]
    assert spec.setup == ["SELECT 0;"]
    assert [s.name for s in spec.sessions] == ["s1", "s2"]
    assert names(spec.permutations) == [["a"], ["b", "a"]]


def test_runs_without_permutations_follow_the_tester_order() -> None:
    spec = parse("session s1\nstep a1 {x}\nstep a2 {x}\nsession s2\nstep b1 {x}\nstep b2 {x}\n")

    runs = spec.runs()

    assert names(runs) == [
        ["a1", "a2", "b1", "b2"],
        ["a1", "b1", "a2", "b2"],
        ["a1", "b1", "b2", "a2"],
        ["b1", "a1", "a2", "b2"],
        ["b1", "a1", "b2", "a2"],
        ["b1", "b2", "a1", "a2"],
    ]
    assert all(pstep.blockers == () for run in runs for pstep in run)
    assert spec.permutations == []


def test_runs_of_three_sessions_of_one_step() -> None:
    spec = parse("session s1\nstep a {x}\nsession s2\nstep b {x}\nsession s3\nstep c {x}\n")

    assert names(spec.runs()) == [
        ["a", "b", "c"],
        ["a", "c", "b"],
        ["b", "a", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["c", "b", "a"],
    ]


def test_runs_count_every_interleaving() -> None:
    spec = parse(
        "session s1\nstep a1 {x}\nstep a2 {x}\nstep a3 {x}\n"
        "session s2\nstep b1 {x}\nstep b2 {x}\nstep b3 {x}\n"
    )

    orders = names(spec.runs())

    assert len(orders) == 20  # 6! / (3! * 3!)
    assert len({tuple(order) for order in orders}) == 20
    assert orders[0] == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert orders[-1] == ["b1", "b2", "b3", "a1", "a2", "a3"]


def test_unused_steps_are_warned_in_byte_order() -> None:
    spec = parse(
        "session s1\nstep b {x}\nstep mid {x}\nstep a {x}\n"
        "session s2\nstep B {x}\nstep used {x}\n"
        "permutation mid used\npermutation used mid\n"
    )

    assert spec.warnings == [
        "unused step name: B",
        "unused step name: a",
        "unused step name: b",
    ]


def test_no_unused_step_warnings_without_permutations() -> None:
    spec = parse("session s1\nstep a {x}\nstep b {x}\n")

    assert spec.warnings == []


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        pytest.param(
            "session s\nstep a {\n  SELECT 1;\n",
            "unterminated sql block",
            2,
            8,
            id="unterminated-sql-block",
        ),
        pytest.param(
            'session s\nstep "a { SELECT 1; }',
            "unterminated quoted identifier",
            2,
            6,
            id="unterminated-quoted-identifier",
        ),
        pytest.param(
            'session "s\n1"\nstep a { x }\n',
            "unexpected newline in quoted identifier",
            1,
            9,
            id="newline-in-quoted-identifier",
        ),
        pytest.param(
            "session s\nstep a { x }\npermutation a ;\n",
            "unexpected character ';'",
            3,
            15,
            id="unexpected-character",
        ),
        pytest.param(
            "session s\nstep a {\n  SELECT 1;\n}  ;\n",
            "unexpected character ';'",
            4,
            4,
            id="unexpected-character-after-multiline-sql",
        ),
        pytest.param(
            "session s\nstep a\nstep b { x }\n",
            "syntax error: expected a { sql } block for step 'a', found the keyword 'step'",
            3,
            1,
            id="step-without-sql",
        ),
        pytest.param(
            "setup { x }\n",
            "syntax error: expected 'session', found the end of the file",
            2,
            1,
            id="no-session",
        ),
        pytest.param(
            "setup { x }\npermutation a\n",
            "syntax error: expected 'session', found the keyword 'permutation'",
            2,
            1,
            id="permutation-before-any-session",
        ),
        pytest.param(
            "",
            "syntax error: expected 'setup', 'teardown' or 'session', found the end of the file",
            1,
            1,
            id="empty-spec",
        ),
        pytest.param(
            "session s\nteardown { x }\n",
            "syntax error: expected 'step' (session 's' needs at least one step), "
            "found the keyword 'teardown'",
            2,
            1,
            id="session-without-steps",
        ),
        pytest.param(
            "session s\nsession t\nstep a { x }\n",
            "syntax error: expected 'step' (session 's' needs at least one step), "
            "found the keyword 'session'",
            2,
            1,
            id="session-without-steps-before-another",
        ),
        pytest.param(
            "session s\nstep a { x }\npermutation a  b\n",
            'undefined step "b" specified in permutation',
            3,
            16,
            id="unknown-step-in-permutation",
        ),
        pytest.param(
            "session s\nstep a { x }\nsession t\nstep b { y }\npermutation a b(nope)\n",
            'undefined blocking step "nope" referenced in permutation step "b"',
            5,
            17,
            id="undefined-blocker",
        ),
        pytest.param(
            "session s\nstep a { x }\nsession t\nstep b { y }\nstep c { z }\npermutation a b(c)\n",
            'undefined blocking step "c" referenced in permutation step "b"',
            6,
            17,
            id="blocker-not-in-the-permutation",
        ),
        pytest.param(
            "session s\nstep a { x }\nstep a2 { x }\nsession t\nstep b { y }\n"
            "permutation a a2(a) b\n",
            'permutation step "a2" cannot block on its own session',
            6,
            18,
            id="blocker-on-own-session",
        ),
        pytest.param(
            "session s\nstep a { x }\nsession t\nstep a { y }\n",
            "duplicate step name: a",
            4,
            6,
            id="duplicate-step-name",
        ),
        pytest.param(
            "session s\nstep a { x }\nsession s\nstep b { y }\n",
            "duplicate session name: s",
            3,
            9,
            id="duplicate-session-name",
        ),
    ],
)
def test_errors_point_at_line_and_column(text: str, message: str, line: int, column: int) -> None:
    error = error_of(text)

    assert (error.message, error.path, error.line, error.column) == (
        message,
        "t.spec",
        line,
        column,
    )
    assert error.source == text.split("\n")[line - 1]


def test_error_text_shows_source_line_and_caret() -> None:
    error = error_of("session s\nstep a { x }\npermutation a  b\n")

    assert str(error) == (
        't.spec:3:16: undefined step "b" specified in permutation\n'
        "  permutation a  b\n"
        "                 ^"
    )


def test_error_text_without_source() -> None:
    assert str(SpecError("no spec", "x.spec", 1, 1)) == "x.spec:1:1: no spec"


def test_non_ascii_digit_starts_an_identifier() -> None:
    spec = parse("session s\nstep \u00b2 { SELECT 1; }\n")

    assert [s.name for s in spec.sessions[0].steps] == ["\u00b2"]


def test_blocker_error_points_at_the_faulty_permutation() -> None:
    error = error_of(
        "session s\nstep a { x }\nsession t\nstep b { y }\nstep c { z }\n"
        "permutation a c b\n"
        "permutation a b(c)\n"
    )

    assert (error.message, error.line, error.column) == (
        'undefined blocking step "c" referenced in permutation step "b"',
        7,
        17,
    )


def expected_output(spec: Path) -> list[str]:
    return (CORPUS / "expected" / f"{spec.stem}.out").read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, marks=pytest.mark.xfail(reason=NOTES[path.stem], strict=True))
        if OTHER_SPEC in NOTES.get(path.stem, "")
        else path
        for path in SPECS
    ],
    ids=[path.stem for path in SPECS],
)
def test_corpus_spec_matches_the_tester(path: Path) -> None:
    spec = parse_file(path)
    lines = expected_output(path)
    first = next(i for i, line in enumerate(lines) if line.startswith("Parsed test spec"))
    match = re.fullmatch(r"Parsed test spec with (\d+) sessions", lines[first])
    assert match is not None

    assert len(spec.sessions) == int(match[1])
    warnings = spec.warnings
    if OLD_FORMAT in NOTES.get(path.stem, ""):  # that tester did not warn of unused steps
        warnings = [line for line in warnings if not line.startswith("unused step name: ")]
    assert warnings == lines[:first]
    assert [" ".join(pstep.name for pstep in run) for run in spec.runs()] == [
        line.removeprefix("starting permutation: ")
        for line in lines
        if line.startswith("starting permutation: ")
    ]
