"""pglocks_schema: the project's schema built once per run into the template every test clones."""

from __future__ import annotations

from fix_inner import Inner
from fix_messages import line_pattern

from pytest_pglocks import errors

TESTS = """
def count_builds():
    import pathlib
    return len(pathlib.Path("builds.log").read_text().splitlines())

def test_{n}_sees_the_schema(pglocks):
    assert pglocks.execute("SELECT name FROM colours ORDER BY name") == [("blue",), ("red",)]
    assert pglocks.execute("SELECT count(*) FROM shapes") == [(0,)]
    assert count_builds() == 1  # once per run, whoever asks first
"""

BUILD = """
import pathlib
import psycopg


def build(dsn):
    with pathlib.Path("builds.log").open("a") as log:
        log.write("built\\n")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE shapes (id int PRIMARY KEY)")
"""


def test_ini_steps_run_once_per_run_for_every_xdist_worker(inner: Inner) -> None:
    pytester = inner.pytester
    (pytester.path / "schema").mkdir()
    (pytester.path / "schema" / "1_tables.sql").write_text("CREATE TABLE colours (name text);")
    (pytester.path / "schema" / "2_rows.sql").write_text(
        "INSERT INTO colours VALUES ('red'); INSERT INTO colours VALUES ('blue');"
    )
    pytester.makepyfile(build_schema=BUILD)
    pytester.makeini("[pytest]\npglocks_schema =\n    schema\n    python:build_schema:build\n")
    for n in range(4):
        pytester.makepyfile(**{f"test_{n}": TESTS.format(n=n)})
    result = inner.run("-n", "2", "-p", "no:asyncio")
    result.assert_outcomes(passed=4)


def test_a_schema_changed_between_runs_is_built_afresh(inner: Inner) -> None:
    pytester = inner.pytester
    schema = pytester.path / "schema.sql"
    schema.write_text("CREATE TABLE t (a int);")
    pytester.makeini("[pytest]\npglocks_schema = schema.sql\n")
    pytester.makepyfile(
        test_columns="""
        def test_columns(pglocks):
            rows = pglocks.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0"
            )
            print("columns:", ",".join(name for (name,) in rows))
        """
    )
    inner.run("-s", "-p", "no:asyncio").stdout.fnmatch_lines(["*columns: a"])
    schema.write_text("CREATE TABLE t (a int, b int);")
    inner.run("-s", "-p", "no:asyncio").stdout.fnmatch_lines(["*columns: a,b"])


def test_a_fixture_gives_paths_and_callables_per_directory(inner: Inner) -> None:
    pytester = inner.pytester
    shop = pytester.mkpydir("shop")
    (shop / "schema.sql").write_text("CREATE TABLE orders (id int);")
    (shop / "conftest.py").write_text(
        "import pathlib, pytest\n"
        "def add_items(dsn):\n"
        "    import psycopg\n"
        "    with psycopg.connect(dsn, autocommit=True) as conn:\n"
        "        conn.execute('CREATE TABLE items (id int)')\n"
        "@pytest.fixture(scope='session')\n"
        "def pglocks_schema():\n"
        "    return [pathlib.Path(__file__).parent / 'schema.sql', add_items]\n"
    )
    (shop / "test_shop.py").write_text(
        "def test_shop_tables(pglocks):\n"
        "    assert pglocks.execute(\"SELECT to_regclass('orders') IS NOT NULL,"
        " to_regclass('items') IS NOT NULL\") == [(True, True)]\n"
    )
    pytester.makepyfile(
        test_elsewhere="""
        def test_no_schema_here(pglocks):
            assert pglocks.execute("SELECT to_regclass('orders')") == [(None,)]
        """
    )
    inner.run("-p", "no:asyncio").assert_outcomes(passed=2)


def test_a_failing_step_fails_every_test_that_needs_it_with_one_clear_message(
    inner: Inner,
) -> None:
    pytester = inner.pytester
    (pytester.path / "broken.sql").write_text("CREATE TABLE t (a int);\nCREATE TABLE t (a int);")
    pytester.makeini("[pytest]\npglocks_schema = broken.sql\n")
    pytester.makepyfile(
        test_broken="""
        def test_one(pglocks):
            pass

        def test_two(pglocks):
            pass

        def test_without_a_database():
            pass
        """
    )
    result = inner.run("-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [line_pattern(errors.SCHEMA_STEP_FAILED, step=f"{pytester.path / 'broken.sql'}")]
    )
    result.stdout.fnmatch_lines(['*DuplicateTable: relation "t" already exists*'])
    result.stdout.no_fnmatch_line("*_schema.py*")  # no traceback from inside the plugin


def test_a_missing_file_names_what_is_accepted(inner: Inner) -> None:
    inner.pytester.makeini("[pytest]\npglocks_schema = nowhere.sql\n")
    inner.pytester.makepyfile("def test_one(pglocks):\n    pass\n")
    result = inner.run("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([line_pattern(errors.SCHEMA_NO_FILE, source="nowhere.sql")])


ALEMBIC_ENV = """
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
engine = engine_from_config(
    config.get_section(config.config_ini_section), prefix="sqlalchemy.", poolclass=pool.NullPool
)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

ALEMBIC_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("accounts", sa.Column("id", sa.Integer, primary_key=True))
"""


def test_alembic_upgrade_head_builds_the_template(inner: Inner) -> None:
    pytester = inner.pytester
    versions = pytester.path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (pytester.path / "migrations" / "env.py").write_text(ALEMBIC_ENV)
    (versions / "0001_accounts.py").write_text(ALEMBIC_REVISION)
    (pytester.path / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    pytester.makeini("[pytest]\npglocks_schema = alembic:alembic.ini\n")
    pytester.makepyfile(
        test_accounts="""
        def test_migrated(pglocks):
            assert pglocks.execute("SELECT version_num FROM alembic_version") == [("0001",)]
            assert pglocks.execute("SELECT count(*) FROM accounts") == [(0,)]
        """
    )
    inner.run("-p", "no:asyncio").assert_outcomes(passed=1)
