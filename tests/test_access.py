"""Only the run's own processes can enter its server: TCP needs the run's random password, and
the Unix socket lies in a directory that no other account may enter."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pytest_pglocks import Pglocks, Server
from pytest_pglocks.server import without_password

OTHER_ACCOUNT = "daemon"  # any account but the run's and the server's (nobody, as root)

pytestmark = pytest.mark.usefixtures("local_server")


@pytest.fixture
def local_server(pglocks_server: Server) -> Server:
    if pglocks_server.process is None:
        pytest.skip(f"the {pglocks_server.backend} backend's access is not the plugin's own")
    return pglocks_server


def _connect_error(conninfo: str) -> str | None:
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        return str(exc)
    return None


def _socket_conninfo(server: Server) -> str:
    assert server.process is not None
    return without_password(server.dsn, host=server.process.root)


def test_tcp_needs_the_runs_password(pglocks_server: Server) -> None:
    params = conninfo_to_dict(pglocks_server.dsn)
    assert params["host"] == "127.0.0.1"
    assert _connect_error(pglocks_server.dsn) is None  # the run's own conninfo works
    no_password = _connect_error(without_password(pglocks_server.dsn))
    assert no_password is not None
    assert "no password supplied" in no_password
    wrong = _connect_error(make_conninfo(pglocks_server.dsn, password="guess"))
    assert wrong is not None
    assert 'password authentication failed for user "postgres"' in wrong


def test_the_password_is_never_printed_nor_readable_by_others(
    pglocks_server: Server, pglocks: object
) -> None:
    password = conninfo_to_dict(pglocks_server.dsn)["password"]
    assert isinstance(password, str)
    assert len(password) >= 32
    assert password not in pglocks_server.describe()
    assert password not in repr(pglocks_server)
    assert password not in pglocks_server.printable_conninfo("x")
    from tempfile import gettempdir

    states = list(Path(gettempdir()).glob("pglocks-run-*/pglocks-server.json"))
    assert states  # this run's record of its server, at least
    for state in states:
        if password in state.read_text():
            assert state.stat().st_mode & 0o077 == 0
            assert state.parent.stat().st_mode & 0o077 == 0
            break
    else:
        raise AssertionError(f"no state file holds this run's server: {states}")


def _as_other_account(conninfos: dict[str, str]) -> dict[str, str | None]:
    """Try each conninfo from a child process running as another local account."""
    entry = pwd.getpwnam(OTHER_ACCOUNT)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.environ.update(HOME="/", PGPASSFILE="/dev/null")
            result = {name: _connect_error(conninfo) for name, conninfo in conninfos.items()}
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    os.waitpid(child, 0)
    assert data, "the child running as another account reported nothing"
    result: dict[str, str | None] = json.loads(data)
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as a second local account needs root")
def test_another_local_account_is_refused_over_tcp_and_over_the_socket(
    pglocks_server: Server,
) -> None:
    socket = _socket_conninfo(pglocks_server)
    assert _connect_error(socket) is None  # the run's own account: trust on its socket
    seen = _as_other_account(
        {
            "tcp": without_password(pglocks_server.dsn),
            "socket": socket,
            "tcp with the password": pglocks_server.dsn,  # the control: TCP itself works
        }
    )
    assert seen["tcp with the password"] is None
    assert seen["tcp"] is not None
    assert "no password supplied" in seen["tcp"]
    assert seen["socket"] is not None
    assert "Permission denied" in seen["socket"]


def test_the_plugins_own_connections_take_the_private_socket(pglocks: Pglocks) -> None:
    """Sessions and the setup connection skip TCP and the password exchange; ``pglocks.dsn``,
    for application code, stays on TCP."""
    if pglocks.server.process is None:
        pytest.skip("only a server this run started has a private socket")
    session = pglocks.session()
    rows = pglocks.execute(
        "SELECT pid = pg_catalog.pg_backend_pid(), client_addr IS NULL"
        " FROM pg_catalog.pg_stat_activity WHERE pid IN (pg_catalog.pg_backend_pid(), %s)"
        " ORDER BY 1",
        (session.pid,),
    )
    assert rows == [(False, True), (True, True)]
    assert conninfo_to_dict(pglocks.dsn)["host"] == "127.0.0.1"
