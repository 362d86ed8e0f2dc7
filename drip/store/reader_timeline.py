"""One reader's enrollment as stored, read for ``drip simulate --subscriber``: nothing is written."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from drip.store.enrollments import enrollment_id
from drip.store.schema import deliveries, enrollments
from drip.store.subscribers import SubscriberRow, get_subscriber


@dataclass(frozen=True)
class StoredDelivery:
    step_key: str
    status: str
    due_at: dt.datetime
    sent_at: dt.datetime | None
    note: str | None


@dataclass(frozen=True)
class ReaderEnrollment:
    """A subscriber, when their enrollment in a course started, and its deliveries in due order."""

    subscriber: SubscriberRow
    started_at: dt.datetime
    deliveries: tuple[StoredDelivery, ...]


def reader_enrollment(engine: sa.Engine, email: str, course: str) -> ReaderEnrollment | SubscriberRow | None:
    """The reader's latest enrollment in ``course``; the subscriber alone when not enrolled; None if unknown."""
    with engine.connect() as conn:
        subscriber = get_subscriber(conn, email)
        if subscriber is None:
            return None
        eid = enrollment_id(conn, subscriber.id, course)
        if eid is None:
            return subscriber
        started = conn.execute(
            sa.select(enrollments.c.started_at).where(enrollments.c.id == eid)
        ).scalar_one()
        rows = conn.execute(
            sa.select(
                deliveries.c.step_key,
                deliveries.c.status,
                deliveries.c.due_at,
                deliveries.c.sent_at,
                deliveries.c.note,
            )
            .where(deliveries.c.enrollment_id == eid)
            .order_by(deliveries.c.due_at, deliveries.c.id)
        ).all()
    found = tuple(StoredDelivery(r.step_key, r.status, r.due_at, r.sent_at, r.note) for r in rows)
    return ReaderEnrollment(subscriber, started, found)
