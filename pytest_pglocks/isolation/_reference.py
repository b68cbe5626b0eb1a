"""PostgreSQL's own ``isolationtester`` beside the spec runner: where an install keeps it and
the environment ``pg_isolation_regress`` gives it (the differential test and the bench)."""

from __future__ import annotations

import os
from pathlib import Path

from ..server import Server
from ._runner import regress_options


def real_tester(server: Server) -> Path | None:
    """The install's ``lib/pgxs/src/test/isolation/isolationtester``, if the server is a local
    one whose install has it."""
    if server.process is None:
        return None
    bindir = Path(server.source.split(", ", 1)[0])
    tester = bindir.parent / "lib" / "pgxs" / "src" / "test" / "isolation" / "isolationtester"
    return tester if tester.is_file() else None


def environment_for(tester: Path, server: Server, **more: str) -> dict[str, str]:
    """The regression driver's ``PGOPTIONS``, and the install's own libpq first: the
    downloaded binaries' RUNPATH points nowhere, and an older system libpq fails."""
    return {
        **os.environ,
        "PGOPTIONS": regress_options(server.superuser),
        "LD_LIBRARY_PATH": str(tester.parents[4]),
        **more,
    }
