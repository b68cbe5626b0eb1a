"""Finding server binaries: --pglocks-bindir, system installs, the cache; what is said if none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fix_installs import FakeInstall, installed_majors, make_settings
from fix_messages import assert_message

from pytest_pglocks import errors
from pytest_pglocks._settings import VersionSpec
from pytest_pglocks.server._binaries import (
    SYSTEM_PATTERNS,
    Binaries,
    find_binaries,
    local_installs,
)


def find(**settings: Any) -> Binaries:
    """find_binaries() with these settings; it must not download (that would print progress)."""
    return find_binaries(make_settings(**settings), progress=pytest.fail)


def bindir_error(tmp_path: Path, bindir: Path, pg: VersionSpec | None = None) -> str:
    with pytest.raises(errors.ServerError) as excinfo:
        find(bindir=bindir, pg=pg, cache_dir=tmp_path / "cache")
    return str(excinfo.value)


def test_bindir_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    message = bindir_error(tmp_path, tmp_path / "nowhere")
    assert_message(
        message,
        errors.BINDIR_UNUSABLE,
        bindir=tmp_path / "nowhere",
        source="--pglocks-bindir",
        why="no such directory",
    )


def test_bindir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "postgres").write_text("")
    message = bindir_error(tmp_path, tmp_path / "postgres")
    assert_message(
        message,
        errors.BINDIR_UNUSABLE,
        bindir=tmp_path / "postgres",
        source="--pglocks-bindir",
        why="not a directory",
    )


def test_bindir_without_the_server_programs_names_the_missing_ones(
    tmp_path: Path, fake_install: FakeInstall
) -> None:
    bindir = fake_install("16.4", missing=("pg_ctl", "postgres"))
    message = bindir_error(tmp_path, bindir)
    assert_message(
        message,
        errors.BINDIR_UNUSABLE,
        bindir=bindir,
        source="--pglocks-bindir",
        why="pg_ctl, postgres missing",
    )


def test_bindir_whose_postgres_does_not_run_is_refused(
    tmp_path: Path, fake_install: FakeInstall
) -> None:
    bindir = fake_install("16.4", postgres="exit 1")
    message = bindir_error(tmp_path, bindir)
    assert_message(
        message,
        errors.BINDIR_UNUSABLE,
        bindir=bindir,
        source="--pglocks-bindir",
        why="postgres --version failed",
    )


def test_bindir_of_another_version_than_asked_for_is_refused(
    tmp_path: Path, fake_install: FakeInstall
) -> None:
    bindir = fake_install("15.3")
    message = bindir_error(tmp_path, bindir, pg=VersionSpec(16))
    assert_message(
        message,
        errors.BINDIR_VERSION_MISMATCH,
        bindir=bindir,
        found="15.3",
        wanted="16",
        source="--pglocks-pg",
    )


def test_bindir_is_used_as_is_when_it_fits(tmp_path: Path, fake_install: FakeInstall) -> None:
    bindir = fake_install("15.3")
    found = find(bindir=bindir, pg=VersionSpec(15, 3), cache_dir=tmp_path / "cache")
    assert (found.bindir, found.version, found.source) == (bindir, "15.3", "--pglocks-bindir")


def test_without_a_version_the_newest_local_install_is_used(
    tmp_path: Path, fake_install: FakeInstall
) -> None:
    cache = tmp_path / "cache"
    for version in ("14.97", "18.99", "16.98"):
        fake_install(version, parent=cache, name=f"postgresql-{version}.0")
    found = find(cache_dir=cache)
    assert (found.version, found.source) == ("18.99", "cache")
    assert found.bindir == cache / "postgresql-18.99.0" / "bin"


def test_a_major_or_an_exact_version_picks_the_matching_local_install(
    tmp_path: Path, fake_install: FakeInstall
) -> None:
    cache = tmp_path / "cache"
    for version in ("14.97", "14.98", "18.99"):
        fake_install(version, parent=cache, name=f"postgresql-{version}.0")
    # offline proves that nothing is downloaded when a local install fits
    assert find(cache_dir=cache, pg=VersionSpec(14), offline=True).version == "14.98"
    assert find(cache_dir=cache, pg=VersionSpec(14, 97), offline=True).version == "14.97"


def test_unsupported_and_broken_installs_in_the_cache_are_ignored(
    tmp_path: Path, fake_install: FakeInstall
) -> None:
    cache = tmp_path / "cache"
    fake_install("13.99", parent=cache, name="postgresql-13.99.0")
    fake_install("18.99", parent=cache, name="postgresql-18.99.0", missing=("initdb",))
    fake_install("18.98", parent=cache, name="postgresql-18.98.0", postgres="echo nonsense")
    fake_install("14.96", parent=cache, name="postgresql-14.96.0")
    from_cache = local_installs(make_settings(cache_dir=cache))
    assert [found.version for found in from_cache if found.source == "cache"] == ["14.96"]


def test_offline_without_a_local_install_lists_where_it_looked_and_the_ways_out(
    tmp_path: Path,
) -> None:
    absent = sorted(set(range(14, 19)) - installed_majors())
    if not absent:
        pytest.skip("every supported major is installed on this machine")
    major = absent[0]
    cache = tmp_path / "empty-cache"
    with pytest.raises(errors.ServerError) as excinfo:
        find(pg=VersionSpec(major), offline=True, cache_dir=cache)
    message = str(excinfo.value)
    assert_message(message, errors.OFFLINE_MISSING, wanted=major, major=major, cache=cache)
    for place in ("pg_config, PATH", *SYSTEM_PATTERNS, str(cache)):
        assert place in message
