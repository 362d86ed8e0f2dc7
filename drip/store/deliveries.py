"""What dispatch reads and marks about the deliveries it claimed: who they go to, and the hand-off.

No transaction is held while a transport talks to a server (design decision 11).
Right before each chunk goes to the transport, :func:`hand_off` marks its rows
``handed_off_at`` and re-checks their subscriber in one short transaction; the
outcome is recorded afterwards (:func:`drip.store.claims.record`, which clears
the mark). An unsubscribe cancels what is not handed off and then waits
(:func:`wait_for_hand_offs`) for what is, so nothing leaves after it returns.
Deciding what a subscriber's state means is dispatch's (:mod:`drip.dispatch.decide`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from drip.store.db import among
from drip.store.lists import LEFT_NOTE, current_membership
from drip.store.schema import (
    DeliveryStatus,
    EnrollmentState,
    MemberState,
    SubscriberStatus,
    as_driver_reads,
    deliveries,
    enrollments,
    list_members,
    subscribers,
)

log = logging.getLogger(__name__)

# Readers read per statement: a whole SendGrid batch (an IN list of as many parameters on SQLite,
# far under its limit of 32,766; one array on PostgreSQL).
READ_CHUNK = 1000
# How long an unsubscribe waits for the sends already handed to a transport (a stuck one).
HAND_OFF_WAIT_SECONDS = 30.0


@dataclass(slots=True)  # read per email: see drip.store.claims.Claimed
class Recipient:
    """The subscriber and enrollment behind a claimed delivery, as read after the claim."""

    subscriber_id: int
    email: str
    name: str
    locale: str | None
    status: str
    attributes: Mapping[str, Any]
    enrollment_state: str
    created_at: dt.datetime | None = None  # binds the email's signed links to this subscriber's row


def _person(dialect: str) -> tuple[sa.ColumnElement[Any], ...]:
    """What a recipient is read as, in the order Recipient takes it (the state comes from elsewhere).

    The attributes come as their JSON text: most readers have none, and decoding ``{}`` for each
    one of a thousand-row chunk cost more than reading the rest of the row.
    """
    return (
        subscribers.c.id,
        subscribers.c.email,
        subscribers.c.name,
        subscribers.c.locale,
        subscribers.c.status,
        sa.cast(subscribers.c.attributes, sa.Text).label("attributes"),
        as_driver_reads(subscribers.c.created_at, dialect),
    )


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


def _attributes(text: str | None) -> Mapping[str, Any]:
    """A reader's attributes from their JSON text (read-only: shared by readers who have none)."""
    if not text or text == "{}":
        return _NO_ATTRIBUTES
    found = json.loads(text)
    return found if isinstance(found, dict) else _NO_ATTRIBUTES


def recipients(engine: sa.Engine, enrollment_ids: Iterable[int]) -> dict[int, Recipient]:
    """Subscriber and enrollment of each enrollment id; a deleted subscriber is missing.

    No ids, no query: a batch of newsletter emails has no enrollment, and asking the database
    for nothing cost a connection check and a round trip per pass.
    """
    ids = sorted(set(enrollment_ids))
    out: dict[int, Recipient] = {}
    if not ids:
        return out
    query = sa.select(enrollments.c.id, enrollments.c.state, *_person(engine.dialect.name)).join(
        subscribers, subscribers.c.id == enrollments.c.subscriber_id
    )
    with engine.connect() as conn:
        for at in range(0, len(ids), READ_CHUNK):
            rows = conn.execute(query.where(among(conn, enrollments.c.id, ids[at : at + READ_CHUNK])))
            for eid, state, sid, email, name, locale, status, attributes, created in rows.all():
                out[eid] = Recipient(
                    sid, email, name or "", locale, status, _attributes(attributes), state, created
                )
    return out


def member_recipients(
    engine: sa.Engine, list_name: str, subscriber_ids: Iterable[int]
) -> dict[int, Recipient]:
    """Subscriber of each id, for an issue of ``list_name``: ``enrollment_state`` is their membership's.

    An issue email has no enrollment; what may stop it is the reader leaving the list,
    so a current member reads ``active`` and anyone else ``left``.
    """
    ids = sorted(set(subscriber_ids))
    member = current_membership(subscribers.c.id, list_name)
    query: sa.Select[Any] = sa.select(*_person(engine.dialect.name), list_members.c.id).outerjoin(
        list_members, member
    )
    out: dict[int, Recipient] = {}
    member_state, left = EnrollmentState.ACTIVE, MemberState.LEFT  # once, not per row: Enum lookups are slow
    with engine.connect() as conn:
        for at in range(0, len(ids), READ_CHUNK):
            rows = conn.execute(query.where(among(conn, subscribers.c.id, ids[at : at + READ_CHUNK])))
            for sid, email, name, locale, status, attributes, created, mid in rows.all():
                state = member_state if mid is not None else left
                out[sid] = Recipient(
                    sid, email, name or "", locale, status, _attributes(attributes), state, created
                )
    return out


Refusal = Callable[[str, str], str | None]  # (subscriber status, enrollment state) → why not, or None


@dataclass(frozen=True)
class HandOff:
    """What one hand-off mark did: the rows marked to go now, and those it cancelled (id → note).

    A row in neither lost its lease (reclaimed, recorded or erased meanwhile): not ours.
    """

    marked: frozenset[int]
    cancelled: Mapping[int, str]


