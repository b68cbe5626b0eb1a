"""What a step touches, and whether two steps of different sessions can affect each other.

Two steps are *independent* when running them in either order (with nothing in between)
gives the same result: they touch no common table, or both only read. Exploration then tries
only one of the two orders. The analysis is conservative; anything it cannot see through
counts as touching everything:

* SQL is parsed with sqlglot; a statement that does not parse, DDL, ``DO``/``CALL``, and any
  call of a function sqlglot does not know (it may do anything: ``pg_advisory_lock``,
  ``nextval``, your own functions) touch everything; so does a callable step.
* Foreign keys tie tables together (a child insert locks parent rows, a parent delete
  cascades or checks children): a table stands for every table it is linked to, transitively,
  and for its partitions and parents.
* Writing a table that has triggers or rules, or any use of a view, touches everything.
* ``COMMIT``, ``ROLLBACK`` (also ``TO SAVEPOINT``) and ``PREPARE TRANSACTION`` release what
  the session locked: they touch everything the session's steps and setup touch. In a session
  that uses ``REPEATABLE READ`` or ``SERIALIZABLE`` (its first statement fixes a snapshot),
  every step touches everything the session touches.
* ``BEGIN``, ``SET``, ``SAVEPOINT``, ``RELEASE`` and ``SHOW`` touch nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

EVERYTHING = None  # a footprint's tables when they are unknown

NOTHING_KEYWORDS = ("BEGIN", "START", "SET", "SAVEPOINT", "RELEASE", "SHOW", "RESET")
END_KEYWORDS = ("COMMIT", "ROLLBACK", "END", "ABORT", "PREPARE")
SNAPSHOT_LEVELS = re.compile(r"repeatable\s+read|serializable|default_transaction_isolation", re.I)
LOCK_TABLES = re.compile(
    r"\s*LOCK\s+(?:TABLE\s+)?(?:ONLY\s+)?(.+?)(?:\s+IN\s+|\s+NOWAIT|\s*$)", re.I
)


@dataclass(frozen=True)
class Footprint:
    """The tables a step touches (None: unknown, so everything) and whether it may write."""

    tables: frozenset[str] | None
    writes: bool = False
    ends_transaction: bool = False
    takes_snapshot: bool = False

    def conflicts(self, other: Footprint) -> bool:
        """Whether the two steps' order can matter."""
        if not (self.writes or other.writes):
            return False
        if self.tables is None:
            return other.tables is None or bool(other.tables)
        if other.tables is None:
            return bool(self.tables)
        return bool(self.tables & other.tables)

    def __or__(self, other: Footprint) -> Footprint:
        tables = None if self.tables is None or other.tables is None else self.tables | other.tables
        return Footprint(
            tables,
            self.writes or other.writes,
            self.ends_transaction or other.ends_transaction,
            self.takes_snapshot or other.takes_snapshot,
        )


NOTHING = Footprint(frozenset())
UNKNOWN = Footprint(EVERYTHING, writes=True, takes_snapshot=True)


@dataclass(frozen=True)
class Catalog:
    """What the database says about the tables the steps may name."""

    relkinds: Mapping[str, str]  # table name -> relkind ('r', 'p', 'v', 'm', 'f', ...)
    links: Mapping[str, frozenset[str]]  # table -> tables tied to it by FKs or inheritance
    opaque_writes: frozenset[str]  # tables with user triggers, rules or user-function defaults

    def expand(self, tables: Iterable[str], writes: bool) -> Footprint:
        """The tables' footprint through links; unknown if any table is not plain."""
        out: set[str] = set()
        for table in tables:
            kind = self.relkinds.get(table)
            if kind not in ("r", "p"):  # a view, a foreign table, a table created by a step
                return UNKNOWN
            out |= self.links.get(table, frozenset({table}))
        if writes and out & self.opaque_writes:  # a write may cascade to any linked table
            return UNKNOWN
        return Footprint(frozenset(out), writes, takes_snapshot=True)


CATALOG_QUERY = """
SELECT c.relname, c.relkind,
  EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal)
  OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid
             AND r.rulename <> '_RETURN')
  OR EXISTS (SELECT 1 FROM pg_catalog.pg_attrdef d
             JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::regclass
               AND dep.objid = d.oid AND dep.refclassid = 'pg_catalog.pg_proc'::regclass
             JOIN pg_catalog.pg_proc p ON p.oid = dep.refobjid
             WHERE d.adrelid = c.oid
               AND p.pronamespace <> 'pg_catalog'::regnamespace)
FROM pg_catalog.pg_class c
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND c.relnamespace = ANY (pg_catalog.current_schemas(false)::regnamespace[])
"""
# Pairs of tables whose writes can affect each other: foreign keys, inheritance and
# partitions, and column defaults drawing from one sequence.
LINKS_QUERY = """
SELECT a.relname, b.relname
FROM pg_catalog.pg_constraint f
JOIN pg_catalog.pg_class a ON a.oid = f.conrelid
JOIN pg_catalog.pg_class b ON b.oid = f.confrelid
WHERE f.contype = 'f'
UNION ALL
SELECT a.relname, b.relname
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class a ON a.oid = i.inhrelid
JOIN pg_catalog.pg_class b ON b.oid = i.inhparent
UNION ALL
SELECT a.relname, b.relname
FROM (SELECT d.adrelid AS rel, dep.refobjid AS seq
      FROM pg_catalog.pg_attrdef d
      JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::regclass
        AND dep.objid = d.oid AND dep.refclassid = 'pg_catalog.pg_class'::regclass) x
JOIN (SELECT d.adrelid AS rel, dep.refobjid AS seq
      FROM pg_catalog.pg_attrdef d
      JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::regclass
        AND dep.objid = d.oid AND dep.refclassid = 'pg_catalog.pg_class'::regclass) y
  ON x.seq = y.seq AND x.rel <> y.rel
JOIN pg_catalog.pg_class a ON a.oid = x.rel
JOIN pg_catalog.pg_class b ON b.oid = y.rel
"""


