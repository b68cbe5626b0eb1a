"""Run settings: command line > environment > ini > default, each value remembering its source."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from . import errors

T = TypeVar("T")

SUPPORTED_MAJORS = range(14, 19)
BACKENDS = ("auto", "local", "docker")


@dataclass(frozen=True)
class VersionSpec:
    """A PostgreSQL version asked for: a major (``16``) or an exact release (``16.4``)."""

    major: int
    minor: int | None = None

    def __str__(self) -> str:
        return str(self.major) if self.minor is None else f"{self.major}.{self.minor}"

    def matches(self, version: str) -> bool:
        """Whether a server version string such as ``"16.4"`` satisfies this spec."""
        # Server versions may read "16.4", "18beta1" or "16.4 (Debian 16.4-1.pgdg120+1)".
        match = re.match(r"\s*(\d+)(?:\.(\d+))?", version)
        if not match or int(match[1]) != self.major:
            return False
        return self.minor is None or (match[2] is not None and int(match[2]) == self.minor)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One resolved value and where it came from (``--pglocks-pg``, ``PGLOCKS_PG``, ...)."""

    value: T
    source: str


@dataclass(frozen=True)
class Option:
    """One pglocks option: its command-line flag, ini key, environment variable and parser."""

    name: str
    help: str
    parse: Callable[[str, str], Any]
    default: Any = None
    flag: bool = False
    ini: bool = True
    metavar: str | None = None

    @property
    def cli(self) -> str:
        return "--pglocks-" + self.name.replace("_", "-")

    @property
    def ini_key(self) -> str:
        return "pglocks_" + self.name

    @property
    def env(self) -> str:
        return "PGLOCKS_" + self.name.upper()


def parse_version(value: str, source: str) -> VersionSpec:
    """Parse ``14``…``18`` or ``16.4``; raise ``pytest.UsageError`` naming the source otherwise."""
    match = re.fullmatch(r"\s*(\d+)(?:\.(\d+))?\s*", value)
    if not match:
        raise pytest.UsageError(errors.BAD_VERSION.format(value=value, source=source))
    major = int(match[1])
    if major not in SUPPORTED_MAJORS:
        raise pytest.UsageError(
            errors.UNSUPPORTED_MAJOR.format(value=value, source=source, major=major)
        )
    return VersionSpec(major, int(match[2]) if match[2] is not None else None)


