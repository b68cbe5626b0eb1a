"""``make conformance``: the differential on each PostgreSQL major, recorded and tabulated.

Runs ``tests/test_differential.py`` with every spec of the corpus on each major given (``REPEAT``
runs of each spec), records per major and spec whether our output was the real isolation
tester's on every run and which upstream expected file the real tester's output matched, in
``tests/pg-isolation/conformance.json``, and writes the table of ``docs/isolation.md`` from it.
The reasons for the exceptions are in ``tests/pg-isolation/NOTES.tsv``.

    python tests/conformance.py [--repeat N] MAJOR...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fix_corpus import CORPUS, NOTES

ROOT = Path(__file__).resolve().parent.parent
RECORD = CORPUS / "conformance.json"
DOC = ROOT / "docs" / "isolation.md"
BEGIN, END = "<!-- conformance table: make conformance -->", "<!-- end of conformance table -->"


def run_major(major: str, repeat: int) -> dict[str, Any]:
    """Run the differential on one major; per spec: runs, same runs, expected file matched."""
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "record.jsonl"
        env = dict(os.environ)
        env.update(
            PGLT_DIFFERENTIAL="all",
            PGLT_DIFFERENTIAL_REPEAT=str(repeat),
            PGLT_CONFORMANCE_RECORD=str(record),
        )
        command = [sys.executable, "-m", "pytest", "tests/test_differential.py"]
        command += [f"--pglocks-pg={major}", "-q"]
        subprocess.run(command, cwd=ROOT, env=env, check=False)
        lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    specs: dict[str, Any] = {}
    version = ""
    for line in lines:
        result = json.loads(line)
        version = result["version"]
        entry = specs.setdefault(result["spec"], {"runs": 0, "same": 0, "expected": set()})
        entry["runs"] += 1
        entry["same"] += bool(result["same"])
        entry["expected"].add(result["expected"])
    for entry in specs.values():
        matched = entry["expected"]  # the same file on every run, or None
        entry["expected"] = matched.pop() if len(matched) == 1 else None
    return {"version": version, "repeat": repeat, "specs": specs}


def cell(entry: dict[str, Any] | None, name: str) -> str:
    if entry is None:
        return "-"
    same = f"{entry['same']}/{entry['runs']} same"
    if entry["same"] != entry["runs"]:
        same = f"**{same}**"
    if not (CORPUS / "expected" / f"{name}.out").exists():
        return f"{same}, no expected file here"
    return f"{same}, {'expected file' if entry['expected'] else '**other output**'}"


def table(record: dict[str, Any]) -> str:
    majors = sorted(record, key=int)
    reasons = NOTES
    head = ["spec"] + [f"PostgreSQL {record[m]['version']}" for m in majors]
    lines = ["| " + " | ".join(head + ["why an exception"]) + " |"]
    lines.append("|" + "---|" * (len(head) + 1))
    names = sorted({name for m in majors for name in record[m]["specs"]})
    for name in names:
        cells = [cell(record[m]["specs"].get(name), name) for m in majors]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {reasons.get(name, '')} |")
    return "\n".join(lines)


def write_doc(record: dict[str, Any]) -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n\n" + table(record) + "\n\n" + text[end:], encoding="utf-8")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--repeat", type=int, default=1, help="runs of each spec per major")
    options.add_argument("majors", nargs="+", help="PostgreSQL majors, e.g. 14 15 16 17 18")
    args = options.parse_args()
    record = json.loads(RECORD.read_text(encoding="utf-8")) if RECORD.exists() else {}
    for major in args.majors:
        record[major] = run_major(major, args.repeat)
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_doc(record)


if __name__ == "__main__":
    main()
