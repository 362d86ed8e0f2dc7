"""Enrollment: one row per subscriber and course, and one delivery row per step.

Each delivery's due time is computed here, once, in the subscriber's zone (or the
course's), and stored in UTC: the dispatcher only has to compare it with now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from drip.course.models import Course
from drip.course.timing import course_schedule, resolve_timezone
from drip.errors import DripError
from drip.store.schema import (
    BOUNCED,
    COMPLAINED,
    DUE,
    LEFT,
    UNSUBSCRIBED,
    deliveries,
    enrollments,
    subscribers,
)
from drip.store.subscribers import CHUNK

# Subscribers who asked (or whose mailbox told us) never to be mailed.
NOT_ENROLLABLE = (UNSUBSCRIBED, BOUNCED, COMPLAINED)


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
) -> Enrolled:
    """Enroll many subscribers at once, scheduling every step; those already in the course are left alone.

    An existing enrollment is kept whatever its state: someone who left a course is
    not put back by a re-import. ``rejoin`` (a confirmed opt-in) starts a new enrollment
    beside a left one, whose deliveries stay as history. Due times are computed once per time zone.
    """
    ids: dict[int, int] = {}
    new: set[int] = set()
    refused: dict[int, str] = {}
    schedules: dict[str | None, list[tuple[str, dt.datetime]]] = {}
    for start in range(0, len(subscriber_ids), CHUNK):
        chunk = list(dict.fromkeys(subscriber_ids[start : start + CHUNK]))
        existing = sa.select(enrollments.c.subscriber_id, enrollments.c.id).where(
            enrollments.c.course == course.slug, enrollments.c.subscriber_id.in_(chunk)
        )
        if rejoin:
            existing = existing.where(enrollments.c.state != LEFT)
        ids.update(conn.execute(existing.order_by(enrollments.c.id)).all())  # the newest wins
        found = {
            sid: (email, status, zone)
            for sid, email, status, zone in conn.execute(
                sa.select(
                    subscribers.c.id, subscribers.c.email, subscribers.c.status, subscribers.c.timezone
                ).where(subscribers.c.id.in_(chunk))
            ).all()
        }
        todo: list[int] = []
        for sid in chunk:
            if sid in ids:
                continue
            if sid not in found:
                refused[sid] = f"no subscriber with id {sid}"
            elif found[sid][1] in NOT_ENROLLABLE:
                refused[sid] = f"{found[sid][0]} is {found[sid][1]}: not enrolled in {course.slug!r}"
            else:
                todo.append(sid)
        if not todo:
            continue
        conn.execute(
            enrollments.insert(),
            [
                {"subscriber_id": sid, "course": course.slug, "started_at": now, "updated_at": now}
                for sid in todo
            ],
        )
        created = dict(
            conn.execute(
                sa.select(enrollments.c.subscriber_id, enrollments.c.id).where(
                    enrollments.c.course == course.slug,
                    enrollments.c.subscriber_id.in_(todo),
                    enrollments.c.state != LEFT,
                )
            ).all()
        )
        rows: list[dict[str, object]] = []
        for sid in todo:
            zone = found[sid][2]
            if zone not in schedules:
                schedules[zone] = _schedule(course, zone, now)
            rows.extend(
                {
                    "enrollment_id": created[sid],
                    "subscriber_id": sid,
                    "course": course.slug,
                    "step_key": key,
                    "due_at": due,
                    "status": DUE,
                    "created_at": now,
                    "updated_at": now,
                }
                for key, due in schedules[zone]
            )
        if rows:
            conn.execute(deliveries.insert(), rows)
        ids.update(created)
        new.update(todo)
    return Enrolled(ids=ids, new=frozenset(new), refused=refused)


def enroll(
    conn: sa.Connection, subscriber_id: int, course: Course, *, now: dt.datetime, rejoin: bool = False
) -> int:
    """Enroll one subscriber, scheduling every step; enrolling twice is a no-op.

    Returns the enrollment id (the existing one when already enrolled, whatever
    its state). A subscriber who must not be mailed is a :class:`NotEnrollableError`.
    """
    result = enroll_many(conn, [subscriber_id], course, now=now, rejoin=rejoin)
    if subscriber_id in result.refused:
        raise NotEnrollableError(result.refused[subscriber_id])
    return result.ids[subscriber_id]
