"""PgQueuer: workers upserting the same statistics rows deadlock inside one statement.

Report: https://github.com/janbjorge/pgqueuer/issues/170 ("Deadlocks occurring during
concurrent insert/update into statistics_table"). Each worker logs its finished jobs with one
``WITH deleted AS (DELETE ...) ... INSERT INTO statistics ... ON CONFLICT DO UPDATE``: every
grouped row updates a shared counter row, row by row in the order the grouping returns them,
so two workers with overlapping keys in different orders wait on each other inside their
single statements. The report's mitigation retries the statement on a deadlock, with
exponential backoff.

Where the rows of one statement meet no trigger a test wants (the speculative insertion of the
upsert comes first), ``pglocks.race()`` is the last resort: it runs both workers' statements
side by side, round after round, and counts how they end.
"""

from __future__ import annotations

from pytest_pglocks import Pglocks

SCHEMA = """
CREATE TABLE statistics (entrypoint text PRIMARY KEY, count int NOT NULL);
"""
KEYS = [f"job_{n:02}" for n in range(40)]
# Every counter exists already: each grouped row is an update of a shared row.
RESET = "TRUNCATE statistics; INSERT INTO statistics SELECT unnest(%s), 0" % (
    "ARRAY[" + ", ".join(f"'{key}'" for key in KEYS) + "]"
)
LOG_JOBS = """
INSERT INTO statistics SELECT entrypoint, 1 FROM unnest(ARRAY[{}]) AS entrypoint
ON CONFLICT (entrypoint) DO UPDATE SET count = statistics.count + EXCLUDED.count
"""
RETRIED = """
DO $$ BEGIN
  LOOP
    BEGIN
      {}; EXIT;
    EXCEPTION WHEN deadlock_detected THEN NULL;  -- the report's retry (without its backoff)
    END;
  END LOOP;
END $$
"""


def log_jobs(keys: list[str]) -> str:
    return LOG_JOBS.format(", ".join(f"'{key}'" for key in keys))


def test_two_workers_in_different_orders_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    race = pglocks.race(
        log_jobs(KEYS),
        log_jobs(KEYS[::-1]),  # the other worker's grouping came out in another order
        rounds=20_000,
        reset=RESET,
        stop_on="40P01",
    )
    assert race.count("40P01") == 1, race
    assert "waits for ShareLock on transaction" in str(race.errors["40P01"].diag.message_detail)


def test_the_retry_loses_no_count(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    race = pglocks.race(
        RETRIED.format(log_jobs(KEYS)),
        RETRIED.format(log_jobs(KEYS[::-1])),
        rounds=200,
        reset=RESET,
    )
    assert race.counts == {"00000": 400}, race  # no deadlock reaches a worker
    assert pglocks.execute("SELECT DISTINCT count FROM statistics") == [(2,)]  # none lost
