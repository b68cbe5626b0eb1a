"""Stops a local server when the pytest run that owns it ends, however it ends.

Run as ``python -m pytest_pglocks.server._watchdog OWNER_PID POSTMASTER_PID ROOT RUN_DIR``,
detached; for a container (docker backend) as ``... docker OWNER_PID CONTAINER_ID RUN_DIR``,
which removes the container (``docker rm -f``) when the owner ends, however it ends.
It waits on the kernel for the owner (the pytest process, or xdist's controller) or the
postmaster to exit, or for SIGTERM (the owner's normal stop). Then it shuts the server down and
removes its directory, keeping the log of a server that exited on its own, unless the run
asked to keep it (``--pglocks-keep``), in which case it waits for whoever stops the server by
hand and cleans up after that.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import types
from pathlib import Path

from . import LocalProcess
from ._local import is_kept, stop_and_remove
from ._outage import keep_log
from ._process import wait_any_exit


class _Stop(Exception):
    pass


def _on_term(signum: int, frame: types.FrameType | None) -> None:
    raise _Stop


def _watch_container(owner: int, container_id: str, run_dir: str) -> int:
    from ._docker import remove

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    owner_died = False
    with contextlib.suppress(_Stop):
        owner_died = owner in wait_any_exit([owner])
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    remove(container_id)
    if owner_died:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "docker":
        return _watch_container(int(argv[1]), argv[2], argv[3])
    owner, postmaster, root, run_dir = int(argv[0]), int(argv[1]), argv[2], argv[3]
    process = LocalProcess(
        root=root,
        datadir=str(Path(root) / "data"),
        postmaster_pid=postmaster,
        watchdog_pid=0,
        run_as=None,
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    owner_died = False
    try:
        exited = wait_any_exit([owner, postmaster])
        owner_died = owner in exited
    except _Stop:  # the owner's normal stop: it still holds its lock inside the run directory
        exited = {owner}
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if postmaster not in exited and is_kept(process):
        wait_any_exit([postmaster])
    elif exited == {postmaster} and not is_kept(process):  # it died while the run goes on
        keep_log(process, Path(run_dir))
    stop_and_remove(process)
    if owner_died:  # nobody else will remove the run's shared files
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
