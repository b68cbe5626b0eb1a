"""The wait-for graph as pure functions of hand-made snapshots: edges, cycles, stuck waits, text."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pytest_pglocks import LockRow, WaitGraph
from pytest_pglocks.monitor import Snapshot, WaitEdge

S1, S2, S3, S4 = 101, 102, 103, 104
OUTSIDER = 999
NAMES = {S1: "s1", S2: "s2", S3: "s3", S4: "s4"}


def lock(
    pid: int,
    locktype: str = "transactionid",
    mode: str = "ExclusiveLock",
    *,
    granted: bool = True,
    **where: object,
) -> LockRow:
    return LockRow(NAMES.get(pid), pid, locktype, mode, granted, **where)  # type: ignore[arg-type]


def xid_lock(holder: int, xid: str) -> LockRow:
    return lock(holder, transactionid=xid)


def xid_wait(waiter: int, xid: str) -> LockRow:
    return lock(waiter, mode="ShareLock", granted=False, transactionid=xid)


def graph(
    blocking: Mapping[int, tuple[int, ...]],
    locks: tuple[LockRow, ...] = (),
    *,
    safe: Mapping[int, tuple[int, ...]] | None = None,
    names: Mapping[int, str] = NAMES,
) -> WaitGraph:
    snapshot = Snapshot(
        names=names,
        locks=locks,
        blocking=blocking,
        safe_snapshot=safe or {},
        activity={},
    )
    return WaitGraph.build(snapshot)


def row_waits(*pairs: tuple[int, int]) -> WaitGraph:
    """``(waiter, blocker)`` pairs, each a wait for the blocker's transaction id."""
    blocking: dict[int, tuple[int, ...]] = {}
    locks: list[LockRow] = []
    for waiter, blocker in pairs:
        blocking[waiter] = (*blocking.get(waiter, ()), blocker)
        locks += [xid_wait(waiter, str(blocker)), xid_lock(blocker, str(blocker))]
    return graph(blocking, tuple(locks))


# building the graph


def test_edges_only_join_the_tests_own_backends() -> None:
    built = graph({S2: (S1, OUTSIDER), S3: (OUTSIDER,), S4: (S4,)})
    assert [(edge.waiter, edge.blocker) for edge in built.edges] == [(S2, S1)]
    assert built.blockers(S3) == ()
    assert built.waiting() == (S2,)


def test_an_edge_carries_the_awaited_lock_and_the_blockers_granted_lock() -> None:
    awaited = xid_wait(S2, "812")
    held = xid_lock(S1, "812")
    built = graph({S2: (S1,)}, (awaited, held, xid_lock(S2, "813")))
    assert built.edges == (WaitEdge(S2, S1, awaited, held),)


def test_a_blocker_queued_ahead_holds_nothing_of_the_awaited_lock() -> None:
    awaited = lock(S3, "relation", "AccessExclusiveLock", granted=False, relation="t")
    queued = lock(S2, "relation", "AccessExclusiveLock", granted=False, relation="t")
    holder = lock(S1, "relation", "AccessShareLock", relation="t")
    built = graph({S3: (S1, S2), S2: (S1,)}, (awaited, queued, holder))
    edge = next(e for e in built.edges if (e.waiter, e.blocker) == (S3, S2))
    assert edge.held is None
    assert edge.describe(built.snapshot) == (
        "s3 waits for AccessExclusiveLock on t requested earlier by s2"
    )


def test_a_safe_snapshot_wait_is_an_edge_without_a_lock() -> None:
    built = graph({}, safe={S2: (S1, OUTSIDER)})
    assert built.edges == (WaitEdge(S2, S1, None, None, safe_snapshot=True),)
    assert built.edges[0].describe(built.snapshot) == (
        "s2 waits for a safe snapshot until s1 finishes"
    )
    assert built.snapshot.settled()
    assert built.snapshot.waits_for(S2) == "a safe snapshot"


def test_blockers_read_before_the_waiters_lock_row_are_no_safe_snapshot_wait() -> None:
    # pg_blocking_pids() saw s2 wait, pg_locks (read a moment earlier) not yet
    built = graph({S2: (S1,)}, (xid_lock(S1, "812"),))
    assert not built.snapshot.settled()
    assert built.snapshot.waits_for(S2) == "a lock"
    assert built.edges[0].describe(built.snapshot) == "s2 waits for a lock held by s1"


