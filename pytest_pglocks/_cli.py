"""Command line: ``python -m pytest_pglocks isolation SPEC... [--schedule FILE] [--pg N]``.

Runs specs on a server provisioned exactly as the pytest plugin does (same options, same
``PGLOCKS_*`` environment, same binaries and cache). One spec: prints the isolation tester's
output, or with ``--expected`` compares instead and prints a unified diff on a mismatch.
Several specs, or a ``pg_isolation_regress`` schedule: runs them one after another in one
database, as ``pg_isolation_regress`` does, and prints one line per spec.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from . import errors
from ._context import TestContext, TestSettings
from ._database import Databases
from ._run import Run, new_run_id
from ._settings import Settings
from .isolation import (
    SpecError,
    SpecOutcome,
    compare,
    expected_files,
    max_step_wait,
    parse_file,
    read_schedule,
    run_spec,
)

OK, MISMATCH, USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m pytest_pglocks", description="pytest-pglocks command line tools."
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    isolation = commands.add_parser(
        "isolation",
        help="run PostgreSQL isolation-tester specs and print their output",
        description="Run PostgreSQL isolation-tester specs in a fresh database and print the "
        "output the isolation tester would (standard error lines included, as pg_regress "
        "records them); with several specs or a schedule, one summary line per spec. Server "
        "options also come from PGLOCKS_* variables; PGOPTIONS and PG_TEST_TIMEOUT_DEFAULT "
        "are honoured as by the isolation tester.",
    )
    isolation.add_argument("specs", metavar="SPEC", type=Path, nargs="*", help="spec files")
    isolation.add_argument(
        "--schedule",
        metavar="FILE",
        type=Path,
        action="append",
        help="also run the tests of this pg_isolation_regress schedule ('test: NAME ...' "
        "lines; NAME is specs/NAME.spec beside it); repeatable",
    )
    server = isolation.add_mutually_exclusive_group()
    server.add_argument("--pg", metavar="VERSION", help="PostgreSQL major (14-18) or version")
    server.add_argument("--dsn", metavar="CONNINFO", help="use this existing server")
    isolation.add_argument(
        "--expected",
        metavar="FILE",
        type=Path,
        action="append",
        help="compare the one spec with this expected output (repeat for alternates); exit 1 "
        "with a unified diff when none matches",
    )
    isolation.add_argument(
        "--dbname",
        metavar="NAME",
        help="name of the database the specs run in (created, dropped afterwards); "
        "pg_isolation_regress uses isolation_regression",
    )
    isolation.add_argument(
        "--timeout",
        metavar="SECONDS",
        help="cancel a step after this long (default: the isolation tester's, twice "
        "PG_TEST_TIMEOUT_DEFAULT or 360)",
    )
    isolation.add_argument(
        "--facts",
        action="store_true",
        help="also print which steps waited for whom and which failed (to standard error)",
    )
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return isolation(args)
    except (SpecError, errors.PglocksError, pytest.UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return 130


def spec_paths(args: argparse.Namespace) -> list[Path]:
    """The specs named on the command line, then those of each schedule, checked to exist."""
    paths = list(args.specs)
    for schedule in args.schedule or ():
        if not schedule.is_file():
            raise errors.PglocksError(errors.SCHEDULE_NOT_FOUND.format(path=schedule))
        paths += read_schedule(schedule)
    if not paths:
        raise errors.PglocksError("name a spec file, or a schedule with --schedule FILE")
    for path in paths:
        if not path.is_file():
            raise errors.PglocksError(errors.SPEC_NOT_FOUND.format(path=path))
    return paths


def check_expected(args: argparse.Namespace, several: bool) -> None:
    if args.expected and several:
        raise errors.PglocksError(errors.EXPECTED_WITH_SEVERAL)
    for path in args.expected or ():
        if not path.is_file():
            raise errors.PglocksError(errors.EXPECTED_NOT_FOUND.format(path=path))
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            why = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
            raise errors.PglocksError(errors.EXPECTED_NOT_UTF8.format(path=path, why=why)) from None


def isolation(args: argparse.Namespace) -> int:
    paths = spec_paths(args)
    several = len(paths) > 1 or bool(args.schedule)
    check_expected(args, several)
    specs = [parse_file(path) for path in paths]
    given = {"pg": args.pg, "dsn": args.dsn, "timeout": args.timeout}
    flags = {name: f"--{name}" for name in given}
    settings = Settings.resolve(lambda option: given.get(option.name), flags=flags)
    timeout = settings.timeout.value if args.timeout else max_step_wait()
    run = Run(settings, run_id=new_run_id(), owner_pid=os.getpid(), worker_id=None)
    failed = 0
    try:
        server = run.server(lambda line: print(line, file=sys.stderr, flush=True))
        print(f"pglocks: {server.describe()}", file=sys.stderr, flush=True)
        databases = run.databases(server)
        dbname = create_database(databases, args.dbname)
        context = TestContext(
            server.conninfo(dbname), TestSettings(timeout, settings.deadlock_timeout.value, False)
        )
        echo = None if args.expected or several else _write
        try:
            for number, (path, spec) in enumerate(zip(paths, specs, strict=True), start=1):
                started = time.monotonic()
                outcome = run_spec(
                    spec, context, superuser=server.superuser, timeout=timeout, echo=echo
                )
                if args.facts:
                    print(outcome.facts(), file=sys.stderr)
                if not several:
                    return single_verdict(args, path, outcome)
                milliseconds = (time.monotonic() - started) * 1000
                matched, diff = compare(outcome.output, expected_files(path))
                failed += matched is None
                status = "ok    " if matched is not None else "not ok"
                print(f"{status} {number:<5} - {spec.name:<36} {milliseconds:8.0f} ms", flush=True)
                if matched is None:
                    sys.stderr.write(diff or f"{path}: no expected output to compare with\n")
        finally:
            context.close()
            databases.drop(dbname)
    finally:
        run.close()
    print(f"1..{len(paths)}")
    print(
        f"# All {len(paths)} tests passed."
        if not failed
        else f"# {failed} of {len(paths)} tests failed."
    )
    return MISMATCH if failed else OK


def create_database(databases: Databases, name: str | None) -> str:
    import psycopg

    try:
        return databases.create(name=name)
    except psycopg.errors.DuplicateDatabase:
        raise errors.PglocksError(errors.DATABASE_EXISTS.format(name=name)) from None


def single_verdict(args: argparse.Namespace, path: Path, outcome: SpecOutcome) -> int:
    """One spec: its output was printed, or is compared with ``--expected``."""
    if not args.expected:
        return OK if outcome.failure is None else MISMATCH
    matched, diff = compare(outcome.output, args.expected)
    if matched is None:
        sys.stdout.write(diff)
        return MISMATCH
    print(f"{path}: output matches {matched} ({outcome.seconds:.2f} s)", file=sys.stderr)
    return OK


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
