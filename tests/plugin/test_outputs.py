"""The pglocks report where people look: JUnit XML, pytest-html, SVG pictures, the terminal."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html import unescape

import pytest
from fix_inner import DEADLOCK_TEST, Inner

SVG = "{http://www.w3.org/2000/svg}"

SEED = (
    """\
import threading

import pytest
from pytest_pglocks import assert_blocks, expect_deadlock


"""
    + DEADLOCK_TEST
    + """

def test_passes_with_a_gate_and_a_barrier(pglocks):
    pglocks.execute("CREATE TABLE t (k int, v int); INSERT INTO t VALUES (1, 0)")
    gate = pglocks.gate("t", "before update")
    (s1,) = pglocks.sessions(1)
    update = s1.submit("UPDATE t SET v = 1")
    gate.wait_reached(s1)
    gate.open()
    update.result()
    barrier = pglocks.barrier("commit")
    thread = threading.Thread(target=barrier.wait)
    thread.start()
    barrier.wait_reached()
    barrier.release()
    thread.join()
    print("captured output of the passing test")
"""
)


def line_of(text: str, source: str) -> str:
    """``test_seed.py:N`` of the first line of SEED holding ``text``."""
    return (
        f"test_seed.py:{next(i for i, line in enumerate(source.splitlines(), 1) if text in line)}"
    )


def svg_groups(path: object, cls: str) -> list[ET.Element]:
    """The ``<g>`` elements of a picture whose class list holds ``cls``."""
    root = ET.parse(str(path)).getroot()
    return [g for g in root.iter(f"{SVG}g") if cls in g.get("class", "").split()]


def test_a_failing_test_reports_in_the_terminal_junit_xml_pytest_html_and_a_picture(
    inner: Inner,
) -> None:
    inner.pytester.makepyfile(test_seed=SEED)
    result = inner.run(
        "-n",
        "2",  # the workers' reports reach the controller's JUnit XML and summary
        "--junitxml=report.xml",
        "-o",
        "junit_logging=no",
        "--html=report.html",
        "--pglocks-report=pictures",
        "--show-capture=no",
    )
    result.assert_outcomes(failed=1, passed=1)
    # Terminal: the section survives --show-capture=no, each entry with its test line.
    output = result.stdout.str()
    section = output.split("- pglocks -", 1)[1]
    victim_line = line_of('s2.execute("UPDATE t SET v = 1 WHERE k = 1")', SEED)
    assert re.search(rf"ms  {victim_line} +# s2 error 40P01: deadlock detected", section), section
    assert re.search(rf"ms  {line_of('s1.submit(', SEED)} +# s1 blocked: s1 waits for", section)
    result.stdout.fnmatch_lines(["pglocks: 1 picture of sessions and waits in pictures"])

    # JUnit XML: the section in the failing test's <system-out>, though junit_logging=no.
    suite = ET.parse(inner.pytester.path / "report.xml").getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    (out,) = cases["test_deadlock"].findall("system-out")
    assert out.text is not None
    assert "timeline:" in out.text
    assert f"{victim_line} # s2 error 40P01: deadlock detected" in re.sub(" +", " ", out.text)
    (failure,) = cases["test_deadlock"].findall("failure")
    assert "deadlock: s2 was chosen as the victim" in (failure.text or "")
    assert cases["test_passes_with_a_gate_and_a_barrier"].findall("system-out") == []

    # pytest-html: the failing test's picture is embedded, the passing test has none.
    html = (inner.pytester.path / "report.html").read_text()
    blob = re.search(r'data-jsonblob="([^"]*)"', html)
    assert blob is not None
    tests = json.loads(unescape(blob[1]))["tests"]
    embedded = [
        extra["content"]
        for nodeid, runs in tests.items()
        for run in runs
        for extra in run["extras"]
        if "pglocks-picture" in extra["content"]
    ]
    assert len(embedded) == 1
    assert "test_deadlock" in embedded[0]
    root = ET.fromstring(embedded[0])
    assert [g.get("data-session") for g in root.iter(f"{SVG}g") if g.get("class") == "lane"] == [
        "s1",
        "s2",
    ]

    # The picture: one per failing test, lanes s1 and s2, both waits of the cycle, the error.
    (picture,) = (inner.pytester.path / "pictures").iterdir()
    assert picture.name == "test_seed.py_test_deadlock.svg"
    assert [g.get("data-session") for g in svg_groups(picture, "lane")] == ["s1", "s2"]
    blocked = {(g.get("data-session"), g.get("data-by")) for g in svg_groups(picture, "blocked")}
    assert blocked == {("s1", "s2"), ("s2", "s1")}
    statements = svg_groups(picture, "statement")
    assert all(re.fullmatch(r"test_seed\.py:\d+", g.get("data-where", "")) for g in statements)
    assert {g.get("data-where") for g in statements if "error" in g.get("class", "")} == {
        victim_line
    }
    errors = [g for g in svg_groups(picture, "mark") if "error" in g.get("class", "")]
    assert [g.get("data-session") for g in errors] == ["s2"]
    cycle = {(g.get("data-waiter"), g.get("data-blocker")) for g in svg_groups(picture, "cycle")}
    assert cycle == {("s1", "s2"), ("s2", "s1")}


def test_a_passing_test_gets_a_picture_on_request_and_qq_prints_nothing_of_pglocks(
    inner: Inner,
) -> None:
    inner.pytester.makepyfile(test_seed=SEED)
    result = inner.run("-qq", "--pglocks-report=pictures", "--pglocks-report-passed", "-k", "gate")
    assert result.ret == 0  # -qq prints no summary line to count outcomes from
    assert "pglocks" not in result.stdout.str() + result.stderr.str()
    (picture,) = (inner.pytester.path / "pictures").iterdir()
    lanes = [g.get("data-session") for g in svg_groups(picture, "lane")]
    assert lanes == ["s1", "gate t before update", "barrier commit"]
    gates = [(g.get("data-where"), g.find(f"{SVG}text").text) for g in svg_groups(picture, "gate")]
    assert gates == [
        (line_of("gate.wait_reached(s1)", SEED), gates[0][1]),
        (line_of("gate.open()", SEED), "opened"),
    ]
    assert gates[0][1] is not None
    assert gates[0][1].startswith("reached by s1")
    barrier = [g.find(f"{SVG}text").text for g in svg_groups(picture, "barrier")]
    assert barrier[0] is not None
    assert barrier[0].startswith("reached by thread")
    assert barrier[1] == "released 1"


PROGRESS = """
from pytest_pglocks._terminal import progress

