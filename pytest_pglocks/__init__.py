"""pytest-pglocks: deterministic tests of PostgreSQL lock waits and deadlocks."""

from __future__ import annotations

from .errors import PglocksError, ServerError
from .handle import Pglocks
from .server import Server

__all__ = ["Pglocks", "PglocksError", "Server", "ServerError"]
