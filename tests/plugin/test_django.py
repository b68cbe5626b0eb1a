"""pglocks_django under pytest-django: every thread's connection on the test's database, named,
migrations once per run into the template, and clear errors for what cannot work."""

from __future__ import annotations

import pytest
from fix_inner import Inner
from fix_messages import line_pattern

from pytest_pglocks import errors

pytest.importorskip("pytest_django")

SETTINGS = """
SECRET_KEY = "test"
INSTALLED_APPS = ["notes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unused"}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

MODELS = """
from django.db import models


class Note(models.Model):
    text = models.TextField()
"""

MIGRATION = """
import pathlib

from django.db import migrations, models


def count_run(apps, schema_editor):
    with pathlib.Path(__file__).parents[2].joinpath("migrations.log").open("a") as log:
        log.write("migrated\\n")


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[("id", models.AutoField(primary_key=True)), ("text", models.TextField())],
        ),
        migrations.RunPython(count_run),
    ]
"""

TESTS = """
import pathlib
import threading

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection

from notes.models import Note


def name_and_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('application_name'), current_database()")
        return cursor.fetchone()


def test_{n}_every_thread_uses_the_tests_database(pglocks_django):
    pglocks = pglocks_django
    Note.objects.create(text="from the test")  # pytest-django's blocker is lifted
    assert name_and_database() == ("MainThread", pglocks.dbname)
    seen = {{}}

    def worker():
        seen["worker"] = name_and_database()
        seen["notes"] = Note.objects.count()

    thread = threading.Thread(target=worker, name="worker-{n}")
    thread.start()
    thread.join()
    assert seen == {{"worker": ("worker-{n}", pglocks.dbname), "notes": 1}}
    in_thread = async_to_sync(sync_to_async(name_and_database, thread_sensitive=False))()
    assert in_thread[1] == pglocks.dbname
    assert pglocks.observe("worker-{n}").application_name == "worker-{n}"
    assert pathlib.Path("migrations.log").read_text() == "migrated\\n"  # once per run
"""


def make_project(inner: Inner, ini: str) -> None:
    pytester = inner.pytester
    notes = pytester.mkpydir("notes")
    (notes / "models.py").write_text(MODELS)
    migrations = notes / "migrations"
    migrations.mkdir()
    (migrations / "__init__.py").write_text("")
    (migrations / "0001_initial.py").write_text(MIGRATION)
    pytester.makepyfile(settings=SETTINGS)
    pytester.makeini("[pytest]\n" + ini)


def test_threads_and_sync_to_async_use_the_tests_database_migrated_once(inner: Inner) -> None:
    make_project(inner, "DJANGO_SETTINGS_MODULE = settings\npglocks_schema = django\n")
    for n in range(3):
        inner.pytester.makepyfile(**{f"test_notes_{n}": TESTS.format(n=n)})
    result = inner.run("-n", "2", "-p", "no:asyncio")
    result.assert_outcomes(passed=3)


def test_a_django_db_test_in_a_transaction_is_refused_before_it_starts(inner: Inner) -> None:
    make_project(inner, "DJANGO_SETTINGS_MODULE = settings\npglocks_schema = django\n")
    inner.pytester.makepyfile(
        test_refused="""
        import pytest

        @pytest.mark.django_db
        def test_marked(pglocks_django):
            pass

        def test_db_fixture(db, pglocks_django):
            pass
        """
    )
    result = inner.run("-p", "no:asyncio")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([line_pattern(errors.DJANGO_DB_IN_TRANSACTION)] * 2)


def test_without_django_settings_the_fixture_says_how_to_configure_them(inner: Inner) -> None:
    inner.pytester.makepyfile("def test_one(pglocks_django):\n    pass\n")
    result = inner.run("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([line_pattern(errors.DJANGO_NOT_CONFIGURED)])


POINT_DJANGO_DB_AT_THE_SERVER = """
import pytest
from psycopg.conninfo import conninfo_to_dict


@pytest.fixture(scope="session")
def django_db_modify_db_settings(pglocks_server):
    # pytest-django's own test database, on the run's server.
    from django.db import connections

    params = conninfo_to_dict(pglocks_server.dsn)
    connections.settings["default"].update(
        HOST=params.get("host", ""), PORT=str(params.get("port", "")),
        USER=params.get("user", ""), PASSWORD=params.get("password", ""), NAME="notes",
    )
"""


def test_transactional_django_db_tests_mix_with_pglocks_django(inner: Inner) -> None:
    make_project(inner, "DJANGO_SETTINGS_MODULE = settings\npglocks_schema = django\n")
    inner.pytester.makeconftest(
        inner.pytester.path.joinpath("conftest.py").read_text() + POINT_DJANGO_DB_AT_THE_SERVER
    )
    inner.pytester.makepyfile(
        test_mixed="""
        import pytest
        from django.db import connection

        from notes.models import Note


        def database():
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database()")
                return cursor.fetchone()[0]


        @pytest.mark.django_db
        def test_plain_django_db():
            Note.objects.create(text="x")
            assert database() == "test_notes"


        @pytest.mark.django_db(transaction=True)
        def test_transactional_with_pglocks(pglocks_django):
            Note.objects.create(text="y")
            assert database() == pglocks_django.dbname
            assert pglocks_django.execute("SELECT text FROM notes_note") == [("y",)]


        @pytest.mark.django_db(transaction=True)
        def test_transactional_alone():
            assert database() == "test_notes"
            assert Note.objects.count() == 0
        """
    )
    result = inner.run("-p", "no:asyncio")
    result.assert_outcomes(passed=3)