def test_first():
    pass

def test_progress(request):
    progress(request.config)("pglocks: downloading PostgreSQL 99.9 (1 MB)")
"""


@pytest.mark.parametrize("quiet", [False, True], ids=["default", "qq"])
def test_progress_is_a_line_of_its_own_and_silent_under_qq(
    pytester: pytest.Pytester, quiet: bool
) -> None:
    pytester.makepyfile(test_progress=PROGRESS)
    result = pytester.runpytest_subprocess(*(["-qq"] if quiet else []))
    assert result.ret == 0
    lines = result.stdout.lines + result.stderr.lines
    if quiet:
        assert not any("downloading" in line for line in lines)
    else:
        assert "pglocks: downloading PostgreSQL 99.9 (1 MB)" in lines


BLOCKED_PICTURE = """
from pathlib import Path


def test_fails_where_its_picture_cannot_go(pglocks):
    pglocks.session().execute("SELECT 1")
    Path("pictures").write_text("")  # now a file where the directory should be
    raise AssertionError("the test's own failure")
"""


def test_a_picture_that_cannot_be_written_leaves_the_failure_as_it_is(inner: Inner) -> None:
    inner.pytester.makepyfile(test_blocked=BLOCKED_PICTURE)
    result = inner.run("--pglocks-report=pictures")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E * AssertionError: the test's own failure", "(could not draw the picture: *pictures*)"]
    )
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
