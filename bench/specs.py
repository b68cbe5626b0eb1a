"""PostgreSQL's isolation specs run through ``pytest_pglocks.isolation.run_spec``, in-process."""

from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

from .blocking import context_for

if TYPE_CHECKING:
    from pytest_pglocks.server import Server

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance" / "pg-isolation"


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
