"""``python -m bench [--pglocks-pg=N]``: time server start, stop and per-test databases.

Prints a Markdown table and writes it to bench/results/latest.md. Everything the runs create
lives in one private temporary directory, checked empty (and every server process gone) at
the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import Figure
from .blocking import deadlock_test, detection
from .databases import create_drop, create_file_copy
from .server_start import PHASES, StartSample, cold_sample, pytest_run, resolve, settings_for
from .server_start import start_stop as start_stop_in_process

if TYPE_CHECKING:
    from pytest_pglocks.server import Server

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
PYTEST_DIR = "pytest-run"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks of pytest-pglocks (see bench/README.md)."
    )
    parser.add_argument(
        "--pglocks-pg",
        metavar="VERSION",
        help="PostgreSQL major (14-18) or exact version; default as in pytest "
        "(PGLOCKS_PG, else the newest local major, else 17)",
    )
    parser.add_argument("--runs", type=int, default=5, help="samples of each start (default 5)")
    parser.add_argument(
        "--db-runs", type=int, default=30, help="samples of create/drop database (default 30)"
    )
    parser.add_argument(
        "--latency-runs", type=int, default=200, help="samples of blocked detection (default 200)"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"Markdown file to write (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.db_runs < 1:
        parser.error("--runs and --db-runs must be at least 1")
    try:
        settings_for(args.pglocks_pg)
    except pytest.UsageError as exc:
        parser.error(str(exc))
    return args


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def progress(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def check_nothing_leaked(samples: list[StartSample], tmp: Path) -> str:
    """Every server process gone, every data directory removed; raise if not."""
    from pytest_pglocks.server._process import wait_exit

    for sample in samples:
        for pid in sample.pids:
            if not wait_exit(pid, 30):
                raise RuntimeError(f"leak: process {pid} of {sample.root} is still running")
        if sample.root and Path(sample.root).exists():
            raise RuntimeError(f"leak: {sample.root} was not removed")
    leftovers = sorted(path.name for path in tmp.iterdir() if path.name != PYTEST_DIR)
    pytest_dir = tmp / PYTEST_DIR
    if pytest_dir.exists():
        ours = {"test_one.py", "pytest.ini", "__pycache__"}
        leftovers += sorted(p.name for p in pytest_dir.iterdir() if p.name not in ours)
    if leftovers:
        raise RuntimeError(f"leak: left in {tmp}: {', '.join(leftovers)}")
    return (
        f"{len(samples)} servers started in-process or in fresh processes, plus the pytest "
        "runs' servers: all processes exited and all directories were removed."
    )


def phase_figures(samples: list[StartSample]) -> list[Figure]:
    """The breakdown of a start, one indented row per phase that every sample reported."""
    figures = []
    for phase in PHASES:
        if all(phase in sample.phases for sample in samples):
            figures.append(Figure(phase, tuple(s.phases[phase] for s in samples), indent=True))
    other = tuple(
        sample.start - sum(sample.phases.get(phase, 0.0) for phase in PHASES) for sample in samples
    )
    figures.append(
        Figure("other: free port, run-as check, watchdog, state file", other, indent=True)
    )
    return figures


def render(
    figures: list[Figure], *, version: str, source: str, command: str, notes: list[str]
) -> str:
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    cpu_text = f"{cpus} CPUs" + (f" ({usable} usable)" if usable != cpus else "")
    user = "root (server runs as nobody)" if os.geteuid() == 0 else "a regular user"
    lines = [
        "# pytest-pglocks benchmarks",
        "",
        f"- PostgreSQL {version} ({source})",
        f"- Python {platform.python_version()}, {cpu_text}, {platform.platform()}, as {user}",
        f"- `{command}`, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "| Measurement | Median | Min | Max | Runs |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(figure.row() for figure in figures),
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pg: str | None = args.pglocks_pg
    command = "python -m bench" + (f" --pglocks-pg={pg}" if pg else "")
    # One private temporary directory for everything the runs create, so that the leak check
    # is exact even while other test runs use the machine. As root the server (user nobody)
    # must be able to traverse it.
    tmp = Path(tempfile.mkdtemp(prefix="pglocks-bench-"))
    tmp.chmod(0o755)
    saved_tempdir = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("PGLOCKS_DSN", None)
    samples: list[StartSample] = []
    try:
        settings = settings_for(pg)
        binaries = resolve(settings)
        progress(f"PostgreSQL {binaries.version} from {binaries.bindir} ({binaries.source})")

        progress(f"(a) cold start in a fresh process, {args.runs} runs")
        cold = [cold_sample(pg, env) for _ in range(args.runs)]
        samples += cold

        # (c) runs on the servers of (b): the cost of a clone varies from one server (data
        # directory) to the next on some file systems, much less within one server.
        per_server = -(-args.db_runs // args.runs)
        progress(
            f"(b) warm start in this process, 1 + {args.runs} runs; "
            f"(c) per-test database, {per_server} runs on each"
        )
        creates: list[float] = []
        drops: list[float] = []
        file_copy: list[float] = []
        latencies: list[float] = []
        round_trips: list[float] = []
        deadlocks: list[float] = []

        def use(server: Server) -> None:
            if not latencies:
                progress(f"(e) blocked-detection latency, {args.latency_runs} runs")
                latencies[:], round_trips[:] = detection(server, args.latency_runs)
                progress(f"(f) two-session deadlock test, {args.db_runs} runs")
                deadlocks[:] = deadlock_test(server, args.db_runs)
            server_creates, server_drops = create_drop(server, per_server)
            creates.extend(server_creates)
            drops.extend(server_drops)
            if server.major >= 15:
                file_copy.extend(create_file_copy(server, per_server))

        samples.append(start_stop_in_process(settings))
        warm = [start_stop_in_process(settings, use=use) for _ in range(args.runs)]
        samples += warm

        progress(f"(d) one-test pytest run, {args.runs} runs")
        workdir = tmp / PYTEST_DIR
        workdir.mkdir()
        runs = [pytest_run(pg, env, workdir) for _ in range(args.runs)]

        leak_note = check_nothing_leaked(samples, tmp)
    finally:
        tempfile.tempdir = saved_tempdir
        shutil.rmtree(tmp, ignore_errors=True)

    figures = [
        Figure("(a) cold start: fresh process, binaries in cache", tuple(s.start for s in cold)),
        *phase_figures(cold),
        Figure(
            "(b) warm start: again, in a process that already did one", tuple(s.start for s in warm)
        ),
        Figure("server stop (watchdog, data directory removed)", tuple(s.stop for s in warm)),
        Figure(
            "(c) per-test database: create + drop",
            tuple(map(sum, zip(creates, drops, strict=True))),
        ),
        Figure("CREATE DATABASE … TEMPLATE …", tuple(creates), indent=True),
        Figure("DROP DATABASE … WITH (FORCE)", tuple(drops), indent=True),
        *(
            [Figure("for comparison: CREATE … STRATEGY FILE_COPY", tuple(file_copy), indent=True)]
            if file_copy
            else []
        ),
        Figure("(d) `pytest` on one test: wall clock", tuple(wall for wall, _ in runs)),
        Figure("its `ready in` summary figure", tuple(ready for _, ready in runs), indent=True),
        Figure("(e) blocked-detection: submit() → assert_blocks() returns", tuple(latencies)),
        Figure("p99", (percentile(latencies, 0.99),), indent=True),
        Figure("floor: one `SELECT 1` through a session", tuple(round_trips), indent=True),
        Figure("(f) two-session deadlock test, end to end", tuple(deadlocks)),
    ]
    notes = [
        "Download excluded: the binaries are resolved (and downloaded if needed) once before "
        "any sample.",
        "(a) = first `import psycopg` + `server._shared.acquire()` (binary search, initdb, "
        "start, template database) in a new Python process: what a test run pays once.",
        "(b) does the same work as (a): nothing (initialised data directory, template) is "
        "reused between starts yet, so it only saves what a warm process saves.",
        "Server stop: `server._shared.release()`: SIGTERM to the watchdog, which stops the "
        "server (SIGQUIT) and removes its directory; measured with (b).",
        f"(c) = `Databases.create()` + `Databases.drop()`, {per_server} rounds on each server "
        "of (b) over its one maintenance connection, after an untimed first round. The clone "
        "time varies more between servers (data directories) than within one. The plugin uses "
        "the server's default strategy (WAL_LOG on 15+); FILE_COPY is shown for comparison.",
        f"(e) {len(latencies)} waits on a row lock held by an idle transaction; the time "
        "includes the statement reaching its lock. p99 is one value (its min = max).",
        "(f) = clone a database, two sessions, a deadlock with `expect_deadlock(victim=)`, "
        "close the sessions, drop the database (sessions run with deadlock_timeout=10ms).",
        f"Leak check: {leak_note}",
    ]
    table = render(
        figures,
        version=binaries.version,
        source=f"{binaries.bindir}, {binaries.source}",
        command=command,
        notes=notes,
    )
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    progress(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