def read_catalog(run: Callable[[str], list[tuple[Any, ...]]]) -> Catalog:
    """The catalog as seen by a connection (``run(sql)`` returns the rows)."""
    rows = run(CATALOG_QUERY)
    relkinds = {name: kind for name, kind, _ in rows}
    opaque = frozenset(name for name, _, has_triggers in rows if has_triggers)
    groups: dict[str, set[str]] = {name: {name} for name in relkinds}
    for child, parent in run(LINKS_QUERY):
        merged = groups.setdefault(child, {child}) | groups.setdefault(parent, {parent})
        for member in merged:
            groups[member] = merged
    return Catalog(relkinds, {k: frozenset(v) for k, v in groups.items()}, opaque)


def statements(sql: str) -> list[str]:
    """The statements of a step, split where sqlglot's tokenizer sees semicolons."""
    from sqlglot import TokenType
    from sqlglot.dialects.dialect import Dialect

    try:
        tokens = Dialect.get_or_raise("postgres").tokenizer_class().tokenize(sql)
    except Exception:
        return [sql]
    out, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            out.append(sql[start : token.start])
            start = token.end + 1
    out.append(sql[start:])
    return [text.strip() for text in out if text.strip()]


def statement_footprint(sql: str, catalog: Catalog) -> Footprint:
    """The footprint of one statement (transaction ends are marked, not resolved)."""
    import sqlglot
    from sqlglot import exp

    words = sql.upper().split(None, 2)
    keyword = words[0] if words else ""
    if keyword == "PREPARE" and words[1:2] != ["TRANSACTION"]:
        return NOTHING  # a prepared statement's definition; EXECUTE is what runs it
    if keyword in ("COMMIT", "ROLLBACK") and words[1:2] == ["PREPARED"]:
        return UNKNOWN  # ends another, prepared, transaction
    if keyword == "SET" and words[1:2] == ["CONSTRAINTS"]:
        keyword = "COMMIT"  # runs the transaction's deferred checks, like its end
    if keyword in END_KEYWORDS:
        return Footprint(frozenset(), writes=True, ends_transaction=True, takes_snapshot=True)
    if keyword in NOTHING_KEYWORDS:
        return NOTHING
    if keyword == "LOCK":
        match = LOCK_TABLES.match(sql)
        if not match:
            return UNKNOWN
        names = [_name(part) for part in match[1].split(",")]
        return catalog.expand(names, writes=True)
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except Exception:
        return UNKNOWN
    if not isinstance(tree, exp.Select | exp.Insert | exp.Update | exp.Delete | exp.Merge):
        return UNKNOWN
    if any(isinstance(node, exp.Anonymous) for node in tree.find_all(exp.Func)):
        return UNKNOWN
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables = {table.name.lower() for table in tree.find_all(exp.Table)} - ctes
    writes = not isinstance(tree, exp.Select) or bool(tree.args.get("locks"))
    writes = writes or any(True for _ in tree.find_all(exp.Insert, exp.Update, exp.Delete))
    if not tables:
        return Footprint(frozenset(), writes, takes_snapshot=True)
    return catalog.expand(tables, writes)


def _name(text: str) -> str:
    name = text.strip().split(".")[-1]
    return name[1:-1] if name.startswith('"') else name.lower()


def step_footprint(sql: str, catalog: Catalog) -> Footprint:
    """The union of a step's statements' footprints (transaction ends kept as a mark)."""
    footprint = NOTHING
    for statement in statements(sql):
        footprint = footprint | statement_footprint(statement, catalog)
    return footprint


def session_footprints(
    steps: list[str | None], setup: str | None, catalog: Catalog
) -> list[Footprint]:
    """Footprints of one session's steps (None: a callable), with transaction ends resolved."""
    parts = [UNKNOWN if sql is None else step_footprint(sql, catalog) for sql in steps]
    whole = step_footprint(setup, catalog) if setup else NOTHING
    for part in parts:
        whole = whole | part
    whole = Footprint(whole.tables, writes=True, takes_snapshot=True)
    text = " ".join(sql or "" for sql in [setup, *steps])
    if SNAPSHOT_LEVELS.search(text):
        return [whole if part.takes_snapshot else part for part in parts]
    return [whole if part.ends_transaction else part for part in parts]