def hand_off(
    engine: sa.Engine, ids: Sequence[int], lease_token: str, *, now: dt.datetime, refusal: Refusal
) -> HandOff:
    """Mark a chunk handed off under its live lease and re-check it, in one short transaction.

    The mark comes first: on PostgreSQL it locks the rows, so an unsubscribe
    cancelling them either committed before (the row is no longer pending and is
    not marked) or waits for this commit (and then waits for the send's outcome).
    The subscriber's status and the enrollment's state are read after the mark,
    in the same transaction; a row ``refusal`` stops is recorded cancelled at once.
    Nothing is held once this returns: the transport runs with no transaction open.
    """
    if not ids:
        return HandOff(frozenset(), {})
    with engine.begin() as conn:
        marked = set(
            conn.execute(
                sa.update(deliveries)
                .where(
                    among(conn, deliveries.c.id, ids),
                    deliveries.c.lease_token == lease_token,
                    deliveries.c.status == DeliveryStatus.PENDING,
                    deliveries.c.leased_until >= now,
                )
                .values(handed_off_at=now)
                .returning(deliveries.c.id)
            )
            .scalars()
            .all()
        )
        refused = _refused(conn, marked, refusal)
        _cancel(conn, refused, now)
    return HandOff(frozenset(marked - refused.keys()), refused)


def _refused(conn: sa.Connection, ids: set[int], refusal: Refusal) -> dict[int, str]:
    """The marked rows whose subscriber or enrollment (or list membership) no longer takes mail, with why.

    An issue email (no enrollment) reads the reader's current membership of its
    list instead: a reader who left reads ``left``, like a stopped enrollment. Only
    rows that are not plainly fine (an active subscriber in an active enrollment, or
    a current member) are read back for ``refusal`` to judge: of a thousand-row chunk,
    hardly any; reading them all cost the chunk more than its UPDATE.
    """
    if not ids:
        return {}
    member = sa.and_(
        deliveries.c.enrollment_id.is_(None),
        current_membership(deliveries.c.subscriber_id, deliveries.c.course),
    )
    # Every term true or false, never NULL (an issue email has no enrollment, a course email no
    # membership): NOT of an unknown would drop the row instead of reading it.
    plainly_fine = sa.and_(
        subscribers.c.status == SubscriberStatus.ACTIVE,
        sa.or_(
            sa.func.coalesce(enrollments.c.state, "") == EnrollmentState.ACTIVE,
            list_members.c.id.is_not(None),
        ),
    )
    query = (
        sa.select(deliveries.c.id, subscribers.c.status, enrollments.c.state, list_members.c.id)
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .outerjoin(enrollments, enrollments.c.id == deliveries.c.enrollment_id)
        .outerjoin(list_members, member)
        .where(among(conn, deliveries.c.id, sorted(ids)))
    )
    if refusal(SubscriberStatus.ACTIVE, EnrollmentState.ACTIVE) is None:  # else every row is in doubt
        query = query.where(sa.not_(plainly_fine))
    out: dict[int, str] = {}
    for did, status, state, mid in conn.execute(query).all():
        if state is None:  # an issue email
            why = refusal(status, EnrollmentState.ACTIVE) or (None if mid is not None else LEFT_NOTE)
        else:
            why = refusal(status, state)
        if why is not None:
            out[did] = why
    return out


def _cancel(conn: sa.Connection, notes: Mapping[int, str], now: dt.datetime) -> None:
    """Record rows this transaction marked (so holds) as cancelled, the lease and mark cleared."""
    if not notes:
        return
    stmt = (
        sa.update(deliveries)
        .where(deliveries.c.id == sa.bindparam("b_id"))
        .values(
            status=DeliveryStatus.CANCELLED,
            note=sa.bindparam("b_note"),
            leased_until=None,
            handed_off_at=None,
            updated_at=now,
        )
    )
    conn.execute(stmt, [{"b_id": did, "b_note": note} for did, note in notes.items()])


def _handed_off(subscriber_id: int, course: str | None, now: dt.datetime) -> sa.Select[int]:
    """How many rows of this subscriber (in ``course``, or any) handed to a transport under a live lease, unrecorded."""
    query = sa.select(sa.func.count()).where(
        deliveries.c.subscriber_id == subscriber_id,
        deliveries.c.status == DeliveryStatus.PENDING,
        deliveries.c.handed_off_at.is_not(None),
        deliveries.c.leased_until >= now,
    )
    return query if course is None else query.where(deliveries.c.course == course)


def wait_for_hand_offs(
    engine: sa.Engine,
    subscriber_id: int,
    *,
    course: str | None = None,
    now: dt.datetime,
    timeout: float = HAND_OFF_WAIT_SECONDS,
) -> bool:
    """After an unsubscribe committed: wait until no send to this subscriber is in a transport's hands.

    A worker checks the subscriber in the transaction that marks a hand-off, so a
    mark that committed before this reads it is the only send that may still go
    out; its outcome is recorded (or its lease expires) within a send's time. False
    when ``timeout`` passed first (a stuck transport): the caller answers anyway.
    """
    started = time.monotonic()
    pause = 0.005
    while True:
        elapsed = time.monotonic() - started
        moment = now + dt.timedelta(seconds=elapsed)
        with engine.connect() as conn:
            left = conn.execute(_handed_off(subscriber_id, course, moment)).scalar_one()
        if not left:
            return True
        if elapsed >= timeout:
            log.warning(
                "unsubscribe of subscriber %d answered after %.0fs with %d sends still handed off; "
                "their leases bound how long they can still go out",
                subscriber_id,
                elapsed,
                left,
            )
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
