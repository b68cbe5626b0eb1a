"""Stops a local server when the pytest run that owns it ends, however it ends.

Run as ``python -m pytest_pglocks.server._watchdog OWNER_PID POSTMASTER_PID ROOT RUN_DIR``,
detached; for a container (docker backend) as ``... docker OWNER_PID CONTAINER_ID RUN_DIR``,
which removes the container (``docker rm -f``) when the owner ends, however it ends; for a
server kept between runs (``--pglocks-reuse``) as ``... reuse POSTMASTER_PID ROOT RECORD
IDLE_SECONDS``, which stops it once it has been unused that long (see ``_reuse.py``).
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


def _watch_kept(postmaster: int, root: str, record_path: str, idle: float) -> int:
    from filelock import FileLock

    from . import _reuse

    record = Path(record_path)
    process = LocalProcess(
        root=root, datadir=str(Path(root) / "data"), postmaster_pid=postmaster,
        watchdog_pid=0, run_as=None,
    )  # fmt: skip
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_term)
    look_in = idle
    try:
        # Wakes up when the postmaster exits, or when the server may have become idle.
        while not wait_any_exit([postmaster], look_in):
            with FileLock(str(record.with_suffix(".lock"))):
                if not record.exists():
                    break  # stopped by hand
                if _reuse.in_use(record):
                    look_in = idle
                    continue
                unused = _reuse.idle_for(record)
                if unused >= idle:
                    _reuse.forget(record)
                    break
                look_in = idle - unused
    except _Stop:  # pytest --pglocks-reuse-stop
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stop_and_remove(process)
    if record.exists():  # not forgotten yet (the lock would bring its directory back)
        with FileLock(str(record.with_suffix(".lock"))):
            if _reuse.records_postmaster(record, postmaster):  # not a newer server's record
                _reuse.forget(record)
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "docker":
        return _watch_container(int(argv[1]), argv[2], argv[3])
    if argv[0] == "reuse":
        return _watch_kept(int(argv[1]), argv[2], argv[3], float(argv[4]))
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
