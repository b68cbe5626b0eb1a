"""Build a local ``postgres:<major>`` image from the local backend's binaries, no registry needed.

Run as ``python -m pytest_pglocks.server._image MAJOR [--tag TAG]``. The image is ``FROM
scratch``: the server programs, every shared library ``ldd`` lists for them and for ``/bin/sh``,
a tiny ``/etc/passwd`` and an entrypoint that behaves like the official image's for what the
plugin uses: ``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``, initdb on first start
(password authentication over TCP, trust locally), a temporary socket-only server first, then
the real server listening on 5432 on all addresses.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .._settings import Settings
from ._binaries import find_binaries

PROGRAMS = ("postgres", "initdb", "pg_ctl", "psql")

ENTRYPOINT = r"""#!/bin/sh
set -e
PGDATA=/var/lib/postgresql/data
export PGDATA
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "$POSTGRES_PASSWORD" ]; then
        echo "error: POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 --no-instructions
    : > /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    # Like the official image: a temporary server on the Unix socket only, for the setup.
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=/tmp" start
    if [ "$POSTGRES_DB" != "postgres" ]; then
        psql -h /tmp -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE DATABASE \"$POSTGRES_DB\""
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "PostgreSQL init process complete; ready for start up."
fi
if [ "${1#-}" != "$1" ] || [ "$#" -eq 0 ]; then
    set -- postgres "$@"
fi
if [ "$1" = postgres ]; then
    shift
    exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
fi
exec "$@"
"""

DOCKERFILE = """FROM scratch
COPY --chown=999:999 rootfs/ /
ENV PATH=BINDIR LANG=C
USER 999:999
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/sh", "/entrypoint.sh"]
CMD ["postgres"]
"""


def _libraries(paths: list[Path]) -> set[Path]:
    """Every shared library ``ldd`` lists for ``paths``, the dynamic loader included."""
    found: set[Path] = set()
    for path in paths:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                found.add(Path(match[1]))
    return found


def _data_dirs(bindir: Path) -> list[Path]:
    """The share and module directories of an install (pg_config's, else ../share and ../lib),
    and the system time zone data a build may use instead of its own."""
    dirs: list[Path] = []
    try:
        out = subprocess.run(
            [str(bindir / "pg_config"), "--sharedir", "--pkglibdir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        dirs = [Path(line) for line in out]
    except (OSError, subprocess.SubprocessError):
        dirs = [bindir.parent / "share", bindir.parent / "lib"]
    dirs.append(Path("/usr/share/zoneinfo"))
    return [directory for directory in dirs if directory.is_dir()]


def _copy(source: Path, root: Path, target: Path) -> None:
    dest = root / target.relative_to("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), dest)  # symbolic links become the files they name


def _built_from(tag: str) -> str | None:
    """The ``pytest-pglocks.source`` label of an existing image ``tag``, if any."""
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", '{{index .Config.Labels "pytest-pglocks.source"}}']
        + [tag],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def build(
    major: int, tag: str | None = None, settings: Settings | None = None, force: bool = False
) -> str:
    """Build the image and return its tag (``postgres:<major>`` unless ``tag`` is given).

    An image built from the same binaries and recipe is reused unless ``force``."""
    settings = settings or Settings.resolve(lambda option: None)
    wanted = Settings.resolve(lambda option: str(major) if option.name == "pg" else None).pg
    binaries = find_binaries(dataclasses.replace(settings, pg=wanted), progress=print)
    install = binaries.bindir.parent
    tag = tag or f"postgres:{major}"
    recipe = hashlib.sha256((ENTRYPOINT + DOCKERFILE).encode()).hexdigest()[:12]
    source = f"{install} {binaries.version} {recipe}"
    if not force and _built_from(tag) == source:
        return tag
    with tempfile.TemporaryDirectory(prefix="pglocks-image-") as context:
        root = Path(context) / "rootfs"
        # Everything keeps its host path: non-relocatable builds (Debian's) find their files.
        programs = [
            binaries.bindir / name for name in PROGRAMS if (binaries.bindir / name).exists()
        ]
        for program in programs:
            _copy(program, root, program)
        for directory in _data_dirs(binaries.bindir):
            shutil.copytree(directory, root / directory.relative_to("/"), symlinks=True)
        for library in _libraries([*programs, Path("/bin/sh")]):
            if not (root / library.relative_to("/")).exists():
                _copy(library, root, library)
        _copy(Path("/bin/sh"), root, Path("/bin/sh"))
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\n"
            "postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh\n"
        )
        (root / "etc/group").write_text("root:x:0:\npostgres:x:999:\n")
        (root / "entrypoint.sh").write_text(ENTRYPOINT)
        for made in ("tmp", "var/lib/postgresql/data", "dev"):
            (root / made).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        (Path(context) / "Dockerfile").write_text(
            DOCKERFILE.replace("BINDIR", str(binaries.bindir))
        )
        built = subprocess.run(
            ["docker", "build", "-q", "-t", tag, "--label", f"pytest-pglocks.source={source}"]
            + [context],
            capture_output=True,
            text=True,
            check=False,
        )
    if built.returncode != 0:
        raise RuntimeError(f"docker build of {tag} failed:\n{built.stderr.strip()}")
    return tag


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_pglocks.server._image")
    parser.add_argument("major", type=int, help="PostgreSQL major, e.g. 17")
    parser.add_argument("--tag", help="image tag (default: postgres:MAJOR)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    print(build(args.major, args.tag, force=args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
