"""Newsletter lists: who reads which newsletter, apart from the courses they follow.

A membership is a row like an enrollment: leaving keeps it (state ``left``, with
when), and coming back starts a new one beside it, so the history of what a reader
was sent stays attached to the membership it was sent under. Leaving a list
cancels that list's pending issue emails and nothing else; leaving a course
leaves lists alone; unsubscribing from everything leaves every list too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from drip.store.db import among
from drip.store.schema import (
    SENDABLE_SUBSCRIBER,
    DeliveryStatus,
    MemberState,
    deliveries,
    list_members,
    lists,
    newsletter_issues,
    subscribers,
)

CHUNK = 500  # ids per IN list: well under SQLite's bound-parameter limit
LEFT_NOTE = "left the list"
m = list_members


@dataclass(frozen=True, slots=True)
class Member:
    """One current member of a list who may be mailed, as an issue's deliveries need them."""

    member_id: int  # the membership row: the keyset pagination's cursor
    subscriber_id: int
    email: str
    locale: str | None
    timezone: str | None
    joined_at: dt.datetime


@dataclass(frozen=True)
class ListFigures:
    """One list as ``drip status`` shows it."""

    name: str
    created_at: dt.datetime
    active: int = 0
    left: int = 0
    issues: int = 0
    last_send_at: dt.datetime | None = None


