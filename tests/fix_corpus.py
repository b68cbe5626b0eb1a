"""The corpus of PostgreSQL's isolation specs in ``tests/pg-isolation``, and its notes."""

from __future__ import annotations

from pathlib import Path

from pytest_pglocks.isolation import expected_files

CORPUS = Path(__file__).resolve().parent / "pg-isolation"
# The specs that come with at least one upstream expected file.
SPECS = sorted(path for path in (CORPUS / "specs").glob("*.spec") if expected_files(path))
# Per spec, why its expected file is not what a tester prints today (``NOTES.tsv``).
NOTES = dict(
    line.split("\t", 1)
    for line in (CORPUS / "NOTES.tsv").read_text(encoding="utf-8").splitlines()[1:]
    if line.strip()
)
# The tester's format before PostgreSQL 14, in which some stored expected files are.
OLD_FORMAT = "isolation tester before PostgreSQL 14"
# Where a stored expected file is of another version of its spec (other permutations).
OTHER_SPEC = "another version of the spec"
