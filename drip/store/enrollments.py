"""Enrollment: one row per subscriber and course, and one delivery row per step.

Each delivery's due time is computed here, once, in the subscriber's zone (or the
course's), and stored in UTC: the dispatcher only has to compare it with now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from drip.course.models import Course
from drip.course.timing import course_schedule, resolve_timezone
from drip.errors import DripError
from drip.store.lists import join_lists as add_to_lists
from drip.store.schema import (
    DeliveryStatus,
    EnrollmentState,
    SubscriberStatus,
    deliveries,
    enrollments,
    subscribers,
)
from drip.store.subscribers import CHUNK

# Subscribers who asked (or whose mailbox told us) never to be mailed.
NOT_ENROLLABLE = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


class NotEnrollableError(DripError):
    """The subscriber must not receive mail, so is not enrolled."""


def enrollment_id(conn: sa.Connection, subscriber_id: int, course: str) -> int | None:
    """The enrollment of this subscriber in ``course``, if any."""
    found: int | None = conn.execute(
        sa.select(enrollments.c.id)
        .where(enrollments.c.subscriber_id == subscriber_id, enrollments.c.course == course)
        .order_by(enrollments.c.id.desc())
        .limit(1)
    ).scalar()
    return found


def first_due(conn: sa.Connection, enrollment: int) -> dt.datetime | None:
    """When the first email of an enrollment still to be sent falls due, if any is."""
    return conn.execute(
        sa.select(sa.func.min(deliveries.c.due_at)).where(
            deliveries.c.enrollment_id == enrollment, deliveries.c.status == DeliveryStatus.PENDING
        )
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Enrolled:
    """What :func:`enroll_many` did."""

    ids: Mapping[int, int]  # subscriber id → enrollment id, new or existing
    new: frozenset[int]  # subscriber ids enrolled by this call
    refused: Mapping[int, str]  # subscriber id → why not (unknown, unsubscribed, ...)


def _schedule(course: Course, zone: str | None, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    # The zone was validated when stored; one removed from tzdata since falls back like a missing one.
    tz, _warning = resolve_timezone(zone, course.timezone)
    dues = course_schedule(now, course.steps, course.window, tz)
    return [(step.key, due) for step, due in zip(course.steps, dues, strict=True)]


def enroll_many(
    conn: sa.Connection,
    subscriber_ids: Sequence[int],
    course: Course,
    *,
    now: dt.datetime,
    rejoin: bool = False,
    join_lists: Sequence[str] = (),
) -> Enrolled:
    """Enroll many subscribers at once, scheduling every step; those already in the course are left alone.

    An existing enrollment is kept whatever its state: someone who left a course is
    not put back by a re-import. ``rejoin`` (a confirmed opt-in) starts a new enrollment
    beside a left one, whose deliveries stay as history. Due times are computed once per time zone.
    ``join_lists``: the newsletter lists the course adds its readers to when they enrol
    (those newly enrolled only), in the same transaction.
    """
    ids: dict[int, int] = {}
    new: set[int] = set()
    refused: dict[int, str] = {}
    schedules: dict[str | None, list[tuple[str, dt.datetime]]] = {}
    for start in range(0, len(subscriber_ids), CHUNK):
        chunk = list(dict.fromkeys(subscriber_ids[start : start + CHUNK]))
        ids.update(_enrolled(conn, course.slug, chunk, rejoin=rejoin))
        found = _subscribers(conn, chunk)
        todo: list[int] = []
        for sid in chunk:
            if sid in ids:
                continue
            why = _refusal(sid, found.get(sid), course.slug)
            if why is None:
                todo.append(sid)
            else:
                refused[sid] = why
        if not todo:
            continue
        created = _create(conn, todo, course, {sid: found[sid][2] for sid in todo}, schedules, now=now)
        ids.update(created)
        new.update(todo)
    if join_lists and new:
        add_to_lists(conn, sorted(new), join_lists, now=now)
    return Enrolled(ids=ids, new=frozenset(new), refused=refused)


def _enrolled(
    conn: sa.Connection, slug: str, subscriber_ids: Sequence[int], *, rejoin: bool = False
) -> dict[int, int]:
    """Subscriber id → enrollment id in ``slug``, for those of ``subscriber_ids`` enrolled.

    The newest enrollment wins; with ``rejoin``, enrollments left behind do not count (a new one starts).
    """
    query = sa.select(enrollments.c.subscriber_id, enrollments.c.id).where(
        enrollments.c.course == slug, enrollments.c.subscriber_id.in_(subscriber_ids)
    )
    if rejoin:
        query = query.where(enrollments.c.state != EnrollmentState.LEFT)
    return dict(conn.execute(query.order_by(enrollments.c.id)).all())


def _subscribers(
    conn: sa.Connection, subscriber_ids: Sequence[int]
) -> dict[int, tuple[str, str, str | None]]:
    """Subscriber id → (email, status, time zone), for those that exist."""
    return {
        sid: (email, status, zone)
        for sid, email, status, zone in conn.execute(
            sa.select(
                subscribers.c.id, subscribers.c.email, subscribers.c.status, subscribers.c.timezone
            ).where(subscribers.c.id.in_(subscriber_ids))
        ).all()
    }


def _refusal(sid: int, found: tuple[str, str, str | None] | None, slug: str) -> str | None:
    """Why this subscriber is not enrolled, or None when they may be."""
    if found is None:
        return f"no subscriber with id {sid}"
    email, status, _zone = found
    if status in NOT_ENROLLABLE:
        return f"{email} is {status}: not enrolled in {slug!r}"
    return None


def _create(
    conn: sa.Connection,
    todo: Sequence[int],
    course: Course,
    zones: Mapping[int, str | None],
    schedules: dict[str | None, list[tuple[str, dt.datetime]]],
    *,
    now: dt.datetime,
) -> dict[int, int]:
    """Insert the enrollments of ``todo`` and one delivery per step each; returns their ids.

    ``schedules`` caches the due times by zone across calls of one :func:`enroll_many`.
    """
    conn.execute(
        enrollments.insert(),
        [{"subscriber_id": sid, "course": course.slug, "started_at": now, "updated_at": now} for sid in todo],
    )
    created = _enrolled(conn, course.slug, todo, rejoin=True)  # the rows just inserted
    rows: list[dict[str, object]] = []
    for sid in todo:
        zone = zones[sid]
        if zone not in schedules:
            schedules[zone] = _schedule(course, zone, now)
        rows.extend(
            {
                "enrollment_id": created[sid],
                "subscriber_id": sid,
                "course": course.slug,
                "step_key": key,
                "due_at": due,
                "status": DeliveryStatus.PENDING,
                "created_at": now,
                "updated_at": now,
            }
            for key, due in schedules[zone]
        )
    if rows:
        conn.execute(deliveries.insert(), rows)
    return created


def complete_enrollments(
    engine: sa.Engine,
    enrollment_ids: Iterable[int],
    *,
    now: dt.datetime,
    lists_on_finish: Mapping[str, Sequence[str]] | None = None,
) -> int:
    """Mark completed the active enrollments that have nothing left to send; returns how many.

    ``lists_on_finish`` (course → newsletter lists): the lists a course adds its readers
    to when they finish, joined in the same transaction as the completion.
    """
    ids = sorted(set(enrollment_ids))
    if not ids:
        return 0
    left = sa.exists().where(
        deliveries.c.enrollment_id == enrollments.c.id, deliveries.c.status == DeliveryStatus.PENDING
    )
    with engine.begin() as conn:
        done = conn.execute(
            enrollments.update()
            .where(enrollments.c.id.in_(ids), enrollments.c.state == EnrollmentState.ACTIVE, ~left)
            .values(state=EnrollmentState.COMPLETED, updated_at=now)
            .returning(enrollments.c.subscriber_id, enrollments.c.course)
        ).all()
        finished: dict[str, list[int]] = {}
        for sid, course in done:
            finished.setdefault(course, []).append(sid)
        for course, sids in finished.items():
            if lists_on_finish and lists_on_finish.get(course):
                add_to_lists(conn, sorted(sids), lists_on_finish[course], now=now)
        return len(done)


def enroll(
    conn: sa.Connection,
    subscriber_id: int,
    course: Course,
    *,
    now: dt.datetime,
    rejoin: bool = False,
    join_lists: Sequence[str] = (),
) -> int:
    """Enroll one subscriber, scheduling every step; enrolling twice is a no-op.

    Returns the enrollment id (the existing one when already enrolled, whatever
    its state). A subscriber who must not be mailed is a :class:`NotEnrollableError`.
    """
    result = enroll_many(conn, [subscriber_id], course, now=now, rejoin=rejoin, join_lists=join_lists)
    if subscriber_id in result.refused:
        raise NotEnrollableError(result.refused[subscriber_id])
    return result.ids[subscriber_id]
