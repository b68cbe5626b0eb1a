"""PostgreSQL's own isolation tester and ours, on the same server, database and settings.

Where the server's install has the real ``isolationtester`` (``lib/pgxs/src/test/isolation``
beside ``bin``), each spec of the corpus runs with both, each in a fresh database cloned from
the run's template (a tester that stops at a failed setup leaves its objects behind), and the
outputs must be the same bytes: the tester's standard output and error together,
as ``pg_isolation_regress`` records them, against ours. Both get the regression driver's
settings and ``application_name`` (``PGAPPNAME=isolation/<spec>``, as pg_isolation_regress
sets it).

A spec that names its database (``isolation_regression``, as ``pg_regress`` calls it) runs
with both in a database of that name, one after the other, and the roles it creates are
dropped before each run: a run that fails half way leaves them behind (they belong to the
server, not the database).

``PGLT_DIFFERENTIAL=all`` runs every spec of the corpus (CI does on one major, ``make
conformance`` on each), ``PGLT_DIFFERENTIAL=NAME,NAME`` those specs,
``PGLT_DIFFERENTIAL=waiting`` the specs of ``WAITING`` the corpus has (CI repeats them),
``PGLT_DIFFERENTIAL=waits`` every spec whose expected output has a waiting step;
without it, the specs in ``QUICK`` run.
``PGLT_DIFFERENTIAL_REPEAT=N`` runs each spec N times, ``PGLT_DIFFERENTIAL_LOAD=N`` beside N
CPU-bound processes (the timing of a loaded machine). Each result is recorded for the
conformance table (``fix_conformance.py``, ``tests/conformance.py``). A spec whose reason in
``pg-isolation/NOTES.tsv`` starts with "our runner differs:" is a known difference of our
runner: it xfails (strictly, so that a fix shows).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fix_corpus import CORPUS, NOTES
from fix_named_database import NAMED_DATABASE, named_database, run_ours
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_pglocks import Pglocks, Server
from pytest_pglocks.isolation import compare, expected_files, max_step_wait
from pytest_pglocks.isolation._reference import environment_for, real_tester

ALL_SPECS = sorted((CORPUS / "specs").glob("*.spec"))
# Specs with waiting steps, several waiters released at once, notices, a deadlock and one
# that names its database.
QUICK = {
    "deadlock-simple",
    "insert-conflict-toast",
    "fk-deadlock",
    "skip-locked",
    "nowait-4",
    "intra-grant-inplace-db",
}
# Specs whose output depends on when a wait is seen: notices raised just before it, waiters
# released together (upstream names; the corpus may not have them all).
WAITING = {"insert-conflict-toast", "eval-plan-qual-trigger", "insert-conflict-specconflict"}


def shows_a_wait(spec: Path) -> bool:
    """Whether an expected file of ``spec`` has a step that waits."""
    return any("<waiting ...>" in path.read_text("utf-8") for path in expected_files(spec))


def chosen_specs(choice: str) -> list[Path]:
    """The specs ``PGLT_DIFFERENTIAL`` picks; a name the corpus lacks is a usage error."""
    stems = {path.stem for path in ALL_SPECS}
    if choice == "all":
        return ALL_SPECS
    if choice == "waiting":
        names = WAITING & stems
    elif choice == "waits":
        names = {path.stem for path in ALL_SPECS if shows_a_wait(path)}
    else:
        names = {name.strip() for name in choice.split(",") if name.strip()} or QUICK
    if names - stems:
        raise pytest.UsageError(
            f"PGLT_DIFFERENTIAL names specs that are not in {CORPUS / 'specs'}: "
            + ", ".join(sorted(names - stems))
        )
    return [path for path in ALL_SPECS if path.stem in names]


SPECS = chosen_specs(os.environ.get("PGLT_DIFFERENTIAL", ""))
REPEAT = int(os.environ.get("PGLT_DIFFERENTIAL_REPEAT", "1"))
LOAD = int(os.environ.get("PGLT_DIFFERENTIAL_LOAD", "0"))
# Busy until its parent (this test process) is gone, however that ends.
HOG = "import os, sys\nwhile os.getppid() == int(sys.argv[1]):\n    pass\n"
RUNNER_DIFFERENCE = "our runner differs:"


def run_real_tester(tester: Path, server: Server, dsn: str, spec: Path) -> str:
    """The real tester's output, standard error included, with pg_isolation_regress's
    environment; its own libpq first (the downloaded binaries' RUNPATH points nowhere)."""
    env = environment_for(tester, server, PGAPPNAME=f"isolation/{spec.stem}")
    with spec.open("rb") as stdin:
        done = subprocess.run(
            [str(tester), dsn],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=4 * max_step_wait(),
            check=False,
        )
    return done.stdout.decode("utf-8", "replace")


def run_both_in_the_named_database(tester: Path, pglocks: Pglocks, spec: Path) -> tuple[str, str]:
    """The real tester's output and ours, each in a fresh database named ``NAMED_DATABASE``
    (the CLI's ``--dbname``)."""
    with named_database(pglocks, spec) as dsn:
        real = run_real_tester(tester, pglocks.server, dsn, spec)
    with named_database(pglocks, spec) as dsn:
        ours = run_ours(pglocks.server, dsn, spec)
    return real, ours


@pytest.fixture(scope="module", autouse=True)
def cpu_load() -> Iterator[None]:
    """``LOAD`` processes that keep a core busy while this module's specs run."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(os.getpid())]) for _ in range(LOAD)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.fixture
def tester(pglocks_server: Server) -> Path:
    found = real_tester(pglocks_server)
    if found is None:
        pytest.skip(f"no isolationtester in the install of {pglocks_server.describe()}")
    return found


@pytest.fixture
def tester_dsn(pglocks: Pglocks) -> Iterator[str]:
    """A database of its own for the real tester, beside the test's, dropped afterwards."""
    server = pglocks.server
    dbname = f"{conninfo_to_dict(pglocks.dsn)['dbname']}_real"
    name = sql.Identifier(dbname)
    with psycopg.connect(server.dsn, autocommit=True) as maintenance:
        maintenance.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(name, sql.Identifier(server.template))
        )
        try:
            yield make_conninfo(pglocks.dsn, dbname=dbname)
        finally:
            maintenance.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))


