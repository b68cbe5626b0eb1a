"""Django: two cascading deletes of one object delete its related tables in different orders.

Report: https://github.com/django/django/pull/5513 ("Fixed #25639 -- Cascade deleting cause
deadlock"). Django's deletion ``Collector`` emulates ``ON DELETE CASCADE`` itself, one ``DELETE``
per related model, and the order of models that do not depend on each other came from hashing,
so it differed between processes. Two requests deleting the same article deleted its comments
and its likes in opposite orders, each holding the rows of one table while waiting for the
other's. The fix sorts those models (by table name), so every process deletes in one order.
"""

from __future__ import annotations

import pytest

from pytest_pglocks import Pglocks, assert_blocks, expect_deadlock

SCHEMA = """
CREATE TABLE blog_article (id int PRIMARY KEY);
CREATE TABLE blog_comment (id int PRIMARY KEY, article_id int NOT NULL REFERENCES blog_article);
CREATE TABLE blog_like (id int PRIMARY KEY, article_id int NOT NULL REFERENCES blog_article);
INSERT INTO blog_article VALUES (1);
INSERT INTO blog_comment VALUES (1, 1), (2, 1);
INSERT INTO blog_like VALUES (1, 1);
"""
DELETE_RELATED = "DELETE FROM {} WHERE article_id = 1"
DELETE_ARTICLE = "DELETE FROM blog_article WHERE id = 1"


def test_hash_ordered_collectors_deadlock(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    web_1, web_2 = pglocks.sessions("web_1", "web_2")
    web_1.begin()
    web_2.begin()
    web_1.execute(DELETE_RELATED.format("blog_comment"))  # web_1's order: comments, likes
    web_2.execute(DELETE_RELATED.format("blog_like"))  # web_2's order: likes, comments
    likes = web_1.submit(DELETE_RELATED.format("blog_like"))
    assert_blocks(likes, on=web_2, relation="blog_like", lock="transactionid")
    with expect_deadlock(victim=web_2):
        web_2.execute(DELETE_RELATED.format("blog_comment"))
    likes.result()
    web_1.execute(DELETE_ARTICLE)
    web_1.commit()
    web_2.rollback()
    assert pglocks.execute("SELECT count(*) FROM blog_article") == [(0,)]


@pytest.mark.no_deadlock
def test_sorted_collectors_wait_instead(pglocks: Pglocks) -> None:
    pglocks.execute(SCHEMA)
    web_1, web_2 = pglocks.sessions("web_1", "web_2")
    tables = sorted(["blog_like", "blog_comment"])  # the fix: one order in every process
    web_1.begin()
    web_2.begin()
    web_1.execute(DELETE_RELATED.format(tables[0]))
    first = web_2.submit(DELETE_RELATED.format(tables[0]))
    assert_blocks(first, on=web_1, relation=tables[0], lock="transactionid")
    web_1.execute(DELETE_RELATED.format(tables[1]))  # web_2 holds nothing web_1 needs
    web_1.execute(DELETE_ARTICLE)
    web_1.commit()
    first.result()
    assert first.status == "DELETE 0"  # web_1 deleted them: nothing left to do
    web_2.execute(DELETE_RELATED.format(tables[1]))
    web_2.execute(DELETE_ARTICLE)
    assert web_2.status == "DELETE 0"
    web_2.commit()
