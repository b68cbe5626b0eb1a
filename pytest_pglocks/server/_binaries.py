"""Finding PostgreSQL server binaries: --pglocks-bindir, system installs, the cache, a download."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import errors
from .._settings import SUPPORTED_MAJORS, Settings, VersionSpec

PROGRAMS = ("initdb", "pg_ctl", "postgres")
DEFAULT_MAJOR = 17

# Where distributions put server binaries, besides pg_config's answer and PATH.
SYSTEM_PATTERNS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL, Fedora (PGDG)
    "/opt/homebrew/opt/postgresql@*/bin",  # Homebrew, Apple silicon
    "/usr/local/opt/postgresql@*/bin",  # Homebrew, Intel
    "/opt/homebrew/bin",
    "/usr/local/pgsql/bin",  # built from source
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)


@dataclass(frozen=True)
class Binaries:
    """A directory of server programs and the PostgreSQL version they are."""

    bindir: Path
    version: str
    source: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def server_version(bindir: Path) -> str | None:
    """The version of ``bindir/postgres`` ("16.4"), or None if it is not a usable install."""
    if not all((bindir / program).is_file() for program in PROGRAMS):
        return None
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?", out)
    if not match:
        return None
    return f"{match[1]}.{match[2] or 0}"


def _pg_config_bindir() -> Iterator[Path]:
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return
        if out:
            yield Path(out)


def system_bindirs() -> Iterator[Path]:
    """Candidate directories of system installs, most specific first."""
    yield from _pg_config_bindir()
    for pattern in SYSTEM_PATTERNS:
        for found in sorted(glob.glob(pattern)):
            yield Path(found)
    postgres = shutil.which("postgres")
    if postgres:
        yield Path(postgres).resolve().parent


def cache_bindirs(cache_dir: Path) -> Iterator[Path]:
    """Directories of binaries unpacked into the cache by earlier downloads."""
    yield from (Path(found) for found in sorted(glob.glob(str(cache_dir / "postgresql-*/bin"))))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def local_installs(settings: Settings) -> list[Binaries]:
    """Every usable supported install found on this machine, in search order, deduplicated."""
    found: list[Binaries] = []
    seen: set[Path] = set()
    sources: list[tuple[str, Callable[[], Iterator[Path]]]] = [
        ("system", system_bindirs),
        ("cache", lambda: cache_bindirs(settings.cache_dir.value)),
    ]
    for source, candidates in sources:
        for bindir in candidates():
            real = bindir.resolve()
            if real in seen:
                continue
            seen.add(real)
            version = server_version(bindir)
            if version and int(version.split(".")[0]) in SUPPORTED_MAJORS:
                found.append(Binaries(bindir, version, source))
    return found


def _from_bindir(settings: Settings, wanted: VersionSpec | None) -> Binaries:
    bindir = settings.bindir.value
    assert bindir is not None
    source = settings.bindir.source
    if not bindir.is_dir():
        why = "not a directory" if bindir.exists() else "no such directory"
    else:
        missing = [program for program in PROGRAMS if not (bindir / program).is_file()]
        why = f"{', '.join(missing)} missing" if missing else "postgres --version failed"
    version = server_version(bindir)
    if version is None:
        raise errors.ServerError(
            errors.BINDIR_UNUSABLE.format(bindir=bindir, source=source, why=why)
        )
    if wanted is not None and not wanted.matches(version):
        raise errors.ServerError(
            errors.BINDIR_VERSION_MISMATCH.format(
                bindir=bindir, found=version, wanted=wanted, source=settings.pg.source
            )
        )
    return Binaries(bindir, version, source)


def find_binaries(settings: Settings, *, progress: Callable[[str], None]) -> Binaries:
    """Binaries for the requested version, downloading them if allowed and needed."""
    wanted = settings.pg.value
    if settings.bindir.value is not None:
        return _from_bindir(settings, wanted)
    installs = local_installs(settings)
    if wanted is None:
        if installs:
            return max(installs, key=lambda found: _version_key(found.version))
        wanted = VersionSpec(DEFAULT_MAJOR)
    matching = [found for found in installs if wanted.matches(found.version)]
    if matching:
        return max(matching, key=lambda found: _version_key(found.version))
    cache_dir = settings.cache_dir.value
    if settings.offline.value:
        searched = ", ".join(
            [f"{found.bindir} ({found.version})" for found in installs]
            + ["pg_config, PATH", *SYSTEM_PATTERNS, str(cache_dir)]
        )
        raise errors.ServerError(
            errors.OFFLINE_MISSING.format(
                wanted=wanted, searched=searched, major=wanted.major, cache=cache_dir
            )
        )
    from ._download import download

    bindir = download(wanted, cache_dir, progress=progress)
    version = server_version(bindir)
    if version is None:  # pragma: no cover - a broken archive
        raise errors.ServerError(
            errors.BINDIR_UNUSABLE.format(
                bindir=bindir, source="the download", why="postgres --version failed"
            )
        )
    return Binaries(bindir, version, "downloaded")


def cache_entry(cache_dir: Path, version: str) -> Path:
    """Where the binaries of one downloaded release live inside the cache."""
    return cache_dir / f"postgresql-{version}"
