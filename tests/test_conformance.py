"""Conformance with PostgreSQL's isolation tester: its own specs must give its own output.

The corpus (specs and expected files of PostgreSQL's suite, ``tests/pg-isolation``, see its
``README.md``) ships with the repository; the terminal summary reports how many matched on the
server of the run (``fix_conformance.py``). ``test_differential.py`` runs the same specs with
PostgreSQL's own isolation tester beside ours.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fix_corpus import CORPUS, NOTES, SPECS
from fix_named_database import named_database, names_its_database, run_ours

from pytest_pglocks import Pglocks
from pytest_pglocks.isolation import compare, expected_files

# Per major, which expected file PostgreSQL's own tester matched (``make conformance``).
RECORD = json.loads((CORPUS / "conformance.json").read_text(encoding="utf-8"))


def known_difference(spec: str, major: int) -> str | None:
    """Why the expected file is not the real tester's output on this major, if it is not."""
    entry = RECORD.get(str(major), {}).get("specs", {}).get(spec)
    if entry is None or entry["expected"] is not None:
        return None
    return NOTES.get(spec, "no reason recorded in tests/pg-isolation/NOTES.tsv")


@pytest.mark.parametrize("spec", SPECS, ids=[path.stem for path in SPECS])
def test_spec_matches_isolation_tester(
    pglocks: Pglocks, spec: Path, request: pytest.FixtureRequest
) -> None:
    why = known_difference(spec.stem, pglocks.server.major)
    if why is not None:
        reason = f"PostgreSQL {pglocks.server.major}'s own tester does not match it either: {why}"
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))
    started = time.monotonic()
    if names_its_database(spec):
        with named_database(pglocks, spec) as dsn:
            output = run_ours(
                pglocks.server, dsn, spec, timeout=pglocks._context.settings.spec_timeout
            )
    else:
        output = pglocks.run_spec(spec).output
    matched, diff = compare(output, expected_files(spec))
    request.node.user_properties.append(("conformance", "match" if matched else "differs"))
    request.node.user_properties.append(("conformance_seconds", time.monotonic() - started))
    assert matched is not None, diff


def test_the_suites_server_prepares_transactions_as_pg_regress_does(
    pglocks: Pglocks, tmp_path: Path
) -> None:
    """``stats`` prepares transactions: pyproject's ``pglocks_server_settings`` allows two."""
    spec = tmp_path / "prepared.spec"
    spec.write_text(
        "setup { CREATE TABLE t (a int); }\nteardown { DROP TABLE t; }\n"
        "session s1\nstep insert { BEGIN; INSERT INTO t VALUES (1); }\n"
        "step prepare { PREPARE TRANSACTION 'a'; }\nstep commit { COMMIT PREPARED 'a'; }\n"
        "step count { SELECT count(*) FROM t; }\n",
        encoding="utf-8",
    )
    output = pglocks.run_spec(spec).output
    assert "ERROR" not in output
    assert "count\n-----\n    1\n(1 row)" in output
