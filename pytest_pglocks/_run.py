"""What one pytest process knows about the run: settings, the shared server, its databases."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a run that never asks for a server loads neither
    import pytest

    from ._database import Databases
    from ._schema import Step
    from ._settings import Settings
    from .server import Server

if TYPE_CHECKING:
    import pytest


@dataclass
class Run:
    """Per-process state of a pytest run using pglocks (the owner stops the server)."""

    settings: Settings
    run_id: str
    owner_pid: int
    worker_id: str | None
    _server: Server | None = field(default=None, init=False)
    _databases: Databases | None = field(default=None, init=False)

    @property
    def is_owner(self) -> bool:
        return self.worker_id is None

    @property
    def shared_dir(self) -> Path:
        """Files through which the processes of this run share one server."""
        return Path(tempfile.gettempdir()) / f"pglocks-run-{self.run_id}"

    def server(self, progress: Callable[[str], None]) -> Server:
        """The run's server, started on first use by whichever process needs it first."""
        if self._server is None:
            from ._private import private_dir
            from .server import _shared

            private_dir(self.shared_dir)
            self._server = _shared.acquire(
                self.settings,
                self.shared_dir,
                run_id=self.run_id,
                owner_pid=self.owner_pid,
                progress=progress,
            )
        return self._server

    def databases(self, server: Server) -> Databases:
        if self._databases is None:
            from ._database import Databases

            self._databases = Databases(server, f"pglocks_{self.run_id}_{self.worker_id or 'main'}")
        return self._databases

    def template(self, server: Server, steps: list[Step], config: pytest.Config) -> str:
        """The template holding the project's schema ``steps``, built once per run."""
        if not steps:
            return server.template
        from . import _schema

        return _schema.template_for(server, steps, self.shared_dir, config)

    def keep(self, server: Server, dbname: str, nodeid: str) -> None:
        """Keep a failing test's database (and a local server) for --pglocks-keep."""
        if server.process is not None:
            from .server import _local

            _local.keep(server.process)
        record = {"nodeid": nodeid, "dsn": server.printable_conninfo(dbname)}
        if server.process is not None:
            record["stop"] = f"kill -INT {server.process.postmaster_pid}"
        from ._private import write_private

        write_private(self.shared_dir / f"kept-{dbname}.json", json.dumps(record))

    def kept(self) -> list[dict[str, str]]:
        """Databases kept by any process of the run."""
        if not self.shared_dir.exists():
            return []
        return [
            json.loads(path.read_text()) for path in sorted(self.shared_dir.glob("kept-*.json"))
        ]

    def outage(self, server: Server, nodeid: str) -> str | None:
        """The failure message of test ``nodeid`` if the server stopped answering, else None."""
        from .server import _outage

        why = _outage.unreachable(server)
        return None if why is None else _outage.message(server, self.shared_dir, nodeid, why)

    def outage_summary(self) -> str | None:
        from .server import _outage

        return _outage.summary(self.shared_dir)

    def recorded_server(self) -> Server | None:
        if not self.shared_dir.exists():
            return None
        from .server import _shared

        return _shared.recorded(self.shared_dir)

    def close(self) -> None:
        """End of this process: close connections; the owner also stops the server."""
        if self._databases is not None:
            self._databases.close()
        if self.is_owner and self.shared_dir.exists():
            from . import _schema
            from .server import _shared

            server = _shared.recorded(self.shared_dir)
            if server is not None and server.backend == "dsn":  # it outlives the run
                _schema.drop_templates(server, _schema.built_templates(self.shared_dir))
            _shared.release(self.shared_dir)
            shutil.rmtree(self.shared_dir, ignore_errors=True)


def new_run_id() -> str:
    return os.urandom(4).hex()
