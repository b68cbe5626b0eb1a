"""LiteLLM: per-user spend upserts in dict order deadlock between proxy pods.

Report: https://github.com/BerriAI/litellm/issues/27989 ("PostgresError deadlock detected at
INSERT INTO EndUserTable ON CONFLICT SET spend..."). Each pod commits its batched spend in one
transaction, one ``INSERT ... ON CONFLICT (user_id) DO UPDATE`` per end user, iterating a dict
whose order is the order the pod saw the users in. ``DO UPDATE`` locks the existing row until
commit, so two pods with the same users in opposite orders deadlock, about once a day in the
report. The fix the report asks for: one global order (sorted user ids).
"""

from __future__ import annotations

import pytest

from pytest_pglocks import Pglocks, assert_blocks, expect_deadlock

SCHEMA = """
CREATE TABLE "LiteLLM_EndUserTable" (
    user_id text PRIMARY KEY, spend float8 NOT NULL DEFAULT 0, blocked bool NOT NULL DEFAULT false
);
INSERT INTO "LiteLLM_EndUserTable" (user_id) VALUES ('alice'), ('bob');
"""
UPSERT = """
INSERT INTO "LiteLLM_EndUserTable" (user_id, spend, blocked) VALUES (%(user)s, %(spend)s, false)
ON CONFLICT (user_id) DO UPDATE SET spend = "LiteLLM_EndUserTable".spend + %(spend)s
"""


def test_dict_order_upserts_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    pod_a, pod_b = pglocks.sessions("pod_a", "pod_b")
    pod_a.begin()
    pod_b.begin()
    pod_a.execute(UPSERT, {"user": "alice", "spend": 1.0})  # pod_a's dict: alice, bob
    pod_b.execute(UPSERT, {"user": "bob", "spend": 2.0})  # pod_b's dict: bob, alice
    bob = pod_a.submit(UPSERT, {"user": "bob", "spend": 1.0})
    # DO UPDATE locks bob's row, which pod_b has updated: pod_a waits for pod_b's transaction.
    assert_blocks(bob, on=pod_b, lock="transactionid")
    with expect_deadlock(victim=pod_b):
        pod_b.execute(UPSERT, {"user": "alice", "spend": 2.0})
    bob.result()
    pod_a.commit()
    pod_b.rollback()  # pod_b's spend is lost unless it retries
    spend = pglocks.execute('SELECT user_id, spend FROM "LiteLLM_EndUserTable" ORDER BY 1')
    assert spend == [("alice", 1.0), ("bob", 1.0)]


@pytest.mark.no_deadlock
def test_sorted_upserts_wait_instead(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    pod_a, pod_b = pglocks.sessions("pod_a", "pod_b")
    pod_a.begin()
    pod_b.begin()
    users = sorted({"bob": 2.0, "alice": 2.0})  # the fix: sorted user ids in every pod
    pod_a.execute(UPSERT, {"user": users[0], "spend": 1.0})
    first = pod_b.submit(UPSERT, {"user": users[0], "spend": 2.0})
    assert_blocks(first, on=pod_a, lock="transactionid")
    pod_a.execute(UPSERT, {"user": users[1], "spend": 1.0})  # pod_b holds nothing pod_a needs
    pod_a.commit()
    first.result()
    pod_b.execute(UPSERT, {"user": users[1], "spend": 2.0})
    pod_b.commit()
    spend = pglocks.execute('SELECT user_id, spend FROM "LiteLLM_EndUserTable" ORDER BY 1')
    assert spend == [("alice", 3.0), ("bob", 3.0)]