def on_conflict_do_nothing(conn: sa.Connection, table: sa.Table) -> sa.Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` in the connection's dialect.

    Both SQLite and PostgreSQL decide the conflict inside the insert, so writers
    racing for the same key leave one row and no error, with no lock taken first.
    """
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def current_membership(
    subscriber_id: sa.ColumnElement[int], list_name: sa.ColumnElement[str] | str
) -> sa.ColumnElement[bool]:
    """The join condition to a subscriber's current membership of a list, one row at most.

    Written as the predicate of the partial unique index on (subscriber_id, list), with
    the state in the SQL text, so both planners fetch that one row by the index instead
    of walking every member of the list (``ix_list_members_list_id``) for each reader.
    """
    return sa.and_(
        m.c.subscriber_id == subscriber_id,
        m.c.list == list_name,
        m.c.state != sa.literal(MemberState.LEFT.value, m.c.state.type, literal_execute=True),
    )


def ensure_list(conn: sa.Connection, name: str, *, now: dt.datetime) -> dt.datetime:
    """Create the list if it does not exist yet; returns when it was created.

    Its creation time is where its first digest starts, so it is set once and never moved.
    """
    conn.execute(on_conflict_do_nothing(conn, lists).values(name=name, created_at=now))
    created: dt.datetime = conn.execute(
        sa.select(lists.c.created_at).where(lists.c.name == name)
    ).scalar_one()
    return created


def join_lists(
    conn: sa.Connection, subscriber_ids: Iterable[int], list_names: Iterable[str], *, now: dt.datetime
) -> int:
    """Make each subscriber a member of each list (created if needed); returns the memberships added.

    Joining twice is a no-op; someone who left comes back with a new membership, since
    this is called for a choice they made (a form, a course's end). Whether they may be
    mailed is decided when an issue is written, by their status then.

    One ``INSERT … SELECT … ON CONFLICT DO NOTHING`` per chunk, the partial unique index on
    current memberships deciding who is a member already: reading them first took a scan of
    the list for each chunk of ten thousand (minutes for an import of 200,000). An id with
    no subscriber is skipped.
    """
    ids = list(dict.fromkeys(subscriber_ids))
    added = 0
    for name in dict.fromkeys(list_names):
        ensure_list(conn, name, now=now)
        for start in range(0, len(ids), CHUNK):
            values: dict[str, sa.ColumnElement[Any]] = {
                "subscriber_id": subscribers.c.id,
                "list": sa.literal(name, m.c.list.type),
                "state": sa.literal(MemberState.ACTIVE.value, m.c.state.type),
                "joined_at": sa.literal(now, m.c.joined_at.type),
            }
            source = sa.select(*(value.label(key) for key, value in values.items())).where(
                among(conn, subscribers.c.id, ids[start : start + CHUNK])
            )
            stmt = on_conflict_do_nothing(conn, m).from_select(list(values), source).returning(m.c.id)
            added += len(conn.execute(stmt).all())
    return added


def join_list(conn: sa.Connection, subscriber_id: int, list_name: str, *, now: dt.datetime) -> bool:
    """:func:`join_lists` for one subscriber and list; True when they were not a member."""
    return join_lists(conn, [subscriber_id], [list_name], now=now) > 0


def _cancel_pending(
    conn: sa.Connection, subscriber_ids: Sequence[int], list_name: str | None, *, now: dt.datetime
) -> int:
    """Cancel the pending issue emails of these subscribers (of one list, or of every list)."""
    query = deliveries.update().where(
        deliveries.c.subscriber_id.in_(subscriber_ids),
        deliveries.c.issue_id.is_not(None),
        deliveries.c.status == DeliveryStatus.PENDING,
    )
    if list_name is not None:
        query = query.where(deliveries.c.course == list_name)
    return int(
        conn.execute(query.values(status=DeliveryStatus.CANCELLED, note=LEFT_NOTE, updated_at=now)).rowcount
        or 0
    )


def leave_list(conn: sa.Connection, subscriber_id: int, list_name: str, *, now: dt.datetime) -> int:
    """Leave one list: the membership is kept as left, and that list's pending emails are cancelled.

    Courses and other lists are untouched. Returns the emails cancelled; leaving a list one
    is not in is a no-op.
    """
    conn.execute(
        m.update()
        .where(m.c.subscriber_id == subscriber_id, m.c.list == list_name, m.c.state != MemberState.LEFT)
        .values(state=MemberState.LEFT, left_at=now)
    )
    return _cancel_pending(conn, [subscriber_id], list_name, now=now)


def leave_all_lists(conn: sa.Connection, subscriber_ids: Sequence[int], *, now: dt.datetime) -> int:
    """Leave every list, for an unsubscribe from everything; returns the memberships left.

    Runs in the caller's transaction, beside the status change, so no issue written
    afterwards counts them among its readers.
    """
    left = 0
    for start in range(0, len(subscriber_ids), CHUNK):
        chunk = list(subscriber_ids[start : start + CHUNK])
        done = conn.execute(
            m.update()
            .where(m.c.subscriber_id.in_(chunk), m.c.state != MemberState.LEFT)
            .values(state=MemberState.LEFT, left_at=now)
        )
        left += int(done.rowcount or 0)
        _cancel_pending(conn, chunk, None, now=now)
    return left


def _member_batch(conn: sa.Connection, list_name: str, after: int, size: int) -> list[Member]:
    query = (
        sa.select(
            m.c.id,
            m.c.subscriber_id,
            subscribers.c.email,
            subscribers.c.locale,
            subscribers.c.timezone,
            m.c.joined_at,
        )
        .join(subscribers, subscribers.c.id == m.c.subscriber_id)
        .where(*_mailable(list_name), m.c.id > after)
        .order_by(m.c.id)
        .limit(size)
    )
    return [Member(*row) for row in conn.execute(query).all()]


def _mailable(list_name: str) -> tuple[sa.ColumnElement[bool], ...]:
    """The list's current members who may be mailed (joined with their subscriber)."""
    return (
        m.c.list == list_name,
        m.c.state == MemberState.ACTIVE,
        subscribers.c.status.in_(SENDABLE_SUBSCRIBER),
    )


def count_members(engine: sa.Engine, list_name: str) -> int:
    """How many members :func:`members` would yield now: the total a progress bar needs."""
    query = (
        sa.select(sa.func.count())
        .select_from(m.join(subscribers, subscribers.c.id == m.c.subscriber_id))
        .where(*_mailable(list_name))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def members(
    engine: sa.Engine, list_name: str, *, batch_size: int = 5000, after: int = 0
) -> Iterator[list[Member]]:
    """The list's current members who may be mailed, in batches by membership id.

    Keyset pagination (``id > last``, in id order) reads each batch in its own short
    connection: memory holds one batch whatever the list's size, no read transaction
    stays open while the caller writes (SQLite has one writer; a long PostgreSQL
    snapshot holds vacuum back), and a member who joins meanwhile is met if their id
    comes later. ``after`` resumes behind a membership id.
    """
    while True:
        with engine.connect() as conn:
            batch = _member_batch(conn, list_name, after, batch_size)
        if not batch:
            return
        yield batch
        after = batch[-1].member_id


def member_lists(conn: sa.Connection, subscriber_id: int) -> list[str]:
    """The lists a subscriber is currently a member of, by name (for preferences and listings)."""
    return list(
        conn.execute(
            sa.select(m.c.list)
            .where(m.c.subscriber_id == subscriber_id, m.c.state != MemberState.LEFT)
            .order_by(m.c.list)
        ).scalars()
    )


def list_figures(conn: sa.Connection) -> dict[str, ListFigures]:
    """Every list with its members by state and its issues, by name: a few grouped queries."""
    states: dict[str, dict[str, int]] = {}
    for name, state, n in conn.execute(
        sa.select(m.c.list, m.c.state, sa.func.count()).group_by(m.c.list, m.c.state)
    ):
        states.setdefault(name, {})[state] = n
    i = newsletter_issues
    # max() keeps the column's type, so the last send time comes back as aware UTC.
    issues = {
        name: (n, last)
        for name, n, last in conn.execute(
            sa.select(i.c.list, sa.func.count(), sa.func.max(i.c.send_at)).group_by(i.c.list)
        )
    }
    figures: dict[str, ListFigures] = {}
    for name, created in conn.execute(sa.select(lists.c.name, lists.c.created_at).order_by(lists.c.name)):
        count, last = issues.get(name, (0, None))
        by_state = states.get(name, {})
        figures[name] = ListFigures(
            name, created, by_state.get(MemberState.ACTIVE, 0), by_state.get(MemberState.LEFT, 0), count, last
        )
    return figures
