"""Settings: parsing, validation, and command line > environment > ini > default."""

from __future__ import annotations

from pathlib import Path

import pytest
from fix_messages import assert_message

from pytest_pglocks import errors
from pytest_pglocks._settings import Setting, Settings, VersionSpec, parse_version

pytestmark = pytest.mark.usefixtures("clean_pglocks_env")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("14", VersionSpec(14)),
        ("15", VersionSpec(15)),
        ("16", VersionSpec(16)),
        ("17", VersionSpec(17)),
        ("18", VersionSpec(18)),
        ("16.4", VersionSpec(16, 4)),
        (" 17 ", VersionSpec(17)),
    ],
)
def test_supported_majors_and_exact_versions_are_accepted(
    value: str, expected: VersionSpec
) -> None:
    assert parse_version(value, "--pglocks-pg") == expected


def test_a_version_prints_as_it_was_asked_for() -> None:
    assert (str(VersionSpec(16)), str(VersionSpec(16, 4))) == ("16", "16.4")


@pytest.mark.parametrize(("value", "major"), [("13", 13), ("19", 19), ("9.6", 9)])
def test_unknown_major_is_rejected_with_the_accepted_range(value: str, major: int) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        parse_version(value, "PGLOCKS_PG")
    assert_message(
        str(excinfo.value), errors.UNSUPPORTED_MAJOR, value=value, source="PGLOCKS_PG", major=major
    )


@pytest.mark.parametrize("value", ["banana", "16.4.1", "", "v16", "16."])
def test_what_is_not_a_version_is_rejected_naming_value_and_source(value: str) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        parse_version(value, "ini pglocks_pg")
    assert_message(str(excinfo.value), errors.BAD_VERSION, value=value, source="ini pglocks_pg")


@pytest.mark.parametrize(
    ("spec", "version", "matches"),
    [
        (VersionSpec(16), "16.4", True),
        (VersionSpec(16), "16.0", True),
        (VersionSpec(16), "16", True),
        (VersionSpec(16), "17.2", False),
        (VersionSpec(16, 4), "16.4", True),
        (VersionSpec(16, 4), "16.40", False),
        (VersionSpec(16, 4), "16.3", False),
        (VersionSpec(16, 4), "16", False),
        (VersionSpec(18), "18beta1", True),
        (VersionSpec(18), "18rc1", True),
        (VersionSpec(17), "17devel", True),
        (VersionSpec(18, 0), "18beta1", False),
        (VersionSpec(16), "16.4 (Debian 16.4-1.pgdg120+1)", True),
    ],
)
def test_a_version_spec_matches_server_versions_of_its_major_or_release(
    spec: VersionSpec, version: str, matches: bool
) -> None:
    assert spec.matches(version) is matches


def settings(pytester: pytest.Pytester, *args: str) -> Settings:
    return Settings.from_config(pytester.parseconfig(*args))


def test_command_line_beats_environment_beats_ini_beats_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (settings(pytester).pg.value, settings(pytester).pg.source) == (None, "default")
    pytester.makeini("[pytest]\npglocks_pg = 15\npglocks_offline = yes\n")
    pg, offline = settings(pytester).pg, settings(pytester).offline
    assert (pg.value, pg.source) == (VersionSpec(15), "ini pglocks_pg")
    assert (offline.value, offline.source) == (True, "ini pglocks_offline")
    monkeypatch.setenv("PGLOCKS_PG", "16.4")
    monkeypatch.setenv("PGLOCKS_OFFLINE", "0")
    pg, offline = settings(pytester).pg, settings(pytester).offline
    assert (pg.value, pg.source) == (VersionSpec(16, 4), "PGLOCKS_PG")
    assert (offline.value, offline.source) == (False, "PGLOCKS_OFFLINE")
    both = settings(pytester, "--pglocks-pg=17", "--pglocks-offline")
    assert (both.pg.value, both.pg.source) == (VersionSpec(17), "--pglocks-pg")
    assert (both.offline.value, both.offline.source) == (True, "--pglocks-offline")


