"""``make soak``: the examples (the real-world gallery among them) repeated many times under
``-n 2`` beside a CPU hog, then what the runs left behind. Not part of ``make test``.

    python tools/soak.py [--runs N] [--pg VERSION | --dsn CONNINFO] [--workers N]

Every test of ``examples/`` runs N times (pytest-repeat's ``--count``) in one pytest run on
the chosen server, while one busy process takes a core for at most the soak's duration. The
run's temporary files go to a directory of their own, so that leftovers are exactly what is
still in there afterwards, plus any process that mentions it and, on a ``--dsn`` server, any
``pglocks_`` database. Exit 0 only without failures and without leftovers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOG = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
HOG_BOUND = 6 * 3600  # seconds: the hog ends by itself even if the soak is killed
REPORT = "soak.xml"


def parser() -> argparse.ArgumentParser:
    soak = argparse.ArgumentParser(prog="make soak", description=__doc__.split("\n\n")[0])
    soak.add_argument("--runs", type=int, default=1000, help="repetitions of each test")
    server = soak.add_mutually_exclusive_group()
    server.add_argument("--pg", metavar="VERSION", help="PostgreSQL major (14-18) or version")
    server.add_argument("--dsn", metavar="CONNINFO", help="an existing server")
    soak.add_argument("--workers", type=int, default=2, help="pytest-xdist workers")
    return soak


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.runs < 1 or args.workers < 1:
        print("error: --runs and --workers take a positive whole number", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="pglocks-soak-"))
    tmp.chmod(0o755)  # as root the server runs as nobody, which must reach its directory
    command = [sys.executable, "-m", "pytest", "examples", "-q", "-p", "no:cacheprovider"]
    command += [f"--count={args.runs}", "-n", str(args.workers), f"--junitxml={tmp / REPORT}"]
    command += [f"--pglocks-pg={args.pg}"] if args.pg else []
    command += [f"--pglocks-dsn={args.dsn}"] if args.dsn else []
    print(f"soak: {' '.join(command[3:])}, beside a CPU hog", flush=True)
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(HOG_BOUND)])
    started = time.monotonic()
    try:
        returncode = subprocess.run(
            command, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)}, check=False
        ).returncode
    finally:
        hog.kill()
        hog.wait()
    minutes = (time.monotonic() - started) / 60
    tests, failed = _outcomes(tmp / REPORT)
    left = _leftovers(tmp, args.dsn)
    print(
        f"soak: {tests} test runs ({args.runs} rounds), {failed} failed or errored, "
        f"{minutes:.1f} min, pytest exit {returncode}"
    )
    print("soak: leftovers: " + ("; ".join(left) if left else "none"))
    if not left:
        shutil.rmtree(tmp)
    return 0 if returncode == 0 and failed == 0 and not left else 1


def _outcomes(report: Path) -> tuple[int, int]:
    """Tests run and tests failed or errored, from the JUnit XML report."""
    if not report.exists():
        return 0, 0
    suites = ElementTree.parse(report).getroot().iter("testsuite")
    counted = [
        (int(s.get("tests", 0)), int(s.get("failures", 0)) + int(s.get("errors", 0)))
        for s in suites
    ]
    return sum(t for t, _ in counted), sum(f for _, f in counted)


def _leftovers(tmp: Path, dsn: str | None) -> list[str]:
    left = [  # pytest's own temporary directories are not the plugin's
        f"file {tmp / name}"
        for name in sorted(os.listdir(tmp))
        if name != REPORT and not name.startswith("pytest-of-")
    ]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(tmp) in cmdline:
            left.append(f"process {entry.name}: {cmdline.strip()[:120]}")
    if dsn:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_catalog.pg_database WHERE datname LIKE 'pglocks\\_%'"
            ).fetchall()
        left += [f"database {name}" for (name,) in rows]
    return left


if __name__ == "__main__":
    sys.exit(main())
