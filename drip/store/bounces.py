"""Bounce reports applied once each: a hard bounce suppresses at once, soft ones after a count.

A report is recorded by its digest in the same transaction as its effect, so
reading the same mailbox twice (or a report copied into two folders) changes
nothing. Suppressing goes through :func:`~drip.store.webhook_events.stop_all_mail`,
the same path a provider's bounce event takes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from drip.store import suppressions
from drip.store.retry import write
from drip.store.schema import SubscriberStatus, bounce_reports, soft_bounces
from drip.store.suppressions import SuppressionReason
from drip.store.webhook_events import StopEvent, stop_all_mail


@dataclass(frozen=True)
class BounceOutcome:
    """What recording one report did."""

    duplicate: bool = False
    suppressed: tuple[str, ...] = ()  # addresses newly told to stop: hard, or soft past the limit
    counted: tuple[tuple[str, int], ...] = field(default=())  # soft bounces below the limit, with the count


def record_bounce(
    engine: sa.Engine,
    secret: str,
    digest: str,
    *,
    hard: Iterable[str],
    soft: Iterable[str],
    soft_limit: int,
    now: dt.datetime,
) -> BounceOutcome:
    """Apply one report in one transaction; a report seen before changes nothing."""
    hard, soft = sorted(set(hard)), sorted(set(soft) - set(hard))

    def apply(conn: sa.Connection) -> BounceOutcome:
        seen = conn.execute(
            sa.select(bounce_reports.c.digest).where(bounce_reports.c.digest == digest)
        ).first()
        if seen is not None:
            return BounceOutcome(duplicate=True)
        conn.execute(
            bounce_reports.insert().values(digest=digest, hard=len(hard), soft=len(soft), received_at=now)
        )
        counts = {email: count_soft_bounce(conn, secret, email, now=now) for email in soft}
        stopping = hard + [email for email, n in counts.items() if n >= soft_limit]
        events = [
            StopEvent(digest, "bounce", email, SubscriberStatus.BOUNCED, SuppressionReason.BOUNCED)
            for email in stopping
        ]
        if events:
            stop_all_mail(conn, secret, events, now=now)
        below = tuple((email, n) for email, n in counts.items() if n < soft_limit)
        return BounceOutcome(suppressed=tuple(stopping), counted=below)

    try:
        return write(engine, apply)
    except sa.exc.IntegrityError:  # the same report recorded at once by another run: it is a duplicate now
        return write(engine, apply)


def count_soft_bounce(conn: sa.Connection, secret: str, email: str, *, now: dt.datetime) -> int:
    """One more soft bounce for an address (by its keyed hash); the new count."""
    digest = suppressions.email_hash(secret, email)
    row = conn.execute(sa.select(soft_bounces.c.count).where(soft_bounces.c.email_hash == digest)).first()
    if row is None:
        conn.execute(soft_bounces.insert().values(email_hash=digest, count=1, last_at=now))
        return 1
    count = int(row[0]) + 1
    conn.execute(
        soft_bounces.update().where(soft_bounces.c.email_hash == digest).values(count=count, last_at=now)
    )
    return count


def soft_bounce_count(conn: sa.Connection, secret: str, email: str) -> int:
    """How many soft bounces an address has had (0 when none)."""
    digest = suppressions.email_hash(secret, email)
    row = conn.execute(sa.select(soft_bounces.c.count).where(soft_bounces.c.email_hash == digest)).first()
    return 0 if row is None else int(row[0])
