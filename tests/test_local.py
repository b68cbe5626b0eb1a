"""The local server: run unprivileged when the tests run as root; the Server record."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import psycopg
import pytest
from fix_installs import FakeInstall
from fix_messages import assert_message

from pytest_pglocks import Pglocks, Server, errors
from pytest_pglocks.server import LocalProcess, _local, _process
from pytest_pglocks.server._binaries import Binaries
from pytest_pglocks.server._process import RUN_AS_USER

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def uids(pid: int) -> set[int]:
    """Real, effective, saved and filesystem uids of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError(f"no Uid line for {pid}")


@needs_root
def test_as_root_the_server_runs_as_nobody(pglocks: Pglocks, pglocks_server: Server) -> None:
    if pglocks_server.process is None:
        pytest.skip(f"the {pglocks_server.backend} backend's server is not ours")
    nobody = pwd.getpwnam(RUN_AS_USER).pw_uid
    assert pglocks_server.process.run_as == RUN_AS_USER
    ((backend_pid, datadir),) = pglocks.execute(  # type: ignore[misc]
        "SELECT pg_backend_pid(), current_setting('data_directory')"
    )
    assert uids(pglocks_server.process.postmaster_pid) == {nobody}
    assert uids(backend_pid) == {nobody}
    assert Path(datadir).stat().st_uid == nobody
    assert Path(pglocks_server.process.root).stat().st_uid == nobody


@needs_root
def test_as_root_binaries_the_server_account_cannot_run_are_refused(
    fake_install: FakeInstall, tmp_path: Path
) -> None:
    bindir = fake_install("16.4")  # inside pytest's tmp_path, which only root may enter
    with pytest.raises(errors.ServerError) as excinfo:
        _local.start(Binaries(bindir, "16.4", "test"), os.getpid(), tmp_path / "run")
    assert_message(str(excinfo.value), errors.RUN_AS_CANNOT_READ, user=RUN_AS_USER, bindir=bindir)


@needs_root
def test_as_root_without_the_server_account_the_run_says_how_to_create_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_process, "RUN_AS_USER", "pglocks-no-such-user")
    with pytest.raises(errors.ServerError) as excinfo:
        _process.run_as()
    assert_message(str(excinfo.value), errors.NO_RUN_AS_USER, user="pglocks-no-such-user")


@pytest.mark.parametrize(
    ("version", "major"), [("16.4", 16), ("17.11", 17), ("18beta1", 18), ("19devel", 19)]
)
def test_a_servers_major_is_read_from_any_version_string(version: str, major: int) -> None:
    server = Server("host=db", version, "dsn", "somewhere", "pglocks_x_template")
    assert server.major == major


def test_a_server_record_survives_the_trip_between_processes() -> None:
    process = LocalProcess("/tmp/pglocks-x", "/tmp/pglocks-x/data", 10, 11, "nobody")
    server = Server(
        "host=h port=1", "16.4", "local", "cache", "t", start_seconds=0.5, process=process
    )
    assert Server.from_json(server.to_json()) == server
    external = Server("host=h port=1", "16.4", "dsn", "u@h", "t")
    assert Server.from_json(external.to_json()) == external


def test_server_settings_reach_the_server_it_starts(pglocks_server: Server, tmp_path: Path) -> None:
    if pglocks_server.process is None:
        pytest.skip(f"the {pglocks_server.backend} backend's server is not ours")
    bindir = Path(pglocks_server.source.split(", ", 1)[0])
    binaries = Binaries(bindir, pglocks_server.version, "test")
    extra = {"max_prepared_transactions": "7"}
    dsn, process = _local.start(binaries, os.getpid(), tmp_path / "run", extra=extra)
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SHOW max_prepared_transactions").fetchone()
        assert row == ("7",)
    finally:
        _local.stop_and_remove(process)
