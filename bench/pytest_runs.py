"""``pytest`` runs side by side: the plugin's fixtures and pytest-postgresql's, in fresh processes.

Each run loads ``bench.pytest_timing`` (``-p``, with the repository on ``PYTHONPATH``), which
writes the setup time of every fixture and the phases of every test to a JSON file.
pytest-postgresql runs ``initdb`` and ``pg_ctl`` as the user running pytest, and ``initdb``
refuses root: as root its pytest runs as the plugin's run-as account (``nobody``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from .pytest_timing import FILE_VARIABLE
from .server_start import REPO

PGLOCKS_TESTS = """\
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_pglocks(pglocks, n):
    s1, s2 = pglocks.sessions(2)
    assert s1.execute("SELECT 1") == s2.execute("SELECT 1") == [(1,)]
"""
PYTEST_POSTGRESQL_TESTS = """\
import pytest


@pytest.mark.parametrize("n", range({tests}))
def test_postgresql(postgresql, n):
    assert postgresql.execute("SELECT 1").fetchall() == [(1,)]
"""
LOCK_SUITE = """\
import pytest

from pytest_pglocks import assert_blocks


@pytest.mark.parametrize("n", range({tests}))
def test_row_lock(pglocks, n):
    pglocks.execute("CREATE TABLE t (k int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)")
    s1, s2 = pglocks.sessions(2)
    s1.begin()
    s1.execute("UPDATE t SET v = v + 1 WHERE k = 1")
    waiting = s2.submit("UPDATE t SET v = v + 1 WHERE k = 1")
    assert_blocks(waiting, on=s1)
    s1.commit()
    waiting.result()
    assert s2.execute("SELECT v FROM t") == [(2,)]
"""
# Run as another account, the interpreter takes this venv's packages from a site directory.
SITE = "import site, sys; site.addsitedir(sys.argv.pop(1)); "
BOOTSTRAP = SITE + "import pytest; sys.exit(pytest.main())"
PROBE = SITE + "import pytest_postgresql; print(sys.version)"


@dataclass(frozen=True)
class SuiteRun:
    """One pytest process on many tests: server fixture setup, per-test times."""

    start: float
    tests: tuple[dict[str, float], ...]  # setup, call and teardown of each test
    last_teardown: float

    def per_test(self, phase: str | None = None) -> list[float]:
        """Each test's time: one phase, or setup + call + teardown."""
        return [test[phase] if phase else sum(test.values()) for test in self.tests]


@dataclass
class Launcher:
    """How the benchmark starts pytest: interpreter, account, environment, a scratch folder."""

    argv: list[str]
    env: dict[str, str]
    home: Path
    account: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def run(self, test: Path, *args: str) -> tuple[float, dict[str, Any]]:
        """Wall time of ``pytest -q args test`` and what ``bench.pytest_timing`` recorded.

        The run's basetemp (where pytest-postgresql puts its data directory, and pytest-xdist
        its workers' folders) is checked to hold no file afterwards, then removed.
        """
        timing, basetemp = self.home / "timing.json", self.home / "basetemp"
        argv = [*self.argv, "-q", f"--basetemp={basetemp}", *args, str(test)]
        started = perf_counter()
        out = subprocess.run(
            argv,
            cwd=test.parent,
            env={**self.env, FILE_VARIABLE: str(timing)},
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            **self.account,
        )
        wall = perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stdout}\n{out.stderr}")
        data: dict[str, Any] = json.loads(timing.read_text())
        timing.unlink()
        if basetemp.exists():
            left = [p for p in basetemp.rglob("*") if not p.is_dir()]
            if left:
                raise RuntimeError(f"leak: left in {basetemp}: {', '.join(map(str, left[:5]))}")
            shutil.rmtree(basetemp)
        return wall, data


def _pythonpath(env: dict[str, str]) -> str:
    return os.pathsep.join(filter(None, (str(REPO), env.get("PYTHONPATH"))))


def pglocks_launcher(env: dict[str, str], home: Path) -> Launcher:
    """pytest with this plugin, as the current user, pytest-postgresql's plugin disabled."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:pytest_postgresql"]
    argv += ["-p", "bench.pytest_timing"]
    return Launcher(argv, {**env, "PYTHONPATH": _pythonpath(env)}, home)


def pytest_postgresql_launcher(env: dict[str, str], home: Path, pg_ctl: Path) -> Launcher:
    """pytest with pytest-postgresql on ``pg_ctl``; as root, as the plugin's run-as account.

    That account may not reach this interpreter (a Python under /root): then the first
    interpreter of the same version it can run gets this venv's packages as a site directory.
    """
    from pytest_pglocks.server._process import run_as

    args = ["-p", "no:cacheprovider", "-p", "no:pglocks", "-p", "bench.pytest_timing"]
    args.append(f"--postgresql-exec={pg_ctl}")
    account = run_as()
    if account is None:
        return Launcher(
            [sys.executable, "-m", "pytest", *args],
            {**env, "PYTHONPATH": _pythonpath(env)},
            home,
            description="as the current user",
        )
    os.chown(home, account.uid, account.gid)
    kwargs = account.subprocess_kwargs()
    sitedir = sysconfig.get_path("purelib")
    python, version = _interpreter(kwargs, sitedir)
    # TMPDIR: pytest-postgresql's socket directory; HOME: root's is not the account's.
    child_env = {**env, "PYTHONPATH": _pythonpath(env), "TMPDIR": str(home), "HOME": str(home)}
    description = f"as {account.user} (initdb refuses root), Python {version}"
    if python != sys.executable:
        description += f" from {python} with this venv's packages ({account.user} cannot run "
        description += "the venv's own python)"  # its path would name this machine
    return Launcher([python, "-c", BOOTSTRAP, sitedir, *args], child_env, home, kwargs, description)


def _interpreter(account: dict[str, Any], sitedir: str) -> tuple[str, str]:
    """The first interpreter of this Python version that ``account`` can run with our packages."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = (sys.executable, f"/usr/local/bin/python{version}", f"/usr/bin/python{version}")
    for python in candidates:
        try:
            out = subprocess.run(
                [python, "-c", PROBE, sitedir],
                cwd="/",
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
                **account,
            )
        except OSError:  # not there, or not reachable by the account
            continue
        if out.returncode == 0:
            return python, out.stdout.split()[0]
    raise RuntimeError(
        f"no Python {version} that the run-as account can run with this venv's packages "
        f"(tried {', '.join(candidates)}): pytest-postgresql cannot run as that account"
    )


def write_tests(workdir: Path, name: str, template: str, tests: int) -> Path:
    path = workdir / name
    path.write_text(template.format(tests=tests))
    return path


def suite_run(launcher: Launcher, test: Path, server_fixture: str) -> SuiteRun:
    """One pytest process on ``test``; the first and last tests pay the server start and stop,
    so the per-test times leave them out."""
    _, data = launcher.run(test)
    start = next(f["seconds"] for f in data["fixtures"] if f["fixture"] == server_fixture)
    phases = list(data["tests"].values())
    return SuiteRun(start, tuple(phases[1:-1]), phases[-1]["teardown"])
