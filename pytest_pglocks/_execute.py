"""Running SQL the way every pglocks API does: rows of the last result set, or None."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Rows = list[tuple[Any, ...]]


def execute(conn: psycopg.Connection[tuple[Any, ...]], sql: str, params: Any = None) -> Rows | None:
    """Execute ``sql`` (several statements allowed without params); rows of the last result."""
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        while cursor.nextset():
            pass
        return cursor.fetchall() if cursor.description is not None else None
