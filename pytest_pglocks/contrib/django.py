"""Django on the test's database: the ``pglocks_django`` fixture, and ``migrate`` for the schema.

``bind()`` points every PostgreSQL alias of ``DATABASES`` at the test's database, in place (so
Django's connection handler and every thread, ``sync_to_async`` included, connect there), names
each new connection after its thread, and lets Django reach the database while pytest-django
blocks it elsewhere. ``migrate()`` is the ``django`` step of ``pglocks_schema``: Django's
``migrate`` into the template, once per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import pytest

from .. import errors
from .._schema import SchemaError
from ._naming import SET_NAME, current_name

if TYPE_CHECKING:
    from ..handle import Pglocks

__all__ = ["bind", "migrate", "refuse_django_db_transaction"]

# The settings of a database that say where it is; everything else (OPTIONS, TEST) is kept.
LOCATION = ("NAME", "HOST", "PORT", "USER", "PASSWORD")


def _ready() -> str | None:
    """None once Django's settings and apps are loaded; else why they cannot be."""
    try:
        import django
        from django.apps import apps
        from django.conf import settings
    except ImportError:
        return errors.DJANGO_MISSING
    if not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return errors.DJANGO_NOT_CONFIGURED
    if not apps.ready:
        django.setup()
    return None


def _unblocked(config: pytest.Config | None) -> AbstractContextManager[object]:
    """pytest-django's database blocker lifted, where pytest-django runs."""
    try:
        from pytest_django.plugin import blocking_manager_key
    except ImportError:
        return nullcontext()
    if config is None or blocking_manager_key not in config.stash:
        return nullcontext()
    return config.stash[blocking_manager_key].unblock()


def _location(dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    keys = {"NAME": "dbname", "HOST": "host", "PORT": "port", "USER": "user"}
    location = {setting: str(params.get(key, "")) for setting, key in keys.items()}
    location["PASSWORD"] = str(params.get("password", ""))
    return location


@contextmanager
def _pointed(aliases: list[str], dsn: str) -> Iterator[None]:
    """The ``aliases``' settings dicts, shared by every thread, on ``dsn`` for a while."""
    from django.db import connections

    saved = {
        alias: {key: connections.settings[alias].get(key) for key in LOCATION} for alias in aliases
    }
    connections.close_all()
    for alias in aliases:
        connections.settings[alias].update(_location(dsn))
    try:
        yield
    finally:
        connections.close_all()
        for alias, values in saved.items():
            connections.settings[alias].update(values)


def _postgresql_aliases() -> list[str]:
    from django.db import connections

    return [
        alias
        for alias in connections.settings
        if "postgresql" in str(connections.settings[alias].get("ENGINE", ""))
    ]


def refuse_django_db_transaction(item: pytest.Item) -> None:
    """A django_db test wrapped in a transaction cannot share its rows with other sessions."""
    __tracebackhide__ = True
    fixtures = getattr(item, "fixturenames", ())
    marker = item.get_closest_marker("django_db")
    transactional = "transactional_db" in fixtures
    if marker is not None:
        transactional = transactional or bool(
            marker.kwargs.get("transaction", marker.args[0] if marker.args else False)
            or marker.kwargs.get("reset_sequences", False)
        )
    if (marker is not None or "db" in fixtures) and not transactional:
        pytest.fail(errors.DJANGO_DB_IN_TRANSACTION, pytrace=False)


@contextmanager
def bind(pglocks: Pglocks, request: pytest.FixtureRequest) -> Iterator[None]:
    """Every Django PostgreSQL connection of the test on ``pglocks``' database, named."""
    __tracebackhide__ = True
    why = _ready()
    if why is not None:
        pytest.fail(why, pytrace=False)
    aliases = _postgresql_aliases()
    if not aliases:
        pytest.fail(errors.DJANGO_NO_POSTGRESQL, pytrace=False)
    from django.db.backends.signals import connection_created

    opened: list[Any] = []

    def name_connection(sender: object, connection: Any, **kwargs: object) -> None:
        if connection.alias in aliases and connection.settings_dict["NAME"] == pglocks.dbname:
            raw = connection.connection
            with raw.cursor() as cursor:
                cursor.execute(SET_NAME, [current_name()])
            if not raw.autocommit:
                raw.commit()
            opened.append(connection)

    connection_created.connect(name_connection, weak=False)
    try:
        with _unblocked(request.config), _pointed(aliases, pglocks.dsn):
            try:
                yield
            finally:
                _close_everywhere(opened)
    finally:
        connection_created.disconnect(name_connection)


def _close_everywhere(wrappers: list[Any]) -> None:
    """Close connections opened by any thread (worker threads, sync_to_async's)."""
    from django.db import DatabaseError

    for wrapper in wrappers:
        wrapper.inc_thread_sharing()
        try:
            wrapper.close()
        except DatabaseError:  # the backend may be gone already
            pass
        finally:
            wrapper.dec_thread_sharing()


def migrate(dsn: str, *, alias: str = "default", config: pytest.Config | None = None) -> None:
    """Django's ``migrate`` of database ``alias`` into the database of ``dsn``."""
    why = _ready()
    if why is not None:
        raise SchemaError(why)
    from django.core.management import call_command
    from django.db import connections

    if alias not in connections.settings:
        raise SchemaError(errors.DJANGO_NO_ALIAS.format(alias=alias))
    with _unblocked(config), _pointed([alias], dsn):
        call_command("migrate", database=alias, interactive=False, verbosity=0)
