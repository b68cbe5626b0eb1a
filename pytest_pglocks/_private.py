"""Files and directories that only the run's own account can read: the server's password is
in some of them (the state file, the conninfo of a --pglocks-reuse server)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import errors


def write_private(path: Path, text: str, *, owner: tuple[int, int] | None = None) -> None:
    """Write ``text`` to a new or replaced file of mode 0600 (``owner``: uid and gid to give it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its mode otherwise
        if owner is not None:
            os.fchown(out.fileno(), *owner)
        out.write(text)


def private_dir(path: Path) -> Path:
    """``path`` as a directory of mode 0700 owned by this account; refuse one anyone else
    could have prepared (another account may have created it first in a shared /tmp)."""
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise errors.ServerError(errors.NOT_PRIVATE.format(path=path))
    return path