# cycles


def test_a_chain_has_no_cycle() -> None:
    chain = row_waits((S3, S2), (S2, S1))
    assert chain.cycles() == []
    assert not chain.reaches_cycle(S3)


def test_a_two_session_cycle_is_listed_once_from_its_smallest_pid() -> None:
    assert row_waits((S2, S1), (S1, S2)).cycles() == [[S1, S2]]


def test_a_three_session_cycle_follows_the_waits() -> None:
    # s1 waits for s3, s3 for s2, s2 for s1
    assert row_waits((S1, S3), (S3, S2), (S2, S1)).cycles() == [[S1, S3, S2]]


def test_cycles_sharing_a_session_are_each_listed() -> None:
    built = row_waits((S1, S2), (S2, S1), (S1, S3), (S3, S1), (S4, S2))
    assert built.cycles() == [[S1, S2], [S1, S3]]
    assert built.reaches_cycle(S4)


# waits that cannot end


def test_a_direct_wait_on_an_idle_session_cannot_end() -> None:
    assert row_waits((S2, S1)).idle_blockers(S2, frozenset({S2})) == {S1}


def test_a_wait_on_a_busy_session_may_end() -> None:
    assert row_waits((S2, S1)).idle_blockers(S2, frozenset({S1, S2})) == set()


def test_a_chain_is_followed_to_the_idle_session_at_its_end() -> None:
    chain = row_waits((S3, S2), (S2, S1))
    assert chain.chain_ends(S3) == {S1}
    assert chain.idle_blockers(S3, frozenset({S2, S3})) == {S1}
    assert chain.idle_blockers(S3, frozenset({S1, S2, S3})) == set()


def test_a_wait_with_one_busy_and_one_idle_end_cannot_end() -> None:
    built = row_waits((S3, S1), (S3, S2))
    assert built.idle_blockers(S3, frozenset({S2, S3})) == {S1}


def test_a_wait_that_leads_into_a_cycle_is_left_to_the_deadlock_detector() -> None:
    built = row_waits((S3, S1), (S1, S2), (S2, S1))
    assert built.reaches_cycle(S3)
    assert built.idle_blockers(S3, frozenset({S3})) == set()
    assert built.idle_blockers(S1, frozenset()) == set()


def test_a_safe_snapshot_wait_on_an_idle_session_cannot_end() -> None:
    built = graph({}, safe={S2: (S1,)})
    assert built.idle_blockers(S2, frozenset({S2})) == {S1}


def test_a_session_that_waits_for_nobody_has_no_idle_blockers() -> None:
    assert row_waits((S2, S1)).idle_blockers(S1, frozenset()) == set()


# texts


def test_a_transaction_wait_reads_as_a_sentence() -> None:
    built = graph({S2: (S1,)}, (xid_wait(S2, "812"), xid_lock(S1, "812")))
    assert built.edges[0].describe(built.snapshot) == (
        "s2 waits for ShareLock on transaction 812 held by s1"
    )


def test_a_relation_wait_names_the_mode_the_blocker_holds() -> None:
    built = graph(
        {S2: (S1,)},
        (
            lock(S2, "relation", "RowExclusiveLock", granted=False, relation="t"),
            lock(S1, "relation", "ShareLock", relation="t"),
        ),
    )
    assert str(built) == (
        "wait-for graph:\n  s2 waits for RowExclusiveLock on t held by s1 (ShareLock)"
    )


def test_a_tuple_wait_names_the_row_and_relation() -> None:
    built = graph(
        {S3: (S2,)},
        (
            lock(S3, "tuple", granted=False, relation="t", page=0, tuple=7),
            lock(S2, "tuple", relation="t", page=0, tuple=7),
        ),
    )
    assert built.edges[0].describe(built.snapshot) == (
        "s3 waits for ExclusiveLock on tuple (0,7) of t held by s2"
    )


def test_a_backend_without_a_session_name_reads_as_its_pid() -> None:
    snapshot = graph({}).snapshot
    assert snapshot.name(S2) == "s2"
    assert snapshot.name(OUTSIDER) == "pid 999"


