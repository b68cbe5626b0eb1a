"""The project's schema, built once per run into a template that every test database clones.

A schema is a list of steps, from the ``pglocks_schema`` ini lines or the ``pglocks_schema``
fixture: SQL files (or folders of them), ``python:module:function``, ``alembic:alembic.ini``,
``django``, or Python callables taking the database's conninfo. Each distinct schema gets its own
template, named after a fingerprint of its steps (and of the SQL files' contents), built by the
first process of the run that needs it, under a file lock, and cloned by all. Templates live as
long as the run's server, so a schema changed between runs is always built afresh.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

from filelock import FileLock

from . import errors
from .errors import PglocksError

if TYPE_CHECKING:
    import psycopg
    import pytest

    from .server import Server

__all__ = ["SchemaSource"]

#: One step of a schema: an ini-style line, a path, or a callable given the conninfo.
SchemaSource = Union[str, "os.PathLike[str]", Callable[[str], object]]

RECORD = "pglocks-schema-{fingerprint}.json"
FAILURE = "pglocks-schema-{fingerprint}.error"
LOCK = "pglocks-schema-{fingerprint}.lock"


class SchemaError(PglocksError):
    """The project's schema could not be built into the template."""

    __module__ = "pytest_pglocks"


@dataclass(frozen=True)
class Step:
    """One resolved schema step: what it is, and what to run."""

    kind: str  # "sql", "python", "alembic", "django"
    target: str  # a file, "module:function", an alembic.ini, or a Django alias
    function: Callable[[str], object] | None = None

    def describe(self) -> str:
        return self.target if self.kind == "sql" else f"{self.kind}:{self.target}"


def parse(sources: Sequence[SchemaSource], root: Path) -> list[Step]:
    """Steps of ``sources``; relative paths are relative to ``root`` (the ini file's folder)."""
    steps: list[Step] = []
    for source in sources:
        if callable(source):
            name = f"{source.__module__}.{getattr(source, '__qualname__', repr(source))}"
            steps.append(Step("python", name, source))
            continue
        text = os.fspath(source).strip()
        if not text:
            continue
        kind, _, rest = text.partition(":")
        if kind == "python" and rest:
            steps.append(Step("python", rest, _import(rest)))
        elif kind == "alembic":
            steps.append(Step("alembic", str(_existing(root, rest or "alembic.ini", text))))
        elif kind == "django":
            steps.append(Step("django", rest or "default"))
        else:
            steps.extend(Step("sql", str(path)) for path in _sql_files(root, text))
    return steps


def _import(spec: str) -> Callable[[str], object]:
    module_name, _, attribute = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise SchemaError(errors.SCHEMA_BAD_CALLABLE.format(spec=spec, why=exc)) from None
    if not callable(function):
        raise SchemaError(errors.SCHEMA_BAD_CALLABLE.format(spec=spec, why="not callable"))
    return function  # type: ignore[no-any-return]


def _existing(root: Path, name: str, source: str) -> Path:
    path = (root / name).resolve()
    if not path.exists():
        raise SchemaError(errors.SCHEMA_NO_FILE.format(source=source, path=path))
    return path


def _sql_files(root: Path, source: str) -> list[Path]:
    path = _existing(root, source, source)
    if path.is_dir():
        files = sorted(path.glob("*.sql"))
        if not files:
            raise SchemaError(errors.SCHEMA_EMPTY_DIR.format(source=source, path=path))
        return files
    return [path]


def fingerprint(steps: Sequence[Step]) -> str:
    """Same steps, same SQL text: same template."""
    digest = hashlib.sha256()
    for step in steps:
        digest.update(f"{step.kind}\0{step.target}\0".encode())
        if step.kind == "sql":
            digest.update(Path(step.target).read_bytes())
    return digest.hexdigest()[:12]


def template_for(
    server: Server, steps: Sequence[Step], shared_dir: Path, config: pytest.Config
) -> str:
    """The template holding ``steps``, built now if no process of the run built it yet."""
    print_ = fingerprint(steps)
    name = f"{server.template}_{print_}"
    record = shared_dir / RECORD.format(fingerprint=print_)
    failure = shared_dir / FAILURE.format(fingerprint=print_)
    with FileLock(str(shared_dir / LOCK.format(fingerprint=print_))):
        if record.exists():
            return name
        if failure.exists():
            raise SchemaError(failure.read_text())
        try:
            _build(server, name, steps, config)
        except SchemaError as exc:
            failure.write_text(str(exc))
            raise
        record.write_text(json.dumps({"template": name, "steps": [s.describe() for s in steps]}))
    return name


def built_templates(shared_dir: Path) -> list[str]:
    """Names of the schema templates some process of the run built."""
    return [
        json.loads(path.read_text())["template"]
        for path in sorted(shared_dir.glob(RECORD.format(fingerprint="*")))
    ]


def _build(server: Server, name: str, steps: Sequence[Step], config: pytest.Config | None) -> None:
    import psycopg
    from psycopg import sql

    dsn = server.conninfo(name)
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(server.template)
            )
        )
        try:
            for step in steps:
                _run(step, dsn, config)
        except BaseException:
            _drop(admin, name)
            raise
        # A step may leave connections behind (a pool, Django's); none may stay in a template.
        admin.execute(
            "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity"
            " WHERE datname = %s",
            (name,),
        )


def _drop(admin: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    from psycopg import sql

    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def drop_templates(server: Server, names: Sequence[str]) -> None:
    """Drop schema templates (on an existing server, which outlives the run)."""
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True) as admin:
        for name in names:
            _drop(admin, name)


def _run(step: Step, dsn: str, config: pytest.Config | None) -> None:
    import psycopg

    try:
        if step.kind == "sql":
            with psycopg.connect(dsn, autocommit=True, application_name="pglocks:schema") as conn:
                conn.execute(Path(step.target).read_text(encoding="utf-8").encode())
        elif step.kind == "python":
            assert step.function is not None
            step.function(dsn)
        elif step.kind == "alembic":
            _alembic_upgrade(step.target, dsn)
        else:
            from .contrib.django import migrate

            migrate(dsn, alias=step.target, config=config)
    except SchemaError:
        raise
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}".strip()
        raise SchemaError(errors.SCHEMA_STEP_FAILED.format(step=step.describe(), why=why)) from exc


def _alembic_upgrade(ini: str, dsn: str) -> None:
    try:
        from alembic import command
        from alembic.config import Config
    except ImportError:
        raise SchemaError(errors.SCHEMA_MISSING_PACKAGE.format(kind="alembic")) from None
    from .handle import url_of

    alembic_config = Config(ini)
    url = url_of(dsn).replace("postgresql://", "postgresql+psycopg://", 1)
    alembic_config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser
    command.upgrade(alembic_config, "head")
