"""Provider events that stop all mail to an address (bounces, complaints, unsubscribes), applied once.

An event is recorded by a digest of its content, so a batch delivered again
changes nothing; each batch is one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from drip.store import suppressions
from drip.store.schema import UNSUBSCRIBED, subscribers, webhook_events
from drip.store.subscribers import get_subscriber, unsubscribe


@dataclass(frozen=True)
class StopEvent:
    """One verified event that stops all mail to ``email``."""

    digest: str  # its identity across the provider's retries
    kind: str  # the provider's event type
    email: str
    status: str  # the subscriber status it leads to
    reason: str  # the suppression reason


@dataclass(frozen=True)
class Recorded:
    """What :func:`record_stop_events` did."""

    applied: int
    duplicates: int


def record_stop_events(
    engine: sa.Engine, secret: str, events: Sequence[StopEvent], *, now: dt.datetime
) -> Recorded:
    """Apply a batch in one transaction; events seen before are counted, not applied again.

    The same batch delivered twice at once breaks the unique digest of one of them: that
    transaction is read again, and finds the other request already applied everything.
    """
    try:
        return _record(engine, secret, events, now=now)
    except sa.exc.IntegrityError:
        return _record(engine, secret, events, now=now)


def _record(engine: sa.Engine, secret: str, events: Sequence[StopEvent], *, now: dt.datetime) -> Recorded:
    applied = duplicates = 0
    with engine.begin() as conn:
        for event in events:
            seen = conn.execute(
                sa.select(webhook_events.c.digest).where(webhook_events.c.digest == event.digest)
            ).first()
            if seen is not None:
                duplicates += 1
                continue
            conn.execute(
                webhook_events.insert().values(digest=event.digest, event=event.kind, received_at=now)
            )
            stop_all_mail(conn, secret, event.email, status=event.status, reason=event.reason, now=now)
            applied += 1
    return Recorded(applied, duplicates)


def stop_all_mail(
    conn: sa.Connection, secret: str, email: str, *, status: str, reason: str, now: dt.datetime
) -> None:
    """Unsubscribe the address if known (pending deliveries cancelled, leased or not), set ``status``
    and put it on the suppression list, known or not."""
    subscriber = get_subscriber(conn, email)
    if subscriber is not None:
        unsubscribe(conn, subscriber.email, now=now)
        if status != UNSUBSCRIBED:
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber.id)
                .values(status=status, updated_at=now)
            )
        email = subscriber.email
    suppressions.suppress(conn, secret, email, reason, now=now)
