"""What dispatch reads about the deliveries it claimed: who they go to, and whether they still may.

Both reads return plain facts; deciding what they mean (cancel, lease lost, send)
is dispatch's, in :mod:`drip.dispatch.decide`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from drip.store.schema import deliveries, enrollments, subscribers


@dataclass(frozen=True)
class Recipient:
    """The subscriber and enrollment behind a claimed delivery, as read after the claim."""

    subscriber_id: int
    email: str
    name: str
    locale: str | None
    status: str
    attributes: Mapping[str, Any]
    enrollment_state: str


def recipients(engine: sa.Engine, enrollment_ids: Iterable[int]) -> dict[int, Recipient]:
    """Subscriber and enrollment of each enrollment id; a deleted subscriber is missing."""
    ids = sorted(set(enrollment_ids))
    query = (
        sa.select(
            enrollments.c.id,
            enrollments.c.state,
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.locale,
            subscribers.c.status,
            subscribers.c.attributes,
        )
        .join(subscribers, subscribers.c.id == enrollments.c.subscriber_id)
        .where(enrollments.c.id.in_(ids))
    )
    out: dict[int, Recipient] = {}
    with engine.connect() as conn:
        for eid, state, sid, email, name, locale, status, attributes in conn.execute(query):
            out[eid] = Recipient(sid, email, name or "", locale, status, attributes or {}, state)
    return out


@dataclass(frozen=True)
class SendCheck:
    """A delivery's lease and its recipient's state, read right before the transport."""

    status: str
    lease_token: str | None
    leased_until: dt.datetime | None
    subscriber_status: str
    enrollment_state: str


@contextmanager
def held_for_sending(engine: sa.Engine, delivery_ids: Iterable[int]) -> Iterator[dict[int, SendCheck]]:
    """Read each delivery's :class:`SendCheck` and hold the read until the block ends.

    The transaction stays open while the batch is handed to the transport, so an
    unsubscribe arriving meanwhile waits for the send instead of answering before it
    (SQLite: the BEGIN IMMEDIATE write lock; PostgreSQL: FOR SHARE on the subscriber
    and enrollment rows). A delivery whose subscriber is gone is missing.
    """
    ids = list(delivery_ids)
    with engine.connect() as conn:
        yield _send_checks(conn, ids) if ids else {}


def _send_checks(conn: sa.Connection, ids: list[int]) -> dict[int, SendCheck]:
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.status,
            deliveries.c.lease_token,
            deliveries.c.leased_until,
            subscribers.c.status,
            enrollments.c.state,
        )
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .join(enrollments, enrollments.c.id == deliveries.c.enrollment_id)
        .where(deliveries.c.id.in_(ids))
        .with_for_update(read=True, of=[subscribers, enrollments])
    )
    return {
        did: SendCheck(status, token, until, sub_status, state)
        for did, status, token, until, sub_status, state in conn.execute(query)
    }
