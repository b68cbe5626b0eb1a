"""The goals of issue 15, each beside its anchor: the run without the plugin, pytest-postgresql,
the hand-written test, the throwaway server, the serial run."""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

from . import ms

UNUSED_TESTS = 50
UNUSED_FILE = "test_unused_plugin.py"


@dataclass(frozen=True)
class Goal:
    """One goal: what is measured, against which anchor, and whether it is met."""

    name: str
    anchor: str
    measured: str
    target: str
    met: bool

    def row(self) -> str:
        return (
            f"| {self.name} | {self.anchor} | {self.measured} | {self.target} | "
            f"{'yes' if self.met else 'no'} |"
        )


def unused_plugin(
    env: dict[str, str], workdir: Path, runs: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall seconds of ``pytest`` on 50 trivial tests with the plugin present but unused, and
    with ``-p no:pglocks``, alternated; with bytecode caching, then without."""
    folder = workdir / "unused"
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / UNUSED_FILE).write_text(
        "".join(f"def test_{n}():\n    assert {n} == {n}\n\n\n" for n in range(UNUSED_TESTS))
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += ["-p", "no:pytest_postgresql", UNUSED_FILE]
    results: dict[str, tuple[list[float], list[float]]] = {}
    for label, bytecode in (("cached bytecode", True), ("PYTHONDONTWRITEBYTECODE=1", False)):
        child_env = dict(env)
        if bytecode:
            child_env.pop("PYTHONDONTWRITEBYTECODE", None)
        else:
            child_env["PYTHONDONTWRITEBYTECODE"] = "1"
        present: list[float] = []
        disabled: list[float] = []
        for index in range(runs + 1):  # the first pair is a warm-up (and writes the bytecode)
            for times, extra in ((present, []), (disabled, ["-p", "no:pglocks"])):
                started = perf_counter()
                subprocess.run(
                    argv[:3] + extra + argv[3:],
                    cwd=folder,
                    env=child_env,
                    capture_output=True,
                    check=True,
                    timeout=120,
                )
                if index:
                    times.append(perf_counter() - started)
        results[label] = (present, disabled)
    for path in sorted(folder.rglob("*"), reverse=True):  # its __pycache__ too
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()
    return results


def paired_extra(present: list[float], disabled: list[float]) -> float:
    """Median of the differences of alternated runs: the plugin's cost, drift cancelled."""
    return statistics.median(a - b for a, b in zip(present, disabled, strict=True))


def table(goals: list[Goal]) -> list[str]:
    return [
        "| Goal | Anchor | Measured | Target | Met |",
        "| --- | --- | ---: | ---: | :---: |",
        *(goal.row() for goal in goals),
    ]


def unused_goals(results: dict[str, tuple[list[float], list[float]]]) -> list[Goal]:
    goals = []
    for label, (present, disabled) in results.items():
        extra = paired_extra(present, disabled)
        goals.append(
            Goal(
                f"plugin present but unused, {UNUSED_TESTS} tests, {label}",
                f"`-p no:pglocks`: {ms(statistics.median(disabled))}",
                f"+{ms(extra)}",
                "≤ +10 ms",
                extra <= 0.010,
            )
        )
    return goals


def kept_server_stop(env: dict[str, str], workdir: Path) -> None:
    """``pytest --pglocks-reuse-stop``: the reuse runs leave nothing behind."""
    subprocess.run(
        [sys.executable, "-m", "pytest", "--pglocks-reuse-stop"],
        cwd=workdir,
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
