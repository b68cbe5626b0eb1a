"""``pg_isolation_regress`` schedules: ``test: NAME ...`` lines naming ``specs/NAME.spec``."""

from __future__ import annotations

from pathlib import Path

from .. import errors


def read_schedule(path: Path) -> list[Path]:
    """The spec files a schedule names, in order (a line's group runs one after another)."""
    specs: list[Path] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        keyword, sep, names = text.partition(":")
        if keyword.strip() != "test" or not sep or not names.split():
            raise errors.PglocksError(
                errors.SCHEDULE_BAD_LINE.format(path=path, line=number, text=line)
            )
        specs += [path.parent / "specs" / f"{name}.spec" for name in names.split()]
    return specs
