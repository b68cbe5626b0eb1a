"""Command line: ``python -m pytest_pglocks isolation SPEC [--pg N | --dsn CONNINFO]``.

Runs a spec on a server provisioned exactly as the pytest plugin does (same options, same
``PGLOCKS_*`` environment, same binaries and cache) and prints the isolation tester's output;
with ``--expected`` it compares instead and prints a unified diff on a mismatch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from . import errors
from ._context import TestContext, TestSettings
from ._run import Run, new_run_id
from ._settings import Settings
from .isolation import SpecError, compare, parse_file, run_spec

OK, MISMATCH, USAGE = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m pytest_pglocks", description="pytest-pglocks command line tools."
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    isolation = commands.add_parser(
        "isolation",
        help="run a PostgreSQL isolation-tester spec and print its output",
        description="Run a PostgreSQL isolation-tester spec on a fresh database and print the "
        "output the isolation tester would (standard error lines included, as pg_regress "
        "records them). Server options also come from PGLOCKS_* variables.",
    )
    isolation.add_argument("spec", metavar="SPEC", type=Path, help="the spec file")
    server = isolation.add_mutually_exclusive_group()
    server.add_argument("--pg", metavar="VERSION", help="PostgreSQL major (14-18) or version")
    server.add_argument("--dsn", metavar="CONNINFO", help="use this existing server")
    isolation.add_argument(
        "--expected",
        metavar="FILE",
        type=Path,
        action="append",
        help="compare with this expected output (repeat for alternates); exit 1 with a "
        "unified diff when none matches",
    )
    isolation.add_argument(
        "--timeout", metavar="SECONDS", help="cancel a step after this long (default 10)"
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


def isolation(args: argparse.Namespace) -> int:
    if not args.spec.is_file():
        raise errors.PglocksError(errors.SPEC_NOT_FOUND.format(path=args.spec))
    for path in args.expected or ():
        if not path.is_file():
            raise errors.PglocksError(errors.EXPECTED_NOT_FOUND.format(path=path))
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            why = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
            raise errors.PglocksError(errors.EXPECTED_NOT_UTF8.format(path=path, why=why)) from None
    spec = parse_file(args.spec)
    given = {"pg": args.pg, "dsn": args.dsn, "timeout": args.timeout}
    flags = {name: f"--{name}" for name in given}
    settings = Settings.resolve(lambda option: given.get(option.name), flags=flags)
    run = Run(settings, run_id=new_run_id(), owner_pid=os.getpid(), worker_id=None)
    try:
        server = run.server(lambda line: print(line, file=sys.stderr, flush=True))
        print(f"pglocks: {server.describe()}", file=sys.stderr, flush=True)
        databases = run.databases(server)
        dbname = databases.create()
        context = TestContext(
            server.conninfo(dbname),
            TestSettings(settings.timeout.value, settings.deadlock_timeout.value, False),
        )
        echo = None if args.expected else _write
        try:
            outcome = run_spec(
                spec,
                context,
                superuser=server.superuser,
                timeout=settings.timeout.value,
                echo=echo,
            )
        finally:
            context.close()
            databases.drop(dbname)
    finally:
        run.close()
    if args.facts:
        print(outcome.facts(), file=sys.stderr)
    if not args.expected:
        return OK if outcome.failure is None else MISMATCH
    matched, diff = compare(outcome.output, args.expected)
    if matched is None:
        sys.stdout.write(diff)
        return MISMATCH
    print(f"{args.spec}: output matches {matched} ({outcome.seconds:.2f} s)", file=sys.stderr)
    return OK


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