@pytest.mark.parametrize("repeat", range(REPEAT), ids=lambda n: f"run{n + 1}")
@pytest.mark.parametrize("spec", SPECS, ids=[path.stem for path in SPECS])
def test_same_output_as_the_real_tester(
    pglocks: Pglocks,
    tester: Path,
    tester_dsn: str,
    spec: Path,
    repeat: int,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    if NOTES.get(spec.stem, "").startswith(RUNNER_DIFFERENCE):
        request.applymarker(pytest.mark.xfail(reason=NOTES[spec.stem], strict=True))
    if NAMED_DATABASE in spec.read_text(encoding="utf-8"):
        real, ours = run_both_in_the_named_database(tester, pglocks, spec)
    else:
        real = run_real_tester(tester, pglocks.server, tester_dsn, spec)
        ours = pglocks.run_spec(spec, timeout=max_step_wait()).output
    upstream, _ = compare(real, expected_files(spec))
    request.node.user_properties.append(
        (
            "differential",
            {
                "spec": spec.stem,
                "major": pglocks.server.major,
                "version": pglocks.server.version,
                "same": ours == real,
                "waits": "<waiting ...>" in real,
                "expected": upstream.name if upstream else None,
            },
        )
    )
    assert real, "the real isolationtester printed nothing"
    saved = tmp_path / f"{spec.stem}.real.out"  # compare() diffs against files
    saved.write_text(real, encoding="utf-8")
    assert ours == real, compare(ours, [saved])[1]


def test_a_spec_naming_its_database_runs_there_after_a_failed_run_left_its_role(
    pglocks: Pglocks, tester: Path
) -> None:
    """The role of a run stopped before its teardown is dropped first (it would make the
    spec's CREATE ROLE fail); both testers run in a database of the name the spec uses."""
    spec = CORPUS / "specs" / "intra-grant-inplace-db.spec"
    with psycopg.connect(pglocks.server.dsn, autocommit=True) as maintenance:
        # Not while another worker runs the spec (its lock goes with this connection).
        maintenance.execute("SELECT pg_advisory_lock(hashtext(%s))", (NAMED_DATABASE,))
        maintenance.execute("DROP ROLE IF EXISTS regress_temp_grantee")
        maintenance.execute("CREATE ROLE regress_temp_grantee")
    real, ours = run_both_in_the_named_database(tester, pglocks, spec)
    assert "setup failed" not in real
    assert "step grant1: \n\tGRANT TEMP ON DATABASE isolation_regression" in real
    assert ours == real
    with psycopg.connect(pglocks.server.dsn, autocommit=True) as maintenance:
        left = maintenance.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'regress_temp_grantee'"
        ).fetchone()
    assert left == (0,)
