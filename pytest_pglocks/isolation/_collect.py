"""pytest collection of spec files: one item per spec, compared with its expected output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .. import errors
from .._context import TestContext, TestSettings
from .._items import MARKER_ARGUMENTS, server_for, settings_for
from .._keys import CONTEXT_KEY, RUN_KEY, WROTE_PROPERTY
from ._expected import candidate_dirs, compare, expected_files, new_expected_path
from ._runner import SpecOutcome, run_spec
from ._spec import Spec, SpecError, parse_file


class SpecFailure(AssertionError):
    """A spec whose output does not match, or that has nothing to compare with."""


class SpecFile(pytest.File):
    """A ``NAME.spec`` file."""

    def collect(self) -> Iterator[pytest.Item]:
        try:
            spec = parse_file(self.path)
        except SpecError as exc:
            raise self.CollectError(str(exc)) from None
        item = SpecItem.from_parent(self, name=self.path.stem, spec=spec)
        for mark in directive_marks(spec, self.path):
            item.add_marker(mark)
        yield item


def directive_marks(spec: Spec, path: Path) -> list[pytest.MarkDecorator]:
    """Markers from ``# pglocks: no_deadlock, min_version=16`` lines."""
    marks: list[pytest.MarkDecorator] = []
    for directive in spec.directives:
        text, line = directive.text, directive.line
        settings: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep and name == "no_deadlock":
                marks.append(pytest.mark.no_deadlock)
            elif sep and name in MARKER_ARGUMENTS and name != "deadlock_timeout" and value.strip():
                settings[name] = value.strip()
            else:
                why = f"unknown entry {part!r}"
                raise pytest.Collector.CollectError(
                    errors.BAD_DIRECTIVE.format(path=path, line=line, text=text, why=why)
                )
        if settings:
            marks.append(pytest.mark.pglocks(**settings))
    return marks


class SpecItem(pytest.Item):
    """Runs a spec on a fresh database and compares its output with ``NAME.out``."""

    def __init__(self, *, spec: Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.outcome: SpecOutcome | None = None

    def runtest(self) -> None:
        run = self.config.stash[RUN_KEY]
        server = server_for(self.config)
        settings = settings_for(self, run, server)
        databases = run.databases(server)
        dbname = databases.create()
        context = TestContext(
            server.conninfo(dbname),
            TestSettings(
                settings.spec_timeout, settings.deadlock_timeout, manage_deadlock_timeout=False
            ),
        )
        self.stash[CONTEXT_KEY] = context
        failed = True
        try:
            self.outcome = run_spec(
                self.spec, context, superuser=server.superuser, timeout=settings.spec_timeout
            )
            facts = self.outcome.facts()
            self.user_properties.append(("pglocks_facts", facts))
            self.add_report_section("call", "pglocks facts", facts)
            failure = self._verdict(self.outcome)
            failed = failure is not None
        finally:
            context.close()
            if failed and run.settings.keep.value:
                run.keep(server, dbname, self.nodeid)
            else:
                databases.drop(dbname)
        if failure is not None:
            raise failure

    def _verdict(self, outcome: SpecOutcome) -> SpecFailure | None:
        """Why the spec fails, if it does (the no_deadlock marker is checked after this)."""
        files = expected_files(self.path)
        if files:
            matched, diff = compare(outcome.output, files)
            if matched is None:
                expected = " or ".join(str(path) for path in files)
                return SpecFailure(
                    errors.SPEC_MISMATCH.format(spec=self.path.name, expected=expected, diff=diff)
                )
            return None
        if self.config.getoption("pglocks_update_expected"):
            path = new_expected_path(self.path)
            path.write_text(outcome.output, encoding="utf-8")
            self.user_properties.append((WROTE_PROPERTY, str(path)))
            return None
        if outcome.failure is not None:
            return SpecFailure(
                errors.SPEC_FAILED.format(spec=self.path.name, reason=outcome.failure.strip())
            )
        if self.get_closest_marker("no_deadlock") is None:
            return SpecFailure(
                errors.MISSING_EXPECTED.format(
                    spec=self.path.name,
                    name=self.path.stem,
                    folders=", ".join(str(folder) for folder in candidate_dirs(self.path)),
                    new=new_expected_path(self.path),
                )
            )
        return None

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        if isinstance(excinfo.value, SpecFailure):
            return str(excinfo.value)  # the facts follow in their own report section
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"isolation spec {self.path.name}"
