"""Running SQL the way every pglocks API does: rows of the last result set, or None.

The spec runner needs more: every result of a statement string exactly as the server sent it,
errors included (:func:`execute_results`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    import psycopg.errors
    from psycopg import pq

    from ._reading import InputWatch

Rows = list[tuple[Any, ...]]


def execute(conn: psycopg.Connection[tuple[Any, ...]], sql: str, params: Any = None) -> Rows | None:
    """Execute ``sql`` (several statements allowed without params); rows of the last result."""
    return run(conn, sql, params).rows


@dataclass(frozen=True)
class Executed:
    """What a statement string left: rows, command tag and row count of its last result."""

    rows: Rows | None
    status: str | None
    rowcount: int


def run(conn: psycopg.Connection[tuple[Any, ...]], sql: str, params: Any = None) -> Executed:
    """``execute()`` that keeps the last result's command tag (``UPDATE 2``) and row count."""
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        while cursor.nextset():
            pass
        rows = cursor.fetchall() if cursor.description is not None else None
        return Executed(rows, cursor.statusmessage, cursor.rowcount)


@dataclass(frozen=True)
class Result:
    """One result of a statement string, in the server's text form; ``error`` is set on errors."""

    names: tuple[bytes, ...] = ()
    rows: tuple[tuple[bytes | None, ...], ...] = ()
    tuples: bool = False
    error: ErrorFields | None = None


@dataclass(frozen=True)
class ErrorFields:
    """The fields of an error or notice message that outputs show."""

    severity: str
    message: str
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    text: str | None = None  # the whole message as libpq formats it, when known

    @classmethod
    def from_diagnostic(cls, diag: psycopg.errors.Diagnostic) -> ErrorFields:
        """From an exception's or a notice's ``Diagnostic``."""
        return cls(
            diag.severity or "ERROR",
            diag.message_primary or "",
            sqlstate=diag.sqlstate,
            detail=diag.message_detail,
            hint=diag.message_hint,
        )

    def libpq_text(self) -> str:
        """The message as libpq's default verbosity writes it (``PQerrorMessage``)."""
        if self.text is not None:
            return self.text
        text = f"{self.severity}:  {self.message}\n"
        if self.detail:
            text += f"DETAIL:  {self.detail}\n"
        if self.hint:
            text += f"HINT:  {self.hint}\n"
        return text


class StepConnection:
    """What a Python step gets: its session's name and connection (on the session's thread)."""

    def __init__(self, name: str, connection: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.name = name
        self.connection = connection

    def execute(self, sql: str, params: Any = None) -> Rows | None:
        """Run SQL on the session's connection; rows of the last result, or None."""
        return execute(self.connection, sql, params)


def execute_results(
    conn: psycopg.Connection[tuple[Any, ...]], sql: str, watch: InputWatch | None = None
) -> list[Result]:
    """Send ``sql`` with the simple query protocol; every result, errors returned, not raised.
    ``watch``: its input is read through it (see :class:`InputWatch`)."""
    from psycopg import generators, pq

    query = sql.encode(conn.info.encoding)
    with conn.lock:
        if watch is None:
            conn.pgconn.send_query(query)
            results = conn.wait(generators.execute(conn.pgconn))
        else:
            send = partial(conn.pgconn.send_query, query)
            gen = generators.execute(conn.pgconn)
            results = conn.wait(watch.watched(conn.pgconn.socket, send, gen))
    encoding = conn.info.encoding
    out = []
    for res in results:
        if res.status == pq.ExecStatus.TUPLES_OK:
            names = tuple(res.fname(col) or b"" for col in range(res.nfields))
            rows = tuple(
                tuple(res.get_value(row, col) for col in range(res.nfields))
                for row in range(res.ntuples)
            )
            out.append(Result(names, rows, tuples=True))
        elif res.status == pq.ExecStatus.FATAL_ERROR:
            out.append(Result(error=error_fields(res, encoding)))
        else:
            out.append(Result())
    return out


def connection_lost(
    conn: psycopg.Connection[tuple[Any, ...]], results: list[Result], *, repeating: bool = False
) -> Result | None:
    """libpq's own error when the server closed ``conn`` after the ``results`` of a statement
    ("server closed the connection unexpectedly ..."): the next result that ``PQgetResult``
    gives, which psycopg does not fetch. ``repeating``: as the libpq of PostgreSQL 14 and
    older wrote it, the server's messages first."""
    from psycopg import pq

    if conn.pgconn.status != pq.ConnStatus.BAD:
        return None
    whole = conn.pgconn.error_message.decode(conn.info.encoding, "replace")
    seen = "".join(r.error.libpq_text() for r in results if r.error is not None)
    if not whole.startswith(seen) or whole == seen:
        return None
    return Result(error=ErrorFields("", whole if repeating else whole[len(seen) :]))


def error_fields(res: pq.abc.PGresult, encoding: str) -> ErrorFields:
    """The message fields of an error result."""
    from psycopg import pq

    def field(code: pq.DiagnosticField) -> str | None:
        value = res.error_field(code)
        return value.decode(encoding, "replace") if value is not None else None

    severity = field(pq.DiagnosticField.SEVERITY)
    message = field(pq.DiagnosticField.MESSAGE_PRIMARY)
    if severity is None or message is None:  # a libpq-made error has only its message
        text = res.error_message.decode(encoding, "replace").rstrip("\n")
        return ErrorFields("", text)
    return ErrorFields(
        severity,
        message,
        sqlstate=field(pq.DiagnosticField.SQLSTATE),
        detail=field(pq.DiagnosticField.MESSAGE_DETAIL),
        hint=field(pq.DiagnosticField.MESSAGE_HINT),
        text=res.error_message.decode(encoding, "replace"),
    )
