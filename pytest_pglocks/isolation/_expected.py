"""Where a spec's expected output lives, and comparing a run's output with it.

PostgreSQL's layout: ``specs/NAME.spec`` with ``expected/NAME.out`` and alternates
``expected/NAME_1.out`` ... beside ``specs/``; a run passes if it matches any one of them.
Files next to the spec, or in an ``expected/`` folder inside its folder, work too.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path


def candidate_dirs(spec_path: Path) -> list[Path]:
    """Folders searched for expected files, in order."""
    return [spec_path.parent, spec_path.parent / "expected", spec_path.parent.parent / "expected"]


def expected_files(spec_path: Path) -> list[Path]:
    """``NAME.out`` and its alternates ``NAME_N.out`` from the first folder that has any."""
    name = spec_path.stem
    alternate = re.compile(re.escape(name) + r"_(\d+)\.out")
    for folder in candidate_dirs(spec_path):
        if not folder.is_dir():
            continue
        found = [folder / f"{name}.out"] if (folder / f"{name}.out").is_file() else []
        numbered = []
        for path in folder.glob(f"{name}_*.out"):
            match = alternate.fullmatch(path.name)
            if match:
                numbered.append((int(match[1]), path))
        found += [path for _, path in sorted(numbered)]
        if found:
            return found
    return []


def new_expected_path(spec_path: Path) -> Path:
    """Where ``--pglocks-update-expected`` writes a new spec's output."""
    sibling = spec_path.parent.parent / "expected"
    if spec_path.parent.name == "specs" and sibling.is_dir():
        return sibling / f"{spec_path.stem}.out"
    return spec_path.with_suffix(".out")


def compare(output: str, files: list[Path]) -> tuple[Path | None, str]:
    """The file ``output`` matches, or None and the shortest unified diff against one."""
    diffs = []
    for path in files:
        expected = path.read_text(encoding="utf-8", errors="replace")
        if expected == output:
            return path, ""
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                output.splitlines(keepends=True),
                fromfile=str(path),
                tofile="actual output",
            )
        )
        diffs.append(diff)
    return None, min(diffs, key=len) if diffs else ""
