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
from drip.store.events import record_unsubscribe
from drip.store.lists import join_list, leave_list, member_lists
from drip.store.retry import write
from drip.store.schema import (
    EnrollmentState,
    SubscriberStatus,
    enrollments,
    subscribers,
    web_confirmations,
    web_mailboxes,
)
from drip.store.subscribers import (
    SubscriberRow,
    get_subscriber,
    get_subscriber_by_id,
    make_profile,
    store_profile,
    unsubscribe,
)
from drip.store.suppressions import email_hash, is_suppressed, lift

CLAIM_ATTEMPTS = 3  # two first requests for one address may race on the unique email


@dataclass(frozen=True)
class Requested:
    """A recorded subscribe request: who to write to, and whether an email may leave now."""

    subscriber_id: int
    name: str
    send: bool  # False inside the cool-down or past the day's cap for this mailbox
    suppressed: bool  # the address is on the suppression list (only confirming lifts it)
    mailbox: str  # keyed hash of the mailbox whose allowance was taken
    created_at: dt.datetime | None = None  # the subscriber row's, which its links are bound to


@dataclass(frozen=True)
class Allowance:
    """How many confirmation emails one mailbox may get: one per cool-down, ``per_day`` a day."""

    cooldown: dt.timedelta
    per_day: int


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
    lists: tuple[str, ...] = ()  # the newsletter lists they are members of, by name