def test_an_empty_graph_says_nobody_waits() -> None:
    assert str(graph({S2: (OUTSIDER,)})) == (
        "wait-for graph: no session of this test waits for another"
    )


def test_the_graph_text_lists_each_wait_then_the_cycle() -> None:
    locks = (
        xid_wait(S1, "900"),
        xid_lock(S1, "901"),
        xid_wait(S2, "901"),
        xid_lock(S2, "900"),
    )
    built = graph({S1: (S2,), S2: (S1,)}, locks)
    assert str(built).splitlines() == [
        "wait-for graph:",
        "  s1 waits for ShareLock on transaction 900 held by s2",
        "  s2 waits for ShareLock on transaction 901 held by s1",
        "  cycle (deadlock): s1 waits for ShareLock on transaction 900 held by s2; "
        "s2 waits for ShareLock on transaction 901 held by s1",
    ]


@pytest.mark.parametrize(
    ("row", "text"),
    [
        (lock(S1, "transactionid", transactionid="812"), "transaction 812"),
        (lock(S1, "virtualxid", virtualxid="3/17"), "virtual transaction 3/17"),
        (lock(S1, "tuple", relation="t", page=2, tuple=5), "tuple (2,5) of t"),
        (lock(S1, "page", relation="t_pkey", page=4), "page 4 of t_pkey"),
        (lock(S1, "relation", relation="public.t"), "public.t"),
        (lock(S1, "extend", relation="t"), "extension of t"),
        (lock(S1, "advisory", classid=0, objid=42, objsubid=1), "advisory lock 42"),
        (lock(S1, "advisory", classid=1, objid=2, objsubid=1), "advisory lock 4294967298"),
        (lock(S1, "advisory", classid=7, objid=8, objsubid=2), "advisory lock (7,8)"),
        (lock(S1, "object", classid=1259, objid=16384, objsubid=0), "object 1259/16384/0"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_what_a_lock_is_on_reads_in_words(row: LockRow, text: str) -> None:
    assert row.target() == text
    assert row.describe() == f"{row.mode} on {text}"


# snapshots


def test_a_snapshot_is_read_from_the_monitors_json_row() -> None:
    locks_json = [
        {
            "pid": S2,
            "locktype": "transactionid",
            "mode": "ShareLock",
            "granted": False,
            "relation": None,
            "page": None,
            "tuple": None,
            "transactionid": "812",
            "virtualxid": None,
            "classid": None,
            "objid": None,
            "objsubid": None,
        },
        {  # a prepared transaction's lock has no pid: not a backend of the test
            "pid": None,
            "locktype": "relation",
            "mode": "RowExclusiveLock",
            "granted": True,
            "relation": "t",
            "page": None,
            "tuple": None,
            "transactionid": None,
            "virtualxid": None,
            "classid": None,
            "objid": None,
            "objsubid": None,
        },
    ]
    blocking_json = {
        str(S1): {"blocking": [], "safe_snapshot": []},
        str(S2): {"blocking": [S1], "safe_snapshot": []},
    }
    activity_json = {
        str(S2): {
            "state": "active",
            "wait_event_type": "Lock",
            "wait_event": "transactionid",
            "query": "UPDATE t SET v = 2",
            "xid": "813",
        }
    }
    snapshot = Snapshot.from_row((locks_json, blocking_json, activity_json), {S1: "s1", S2: "s2"})
    assert snapshot.locks == (xid_wait(S2, "812"),)
    assert snapshot.blocking == {S1: (), S2: (S1,)}
    assert snapshot.safe_snapshot == {S1: (), S2: ()}
    assert snapshot.activity[S2].wait_event == "transactionid"
    assert snapshot.awaited(S2) == xid_wait(S2, "812")
    assert snapshot.awaited(S1) is None


def test_a_waiter_holding_a_tuple_lock_is_found_with_its_relation() -> None:
    tuple_lock = lock(S2, "tuple", relation="t", page=0, tuple=1)
    snapshot = graph({S2: (S1,)}, (xid_wait(S2, "812"), tuple_lock)).snapshot
    assert snapshot.held_tuple_lock(S2) == tuple_lock
    assert snapshot.held_tuple_lock(S1) is None
    assert snapshot.holder_of(xid_wait(S2, "812"), S1) is None  # S1 holds no xid 812 here
