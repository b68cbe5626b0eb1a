"""``python -m bench [--pglocks-pg=N]``: pytest-pglocks timed, side by side with the alternatives.

Prints a Markdown table and writes it to bench/results/latest.md. Everything the runs create
lives in one private temporary directory, checked empty (and every server process gone) at
the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

import pytest

from . import Figure, ms
from .blocking import deadlock_test, detection, handwritten_deadlock
from .databases import create_drop, create_file_copy
from .exploring import EXAMPLE, explore_rates
from .goals import UNUSED_TESTS, Goal, kept_server_stop, unused_goals, unused_plugin
from .goals import table as goals_table
from .pytest_runs import (
    LOCK_SUITE,
    PGLOCKS_TESTS,
    PYTEST_POSTGRESQL_TESTS,
    SuiteRun,
    pglocks_launcher,
    pytest_postgresql_launcher,
    suite_run,
    write_tests,
)
from .schema import SchemaTimes, schema_setup
from .server_start import PHASES, REPO, StartSample, cold_sample, pytest_run, resolve, settings_for
from .server_start import start_stop as start_stop_in_process
from .specs import CORPUS, run_real_tester, run_specs

if TYPE_CHECKING:
    from pytest_pglocks.server import Server

STARTED = perf_counter()
RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"
PYTEST_DIR = "pytest-run"  # the generated test files
PYTEST_HOME = "pytest-home"  # basetemps and timing files of the pytest runs, emptied after each
GENERATED = {
    "test_one.py",
    "test_overhead_pglocks.py",
    "test_overhead_pytest_postgresql.py",
    "test_lock_suite.py",
    "pytest.ini",
    "__pycache__",
}
# Options giving a number of samples: (name, default, help).
COUNTS = (
    ("runs", 5, "samples of (a) and (b) server starts and of (e) (default 5)"),
    ("db-runs", 30, "samples of (d) create/drop database and (h) the deadlock test (default 30)"),
    ("latency-runs", 200, "samples of (g) blocked detection (default 200)"),
    ("handwritten-runs", 5, "samples of (h) the hand-written deadlock test (default 5)"),
    ("pytest-runs", 3, "pytest processes per plugin for (c) and (f) (default 3)"),
    ("tests", 30, "tests in each of those processes, at least 3 (default 30)"),
    ("suite-runs", 3, "(i) runs of the lock-test suite, serial and with -n 2 each (default 3)"),
    ("suite-tests", 200, "(i) tests in the lock-test suite (default 200)"),
    ("explore-runs", 5, "(j) explorations of each scenario (default 5)"),
    ("spec-runs", 1, "(k) runs of all the isolation specs (default 1)"),
    ("unused-runs", 10, "(l) pairs of unused-plugin runs, per bytecode mode (default 10)"),
    ("schema-runs", 10, "(m) per-test setups with a 200-table schema, each way (default 10)"),
    ("schema-tables", 200, "(m) tables of that schema (default 200)"),
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of pytest-pglocks, side by side with pytest-postgresql and "
        "hand-written tests (see bench/README.md). Progress goes to stderr, the table to stdout.",
    )
    parser.add_argument(
        "--pglocks-pg",
        metavar="VERSION",
        help="PostgreSQL major (14-18) or exact version; default as in pytest "
        "(PGLOCKS_PG, else the newest local major, else 17)",
    )
    for name, default, text in COUNTS:
        parser.add_argument(f"--{name}", type=int, default=default, metavar="N", help=text)
    parser.add_argument(
        "--specs",
        type=Path,
        default=CORPUS / "specs",
        metavar="DIR",
        help=f"folder of isolation specs to time; the row is skipped without it "
        f"(default {CORPUS / 'specs'})",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"Markdown file to write (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    for name, _, _ in COUNTS:
        if getattr(args, name.replace("-", "_")) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.tests < 3:
        parser.error("--tests must be at least 3 (the first and last tests are left out)")
    missing = [m for m in ("pytest_postgresql", "xdist") if importlib.util.find_spec(m) is None]
    if missing:
        parser.error(
            f"{' and '.join(missing)} missing: install the bench extra "
            "(pip install -e '.[dev,bench]'; make bench does, in .venv-bench)"
        )
    try:
        settings_for(args.pglocks_pg)
    except pytest.UsageError as exc:
        parser.error(str(exc))
    return args


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def progress(line: str) -> None:
    print(f"bench: [{perf_counter() - STARTED:3.0f} s] {line}", file=sys.stderr, flush=True)


def processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder`` (Linux; a PostgreSQL server's
    processes work in its data directory)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    inside = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if cwd.is_relative_to(folder):
            inside.append(int(entry.name))
    return inside


def check_nothing_leaked(samples: list[StartSample], tmp: Path) -> str:
    """Every server process gone, every data directory removed; raise if not."""
    from pytest_pglocks.server._process import wait_exit

    for sample in samples:
        for pid in sample.pids:
            if not wait_exit(pid, 30):
                raise RuntimeError(f"leak: process {pid} of {sample.root} is still running")
        if sample.root and Path(sample.root).exists():
            raise RuntimeError(f"leak: {sample.root} was not removed")
    for pid in processes_in(tmp.resolve()):
        if not wait_exit(pid, 30):
            raise RuntimeError(f"leak: process {pid} still runs in {tmp}")
    leftovers = sorted(p.name for p in tmp.iterdir() if p.name not in (PYTEST_DIR, PYTEST_HOME))
    for folder in (PYTEST_DIR, PYTEST_HOME):
        if (tmp / folder).exists():
            allowed = GENERATED if folder == PYTEST_DIR else set()
            leftovers += sorted(p.name for p in (tmp / folder).iterdir() if p.name not in allowed)
    if leftovers:
        raise RuntimeError(f"leak: left in {tmp}: {', '.join(leftovers)}")
    return (
        f"{len(samples)} servers started in-process or in fresh processes, plus the servers of "
        "the pytest runs (this plugin's and pytest-postgresql's): all processes exited (none "
        "works in the private directory), all data directories and basetemps were removed."
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
    figures: list[Figure],
    *,
    version: str,
    source: str,
    command: str,
    notes: list[str],
    goals: list[Goal],
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
        "## Goals",
        "",
        "Each goal beside its anchor, from the figures above (medians, ratios of medians).",
        "",
        *goals_table(goals),
        "",
    ]
    return "\n".join(lines)


@dataclass
class InProcess:
    """What runs in-process on the first warm server (one server, one database per test)."""

    latencies: list[float] = field(default_factory=list)
    round_trips: list[float] = field(default_factory=list)
    deadlocks: list[float] = field(default_factory=list)
    handwritten: list[float] = field(default_factory=list)
    deadlock_timeout: str = ""
    explorations: dict[str, tuple[list[float], tuple[int, int]]] = field(default_factory=dict)
    specs: list[float] = field(default_factory=list)
    specs_matched: int = 0
    schema: SchemaTimes | None = None
    tester_specs: list[float] = field(default_factory=list)

    def run(self, server: Server, args: argparse.Namespace, specs: list[Path]) -> None:
        progress(f"(g) blocked-detection latency, {args.latency_runs} runs")
        self.latencies, self.round_trips = detection(server, args.latency_runs)
        progress(f"(h) two-session deadlock test, {args.db_runs} runs")
        self.deadlocks = deadlock_test(server, args.db_runs)
        progress(f"(h) the same test hand-written, {args.handwritten_runs} runs")
        self.handwritten, self.deadlock_timeout = handwritten_deadlock(
            server, args.handwritten_runs
        )
        progress(f"(j) exploration throughput, {args.explore_runs} runs per scenario")
        self.explorations = explore_rates(server, args.explore_runs)
        if specs:
            progress(f"(k) {len(specs)} isolation specs, {args.spec_runs} runs")
            self.specs, self.specs_matched = run_specs(server, specs, args.spec_runs)
            from pytest_pglocks.isolation._reference import real_tester

            tester = real_tester(server)
            if tester is not None:
                progress(f"(k) the same with PostgreSQL's isolationtester, {args.spec_runs} runs")
                self.tester_specs = run_real_tester(server, tester, specs, args.spec_runs)
        progress(f"(m) a {args.schema_tables}-table schema per test, {args.schema_runs} runs")
        self.schema = schema_setup(server, args.schema_runs, args.schema_tables)


def _shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside: no machine's paths in results."""
    return (
        str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO) else str(path)
    )


