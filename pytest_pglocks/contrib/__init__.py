"""Glue for application frameworks and pools; each module imports its framework when used.

* :mod:`pytest_pglocks.contrib.django`: the ``pglocks_django`` fixture's work, ``migrate``;
* :mod:`pytest_pglocks.contrib.sqlalchemy`: ``create_engine``, ``create_async_engine``;
* :mod:`pytest_pglocks.contrib.pools`: ``connection_pool``, ``async_connection_pool``
  (psycopg_pool) and ``asyncpg_pool``.

Every connection they hand out carries, as its ``application_name``, the name of the thread or
asyncio task that checked it out, so ``pglocks.observe("worker-a")`` finds that worker's backend.
"""
