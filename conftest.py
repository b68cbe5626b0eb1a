"""Docs that run: every ```python block of README.md and docs/*.md is a pytest test module.

Sybil finds the blocks; each one is saved alone as a test file and run by an inner pytest
against this run's server. A deliberate fragment is marked ``<!-- skip: next -->``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

FRAGMENT = re.compile(r"<!--\s*skip:\s*next\s*-->\s*\Z")


def run_as_test_module(example: Example) -> None:
    """Run one block as ``test_<page>_<line>.py``; fail with the inner run's output."""
    __tracebackhide__ = True
    # Not Sybil's SkipParser: its state lives in the process that ran the marker, and under
    # xdist the block (or the next marker) may run in another worker. The block itself looks
    # for the marker right before it.
    if FRAGMENT.search(example.document.text[: example.start]):
        pytest.skip("a fragment: marked <!-- skip: next -->")
    pytester: pytest.Pytester = example.namespace["pytester"]
    server = example.namespace["pglocks_server"]
    example.namespace["monkeypatch"].delenv("PGLOCKS_PG", raising=False)
    page = Path(example.path).stem
    name = re.sub(r"\W", "_", f"test_{page}_{example.line}")
    pytester.makepyfile(**{name: example.parsed})
    # A process of its own: an in-process run would drop the modules it imported first
    # (pytester restores sys.modules), and a class imported again is another class.
    result = pytester.runpytest_subprocess(
        f"--pglocks-dsn={server.dsn}",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",  # as this project's ini has it
        timeout=300,  # only a guard against a hang
    )
    if result.ret != 0:
        pytest.fail(
            f"the python block at {example.path}:{example.line}, saved alone as {name}.py, "
            f"does not pass (exit {int(result.ret)}); make it a complete test module or mark "
            f"it a fragment with <!-- skip: next -->:\n{result.stdout.str()}",
            pytrace=False,
        )


pytest_collect_file = Sybil(
    parsers=[CodeBlockParser(language="python", evaluator=run_as_test_module)],
    patterns=["README.md", "docs/*.md"],
    fixtures=["pytester", "pglocks_server", "monkeypatch"],
).pytest()
