"""Server start and stop, timed through the package's own code (``server._shared``).

Run as ``python -m bench.server_start [--pglocks-pg=N]`` it is one cold-start sample: a fresh
process starts and stops one server and prints its timings as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_pglocks._settings import Settings
    from pytest_pglocks.server import Server
    from pytest_pglocks.server._binaries import Binaries

REPO = Path(__file__).resolve().parent.parent
# Phases of a start, in the order they happen; "other" is the rest of acquire().
PHASES = ("import psycopg", "resolve binaries", "initdb", "pg_ctl start", "template database")
READY = re.compile(r"pglocks: .*, ready in ([\d.]+) s")


def settings_for(pg: str | None) -> Settings:
    """The settings a plain run would get from the environment, with ``--pglocks-pg=pg``."""
    from pytest_pglocks._settings import OPTIONS, Setting, Settings, default_cache_dir

    values: dict[str, Setting[Any]] = {}
    for option in OPTIONS:
        raw = os.environ.get(option.env)
        if raw:
            values[option.name] = Setting(option.parse(raw, option.env), option.env)
        else:
            values[option.name] = Setting(option.default, "default")
    values["dsn"] = Setting(None, "default")  # the benchmark measures a server it starts
    if values["cache_dir"].value is None:
        values["cache_dir"] = Setting(default_cache_dir(), "default")
    if pg is not None:
        values["pg"] = Setting(OPTIONS[0].parse(pg, "--pglocks-pg"), "--pglocks-pg")
    return Settings(**values)


def resolve(settings: Settings) -> Binaries:
    """Find the binaries once, downloading them if needed, so that no sample includes that."""
    from pytest_pglocks.server._binaries import find_binaries

    return find_binaries(settings, progress=lambda line: print(line, file=sys.stderr))


@dataclass
class StartSample:
    """One start and stop of a server: totals and phases in seconds, what to check for leaks."""

    start: float
    stop: float
    phases: dict[str, float] = field(default_factory=dict)
    version: str = ""
    root: str = ""
    pids: tuple[int, ...] = ()


@contextmanager
def _timed_phases(phases: dict[str, float]) -> Iterator[None]:
    """Time the steps of ``_shared.acquire`` by wrapping the functions it calls."""
    from pytest_pglocks.server import _local, _shared

    def label_of_run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return str(args[4] if len(args) > 4 else kwargs.get("what", "other"))

    wrapped: list[tuple[Any, str, Callable[..., Any]]] = []
    targets = (
        (_shared, "find_binaries", lambda args, kwargs: "resolve binaries"),
        (_local, "_run", label_of_run),  # "initdb", then "pg_ctl start"
        (_shared, "_create_template", lambda args, kwargs: "template database"),
    )
    for module, name, label_of in targets:
        original = getattr(module, name, None)
        if original is None:  # renamed internals: that phase is simply not reported
            continue

        @functools.wraps(original)
        def timed(
            *args: Any,
            _original: Callable[..., Any] = original,
            _label_of: Callable[..., str] = label_of,
            **kwargs: Any,
        ) -> Any:
            started = perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                label = _label_of(args, kwargs)
                phases[label] = phases.get(label, 0.0) + perf_counter() - started

        setattr(module, name, timed)
        wrapped.append((module, name, original))
    try:
        yield
    finally:
        for module, name, original in reversed(wrapped):
            setattr(module, name, original)


def start_stop(settings: Settings, *, use: Callable[[Server], None] | None = None) -> StartSample:
    """Start a server as a run does (``_shared.acquire``), optionally use it, then stop it."""
    from pytest_pglocks._run import new_run_id
    from pytest_pglocks.server import _shared

    phases: dict[str, float] = {}
    shared_dir = Path(tempfile.mkdtemp(prefix="pglocks-bench-run-"))
    try:
        with _timed_phases(phases):
            started = perf_counter()
            server = _shared.acquire(
                settings,
                shared_dir,
                run_id=new_run_id(),
                owner_pid=os.getpid(),
                progress=lambda line: print(line, file=sys.stderr),
            )
            start = perf_counter() - started
        try:
            if use is not None:
                use(server)
        finally:
            stopping = perf_counter()
            _shared.release(shared_dir)
            stop = perf_counter() - stopping
    finally:
        shutil.rmtree(shared_dir, ignore_errors=True)
    process = server.process
    return StartSample(
        start=start,
        stop=stop,
        phases=phases,
        version=server.version,
        root=process.root if process else "",
        pids=(process.postmaster_pid, process.watchdog_pid) if process else (),
    )


def cold_sample(pg: str | None, env: dict[str, str]) -> StartSample:
    """Start and stop a server in a fresh Python process (nothing imported, nothing warm)."""
    argv = [sys.executable, "-m", "bench.server_start"]
    if pg is not None:
        argv.append(f"--pglocks-pg={pg}")
    out = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold-start sample failed:\n{out.stderr}")
    data = json.loads(out.stdout)
    data["pids"] = tuple(data["pids"])
    return StartSample(**data)


def pytest_run(
    pg: str | None, env: dict[str, str], workdir: Path, *options: str
) -> tuple[float, float]:
    """Wall time of ``pytest`` on one test using ``pglocks``, and its "ready in" figure."""
    test = workdir / "test_one.py"
    test.write_text(
        textwrap.dedent(
            """\
            def test_one(pglocks):
                assert pglocks.execute("SELECT 1") == [(1,)]
            """
        )
    )
    (workdir / "pytest.ini").write_text("[pytest]\n")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:pytest_postgresql"]
    argv += [*options, str(test)]
    if pg is not None:
        argv.append(f"--pglocks-pg={pg}")
    started = perf_counter()
    out = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    wall = perf_counter() - started
    ready = READY.search(out.stdout)
    if out.returncode != 0 or ready is None:
        raise RuntimeError(f"pytest run failed:\n{out.stdout}\n{out.stderr}")
    return wall, float(ready[1])


def main(argv: list[str]) -> int:
    """One cold-start sample, printed as JSON (the parent process runs this several times)."""
    parser = argparse.ArgumentParser(prog="python -m bench.server_start")
    parser.add_argument("--pglocks-pg", metavar="VERSION")
    args = parser.parse_args(argv)
    started = perf_counter()
    import psycopg  # noqa: F401 - a run imports it at its first connection: part of the start

    imported = perf_counter() - started
    sample = start_stop(settings_for(args.pglocks_pg))
    sample.start += imported
    sample.phases = {"import psycopg": imported, **sample.phases}
    print(json.dumps(asdict(sample)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
