"""Newsletter lists in the store, on SQLite and PostgreSQL: joining, leaving, history, streaming, figures.

Lists and courses are separate: leaving one leaves the other alone, and unsubscribing
from everything leaves both.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from dbfixtures import COURSE, course_site
from delivery_fixtures import T0, seed

from drip.config import load_site
from drip.course.compile import compile_course
from drip.course.models import Course
from drip.store.enrollments import complete_enrollments, enroll_many
from drip.store.issues import create_issue, create_issue_deliveries
from drip.store.lists import (
    ensure_list,
    join_list,
    join_lists,
    leave_all_lists,
    leave_list,
    list_figures,
    member_lists,
    members,
)
from drip.store.schema import deliveries, list_members, subscribers
from drip.store.subscribers import unsubscribe, unsubscribe_many

H = dt.timedelta(hours=1)
LIST = "lettre"


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    return compile_course(load_site(course_site(tmp_path_factory.mktemp("site"))), COURSE)


def readers(engine: sa.Engine, count: int) -> None:
    """``count`` active subscribers, ids 1 to ``count``, in no course."""
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {"email": f"lecteur{i}@example.org", "attributes": {}, "created_at": T0, "updated_at": T0}
                for i in range(1, count + 1)
            ],
        )


def _memberships(engine: sa.Engine, subscriber_id: int) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(list_members.c.list, list_members.c.state)
            .where(list_members.c.subscriber_id == subscriber_id)
            .order_by(list_members.c.id)
        )
        return [(name, state) for name, state in rows]


def _statuses(engine: sa.Engine, subscriber_id: int) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.step_key, deliveries.c.status).where(
                deliveries.c.subscriber_id == subscriber_id
            )
        )
        return {key: status for key, status in rows}


def _issue_for_everyone(engine: sa.Engine, key: str = "lettre:2026-W49") -> None:
    issue = create_issue(engine, list=LIST, key=key, kind="digest", send_at=T0 + H, post_urls=[], now=T0)
    assert issue is not None
    create_issue_deliveries(engine, issue, now=T0)


def test_joining_twice_is_one_membership_and_the_list_keeps_its_creation_time(engine: sa.Engine) -> None:
    readers(engine, 3)
    with engine.begin() as conn:
        assert join_lists(conn, [1, 2, 2], [LIST], now=T0) == 2
        assert join_lists(conn, [1, 2, 3], [LIST, "autre"], now=T0 + H) == 4
        assert join_list(conn, 3, LIST, now=T0 + 2 * H) is False
        # The first digest starts from the list's creation: a later ensure does not move it.
        assert ensure_list(conn, LIST, now=T0 + 5 * H) == T0
        assert member_lists(conn, 1) == ["autre", LIST]
    assert _memberships(engine, 1) == [(LIST, "active"), ("autre", "active")]


def test_leaving_keeps_the_membership_as_history_and_a_return_starts_a_new_one(engine: sa.Engine) -> None:
    readers(engine, 1)
    with engine.begin() as conn:
        join_list(conn, 1, LIST, now=T0)
        leave_list(conn, 1, LIST, now=T0 + H)
        leave_list(conn, 1, LIST, now=T0 + 2 * H)  # not a member any more: nothing changes
        assert member_lists(conn, 1) == []
        assert join_list(conn, 1, LIST, now=T0 + 3 * H) is True
        left_at = conn.execute(sa.select(list_members.c.left_at).order_by(list_members.c.id)).scalars().all()
    assert _memberships(engine, 1) == [(LIST, "left"), (LIST, "active")]
    assert left_at == [T0 + H, None]


def test_members_stream_in_id_order_batches_of_those_who_may_be_mailed(engine: sa.Engine) -> None:
    readers(engine, 12)
    with engine.begin() as conn:
        join_lists(conn, range(1, 13), [LIST], now=T0)
        leave_list(conn, 1, LIST, now=T0)
        conn.execute(subscribers.update().where(subscribers.c.id == 2).values(status="pending"))
        conn.execute(subscribers.update().where(subscribers.c.id == 3).values(status="bounced"))
    batches = []
    for batch in members(engine, LIST, batch_size=4):
        batches.append([m.subscriber_id for m in batch])
        if len(batches) == 1:
            # A reader who joins while the list is read is met: their id comes later.
            with engine.begin() as conn:
                join_list(conn, 1, LIST, now=T0 + H)
    assert batches == [[4, 5, 6, 7], [8, 9, 10, 11], [12, 1]]
    first = next(members(engine, LIST, batch_size=100))[0]
    assert (first.email, first.joined_at) == ("lecteur4@example.org", T0)
    assert list(members(engine, "nobody")) == []


def test_unsubscribing_from_everything_leaves_every_list_and_cancels_its_issues(engine: sa.Engine) -> None:
    seed(engine, subscribers_count=2, steps=[("welcome", T0 + 48 * H)])
    with engine.begin() as conn:
        join_lists(conn, [1, 2], [LIST, "autre"], now=T0)
    _issue_for_everyone(engine)
    with engine.begin() as conn:
        done = unsubscribe(conn, "lecteur1@example.org", now=T0 + H)
    assert done.cancelled == 2  # the course's email and the issue's
    assert _memberships(engine, 1) == [(LIST, "left"), ("autre", "left")]
    assert set(_statuses(engine, 1).values()) == {"cancelled"}
    assert _memberships(engine, 2) == [(LIST, "active"), ("autre", "active")]
    with engine.begin() as conn:
        unsubscribe_many(conn, [2], now=T0 + H)
    assert _memberships(engine, 2) == [(LIST, "left"), ("autre", "left")]
    with engine.connect() as conn:
        assert next(iter(list_figures(conn).values())).active == 0


def test_leaving_a_course_leaves_the_lists_and_leaving_a_list_leaves_the_course(engine: sa.Engine) -> None:
    # A list named like the course: still, each unsubscribe stops only its own emails.
    seed(engine, subscribers_count=2, steps=[("welcome", T0 + 48 * H)], course=LIST)
    with engine.begin() as conn:
        join_lists(conn, [1, 2], [LIST], now=T0)
    _issue_for_everyone(engine)
    with engine.begin() as conn:
        unsubscribe(conn, "lecteur1@example.org", course=LIST, now=T0 + H)
        assert leave_list(conn, 2, LIST, now=T0 + H) == 1
    assert _statuses(engine, 1) == {"welcome": "cancelled", "issue:lettre:2026-W49": "pending"}
    assert _memberships(engine, 1) == [(LIST, "active")]
    assert _statuses(engine, 2) == {"welcome": "pending", "issue:lettre:2026-W49": "cancelled"}
    with engine.connect() as conn:
        note = conn.execute(
            sa.select(deliveries.c.note).where(
                deliveries.c.subscriber_id == 2, deliveries.c.issue_id.is_not(None)
            )
        ).scalar_one()
    assert note == "left the list"


def test_leave_all_lists_is_a_no_op_for_someone_in_none(engine: sa.Engine) -> None:
    readers(engine, 1)
    with engine.begin() as conn:
        assert leave_all_lists(conn, [1], now=T0) == 0


def test_a_course_adds_its_readers_to_lists_when_they_enrol_and_when_they_finish(
    engine: sa.Engine, course: Course
) -> None:
    readers(engine, 2)
    with engine.begin() as conn:
        enrolled = enroll_many(conn, [1, 2], course, now=T0, join_lists=["nouveautes"])
        again = enroll_many(conn, [1], course, now=T0, join_lists=["autre"])
    assert again.new == frozenset()
    assert _memberships(engine, 1) == [("nouveautes", "active")]  # already enrolled: no list joined
    with engine.begin() as conn:
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == 1).values(status="sent"))
    finished = {course.slug: ["anciens"]}
    assert complete_enrollments(engine, enrolled.ids.values(), now=T0 + H, lists_on_finish=finished) == 1
    assert _memberships(engine, 1) == [("nouveautes", "active"), ("anciens", "active")]
    assert _memberships(engine, 2) == [("nouveautes", "active")]  # still in the course


def test_list_figures_count_members_by_state_and_issues(engine: sa.Engine) -> None:
    readers(engine, 3)
    with engine.begin() as conn:
        join_lists(conn, [1, 2, 3], [LIST], now=T0)
        ensure_list(conn, "vide", now=T0 + H)
        leave_list(conn, 3, LIST, now=T0)
    _issue_for_everyone(engine, "lettre:1")
    create_issue(
        engine, list=LIST, key="lettre:2", kind="broadcast", send_at=T0 + 9 * H, post_urls=[], now=T0
    )
    with engine.connect() as conn:
        figures = list_figures(conn)
    assert list(figures) == [LIST, "vide"]
    lettre = figures[LIST]
    assert (lettre.created_at, lettre.active, lettre.left, lettre.issues) == (T0, 2, 1, 2)
    assert lettre.last_send_at == T0 + 9 * H and lettre.last_send_at.tzinfo is dt.UTC
    assert (figures["vide"].active, figures["vide"].issues, figures["vide"].last_send_at) == (0, 0, None)


def test_erasing_a_subscriber_takes_their_memberships_with_them(engine: sa.Engine) -> None:
    readers(engine, 2)
    with engine.begin() as conn:
        join_lists(conn, [1, 2], [LIST], now=T0)
        conn.execute(subscribers.delete().where(subscribers.c.id == 1))
    assert _memberships(engine, 1) == []
    assert [m.subscriber_id for batch in members(engine, LIST) for m in batch] == [2]
