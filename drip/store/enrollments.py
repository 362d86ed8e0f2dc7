"""Enrollment: one row per subscriber and course, and one delivery row per step.

Each delivery's due time is computed here, once, in the subscriber's zone (or the
course's), and stored in UTC: the dispatcher only has to compare it with now.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from drip.errors import DripError, NotFoundError, Problem
from drip.models import Course
from drip.store.schema import BOUNCED, COMPLAINED, DUE, UNSUBSCRIBED, deliveries, enrollments, subscribers
from drip.timing import due_at, resolve_timezone

# Subscribers who asked (or whose mailbox told us) never to be mailed.
NOT_ENROLLABLE = (UNSUBSCRIBED, BOUNCED, COMPLAINED)


class NotEnrollableError(DripError):
    """The subscriber must not receive mail, so is not enrolled."""


def enrollment_id(conn: sa.Connection, subscriber_id: int, course: str) -> int | None:
    """The enrollment of this subscriber in ``course``, if any."""
    found: int | None = conn.execute(
        sa.select(enrollments.c.id).where(
            enrollments.c.subscriber_id == subscriber_id, enrollments.c.course == course
        )
    ).scalar_one_or_none()
    return found


def enroll(conn: sa.Connection, subscriber_id: int, course: Course, *, now: dt.datetime) -> int:
    """Enroll a subscriber, scheduling every step; enrolling twice is a no-op.

    Returns the enrollment id (the existing one when already enrolled, whatever
    its state: someone who left a course is not put back by a re-import).
    """
    existing = enrollment_id(conn, subscriber_id, course.slug)
    if existing is not None:
        return existing
    row = conn.execute(
        sa.select(subscribers.c.email, subscribers.c.status, subscribers.c.timezone).where(
            subscribers.c.id == subscriber_id
        )
    ).first()
    if row is None:
        raise NotFoundError(Problem(f"no subscriber with id {subscriber_id}"))
    email, status, zone_name = row
    if status in NOT_ENROLLABLE:
        raise NotEnrollableError(f"{email} is {status}: not enrolled in {course.slug!r}")
    # The zone was validated when stored; a zone removed from tzdata since falls back with the course.
    tz, _warning = resolve_timezone(zone_name, course.timezone)
    new_id: int = conn.execute(
        enrollments.insert()
        .values(subscriber_id=subscriber_id, course=course.slug, started_at=now, updated_at=now)
        .returning(enrollments.c.id)
    ).scalar_one()
    if course.steps:
        conn.execute(
            deliveries.insert(),
            [
                {
                    "enrollment_id": new_id,
                    "subscriber_id": subscriber_id,
                    "course": course.slug,
                    "step_key": step.key,
                    "due_at": due_at(now, step.day, course.window, tz, immediate=step.immediate),
                    "status": DUE,
                    "created_at": now,
                    "updated_at": now,
                }
                for step in course.steps
            ],
        )
    return new_id