def parse_seconds(value: str, source: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise pytest.UsageError(errors.BAD_SECONDS.format(value=value, source=source))
    return seconds


def parse_interval(value: str, source: str) -> str:
    """A PostgreSQL duration such as ``10ms`` or ``1s``; a bare number means milliseconds."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|min)?\s*", value)
    if not match or int(match[1]) <= 0:
        raise pytest.UsageError(errors.BAD_INTERVAL.format(value=value, source=source))
    return f"{match[1]}{match[2] or 'ms'}"


def parse_count(value: str, source: str) -> int:
    """A positive whole number."""
    if not re.fullmatch(r"\s*\d+\s*", value) or int(value) <= 0:
        raise pytest.UsageError(errors.BAD_COUNT.format(value=value, source=source))
    return int(value)


def parse_bool(value: str, source: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise pytest.UsageError(errors.BAD_BOOL.format(value=value, source=source))


def parse_backend(value: str, source: str) -> str:
    if value not in BACKENDS:
        raise pytest.UsageError(
            errors.BAD_CHOICE.format(
                value=value, source=source, name="backend", choices=", ".join(BACKENDS)
            )
        )
    return value


def parse_path(value: str, source: str) -> Path:
    return Path(value).expanduser()


def parse_directory(value: str, source: str) -> Path:
    """A directory to write into: missing is fine (it is made), a file is not."""
    path = parse_path(value, source)
    if path.exists() and not path.is_dir():
        raise pytest.UsageError(errors.REPORT_NOT_A_DIRECTORY.format(value=value, source=source))
    return path


def parse_text(value: str, source: str) -> str:
    return value


def parse_server_settings(value: str, source: str) -> tuple[tuple[str, str], ...]:
    """``NAME=VALUE`` pairs separated by commas or blanks, e.g. ``max_prepared_transactions=10``."""
    pairs = []
    for entry in re.split(r"[,\s]+", value.strip()):
        name, sep, setting = entry.partition("=")
        if not entry:
            continue
        if not sep or not setting or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            raise pytest.UsageError(
                errors.BAD_SERVER_SETTING.format(entry=entry, value=value, source=source)
            )
        pairs.append((name, setting))
    return tuple(pairs)


OPTIONS = (
    Option(
        "pg",
        "PostgreSQL to test against: a major from 14 to 18 or an exact version such as 16.4 "
        "(default: the newest major installed locally, else 17).",
        parse_version,
        metavar="VERSION",
    ),
    Option(
        "dsn",
        "Use this existing server (libpq conninfo or URI) instead of starting one; each test "
        "still gets its own database.",
        parse_text,
        metavar="CONNINFO",
    ),
    Option(
        "bindir",
        "Directory holding initdb, pg_ctl and postgres; searched before system installs.",
        parse_path,
        metavar="DIR",
    ),
    Option(
        "backend",
        "Where the server comes from: local binaries, a docker container, or auto (default: "
        "local binaries, else docker when none can be had and Docker is reachable).",
        parse_backend,
        default="auto",
        metavar="NAME",
    ),
    Option(
        "image",
        "Docker image of the docker backend (default: postgres:<major>), e.g. a custom image "
        "with extensions.",
        parse_text,
        metavar="IMAGE",
    ),
    Option(
        "server_settings",
        "Settings of the server pglocks starts, as NAME=VALUE separated by commas, for what "
        "specs or tests need (e.g. max_prepared_transactions=10).",
        parse_server_settings,
        default=(),
        metavar="SETTINGS",
    ),
    Option(
        "offline",
        "Never download server binaries; fail with what to install instead.",
        parse_bool,
        default=False,
        flag=True,
    ),
    Option(
        "cache_dir",
        "Where downloaded server binaries are kept (default: ~/.cache/pytest-pglocks, or "
        "/var/cache/pytest-pglocks when running as root).",
        parse_path,
        metavar="DIR",
    ),
    Option(
        "timeout",
        "Seconds a statement or an assertion may wait before it is cancelled and the test "
        "fails (default 10).",
        parse_seconds,
        default=10.0,
        metavar="SECONDS",
    ),
    Option(
        "deadlock_timeout",
        "deadlock_timeout of every session, so that deadlocks are found in milliseconds "
        "(default 10ms).",
        parse_interval,
        default="10ms",
        metavar="DURATION",
    ),
    Option(
        "explore_limit",
        "Most interleavings scenario.explore() runs; above it, it refuses and says what to do "
        "(default 1000).",
        parse_count,
        default=1000,
        metavar="N",
    ),
    Option(
        "reuse",
        "Keep the local server running after the run, for the next run with the same major "
        "and settings (a warm start); it stops after --pglocks-reuse-idle seconds unused, or "
        "with pytest --pglocks-reuse-stop.",
        parse_bool,
        default=False,
        flag=True,
    ),
    Option(
        "reuse_idle",
        "Seconds a server kept by --pglocks-reuse waits unused before it stops (default 1800).",
        parse_seconds,
        default=1800.0,
        metavar="SECONDS",
    ),
    Option(
        "keep",
        "Keep the database of a failing test (and its server) and print how to connect.",
        parse_bool,
        default=False,
        flag=True,
        ini=False,
    ),
    Option(
        "report",
        "Write a picture (self-contained SVG) of each failing test's sessions and waits into "
        "this directory.",
        parse_directory,
        metavar="DIR",
    ),
    Option(
        "report_passed",
        "With --pglocks-report: a picture of passing tests too (select them with -k).",
        parse_bool,
        default=False,
        flag=True,
        ini=False,
    ),
)


def add_options(parser: pytest.Parser) -> None:
    """Register every option in the "pglocks" group, with its ini twin."""
    group = parser.getgroup("pglocks", "PostgreSQL lock testing (pytest-pglocks)")
    for option in OPTIONS:
        env_note = f" Env: {option.env}."
        if option.flag:
            group.addoption(
                option.cli, action="store_true", default=None, help=option.help + env_note
            )
        else:
            group.addoption(
                option.cli, metavar=option.metavar, default=None, help=option.help + env_note
            )
        if option.ini:
            parser.addini(option.ini_key, help=option.help, default=None)


def resolve(option: Option, cli_value: Any, ini_value: Any, cli_flag: str = "") -> Setting[Any]:
    """The value of one option: command line > environment > ini > default."""
    if cli_value is not None:
        flag = cli_flag or option.cli
        if option.flag:
            return Setting(bool(cli_value), flag)
        return Setting(option.parse(str(cli_value), flag), flag)
    env_value = os.environ.get(option.env)
    if env_value is not None and env_value != "":
        return Setting(option.parse(env_value, option.env), option.env)
    if option.ini and ini_value not in (None, "", []):
        source = f"ini {option.ini_key}"
        return Setting(option.parse(str(ini_value).strip(), source), source)
    return Setting(option.default, "default")


def default_cache_dir() -> Path:
    """Per-user cache; as root a world-readable one, since the server runs unprivileged."""
    if os.geteuid() == 0:
        return Path("/var/cache/pytest-pglocks")
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-pglocks"


@dataclass(frozen=True)
class Settings:
    """Every pglocks setting of this run, validated."""

    pg: Setting[VersionSpec | None]
    dsn: Setting[str | None]
    bindir: Setting[Path | None]
    backend: Setting[str]
    image: Setting[str | None]
    server_settings: Setting[tuple[tuple[str, str], ...]]
    offline: Setting[bool]
    cache_dir: Setting[Path]
    timeout: Setting[float]
    deadlock_timeout: Setting[str]
    explore_limit: Setting[int]
    reuse: Setting[bool]
    reuse_idle: Setting[float]
    keep: Setting[bool]
    report: Setting[Path | None]
    report_passed: Setting[bool]

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        """Resolve and validate all options; a bad value raises ``pytest.UsageError``."""
        return cls.resolve(
            lambda option: config.getoption(option.ini_key),
            lambda option: config.getini(option.ini_key) if option.ini else None,
        )

    @classmethod
    def resolve(
        cls,
        cli: Callable[[Option], Any],
        ini: Callable[[Option], Any] = lambda option: None,
        flags: Mapping[str, str] | None = None,
    ) -> Settings:
        """Settings from command-line values (named ``flags[option]`` in messages), the
        environment, ini values and defaults."""
        flags = flags or {}
        values = {
            option.name: resolve(option, cli(option), ini(option), flags.get(option.name, ""))
            for option in OPTIONS
        }
        if values["cache_dir"].value is None:
            values["cache_dir"] = Setting(default_cache_dir(), "default")
        settings = cls(**values)
        if settings.report_passed.value and settings.report.value is None:
            raise pytest.UsageError(
                errors.REPORT_PASSED_ALONE.format(source=settings.report_passed.source)
            )
        if settings.dsn.value and settings.server_settings.value:
            raise pytest.UsageError(
                errors.DSN_AND_SERVER_SETTINGS.format(
                    dsn_source=settings.dsn.source, source=settings.server_settings.source
                )
            )
        if settings.dsn.value and settings.pg.value is not None:
            raise pytest.UsageError(
                errors.DSN_AND_PG.format(
                    dsn_source=settings.dsn.source, pg_source=settings.pg.source
                )
            )
        return settings

    def describe(self) -> str:
        """A short account of where the server comes from, for the report header."""
        if self.dsn.value:
            return f"existing server (--pglocks-dsn from {self.dsn.source})"
        if self.pg.value is None:
            return "PostgreSQL: newest installed major, else 17"
        return f"PostgreSQL {self.pg.value} (from {self.pg.source})"
