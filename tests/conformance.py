"""``make conformance``: the differential on each PostgreSQL major, recorded and tabulated.

Runs ``tests/test_differential.py`` with every spec of the corpus on each major given (``REPEAT``
runs of each spec), records per major and spec whether our output was the real isolation
tester's on every run and which upstream expected file the real tester's output matched, in
``tests/pg-isolation/conformance.json``, and writes the table of ``docs/isolation.md`` from it.
The reasons for the exceptions are in ``tests/pg-isolation/NOTES.tsv``.

``--specs`` (``waiting``, ``waits`` or ``NAME,NAME``) records those specs' rows only, the
others stay as they were. ``--jobs N`` runs N specs at once (pytest-xdist). ``--load N`` (N
CPU-bound processes beside the runs) measures fidelity instead: the figures are printed, and
neither file is written.

    python tests/conformance.py [--repeat N] [--specs S] [--jobs N] [--load N] MAJOR...
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


def run_major(
    major: str, repeat: int, specs: str = "all", load: int = 0, jobs: int = 1
) -> dict[str, Any]:
    """Run the differential on one major; per spec: runs, same runs, whether the real tester's
    output had a waiting step, expected file matched."""
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "record.jsonl"
        env = dict(os.environ)
        env.update(
            PGLT_DIFFERENTIAL=specs,
            PGLT_DIFFERENTIAL_REPEAT=str(repeat),
            PGLT_DIFFERENTIAL_LOAD=str(load),
            PGLT_CONFORMANCE_RECORD=str(record),
        )
        command = [sys.executable, "-m", "pytest", "tests/test_differential.py"]
        command += [f"--pglocks-pg={major}", "-q"] + (["-n", str(jobs)] if jobs > 1 else [])
        subprocess.run(command, cwd=ROOT, env=env, check=False)
        lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    found: dict[str, Any] = {}
    version = ""
    for line in lines:
        result = json.loads(line)
        version = result["version"]
        entry = found.setdefault(
            result["spec"], {"runs": 0, "same": 0, "waits": False, "expected": set()}
        )
        entry["runs"] += 1
        entry["same"] += bool(result["same"])
        entry["waits"] |= bool(result["waits"])
        entry["expected"].add(result["expected"])
    for entry in found.values():
        matched = entry["expected"]  # the same file on every run, or None
        entry["expected"] = matched.pop() if len(matched) == 1 else None
    return {"version": version, "repeat": repeat, "specs": found}


def fidelity(result: dict[str, Any], load: int) -> str:
    """The measured figures of one major: per spec with a waiting step, same runs of all."""
    beside = f", beside {load} CPU-bound processes" if load else ", quiet"
    waiting = {name: e for name, e in sorted(result["specs"].items()) if e["waits"]}
    exact = sum(e["same"] == e["runs"] for e in waiting.values())
    lines = [
        f"PostgreSQL {result['version']}{beside}: {exact} of {len(waiting)} specs with a waiting"
        f" step printed the real tester's bytes on every one of {result['repeat']} runs"
    ]
    lines += [f"  {name}: {e['same']}/{e['runs']} same" for name, e in waiting.items()]
    return "\n".join(lines)


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
    options.add_argument("--specs", default="all", help="all, waiting, waits, or NAME,NAME")
    options.add_argument("--load", type=int, default=0, help="CPU-bound processes beside")
    options.add_argument("--jobs", type=int, default=1, help="specs run at once (xdist)")
    options.add_argument("majors", nargs="+", help="PostgreSQL majors, e.g. 14 15 16 17 18")
    args = options.parse_args()
    if args.repeat < 1 or args.jobs < 1 or args.load < 0:
        options.error("--repeat and --jobs take a positive number, --load zero or more")
    record = json.loads(RECORD.read_text(encoding="utf-8")) if RECORD.exists() else {}
    for major in args.majors:
        result = run_major(major, args.repeat, args.specs, args.load, args.jobs)
        print(fidelity(result, args.load), flush=True)
        if args.load:
            continue
        if args.specs != "all" and major in record:  # these rows only
            result = {**record[major], "specs": {**record[major]["specs"], **result["specs"]}}
        record[major] = result
        RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", "utf-8")
    if not args.load:
        write_doc(record)


if __name__ == "__main__":
    main()
