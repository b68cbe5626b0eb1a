"""The picture of a real deadlock, laid out by a real browser (headless Chromium).

The browser lays the SVG out; the test reads back the boxes it computed (through the DOM) and
the screenshot's colours by region: structure, not pixels. Without Chromium the tests skip,
except in CI (``CI=true`` or ``PGLT_REQUIRE_CHROMIUM=1``, set by .ci/run), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fix_sessions import close, half_cycle

from pytest_pglocks import Pglocks, expect_deadlock
from pytest_pglocks.report import _outputs

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)
BLOCKED = (0xF5, 0x85, 0x18)
CYCLE = (0xD6, 0x27, 0x28)

MEASURE = """
<!DOCTYPE html><html><body style="margin:0">%s<pre id="boxes"></pre><script>
const box = (e) => { const r = e.getBoundingClientRect();
  return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
const all = (css) => [...document.querySelectorAll(css)];
document.getElementById("boxes").textContent = JSON.stringify({
  svg: box(document.querySelector("svg")),
  lanes: all("g.lane").map((g) => ({session: g.dataset.session, ...box(g.querySelector("rect"))})),
  statements: all("g.statement").map((g) => ({session: g.dataset.session,
    bar: box(g.querySelector("rect")), call: box(g.querySelector("text.call"))})),
  blocked: all("g.blocked").map((g) => ({session: g.dataset.session, by: g.dataset.by,
    ...box(g.querySelector("rect"))})),
  texts: all("text").map(box),
  cycle: all("g.cycle").length,
});
</script></body></html>
"""


def chromium() -> str:
    """The browser's path; skips (or fails where CI requires it) when there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI") == "true" or os.environ.get("PGLT_REQUIRE_CHROMIUM") == "1":
        pytest.fail("chromium is required here (CI): .ci/run installs it with apt-get")
    pytest.skip("no chromium (apt-get install -y chromium); the browser tests skip")


def browse(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"  # a fresh profile per run
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def deadlock_picture(pglocks: Pglocks) -> str:
    """The picture of the README's deadlock, drawn from this test's own sessions."""
    pglocks.execute("CREATE TABLE t (k int, v int); INSERT INTO t VALUES (1, 0), (2, 0)")
    s1, s2 = pglocks.sessions(2)
    waiting = half_cycle(s1, s2)
    with expect_deadlock(victim=s2):
        close(s2)
    waiting.result()
    context = pglocks._context
    return _outputs.picture(context, context.graph(), title="deadlock", verdict="failed")


def inside(inner: dict[str, float], outer: dict[str, float], slack: float = 0.5) -> bool:
    return (
        inner["left"] >= outer["left"] - slack
        and inner["right"] <= outer["right"] + slack
        and inner["top"] >= outer["top"] - slack
        and inner["bottom"] <= outer["bottom"] + slack
    )


def test_the_browser_lays_out_lanes_waits_and_the_cycle(
    tmp_path: Path, deadlock_picture: str
) -> None:
    page = tmp_path / "page.html"
    page.write_text(MEASURE % deadlock_picture.split("?>", 1)[1])
    dom = browse(tmp_path, page, "--dump-dom").stdout
    boxes: dict[str, Any] = json.loads(dom.split('<pre id="boxes">', 1)[1].split("</pre>")[0])
    lanes = {lane["session"]: lane for lane in boxes["lanes"]}
    assert list(lanes) == ["s1", "s2"]
    assert lanes["s1"]["bottom"] <= lanes["s2"]["top"] + 1  # one band after the other
    for statement in boxes["statements"]:
        assert inside(statement["bar"], lanes[statement["session"]])
    own = {name: [s for s in boxes["statements"] if s["session"] == name] for name in lanes}
    for calls in own.values():  # labels of one lane never overlap
        edges = sorted((s["call"]["left"], s["call"]["right"]) for s in calls)
        assert all(right <= left for (_, right), (left, _) in pairwise(edges))
    assert {(wait["session"], wait["by"]) for wait in boxes["blocked"]} == {
        ("s1", "s2"),
        ("s2", "s1"),
    }
    for wait in boxes["blocked"]:
        assert any(inside(wait, s["bar"]) for s in own[wait["session"]]), wait
    assert all(inside(text, boxes["svg"]) for text in boxes["texts"])  # nothing cut off
    assert boxes["cycle"] == 2


def test_the_screenshot_shows_each_wait_in_its_lane_and_the_cycle_below(
    tmp_path: Path, deadlock_picture: str
) -> None:
    from PIL import Image

    svg = tmp_path / "picture.svg"
    svg.write_text(deadlock_picture)
    width, height = (
        int(v) for v in deadlock_picture.split('viewBox="0 0 ', 1)[1].split('"')[0].split()
    )
    shot = tmp_path / "shot.png"
    browse(tmp_path, svg, f"--screenshot={shot}", f"--window-size={width},{height}")
    image = Image.open(shot).convert("RGB")
    assert image.size == (width, height)
    pixels = image.load()
    assert pixels is not None

    def rows_with(colour: tuple[int, int, int]) -> set[int]:
        return {
            y
            for y in range(height)
            for x in range(0, width, 2)
            if all(abs(a - b) <= 8 for a, b in zip(pixels[x, y], colour, strict=True))
        }

    lane = 74  # the lanes' height in the drawing, under a 78 px header
    blocked = rows_with(BLOCKED)
    assert any(78 <= y < 78 + lane for y in blocked), "no wait drawn in s1's lane"
    assert any(78 + lane <= y < 78 + 2 * lane for y in blocked), "no wait drawn in s2's lane"
    assert any(y >= 78 + 2 * lane + 40 for y in rows_with(CYCLE)), "no cycle below the lanes"
