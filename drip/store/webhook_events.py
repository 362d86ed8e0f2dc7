"""Provider events: every one into the events ledger once; those that stop all mail to an address
(bounces, complaints, unsubscribes) applied once.

An event is recorded by a digest of its content, so a batch delivered again
changes nothing. A long batch is applied in chunks of :data:`EVENTS_PER_TRANSACTION`,
each its own short transaction of a few bulk statements, so a reader's unsubscribe
never waits behind a whole batch; the digests make the split exact, whatever chunk
an event falls in and however often the batch comes back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa

from drip.store import suppressions
from drip.store.events import Event, known_deliveries, record_events
from drip.store.retry import write
from drip.store.schema import SubscriberStatus, subscribers, webhook_events
from drip.store.subscribers import subscribers_by_email, unsubscribe_many

EVENTS_PER_TRANSACTION = 500


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


@dataclass(frozen=True)
class Reported:
    """One verified provider event: its ledger row, and what it stops when it stops mail."""

    event: Event
    stop: StopEvent | None = None


def record_provider_events(
    engine: sa.Engine, secret: str, batch: Sequence[Reported], *, now: dt.datetime
) -> Recorded:
    """Put every event in the ledger (once: by digest) and apply the stopping ones, chunk by chunk.
    The figures returned are those of the stopping events, as :func:`record_stop_events` gives them."""
    applied = duplicates = 0
    for start in range(0, len(batch), EVENTS_PER_TRANSACTION):
        chunk = batch[start : start + EVENTS_PER_TRANSACTION]
        done = _record_chunk(engine, secret, chunk, now)
        applied += done.applied
        duplicates += done.duplicates
    return Recorded(applied, duplicates)


def record_stop_events(
    engine: sa.Engine, secret: str, events: Sequence[StopEvent], *, now: dt.datetime
) -> Recorded:
    """Apply a batch chunk by chunk; events seen before are counted, not applied again."""
    applied = duplicates = 0
    for start in range(0, len(events), EVENTS_PER_TRANSACTION):
        chunk = [Reported(_unledgered(e, now), e) for e in events[start : start + EVENTS_PER_TRANSACTION]]
        done = _record_chunk(engine, secret, chunk, now, ledger=False)
        applied += done.applied
        duplicates += done.duplicates
    return Recorded(applied, duplicates)


def _unledgered(event: StopEvent, now: dt.datetime) -> Event:
    return Event(None, event.kind, "provider", now, digest=event.digest)


def _record_chunk(
    engine: sa.Engine, secret: str, chunk: Sequence[Reported], now: dt.datetime, *, ledger: bool = True
) -> Recorded:
    """One transaction. The same chunk applied at once by another request breaks the unique digest:
    it is read again, and finds the other request already applied it."""

    def work(conn: sa.Connection) -> Recorded:
        if ledger:
            _to_ledger(conn, [r.event for r in chunk])
        return _apply(conn, secret, [r.stop for r in chunk if r.stop is not None], now)

    try:
        return write(engine, work)
    except sa.exc.IntegrityError:
        return write(engine, work)


def _to_ledger(conn: sa.Connection, batch: Sequence[Event]) -> None:
    """Events about a delivery drip no longer knows (an erased reader's) are kept without it."""
    known = known_deliveries(conn, [e.delivery_id for e in batch if e.delivery_id is not None])
    record_events(
        conn,
        [
            e if e.delivery_id is None or e.delivery_id in known else replace(e, delivery_id=None)
            for e in batch
        ],
    )


def _apply(conn: sa.Connection, secret: str, events: Sequence[StopEvent], now: dt.datetime) -> Recorded:
    digests = {event.digest for event in events}
    seen = set(
        conn.execute(sa.select(webhook_events.c.digest).where(webhook_events.c.digest.in_(digests))).scalars()
    )
    fresh: dict[str, StopEvent] = {}
    for event in events:
        if event.digest not in seen:
            fresh.setdefault(event.digest, event)
    if fresh:
        conn.execute(
            webhook_events.insert(),
            [{"digest": d, "event": e.kind, "received_at": now} for d, e in fresh.items()],
        )
        stop_all_mail(conn, secret, list(fresh.values()), now=now)
    return Recorded(len(fresh), len(events) - len(fresh))


def stop_all_mail(conn: sa.Connection, secret: str, events: Sequence[StopEvent], *, now: dt.datetime) -> None:
    """Unsubscribe every known address (pending deliveries cancelled, leased or not), set the status
    of its last event, and put every address on the suppression list, known or not (the first
    reason is kept)."""
    known = subscribers_by_email(conn, [e.email for e in events])
    unsubscribe_many(conn, sorted({sub.id for sub in known.values()}), now=now)
    final: dict[int, str] = {}
    reasons: dict[str, str] = {}
    for event in events:
        found = known.get(event.email)
        if found is not None:
            final[found.id] = event.status
        reasons.setdefault(found.email if found is not None else event.email, event.reason)
    by_status: dict[str, list[int]] = {}
    for subscriber_id, status in final.items():
        if status != SubscriberStatus.UNSUBSCRIBED:
            by_status.setdefault(status, []).append(subscriber_id)
    for status, ids in by_status.items():
        conn.execute(
            subscribers.update().where(subscribers.c.id.in_(ids)).values(status=status, updated_at=now)
        )
    suppressions.suppress_many(conn, secret, reasons, now=now)
