"""Fake PostgreSQL installs, settings built by hand, and directories the server account can read."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_pglocks._settings import OPTIONS, Setting, Settings, VersionSpec

FakeInstall = Callable[..., Path]


def make_settings(
    *,
    pg: VersionSpec | None = None,
    bindir: Path | None = None,
    offline: bool = False,
    cache_dir: Path,
    dsn: str | None = None,
) -> Settings:
    """Settings as if given on the command line (sources read ``--pglocks-...``)."""

    values: dict[str, Setting[Any]] = {
        option.name: Setting(option.default, "default") for option in OPTIONS
    }
    given = {"pg": pg, "bindir": bindir, "offline": offline, "dsn": dsn}
    for name, value in given.items():
        if value != values[name].value:
            values[name] = Setting(value, f"--pglocks-{name}")
    values["cache_dir"] = Setting(cache_dir, "--pglocks-cache-dir")
    return Settings(**values)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A temporary directory every user can traverse (pytest's tmp_path is private to us).

    When the tests run as root the server runs as ``nobody``, which must reach its binaries and
    its data directory.
    """
    path = Path(tempfile.mkdtemp(prefix="pgltest-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture
def fake_install(tmp_path: Path) -> FakeInstall:
    """Make a directory of shell scripts posing as a PostgreSQL install; returns its bin dir.

    ``fake_install("16.4")`` answers ``postgres --version`` with 16.4; ``initdb=`` and
    ``pg_ctl=`` replace those programs' bodies; ``missing=`` leaves programs out.
    """

    def make(
        version: str = "16.4",
        *,
        parent: Path | None = None,
        name: str | None = None,
        initdb: str = "exit 0",
        pg_ctl: str = "exit 0",
        postgres: str | None = None,
        missing: tuple[str, ...] = (),
    ) -> Path:
        root = (parent or tmp_path) / (name or f"fake-postgresql-{version}")
        bindir = root / "bin"
        bindir.mkdir(parents=True)
        for directory in (root, bindir):
            directory.chmod(stat.S_IRWXU | 0o055)
        bodies = {
            "initdb": initdb,
            "pg_ctl": pg_ctl,
            "postgres": postgres or f'echo "postgres (PostgreSQL) {version}"',
        }
        for program, body in bodies.items():
            if program not in missing:
                _script(bindir / program, body)
        return bindir

    return make


def installed_majors() -> set[int]:
    """Majors of the real system installs (not the cache) on this machine."""
    from pytest_pglocks.server._binaries import local_installs

    empty = Path(tempfile.mkdtemp(prefix="pgltest-empty-cache-"))
    try:
        return {found.major for found in local_installs(make_settings(cache_dir=empty))}
    finally:
        os.rmdir(empty)
