"""Result sets printed the way libpq's ``PQprint()`` does with ``align`` and ``header`` on.

That is the format of the isolation tester's expected files: ``|`` between columns, ``-`` and
``+`` under the header, every column padded to its widest value (in bytes), a column right
aligned when all its non-empty values look numeric, then ``(N rows)`` and a blank line.
"""

from __future__ import annotations

from collections.abc import Sequence

NUMERIC_CHARS = frozenset(b"0123456789.Ee -")


def looks_numeric(value: bytes) -> bool:
    """``PQprint``'s test: digits, ``.``, ``E``, blanks or ``-``, not starting with E, ending in
    a digit."""
    if not set(value) <= NUMERIC_CHARS:
        return False
    return value[:1] not in (b"E", b"e") and value[-1:].isdigit()


def format_table(names: Sequence[bytes], rows: Sequence[Sequence[bytes | None]]) -> bytes:
    """One result set as ``PQprint`` prints it; nothing for a result without columns."""
    if not names:
        return b""
    widths = [len(name) for name in names]
    numeric = [True] * len(names)
    for row in rows:
        for index, value in enumerate(row):
            if not value:  # NULL and '' are skipped: they neither widen nor classify
                continue
            if numeric[index] and not looks_numeric(value):
                numeric[index] = False
            widths[index] = max(widths[index], len(value))

    def line(values: Sequence[bytes | None]) -> bytes:
        cells = []
        for index, value in enumerate(values):
            value = value or b""
            pad = b" " * (widths[index] - len(value))
            cells.append(pad + value if numeric[index] else value + pad)
        return b"|".join(cells) + b"\n"

    out = [line(names), b"+".join(b"-" * width for width in widths) + b"\n"]
    out += [line(row) for row in rows]
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n\n".encode())
    return b"".join(out)
