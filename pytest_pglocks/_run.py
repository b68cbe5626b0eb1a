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

from . import _schema
from ._database import Databases
from ._settings import Settings
from .server import Server, _local, _shared

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
            self.shared_dir.mkdir(mode=0o700, exist_ok=True)
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
            self._databases = Databases(server, f"pglocks_{self.run_id}_{self.worker_id or 'main'}")
        return self._databases

    def template(self, server: Server, steps: list[_schema.Step], config: pytest.Config) -> str:
        """The template holding the project's schema ``steps``, built once per run."""
        if not steps:
            return server.template
        return _schema.template_for(server, steps, self.shared_dir, config)

    def keep(self, server: Server, dbname: str, nodeid: str) -> None:
        """Keep a failing test's database (and a local server) for --pglocks-keep."""
        if server.process is not None:
            _local.keep(server.process)
        record = {"nodeid": nodeid, "dsn": server.conninfo(dbname)}
        if server.process is not None:
            record["stop"] = f"kill -INT {server.process.postmaster_pid}"
        (self.shared_dir / f"kept-{dbname}.json").write_text(json.dumps(record))

    def kept(self) -> list[dict[str, str]]:
        """Databases kept by any process of the run."""
        if not self.shared_dir.exists():
            return []
        return [
            json.loads(path.read_text()) for path in sorted(self.shared_dir.glob("kept-*.json"))
        ]

    def recorded_server(self) -> Server | None:
        return _shared.recorded(self.shared_dir) if self.shared_dir.exists() else None

    def close(self) -> None:
        """End of this process: close connections; the owner also stops the server."""
        if self._databases is not None:
            self._databases.close()
        if self.is_owner and self.shared_dir.exists():
            server = _shared.recorded(self.shared_dir)
            if server is not None and server.backend == "dsn":  # it outlives the run
                _schema.drop_templates(server, _schema.built_templates(self.shared_dir))
            _shared.release(self.shared_dir)
            shutil.rmtree(self.shared_dir, ignore_errors=True)


def new_run_id() -> str:
    return os.urandom(4).hex()
