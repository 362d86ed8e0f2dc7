"""What a subscriber does through signed links: ask to join, confirm, leave, change their preferences.

Each function is one transaction, so a request either changes everything it
meant to or nothing, and an unsubscribe has taken effect when the function
returns (before the web answer is sent).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from drip.course.models import Course
from drip.errors import NotFoundError
from drip.store.deliveries import wait_for_hand_offs
from drip.store.enrollments import enroll
from drip.store.schema import (
    ACTIVE,
    ENROLLED,
    LEFT,
    PAUSED,
    PENDING,
    deliveries,
    enrollments,
    subscribers,
    web_confirmations,
)
from drip.store.subscribers import (
    SubscriberRow,
    get_subscriber,
    get_subscriber_by_id,
    make_profile,
    store_profile,
    unsubscribe,
)
from drip.store.suppressions import is_suppressed, lift

CLAIM_ATTEMPTS = 3  # two first requests for one address may race on the unique email


@dataclass(frozen=True)
class Requested:
    """A recorded subscribe request: who to write to, and whether an email may leave now."""

    subscriber_id: int
    name: str
    send: bool  # False inside the cool-down: a confirmation left recently
    suppressed: bool  # the address is on the suppression list (only confirming lifts it)


@dataclass(frozen=True)
class Contact:
    """Who a signed link acts for: their address and language (None: the course's)."""

    email: str
    locale: str | None


@dataclass(frozen=True)
class StoredPreferences:
    """A subscriber's own settings as stored (None: the site's default applies)."""

    email: str
    status: str
    timezone: str | None
    locale: str | None
    courses: tuple[str, ...]  # the courses they are in now, oldest first


def request_confirmation(
    engine: sa.Engine,
    secret: str,
    *,
    email: str,
    name: str,
    locale: str,
    cooldown: dt.timedelta,
    now: dt.datetime,
) -> Requested:
    """Record a subscribe request: a new address becomes *pending*, a known one is left untouched.

    Whoever fills the form may not own the address, so a known subscriber's details only
    change once it is confirmed. The cool-down is claimed in the same transaction.
    """
    for _attempt in range(CLAIM_ATTEMPTS):
        try:
            with engine.begin() as conn:
                return _claim(conn, secret, email, name, locale, cooldown=cooldown, now=now)
        except sa.exc.IntegrityError:
            continue
    raise RuntimeError("could not record the subscription after three attempts")


def _claim(
    conn: sa.Connection,
    secret: str,
    email: str,
    name: str,
    locale: str,
    *,
    cooldown: dt.timedelta,
    now: dt.datetime,
) -> Requested:
    existing = get_subscriber(conn, email)
    if existing is None:
        created = store_profile(conn, make_profile(email, name=name, locale=locale), status=PENDING, now=now)
        subscriber_id, stored_name = created.id, created.subscriber.name
    else:
        subscriber_id, stored_name = existing.id, existing.name
    suppressed = is_suppressed(conn, secret, email)
    return Requested(
        subscriber_id, stored_name, _take_cooldown(conn, subscriber_id, cooldown, now), suppressed
    )


def _take_cooldown(conn: sa.Connection, subscriber_id: int, cooldown: dt.timedelta, now: dt.datetime) -> bool:
    """True when no confirmation left within ``cooldown``; the send time is recorded as now."""
    refreshed = conn.execute(
        web_confirmations.update()
        .where(
            web_confirmations.c.subscriber_id == subscriber_id, web_confirmations.c.sent_at <= now - cooldown
        )
        .values(sent_at=now)
    ).rowcount
    if refreshed:
        return True
    recent = conn.execute(
        sa.select(web_confirmations.c.sent_at).where(web_confirmations.c.subscriber_id == subscriber_id)
    ).first()
    if recent is not None:
        return False
    conn.execute(web_confirmations.insert().values(subscriber_id=subscriber_id, sent_at=now))
    return True


def forget_confirmation(engine: sa.Engine, subscriber_id: int) -> None:
    """Release the cool-down after a failed send, so the visitor may try again at once."""
    with engine.begin() as conn:
        conn.execute(web_confirmations.delete().where(web_confirmations.c.subscriber_id == subscriber_id))


def confirm_subscription(
    engine: sa.Engine, secret: str, subscriber_id: int, course: Course, *, now: dt.datetime
) -> Contact | None:
    """Activate the subscriber, lift any suppression and enroll; None when they no longer exist."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(subscribers.c.email, subscribers.c.status, subscribers.c.locale).where(
                subscribers.c.id == subscriber_id
            )
        ).first()
        if row is None:
            return None
        email, status, locale = row
        if status not in (ACTIVE, PAUSED):
            conn.execute(
                subscribers.update()
                .where(subscribers.c.id == subscriber_id)
                .values(status=ACTIVE, confirmed_at=now, unsubscribed_at=None, updated_at=now)
            )
        lift(conn, secret, email)
        _restart_if_left(conn, subscriber_id, course.slug)
        enroll(conn, subscriber_id, course, now=now)
    return Contact(email, locale)


def _restart_if_left(conn: sa.Connection, subscriber_id: int, course: str) -> None:
    """A confirmed new request to join a course they once left starts it afresh.

    ``enroll`` keeps a left enrollment as it is (a re-import must not bring anyone
    back); a confirmed opt-in is the one case where coming back is what was asked.
    """
    left = conn.execute(
        sa.select(enrollments.c.id).where(
            enrollments.c.subscriber_id == subscriber_id,
            enrollments.c.course == course,
            enrollments.c.state == LEFT,
        )
    ).scalar_one_or_none()
    if left is None:
        return
    conn.execute(deliveries.delete().where(deliveries.c.enrollment_id == left))
    conn.execute(enrollments.delete().where(enrollments.c.id == left))


def _contact(conn: sa.Connection, subscriber_id: int) -> Contact | None:
    row = conn.execute(
        sa.select(subscribers.c.email, subscribers.c.locale).where(subscribers.c.id == subscriber_id)
    ).first()
    return Contact(row[0], row[1]) if row is not None else None


def find_subscriber(engine: sa.Engine, subscriber_id: int) -> SubscriberRow | None:
    """The whole stored subscriber a link names (the view page personalises with it), None if erased."""
    with engine.connect() as conn:
        return get_subscriber_by_id(conn, subscriber_id)


def find_contact(engine: sa.Engine, subscriber_id: int) -> Contact | None:
    """The address and language of a subscriber, None once they are erased."""
    with engine.connect() as conn:
        return _contact(conn, subscriber_id)


@dataclass(frozen=True)
class Left:
    """What :func:`leave` did: who left, and whether they were in the course at all."""

    contact: Contact
    was_enrolled: bool


def leave(engine: sa.Engine, subscriber_id: int, course: str | None, *, now: dt.datetime) -> Left | None:
    """Unsubscribe from ``course`` (or everything when None) before returning; None if erased.

    Returns once no email to them is in a transport's hands, so none leaves afterwards.
    Not (or no longer) being in the course is not an error: leaving it is already true, and
    stopping everything else too would be more than was asked.
    """
    with engine.begin() as conn:
        found = _contact(conn, subscriber_id)
        if found is None:
            return None
        try:
            unsubscribe(conn, found.email, course=course, now=now)
        except NotFoundError:
            return Left(found, was_enrolled=False)
    # Committed: no worker hands them anything more; wait for what it already holds.
    wait_for_hand_offs(engine, subscriber_id, course=course, now=now)
    return Left(found, was_enrolled=True)


def read_preferences(engine: sa.Engine, subscriber_id: int) -> StoredPreferences | None:
    """What the preferences page shows; None once the subscriber is erased."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                subscribers.c.email, subscribers.c.status, subscribers.c.timezone, subscribers.c.locale
            ).where(subscribers.c.id == subscriber_id)
        ).first()
        if row is None:
            return None
        slugs = conn.execute(
            sa.select(enrollments.c.course)
            .where(enrollments.c.subscriber_id == subscriber_id, enrollments.c.state == ENROLLED)
            .order_by(enrollments.c.started_at)
        ).scalars()
        return StoredPreferences(row[0], row[1], row[2], row[3], tuple(slugs))


def save_preferences(
    engine: sa.Engine,
    subscriber_id: int,
    *,
    status: str | None,
    timezone: str,
    locale: str,
    keep: frozenset[str],
    now: dt.datetime,
) -> None:
    """Write every change in one transaction; courses not in ``keep`` are left as an unsubscribe link would.

    ``status`` (active or paused; None: unchanged) only applies while the subscriber is still
    active or paused, read again inside the transaction: an unsubscribe may have landed meanwhile.
    """
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(subscribers.c.email, subscribers.c.status).where(subscribers.c.id == subscriber_id)
        ).first()
        if row is None:
            return
        email, current = row
        values: dict[str, object] = {"timezone": timezone, "locale": locale, "updated_at": now}
        if status is not None and current in (ACTIVE, PAUSED):
            values["status"] = status
        conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))
        enrolled = conn.execute(
            sa.select(enrollments.c.course).where(
                enrollments.c.subscriber_id == subscriber_id, enrollments.c.state == ENROLLED
            )
        ).scalars()
        for course in [c for c in enrolled if c not in keep]:
            unsubscribe(conn, email, course=course, now=now)