def ratio(numerator: list[float], denominator: list[float]) -> str:
    return f"{statistics.median(numerator) / statistics.median(denominator):.1f}x"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pg: str | None = args.pglocks_pg
    command = "python -m bench" + (f" --pglocks-pg={pg}" if pg else "")
    specs = sorted(args.specs.glob("*.spec")) if args.specs.is_dir() else []
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

        # (d) runs on the servers of (b): the cost of a clone varies from one server (data
        # directory) to the next on some file systems, much less within one server.
        per_server = -(-args.db_runs // args.runs)
        progress(
            f"(b) warm start in this process, 1 + {args.runs} runs; "
            f"(d) per-test database, {per_server} runs on each"
        )
        creates: list[float] = []
        drops: list[float] = []
        file_copy: list[float] = []
        in_process = InProcess()

        def use(server: Server) -> None:
            if not in_process.latencies:
                in_process.run(server, args, specs)
            server_creates, server_drops = create_drop(server, per_server)
            creates.extend(server_creates)
            drops.extend(server_drops)
            if server.major >= 15:
                file_copy.extend(create_file_copy(server, per_server))

        samples.append(start_stop_in_process(settings))
        warm = [start_stop_in_process(settings, use=use) for _ in range(args.runs)]
        samples += warm

        workdir, home = tmp / PYTEST_DIR, tmp / PYTEST_HOME
        workdir.mkdir()
        home.mkdir()
        progress(f"(e) one-test pytest run, {args.runs} runs")
        runs = [pytest_run(pg, env, workdir) for _ in range(args.runs)]
        progress(f"(e) one-test pytest run on a server kept by --pglocks-reuse, {args.runs} runs")
        pytest_run(pg, env, workdir, "--pglocks-reuse")  # untimed: starts the kept server
        try:
            reused = [pytest_run(pg, env, workdir, "--pglocks-reuse") for _ in range(args.runs)]
        finally:
            kept_server_stop(env, workdir)

        progress(f"(l) plugin present but unused, {args.unused_runs} pairs of runs per mode")
        unused = unused_plugin(env, workdir, args.unused_runs)

        ours = pglocks_launcher(env, home)
        theirs = pytest_postgresql_launcher(env, home, binaries.bindir / "pg_ctl")
        progress(
            f"(c, f) {args.pytest_runs} pytest runs of {args.tests} tests with each plugin; "
            f"pytest-postgresql {theirs.description}"
        )
        ours_test = write_tests(workdir, "test_overhead_pglocks.py", PGLOCKS_TESTS, args.tests)
        theirs_test = write_tests(
            workdir, "test_overhead_pytest_postgresql.py", PYTEST_POSTGRESQL_TESTS, args.tests
        )
        ours_runs: list[SuiteRun] = []
        theirs_runs: list[SuiteRun] = []
        for _ in range(args.pytest_runs):  # alternated, so that drift affects both alike
            ours_runs.append(suite_run(ours, ours_test, "pglocks_server"))
            theirs_runs.append(suite_run(theirs, theirs_test, "postgresql_proc"))

        progress(f"(i) {args.suite_tests} lock tests, serial and -n 2, {args.suite_runs} runs")
        suite = write_tests(workdir, "test_lock_suite.py", LOCK_SUITE, args.suite_tests)
        serial: list[float] = []
        parallel: list[float] = []
        for _ in range(args.suite_runs):
            serial.append(ours.run(suite)[0])
            parallel.append(ours.run(suite, "-n", "2")[0])

        leak_note = check_nothing_leaked(samples, tmp)
    finally:
        tempfile.tempdir = saved_tempdir
        shutil.rmtree(tmp, ignore_errors=True)

    def per_test(runs: list[SuiteRun], phase: str | None = None) -> tuple[float, ...]:
        return tuple(value for run in runs for value in run.per_test(phase))

    def phase_rows(runs: list[SuiteRun], prefix: str = "") -> list[Figure]:
        return [
            Figure(f"{prefix}{phase}", per_test(runs, phase), indent=True)
            for phase in ("setup", "call", "teardown")
        ]

    ip = in_process
    figures = [
        Figure("(a) cold start: fresh process, binaries in cache", tuple(s.start for s in cold)),
        *phase_figures(cold),
        Figure(
            "(b) warm start: again, in a process that already did one", tuple(s.start for s in warm)
        ),
        Figure(
            "(c) start in pytest: `pglocks_server` fixture setup",
            tuple(run.start for run in ours_runs),
        ),
        Figure(
            "pytest-postgresql: `postgresql_proc` fixture setup, same binaries",
            tuple(run.start for run in theirs_runs),
            indent=True,
        ),
        Figure("server stop (watchdog, data directory removed)", tuple(s.stop for s in warm)),
        Figure(
            "pytest-postgresql: last test's teardown (its database, then `pg_ctl stop`)",
            tuple(run.last_teardown for run in theirs_runs),
            indent=True,
        ),
        Figure(
            "(d) per-test database: create + drop",
            tuple(map(sum, zip(creates, drops, strict=True))),
        ),
        Figure("CREATE DATABASE … TEMPLATE …", tuple(creates), indent=True),
        Figure("DROP DATABASE … WITH (FORCE)", tuple(drops), indent=True),
        *(
            [Figure("for comparison: CREATE … STRATEGY FILE_COPY", tuple(file_copy), indent=True)]
            if file_copy
            else []
        ),
        Figure("(e) `pytest` on one test: wall clock", tuple(wall for wall, _ in runs)),
        Figure("its `ready in` summary figure", tuple(ready for _, ready in runs), indent=True),
        Figure(
            "again, on the server kept by a previous run (`--pglocks-reuse`)",
            tuple(wall for wall, _ in reused),
            indent=True,
        ),
        Figure(
            "its `ready in` (the run's template database)",
            tuple(ready for _, ready in reused),
            indent=True,
        ),
        Figure("(f) per-test overhead in pytest: `pglocks` + `sessions(2)`", per_test(ours_runs)),
        *phase_rows(ours_runs),
        Figure(
            "pytest-postgresql: `postgresql` fixture (a database, a connection)",
            per_test(theirs_runs),
            indent=True,
        ),
        *phase_rows(theirs_runs, "pytest-postgresql: "),
        Figure("(g) blocked-detection: submit() → assert_blocks() returns", tuple(ip.latencies)),
        Figure("p99", (percentile(ip.latencies, 0.99),), indent=True),
        Figure("floor: one `SELECT 1` through a session", tuple(ip.round_trips), indent=True),
        Figure("(h) two-session deadlock test, end to end", tuple(ip.deadlocks)),
        Figure(
            f"hand-written: two threads, 0.1 s sleeps, deadlock_timeout {ip.deadlock_timeout}",
            tuple(ip.handwritten),
            indent=True,
        ),
        Figure(f"(i) {args.suite_tests} lock tests: `pytest`, wall clock", tuple(serial)),
        Figure("`pytest -n 2`", tuple(parallel), indent=True),
        *(
            Figure(
                f"(j) explore(): {label}, {run} of {brute_force} interleavings",
                tuple(rates),
                rate=True,
            )
            for label, (rates, (run, brute_force)) in ip.explorations.items()
        ),
    ]
    if ip.specs:
        figures.append(
            Figure(f"(k) {len(specs)} isolation specs, one database each", tuple(ip.specs))
        )
    if ip.tester_specs:
        figures.append(
            Figure("(k) the same specs, PostgreSQL's isolationtester", tuple(ip.tester_specs))
        )
    assert ip.schema is not None
    figures += [
        Figure(
            f"(m) {args.schema_tables}-table schema: per-test database cloned from its template",
            tuple(ip.schema.cloned),
        ),
        Figure(
            "the same DDL run in every test's database", tuple(ip.schema.per_test_ddl), indent=True
        ),
        Figure("the template's one build (`pglocks_schema`)", (ip.schema.build,), indent=True),
    ]
    for mode, (present, disabled) in unused.items():
        figures += [
            Figure(
                f"(l) `pytest` on {UNUSED_TESTS} trivial tests, plugin unused, {mode}",
                tuple(present),
            ),
            Figure("with `-p no:pglocks`", tuple(disabled), indent=True),
        ]
    setup = statistics.median(per_test(ours_runs, "setup"))
    theirs_setup = statistics.median(per_test(theirs_runs, "setup"))
    deadlock = statistics.median(ip.deadlocks)
    handwritten = statistics.median(ip.handwritten)
    one_test = statistics.median(wall for wall, _ in runs)
    second = statistics.median(wall for wall, _ in reused)
    speedup = statistics.median(serial) / statistics.median(parallel)
    goals = [
        *unused_goals(unused),
        Goal(
            "per-test database setup in pytest ((f) setup)",
            f"pytest-postgresql `postgresql` setup: {ms(theirs_setup)}",
            ms(setup),
            "≤ 10 ms",
            setup <= 0.010,
        ),
        Goal(
            "two-session deadlock test, end to end ((h))",
            f"hand-written: {ms(handwritten)}",
            ms(deadlock),
            "≤ 50 ms",
            deadlock <= 0.050,
        ),
        Goal(
            "deadlock test, hand-written / pglocks ((h))",
            f"hand-written: {ms(handwritten)}",
            f"{handwritten / deadlock:.1f}x",
            "≥ 20x",
            handwritten / deadlock >= 20,
        ),
        Goal(
            "`pytest` on one test, second run with `--pglocks-reuse` ((e))",
            f"throwaway server: {ms(one_test)}",
            ms(second),
            "≤ 500 ms",
            second <= 0.5,
        ),
        Goal(
            f"{args.suite_tests} lock tests, serial / `-n 2` ((i))",
            f"serial: {ms(statistics.median(serial))}",
            f"{speedup:.2f}x",
            "≥ 1.8x",
            speedup >= 1.8,
        ),
    ]
    if ip.tester_specs:
        spec_ratio = statistics.median(ip.specs) / statistics.median(ip.tester_specs)
        goals.append(
            Goal(
                f"{len(specs)} isolation specs, pglocks / PostgreSQL's isolationtester ((k))",
                f"isolationtester: {ms(statistics.median(ip.tester_specs))}",
                f"{spec_ratio:.2f}x",
                "≤ 1.5x",
                spec_ratio <= 1.5,
            )
        )
    notes = [
        "Download excluded: the binaries are resolved (and downloaded if needed) once before "
        "any sample.",
        "(a) = first `import psycopg` + `server._shared.acquire()` (binary search, initdb, "
        "start, template database) in a new Python process: what a test run pays once.",
        "(b) does the same work as (a) (a new data directory and template), so it only saves "
        "what a warm process saves; keeping a server between runs is (e)'s `--pglocks-reuse`.",
        f"(c), (f): {args.pytest_runs} pytest processes per plugin, alternated, each on "
        f"{args.tests} tests, timed by `bench.pytest_timing` (fixture setup and test phase "
        "durations); (f) leaves out each run's first and last test (server start and stop). "
        f"pytest-postgresql {pytest_postgresql_version()} ran {theirs.description}, with "
        "`--postgresql-exec` on the same `pg_ctl` and its default server settings (fsync on; "
        "this plugin's server runs with fsync off).",
        "Server stop: `server._shared.release()`: SIGTERM to the watchdog, which stops the "
        "server (SIGQUIT) and removes its directory; measured with (b).",
        f"(d) = one clone and one drop as the pool's thread does them (`Databases._clone()`, "
        f"`Databases._drop()`), {per_server} rounds on each server of (b) over one maintenance "
        "connection, after an untimed first round: the server's work that the pool moves off "
        "the tests' clock (what a test still waits for is (f)'s setup). The clone "
        "time varies more between servers (data directories) than within one. The plugin uses "
        "the server's default strategy (WAL_LOG on 15+); FILE_COPY is shown for comparison.",
        f"(g) {len(ip.latencies)} waits on a row lock held by an idle transaction; the time "
        "includes the statement reaching its lock. p99 is one value (its min = max).",
        "(h) = clone a database, two sessions, a deadlock with `expect_deadlock(victim=)`, "
        "close the sessions, drop the database (sessions run with deadlock_timeout=10ms). The "
        "hand-written version clones and drops a database the same way; two threads with "
        "plain psycopg connections each lock a row, sleep 0.1 s, lock the other row; the "
        "server's deadlock_timeout decides when one gets 40P01.",
        f"(i) a generated file of {args.suite_tests} tests (a table, two sessions, a row-lock "
        "wait asserted with `assert_blocks`, commit, result), each in its own database; "
        "alternated serial and `-n 2` runs.",
        "(e) again: after one untimed run with `--pglocks-reuse`, each run takes over the "
        "kept server (its `ready in` is its own template database); "
        "`pytest --pglocks-reuse-stop` stops it after the last sample.",
        f"(l) {args.unused_runs} pairs of `pytest` runs on {UNUSED_TESTS} trivial tests (no "
        "pglocks fixture), with the plugin and with `-p no:pglocks`, alternated, after an "
        "untimed pair, once with bytecode caching and once with `PYTHONDONTWRITEBYTECODE=1`; "
        "the goal compares the median of the pairwise differences.",
        "(j) = `Exploration.per_second` (interleavings run / time running them) of a new "
        f"scenario each run, built by {EXAMPLE.relative_to(REPO)}'s functions, without a "
        "control.",
        (
            f"(k) each spec of {_shown(args.specs)} parsed once, then run by "
            "`isolation.run_spec` on "
            f"a fresh database per spec; {ip.specs_matched} of {len(specs)} matched their "
            "expected output."
            + (
                " PostgreSQL's own isolationtester ran the same specs the same way (a fresh "
                "database each, one process per spec): pglocks / isolationtester = "
                f"{ratio(ip.specs, ip.tester_specs)} (target: at most 1.5x)."
                if ip.tester_specs
                else ""
            )
            if ip.specs
            else f"(k) skipped: no isolation specs in {args.specs}."
        ),
        f"(l) a generated schema of {args.schema_tables} tables (primary key, four columns, a "
        "unique index, a foreign key to the previous table), built once into its template as "
        "`pglocks_schema` does; then, alternated, a per-test database cloned from it and "
        "dropped, and an empty one into which the same DDL runs, then dropped.",
        "Ratios of medians (they depend less on the machine than the times): "
        f"server start in pytest, pytest-postgresql / pglocks = "
        f"{ratio([r.start for r in theirs_runs], [r.start for r in ours_runs])}; "
        f"per-test overhead, pglocks / pytest-postgresql = "
        f"{ratio(list(per_test(ours_runs)), list(per_test(theirs_runs)))}; "
        f"deadlock test, hand-written / pglocks = {ratio(ip.handwritten, ip.deadlocks)}; "
        f"{args.suite_tests} lock tests, serial / `-n 2` = {ratio(serial, parallel)}; "
        f"blocked detection / `SELECT 1` = {ratio(ip.latencies, ip.round_trips)}; "
        f"{args.schema_tables}-table schema, DDL per test / cloned template = "
        f"{ratio(ip.schema.per_test_ddl, ip.schema.cloned)}.",
        f"Leak check: {leak_note}",
    ]
    table = render(
        figures,
        version=binaries.version,
        source=f"{binaries.bindir}, {binaries.source}",
        command=command,
        notes=notes,
        goals=goals,
    )
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    progress(f"wrote {args.output}")
    return 0


def pytest_postgresql_version() -> str:
    from importlib.metadata import version

    return version("pytest-postgresql")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
