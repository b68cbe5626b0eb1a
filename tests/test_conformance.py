"""Conformance with PostgreSQL's isolation tester: its own specs must give its own output.

The corpus (26 specs and expected files from PostgreSQL's suite) is read from
``../shared/conformance/pg-isolation``, beside the project; the terminal summary reports how
many matched on the server of the run (``fix_conformance.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_pglocks import Pglocks
from pytest_pglocks.isolation import compare, expected_files

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "pg-isolation"
SPECS = sorted((CORPUS / "specs").glob("*.spec"))

# Expected files that record a newer server's behaviour: (first major that matches, why).
# docs/isolation.md lists them; a backport to an older minor turns the xfail into a failure.
NEEDS_NEWER = {
    "ddl-dependency-locking": (
        16,
        "CREATE/ALTER that references an object being dropped waits for the DROP and fails "
        "with 'referenced ... was concurrently dropped'; older servers neither wait nor fail",
    ),
    "lock-nowait": (
        17,
        "LOCK ... NOWAIT is granted ahead of a queued waiter when it conflicts with no held "
        "lock; older servers refuse it with 'could not obtain lock'",
    ),
}


def server_major(pglocks: Pglocks) -> int:
    match = re.match(r"\d+", pglocks.server.version)
    assert match is not None
    return int(match[0])


@pytest.mark.skipif(not SPECS, reason=f"conformance corpus not found at {CORPUS}")
@pytest.mark.parametrize("spec", SPECS, ids=[path.stem for path in SPECS])
def test_spec_matches_isolation_tester(
    pglocks: Pglocks, spec: Path, request: pytest.FixtureRequest
) -> None:
    newer = NEEDS_NEWER.get(spec.stem)
    if newer is not None and server_major(pglocks) < newer[0]:
        request.applymarker(
            pytest.mark.xfail(reason=f"expected file needs PostgreSQL {newer[0]}+: {newer[1]}")
        )
    outcome = pglocks.run_spec(spec)
    matched, diff = compare(outcome.output, expected_files(spec))
    request.node.user_properties.append(("conformance", "match" if matched else "differs"))
    request.node.user_properties.append(("conformance_seconds", outcome.seconds))
    assert matched is not None, diff