def test_an_empty_environment_variable_counts_as_unset(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\npglocks_pg = 15\n")
    monkeypatch.setenv("PGLOCKS_PG", "")
    assert settings(pytester).pg.source == "ini pglocks_pg"


def test_paths_are_expanded_and_cache_dir_has_a_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    parsed = settings(pytester, "--pglocks-bindir=~/pg/bin")
    assert parsed.bindir.value == tmp_path / "pg" / "bin"
    assert parsed.cache_dir.source == "default"
    assert parsed.cache_dir.value.name == "pytest-pglocks"
    monkeypatch.setenv("PGLOCKS_CACHE_DIR", str(tmp_path / "cache"))
    assert settings(pytester).cache_dir.value == tmp_path / "cache"


def test_bad_backend_is_rejected_with_the_valid_ones(pytester: pytest.Pytester) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester, "--pglocks-backend=kubernetes")
    assert_message(
        str(excinfo.value),
        errors.BAD_CHOICE,
        value="kubernetes",
        source="--pglocks-backend",
        name="backend",
        choices="auto, local, docker",
    )


def test_the_docker_image_comes_from_the_command_line_the_environment_or_the_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGLOCKS_IMAGE", raising=False)
    assert settings(pytester).image.value is None
    pytester.makeini("[pytest]\npglocks_image = from-ini:1\n")
    assert settings(pytester).image == Setting("from-ini:1", "ini pglocks_image")
    monkeypatch.setenv("PGLOCKS_IMAGE", "from-env:1")
    assert settings(pytester).image == Setting("from-env:1", "PGLOCKS_IMAGE")
    parsed = settings(pytester, "--pglocks-image=mine:17", "--pglocks-backend=docker")
    assert parsed.image == Setting("mine:17", "--pglocks-image")
    assert parsed.backend.value == "docker"


@pytest.mark.parametrize("value", ["maybe", "2", "offline"])
def test_bad_offline_value_is_rejected_with_the_accepted_spellings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PGLOCKS_OFFLINE", value)
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester)
    assert_message(str(excinfo.value), errors.BAD_BOOL, value=value, source="PGLOCKS_OFFLINE")


@pytest.mark.parametrize("value", ["1", "true", "YES", "on", "0", "false", "no", "off"])
def test_offline_accepts_the_usual_yes_and_no_spellings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("PGLOCKS_OFFLINE", value)
    assert settings(pytester).offline.value is (value.lower() in ("1", "true", "yes", "on"))


def test_dsn_together_with_a_version_is_refused_naming_both_sources(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGLOCKS_DSN", "host=db")
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester, "--pglocks-pg=16")
    assert_message(
        str(excinfo.value), errors.DSN_AND_PG, dsn_source="PGLOCKS_DSN", pg_source="--pglocks-pg"
    )


def test_the_picture_directory_may_be_missing_but_not_a_file(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    assert settings(pytester, f"--pglocks-report={tmp_path / 'new'}").report.value == (
        tmp_path / "new"
    )
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester, f"--pglocks-report={afile}")
    assert_message(
        str(excinfo.value),
        errors.REPORT_NOT_A_DIRECTORY,
        value=str(afile),
        source="--pglocks-report",
    )


def test_pictures_of_passing_tests_need_a_directory(pytester: pytest.Pytester) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester, "--pglocks-report-passed")
    assert_message(str(excinfo.value), errors.REPORT_PASSED_ALONE, source="--pglocks-report-passed")


def test_server_settings_come_from_the_command_line_the_environment_or_the_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings(pytester).server_settings == Setting((), "default")
    pytester.makeini("[pytest]\npglocks_server_settings = max_prepared_transactions=10\n")
    assert settings(pytester).server_settings == Setting(
        (("max_prepared_transactions", "10"),), "ini pglocks_server_settings"
    )
    monkeypatch.setenv("PGLOCKS_SERVER_SETTINGS", "wal_level=logical, max_wal_senders=4")
    assert settings(pytester).server_settings.value == (
        ("wal_level", "logical"),
        ("max_wal_senders", "4"),
    )


@pytest.mark.parametrize("value", ["max_prepared_transactions", "=10", "a-b=1", "x="])
def test_a_bad_server_setting_says_how_to_write_one(pytester: pytest.Pytester, value: str) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester, f"--pglocks-server-settings={value}")
    assert_message(
        str(excinfo.value),
        errors.BAD_SERVER_SETTING,
        entry=value,
        value=value,
        source="--pglocks-server-settings",
    )


def test_server_settings_with_an_existing_server_are_refused(pytester: pytest.Pytester) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        settings(pytester, "--pglocks-dsn=host=db", "--pglocks-server-settings=a=1")
    assert_message(
        str(excinfo.value),
        errors.DSN_AND_SERVER_SETTINGS,
        source="--pglocks-server-settings",
        dsn_source="--pglocks-dsn",
    )
