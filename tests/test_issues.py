"""Newsletter issues in the store, on SQLite and PostgreSQL: one row per key under a race, their emails
as ordinary delivery rows written in batches, idempotent after a crash, and the course-aware reads."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence

import pytest
import sqlalchemy as sa
from delivery_fixtures import T0, rows, seed
from test_lists import readers

from drip.store.claims import claim, record_sent
from drip.store.db import migrate
from drip.store.issues import (
    Issue,
    course_urls,
    create_issue,
    create_issue_deliveries,
    get_issue,
    in_course,
    insert_issue,
    list_issues,
)
from drip.store.lists import Member, join_lists
from drip.store.schema import deliveries, newsletter_issues
from drip.store.status import course_figures

H = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
LIST = "lettre"
KEY = "lettre:2026-W49"


def _issue(engine: sa.Engine, key: str = KEY, send_at: dt.datetime = T0 + H) -> Issue:
    issue = create_issue(
        engine, list=LIST, key=key, kind="digest", send_at=send_at, post_urls=["/posts/a/"], now=T0
    )
    assert issue is not None
    return issue


def _issue_rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        query = sa.select(deliveries).where(deliveries.c.issue_id.is_not(None)).order_by(deliveries.c.id)
        return list(conn.execute(query))


def test_an_issue_is_created_once_per_key(engine: sa.Engine) -> None:
    issue = create_issue(
        engine,
        list=LIST,
        key=KEY,
        kind="digest",
        send_at=T0 + H,
        post_urls=["/posts/a/", "/posts/b/"],
        now=T0,
        subject="Cette semaine",
    )
    assert issue is not None
    assert (issue.list, issue.key, issue.kind, issue.subject) == (LIST, KEY, "digest", "Cette semaine")
    assert (issue.send_at, issue.created_at, issue.post_urls) == (T0 + H, T0, ("/posts/a/", "/posts/b/"))
    assert issue.step_key == f"issue:{KEY}" and issue.counts is None
    again = create_issue(engine, list=LIST, key=KEY, kind="digest", send_at=T0 + 2 * H, post_urls=[], now=T0)
    assert again is None
    with engine.connect() as conn:
        assert get_issue(conn, KEY) == issue
        assert get_issue(conn, "other") is None
        assert list_issues(conn, LIST) == [issue]


def test_workers_racing_for_one_issue_create_one_row(engine: sa.Engine) -> None:
    start = threading.Barrier(4)
    got: list[Issue | None] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            got.append(
                create_issue(engine, list=LIST, key=KEY, kind="digest", send_at=T0, post_urls=[], now=T0)
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len([g for g in got if g is not None]) == 1 and len(got) == 4
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(newsletter_issues)).scalar_one() == 1


def test_a_second_writer_waits_for_the_first_and_gets_none(engine: sa.Engine) -> None:
    # Two connections: the first has inserted the issue and not committed yet when the second tries.
    got: list[Issue | None] = []
    with engine.connect() as first:
        first.begin()
        mine = insert_issue(first, list=LIST, key=KEY, kind="broadcast", send_at=T0, post_urls=[], now=T0)
        assert mine is not None
        second = threading.Thread(
            target=lambda: got.append(
                create_issue(engine, list=LIST, key=KEY, kind="broadcast", send_at=T0, post_urls=[], now=T0)
            )
        )
        second.start()
        second.join(timeout=1)
        assert second.is_alive()  # blocked behind the first writer
        first.commit()
    second.join(timeout=10)
    assert got == [None]


def test_an_issue_has_one_pending_delivery_per_member_claimed_like_a_course_email(engine: sa.Engine) -> None:
    readers(engine, 3)
    with engine.begin() as conn:
        join_lists(conn, [1, 2, 3], [LIST], now=T0)
    issue = _issue(engine)
    counts = create_issue_deliveries(engine, issue, batch_size=2, now=T0)
    assert (counts.created, counts.existing, counts.recipients, dict(counts.excluded)) == (3, 0, 3, {})
    rows = _issue_rows(engine)
    assert [r.subscriber_id for r in rows] == [1, 2, 3]
    for r in rows:
        assert (r.enrollment_id, r.issue_id, r.course, r.step_key) == (None, issue.id, LIST, f"issue:{KEY}")
        assert (r.due_at, r.status, r.attempts) == (T0 + H, "pending", 0)
    assert claim(engine, now=T0, limit=10, lease_seconds=60, worker="w") == []  # not due yet
    claimed = claim(engine, now=T0 + H, limit=10, lease_seconds=60, worker="w")
    assert [(c.course, c.step_key) for c in claimed] == [(LIST, f"issue:{KEY}")] * 3
    assert all(c.enrollment_id is None for c in claimed)  # Claimed still types it int
    assert record_sent(engine, claimed[0].id, claimed[0].lease_token, provider_id="p", now=T0 + H)
    with engine.connect() as conn:
        figures = course_figures(conn, now=T0 + H)
        stored = get_issue(conn, KEY)
    assert (figures[LIST].sent, figures[LIST].in_flight) == (1, 2)
    assert stored is not None and stored.counts == {"created": 3, "existing": 0, "excluded": {}}


def test_writing_again_after_a_crash_adds_only_the_missing_rows(engine: sa.Engine) -> None:
    readers(engine, 7)
    with engine.begin() as conn:
        join_lists(conn, range(1, 8), [LIST], now=T0)
    issue = _issue(engine)
    seen: list[int] = []

    def crash_on_third_batch(batch: Sequence[Member]) -> Mapping[int, str]:
        seen.append(len(batch))
        if len(seen) == 3:
            raise RuntimeError("worker killed")
        return {}

    with pytest.raises(RuntimeError):
        create_issue_deliveries(engine, issue, batch_size=3, exclude=crash_on_third_batch, now=T0)
    assert len(_issue_rows(engine)) == 6
    counts = create_issue_deliveries(engine, issue, batch_size=3, now=T0 + H)
    assert (counts.created, counts.existing) == (1, 6)
    rows = _issue_rows(engine)
    assert sorted(r.subscriber_id for r in rows) == list(range(1, 8))
    assert [r.created_at for r in rows].count(T0 + H) == 1
    again = create_issue_deliveries(engine, issue, now=T0 + H)
    assert (again.created, again.existing) == (0, 7)


def test_excluded_members_get_no_row_and_are_counted_by_reason(engine: sa.Engine) -> None:
    readers(engine, 5)
    with engine.begin() as conn:
        join_lists(conn, range(1, 6), [LIST], now=T0)
    issue = _issue(engine)

    def rules(batch: Sequence[Member]) -> Mapping[int, str]:
        out = {m.subscriber_id: "in a course" for m in batch if m.subscriber_id in (1, 4)}
        out.update({m.subscriber_id: "nothing new" for m in batch if m.subscriber_id == 5})
        return out

    counts = create_issue_deliveries(engine, issue, batch_size=2, exclude=rules, now=T0)
    assert (counts.created, dict(counts.excluded)) == (2, {"in a course": 2, "nothing new": 1})
    assert [r.subscriber_id for r in _issue_rows(engine)] == [2, 3]
    # Once out of the course, the next writing of the same issue adds them.
    later = create_issue_deliveries(engine, issue, now=T0)
    assert (later.created, later.existing) == (3, 2)


def test_a_delivery_belongs_to_an_enrollment_or_an_issue_and_an_issue_mails_a_reader_once(
    engine: sa.Engine,
) -> None:
    seed(engine, subscribers_count=1, steps=[("welcome", T0)])
    issue = _issue(engine)
    row = {
        "subscriber_id": 1,
        "course": LIST,
        "step_key": "x",
        "due_at": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    for owners in ({}, {"enrollment_id": 1, "issue_id": issue.id}):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(deliveries.insert().values(**row, **owners))
    with engine.begin() as conn:
        conn.execute(deliveries.insert().values(**row, issue_id=issue.id))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(deliveries.insert().values(**{**row, "step_key": "y"}, issue_id=issue.id))


def test_in_course_names_readers_with_course_emails_still_due(engine: sa.Engine) -> None:
    seed(engine, subscribers_count=4, steps=[("welcome", T0), ("article:/posts/a/", T0 + DAY)])
    with engine.begin() as conn:
        # 2 has been sent everything; 3 left the course (its emails cancelled); 4 is not in one.
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 2).values(status="sent"))
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 3).values(status="cancelled"))
        conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == 4))
    with engine.connect() as conn:
        assert in_course(conn, [1, 2, 3, 4, 99]) == {1}
        assert in_course(conn, []) == set()


def test_course_urls_are_the_posts_sent_lately_or_still_to_come(engine: sa.Engine) -> None:
    steps = [("welcome", T0), ("article:/posts/a/", T0), ("article:/posts/b/", T0), ("article:/posts/c/", T0)]
    seed(engine, subscribers_count=2, steps=steps)
    with engine.begin() as conn:
        sent = deliveries.update().where(deliveries.c.subscriber_id == 1).values(status="sent")
        conn.execute(sent.where(deliveries.c.step_key == "article:/posts/a/").values(sent_at=T0 - 30 * DAY))
        conn.execute(sent.where(deliveries.c.step_key == "article:/posts/b/").values(sent_at=T0 - DAY))
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 2).values(status="cancelled"))
    issue = _issue(engine)
    with engine.begin() as conn:
        join_lists(conn, [1], [LIST], now=T0)
    create_issue_deliveries(engine, issue, now=T0)  # a pending issue row is not a post offered
    with engine.connect() as conn:
        got = course_urls(conn, [1, 2], since=T0 - 7 * DAY)
    assert got == {1: {"/posts/b/", "/posts/c/"}}


def test_the_migration_keeps_course_deliveries_and_its_downgrade_drops_only_the_issues(
    engine: sa.Engine,
) -> None:
    seed(engine, subscribers_count=2, steps=[("welcome", T0)])
    with engine.begin() as conn:
        join_lists(conn, [1, 2], [LIST], now=T0)
    create_issue_deliveries(engine, _issue(engine), now=T0)
    migrate(engine, "0006_history_and_mailboxes")
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT enrollment_id, step_key FROM deliveries ORDER BY id")).all()
    assert [tuple(r) for r in kept] == [(1, "welcome"), (2, "welcome")]
    migrate(engine, "head")
    assert [(r.enrollment_id, r.issue_id, r.status) for r in rows(engine)] == [
        (1, None, "pending"),
        (2, None, "pending"),
    ]
    assert "ix_deliveries_due_at_pending" in {
        ix["name"] for ix in sa.inspect(engine).get_indexes("deliveries")
    }
    assert len(claim(engine, now=T0, limit=10, lease_seconds=60, worker="w")) == 2
