"""The pglocks report of a test in the places people look: SVG files, pytest-html, JUnit XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from .._context import TestContext
from ..monitor import WaitGraph
from . import _lanes, _svg

SECTION = "pglocks"


def picture(context: TestContext, graph: WaitGraph | None, *, title: str, verdict: str) -> str:
    """The SVG picture of a test's sessions, waits and wait-for graph."""
    lanes = _lanes.build(
        context.timeline.events(), graph, context.names(), title=title, verdict=verdict
    )
    return _svg.render(lanes)


def save(directory: Path, nodeid: str, svg: str) -> Path:
    """Write ``svg`` as ``DIR/<nodeid as a file name>.svg``; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", nodeid).strip("_")[:180] or "test"
    path = directory / f"{name}.svg"
    path.write_text(svg, encoding="utf-8")
    return path


def attach_html(report: pytest.TestReport, svg: str) -> None:
    """Embed the picture in pytest-html's report of this test."""
    from pytest_html import extras

    inline = svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg
    picture = extras.html(f'<div class="pglocks-picture">{inline}</div>')
    report.extras = [*getattr(report, "extras", []), picture]  # type: ignore[attr-defined]


def section_text(report: pytest.TestReport) -> str | None:
    """The "pglocks" section of a test's report, wherever it was attached."""
    for name, content, *_ in getattr(report.longrepr, "sections", []):
        if name == SECTION:
            return str(content)
    for name, content in report.sections:
        if name == SECTION:
            return content
    return None


class JunitOutput:
    """Puts the pglocks section of a failed test into its ``<system-out>`` in the JUnit XML,
    whatever ``junit_logging`` says (registered only with ``--junitxml``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from _pytest.junitxml import bin_xml_escape, xml_key

        xml: Any = self.config.stash.get(xml_key, None)
        if xml is None or report.when != "call" or not report.failed:
            return
        text = section_text(report)
        if text is None:
            return
        element = ET.Element("system-out")
        element.text = bin_xml_escape(f"{' pglocks '.center(80, '-')}\n{text}\n")
        xml.node_reporter(report).append(element)