def mailbox_of(email: str) -> str:
    """The mailbox an address reaches: case-folded, its +tag dropped (``a+x@B.org`` → ``a@b.org``)."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local.split('+', 1)[0].casefold()}@{domain.casefold()}"


def request_confirmation(
    engine: sa.Engine,
    secret: str,
    *,
    email: str,
    name: str,
    locale: str,
    allowance: Allowance,
    now: dt.datetime,
) -> Requested:
    """Record a subscribe request: a new address becomes *pending*, a known one is left untouched.

    Whoever fills the form may not own the address, so a known subscriber's details only
    change once it is confirmed. The mailbox's allowance is claimed in the same transaction.
    """
    for _attempt in range(CLAIM_ATTEMPTS):
        try:
            return write(engine, lambda conn: _claim(conn, secret, email, name, locale, allowance, now))
        except sa.exc.IntegrityError:
            continue
    raise RuntimeError("could not record the subscription after three attempts")


def _claim(
    conn: sa.Connection,
    secret: str,
    email: str,
    name: str,
    locale: str,
    allowance: Allowance,
    now: dt.datetime,
) -> Requested:
    existing = get_subscriber(conn, email)
    if existing is None:
        created = store_profile(
            conn, make_profile(email, name=name, locale=locale), status=SubscriberStatus.PENDING, now=now
        )
        row = created.subscriber
    else:
        row = existing
    subscriber_id, stored_name = row.id, row.name
    suppressed = is_suppressed(conn, secret, email)
    mailbox = email_hash(secret, mailbox_of(email))
    send = _take_allowance(conn, mailbox, allowance, now)
    if send:
        _note_sent(conn, subscriber_id, now)
    return Requested(subscriber_id, stored_name, send, suppressed, mailbox, row.created_at)


def _take_allowance(conn: sa.Connection, mailbox: str, allowance: Allowance, now: dt.datetime) -> bool:
    """True when the mailbox may get a confirmation now (outside the cool-down, under the daily cap)."""
    row = conn.execute(
        sa.select(web_mailboxes.c.last_sent_at, web_mailboxes.c.day_started_at, web_mailboxes.c.sent_that_day)
        .where(web_mailboxes.c.mailbox_hash == mailbox)
        .with_for_update()
    ).first()
    if row is None:
        conn.execute(
            web_mailboxes.insert().values(
                mailbox_hash=mailbox, last_sent_at=now, day_started_at=now, sent_that_day=1
            )
        )
        return True
    last, day_started, count = row
    if last is not None and last > now - allowance.cooldown:
        return False
    if day_started <= now - dt.timedelta(days=1):
        day_started, count = now, 0
    if count >= allowance.per_day:
        return False
    conn.execute(
        web_mailboxes.update()
        .where(web_mailboxes.c.mailbox_hash == mailbox)
        .values(last_sent_at=now, day_started_at=day_started, sent_that_day=count + 1)
    )
    return True


def _note_sent(conn: sa.Connection, subscriber_id: int, now: dt.datetime) -> None:
    """When this subscriber was last sent a confirmation (their data export shows it)."""
    noted = conn.execute(
        web_confirmations.update()
        .where(web_confirmations.c.subscriber_id == subscriber_id)
        .values(sent_at=now)
    ).rowcount
    if not noted:
        conn.execute(web_confirmations.insert().values(subscriber_id=subscriber_id, sent_at=now))


def forget_confirmation(engine: sa.Engine, requested: Requested) -> None:
    """Give back the allowance after a failed send, so the visitor may try again at once."""

    def work(conn: sa.Connection) -> None:
        conn.execute(
            web_mailboxes.update()
            .where(web_mailboxes.c.mailbox_hash == requested.mailbox, web_mailboxes.c.sent_that_day > 0)
            .values(last_sent_at=None, sent_that_day=web_mailboxes.c.sent_that_day - 1)
        )
        conn.execute(
            web_confirmations.delete().where(web_confirmations.c.subscriber_id == requested.subscriber_id)
        )

    write(engine, work)


def confirm_subscription(
    engine: sa.Engine, secret: str, subscriber_id: int, course: Course, *, now: dt.datetime
) -> Contact | None:
    """Activate the subscriber, lift any suppression and enroll; None when they no longer exist.

    Coming back to a course they left starts it afresh in a new enrollment: a re-import
    never does that, a confirmed opt-in is the one case where coming back is what was
    asked. The old enrollment and what it sent stay, as history.
    """

    def work(conn: sa.Connection) -> Contact | None:
        contact = _activate(conn, secret, subscriber_id, now=now)
        if contact is not None:
            enroll(conn, subscriber_id, course, now=now, rejoin=True)
        return contact

    return write(engine, work)


def _activate(conn: sa.Connection, secret: str, subscriber_id: int, *, now: dt.datetime) -> Contact | None:
    """A confirmed opt-in: the subscriber active again and any suppression lifted; None when gone."""
    row = conn.execute(
        sa.select(subscribers.c.email, subscribers.c.status, subscribers.c.locale).where(
            subscribers.c.id == subscriber_id
        )
    ).first()
    if row is None:
        return None
    email, status, locale = row
    if status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber_id)
            .values(status=SubscriberStatus.ACTIVE, confirmed_at=now, unsubscribed_at=None, updated_at=now)
        )
    lift(conn, secret, email)
    return Contact(email, locale)


def confirm_list_subscription(
    engine: sa.Engine, secret: str, subscriber_id: int, list_name: str, *, now: dt.datetime
) -> Contact | None:
    """Like :func:`confirm_subscription`, joining a newsletter list instead of enrolling in a course."""

    def work(conn: sa.Connection) -> Contact | None:
        contact = _activate(conn, secret, subscriber_id, now=now)
        if contact is not None:
            join_list(conn, subscriber_id, list_name, now=now)
        return contact

    return write(engine, work)


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

    def work(conn: sa.Connection) -> Left | None:
        found = _contact(conn, subscriber_id)
        if found is None:
            return None
        try:
            unsubscribe(conn, found.email, course=course, now=now)
        except NotFoundError:
            return Left(found, was_enrolled=False)
        record_unsubscribe(conn, subscriber_id, course, now=now)
        return Left(found, was_enrolled=True)

    left = write(engine, work)
    if left is not None and left.was_enrolled:
        # Committed: no worker hands them anything more; wait for what it already holds.
        wait_for_hand_offs(engine, subscriber_id, course=course, now=now)
    return left


def subscriber_created_at(engine: sa.Engine, subscriber_id: int) -> dt.datetime | None:
    """When the subscriber a signed link names was created, or None once they are erased."""
    with engine.connect() as conn:
        found = get_subscriber_by_id(conn, subscriber_id)
    return found.created_at if found is not None else None


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
            .where(
                enrollments.c.subscriber_id == subscriber_id, enrollments.c.state == EnrollmentState.ACTIVE
            )
            .order_by(enrollments.c.started_at)
        ).scalars()
        courses = tuple(slugs)
        return StoredPreferences(
            row[0], row[1], row[2], row[3], courses, tuple(member_lists(conn, subscriber_id))
        )


def save_preferences(
    engine: sa.Engine,
    subscriber_id: int,
    *,
    status: str | None,
    timezone: str,
    locale: str,
    keep: frozenset[str],
    now: dt.datetime,
    leave_lists: frozenset[str] = frozenset(),
) -> None:
    """Write every change in one transaction; courses not in ``keep`` are left as an unsubscribe link would.

    Lists in ``leave_lists`` are left too (their pending issue emails cancelled); courses and
    lists are apart, so leaving one never touches the other.

    ``status`` (active or paused; None: unchanged) only applies while the subscriber is still
    active or paused, read again inside the transaction: an unsubscribe may have landed meanwhile.
    """

    def work(conn: sa.Connection) -> None:
        row = conn.execute(
            sa.select(subscribers.c.email, subscribers.c.status).where(subscribers.c.id == subscriber_id)
        ).first()
        if row is None:
            return
        email, current = row
        values: dict[str, object] = {"timezone": timezone, "locale": locale, "updated_at": now}
        if status is not None and current in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
            values["status"] = status
        conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id).values(**values))
        enrolled = conn.execute(
            sa.select(enrollments.c.course).where(
                enrollments.c.subscriber_id == subscriber_id, enrollments.c.state == EnrollmentState.ACTIVE
            )
        ).scalars()
        for course in [c for c in enrolled if c not in keep]:
            unsubscribe(conn, email, course=course, now=now)
        for list_name in sorted(leave_lists):
            leave_list(conn, subscriber_id, list_name, now=now)

    write(engine, work)
