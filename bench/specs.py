"""PostgreSQL's isolation specs run through ``pytest_pglocks.isolation.run_spec``, in-process,
and beside it by PostgreSQL's own ``isolationtester`` (from the server's install)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

from .blocking import context_for

if TYPE_CHECKING:
    from pytest_pglocks.server import Server

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "pg-isolation"


def run_specs(server: Server, specs: list[Path], runs: int) -> tuple[list[float], int]:
    """Seconds to run every spec, each on its own fresh database; and how many matched their
    expected output in the last run."""
    from pytest_pglocks._database import Databases
    from pytest_pglocks.isolation import compare, expected_files, parse_file, run_spec

    parsed = [(path, parse_file(path)) for path in specs]
    databases = Databases(server, f"{server.template.removesuffix('_template')}_specs")
    timings: list[float] = []
    matched = 0
    try:
        for _ in range(runs):
            outputs = []
            started = perf_counter()
            for _path, spec in parsed:
                dbname = databases.create()
                context = context_for(server, dbname)
                try:
                    timeout = context.settings.timeout
                    outputs.append(
                        run_spec(spec, context, superuser=server.superuser, timeout=timeout).output
                    )
                finally:
                    context.close()
                    databases.drop(dbname)
            timings.append(perf_counter() - started)
            matched = sum(
                compare(output, expected_files(path))[0] is not None
                for (path, _spec), output in zip(parsed, outputs, strict=True)
            )
    finally:
        databases.close()
    return timings, matched


def run_real_tester(server: Server, tester: Path, specs: list[Path], runs: int) -> list[float]:
    """Seconds for PostgreSQL's own tester to run every spec, each on its own fresh database,
    as ``run_specs`` does (one process per spec, as ``pg_isolation_regress`` starts them)."""
    from pytest_pglocks._database import Databases
    from pytest_pglocks.isolation._reference import environment_for

    env = environment_for(tester, server)
    databases = Databases(server, f"{server.template.removesuffix('_template')}_tester")
    timings: list[float] = []
    try:
        for _ in range(runs):
            started = perf_counter()
            for path in specs:
                dbname = databases.create()
                try:
                    with path.open("rb") as stdin:
                        subprocess.run(
                            [str(tester), server.own_conninfo(dbname)],
                            stdin=stdin,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env=dict(env, PGAPPNAME=f"isolation/{path.stem}"),
                            check=False,
                        )
                finally:
                    databases.drop(dbname)
            timings.append(perf_counter() - started)
    finally:
        databases.close()
    return timings
