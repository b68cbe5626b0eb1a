"""Rendering what the plugin saw: timeline, lock table, deadlock report. Data in, text out."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ._timeline import Event
from .monitor import LockRow, WaitGraph
from .observe import LoggedDeadlock

COMPACT_EVENTS = 25
_PROCESS = re.compile(r"[Pp]rocess (\d+)")


def name_pids(text: str, names: Mapping[int, str]) -> str:
    """``Process 123`` → ``s1 (pid 123)`` for the sessions of the test."""

    def replace(match: re.Match[str]) -> str:
        pid = int(match[1])
        return f"{names[pid]} (pid {pid})" if pid in names else match[0]

    return _PROCESS.sub(replace, text)


def deadlock_report(deadlocks: Sequence[Event], names: Mapping[int, str]) -> str:
    """Each deadlock: victim, statement, the server's DETAIL (the cycle, with session names)
    and CONTEXT lines."""
    lines = []
    for event in deadlocks:
        where = f" ({event.where})" if event.where else ""
        lines.append(
            f"deadlock: {event.session} was chosen as the victim while running {event.sql!r}"
            + where
        )
        for line in event.detail.splitlines()[1:]:
            lines.append(f"  {name_pids(line, names)}")
    return "\n".join(lines)


def logged_deadlock_report(deadlocks: Sequence[LoggedDeadlock], names: Mapping[int, str]) -> str:
    """Deadlocks of backends the plugin does not drive, as the server's log tells them."""
    lines = []
    for deadlock in deadlocks:
        who = (
            f"{names[deadlock.pid]} (pid {deadlock.pid})"
            if deadlock.pid in names
            else (f"backend pid {deadlock.pid} (not observed)")
        )
        statement = f" while running {deadlock.statement!r}" if deadlock.statement else ""
        lines.append(f"deadlock (server log): {who} was chosen as the victim{statement}")
        for line in deadlock.detail.splitlines():
            lines.append(f"  {name_pids(line, names)}")
    return "\n".join(lines)


def _call(event: Event) -> str:
    call = event.detail or "execute"
    if call in ("begin", "commit", "rollback"):
        level = event.sql.partition("ISOLATION LEVEL ")[2]
        return (
            f"{event.session}.{call}({level.lower()!r})" if level else f"{event.session}.{call}()"
        )
    return f"{event.session}.{call}({event.sql!r})"


def timeline(events: Sequence[Event], *, verbose: bool) -> str:
    """The statements as the calls the user made, with what happened as comments; each entry
    after its time and the test's line it belongs to."""
    shown = [event for event in events if verbose or event.kind != "notice"]
    width = max((len(event.where) for event in shown), default=0)
    lines = []
    for event in shown:
        stamp = f"{event.at * 1000:8.1f} ms  " + (f"{event.where:<{width}}  " if width else "")
        if event.kind == "sent":
            lines.append(stamp + _call(event))
        elif event.kind == "blocked":
            lines.append(stamp + f"# {event.session} blocked: {event.detail}")
        elif event.kind == "done":
            lines.append(
                stamp + f"# {event.session} done{': ' + event.detail if event.detail else ''}"
            )
        elif event.kind == "error":
            first = event.detail.splitlines()[0] if event.detail else ""
            code = f" {event.sqlstate}" if event.sqlstate else ""  # none: a client-side error
            lines.append(stamp + f"# {event.session} error{code}: {first}")
        elif event.kind == "cancelled":
            lines.append(stamp + f"# {event.session} cancelled by pglocks")
        else:
            lines.append(stamp + f"# {event.session} {event.detail}")
    if not verbose and len(lines) > COMPACT_EVENTS:
        cut = len(lines) - COMPACT_EVENTS
        lines = [f"... {cut} earlier events (use -v to see all)", *lines[cut:]]
    return "\n".join(lines) if lines else "(no statements)"


def is_noise(row: LockRow) -> bool:
    """A granted lock nobody asks about: a virtual xid, a system catalog or its index."""
    catalog = (row.relation or "").removeprefix("pg_catalog.").startswith("pg_")
    return row.granted and (row.locktype == "virtualxid" or catalog)


def lock_table(rows: Sequence[LockRow], *, verbose: bool) -> str:
    """The test's rows of pg_locks, waits first; the compact form leaves out noise."""
    if not verbose:
        rows = [row for row in rows if not is_noise(row)]
    if not rows:
        return "(no locks)"
    ordered = sorted(rows, key=lambda row: (row.granted, row.session or "", row.pid))
    header = ("session", "pid", "granted", "mode", "lock")
    table = [header] + [
        (
            row.session or "?",
            str(row.pid),
            "yes" if row.granted else "WAITING",
            row.mode,
            row.target(),
        )
        for row in ordered
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def section(events: Sequence[Event], graph: WaitGraph | None, *, verbose: bool) -> str:
    """The "pglocks" report section of a failed test."""
    parts = ["timeline:", timeline(events, verbose=verbose)]
    if graph is not None:
        parts += ["", "locks:", lock_table(graph.snapshot.locks, verbose=verbose), "", str(graph)]
    if not verbose:
        parts += [
            "",
            "(compact report: notices, virtualxid and system catalog locks left out; "
            "use -v for all)",
        ]
    return "\n".join(parts)
