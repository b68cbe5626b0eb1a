"""A test that leaves statements in flight: its teardown cancels them, and the run never hangs."""

from __future__ import annotations

from fix_inner import Inner


def test_teardown_cancels_the_statements_a_test_left_running(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_left="""
        import psycopg
        from pytest_pglocks import assert_blocks

        LEFT = {}

        def test_leaves_statements_running(pglocks):
            pglocks.execute("CREATE TABLE t (k int)")
            waiter = pglocks.session("waiter")  # closed first, while still blocked
            holder = pglocks.session("holder")
            holder.begin()
            holder.execute("LOCK TABLE t")
            LEFT["blocked"] = waiter.submit("SELECT * FROM t")
            assert_blocks(LEFT["blocked"], on=holder)
            # Sent just before the test ends: the cancel may reach the server before they do.
            slow = "SELECT pg_sleep(3600)"  # sleep-ok: a slow statement for teardown to cancel
            for n in range(5):
                LEFT[f"sleeping{n}"] = pglocks.session().submit(slow)

        def test_they_were_cancelled():
            assert len(LEFT) == 6
            for name, pending in LEFT.items():
                assert pending.done(), name
                assert isinstance(pending.error, psycopg.errors.QueryCanceled), (name, pending)
        """
    )
    result = inner.run("-p", "no:randomly", timeout=60)  # the timeout only guards a hang
    result.assert_outcomes(passed=2)
    inner.assert_nothing_left({})
