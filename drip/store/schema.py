"""Table definitions (SQLAlchemy Core). Changes here come with an Alembic migration.

Times are stored as aware UTC datetimes. Status columns are plain strings whose
values are one StrEnum per table below, so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time zone type and gives back naive values; PostgreSQL's
    ``timestamptz`` gives them in the session zone. Both come back as UTC here,
    and naive values are refused on the way in rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to a UTC column: pass an aware one")
        value = value.astimezone(dt.UTC)
        # SQLite stores text: a fixed UTC form keeps string comparisons chronological.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is dt.UTC:  # psycopg's, in a UTC session: as it is (read per row of a claim)
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


UTC = UTCDateTime()


def as_driver_reads(column: sa.Column[dt.datetime], dialect: str) -> sa.ColumnElement[dt.datetime]:
    """A UTC column to read in bulk: on PostgreSQL as psycopg gives it, elsewhere through :class:`UTCDateTime`.

    drip's PostgreSQL sessions are in UTC (:func:`drip.store.db.connect`), where psycopg's
    datetimes carry the standard library's UTC: what UTCDateTime would return for them, so its
    processor (two Python calls a value) is skipped for the rows a dispatch pass reads by the
    thousand. SQLite's values are naive text and keep it.
    """
    if dialect == "postgresql":
        return sa.type_coerce(column, sa.DateTime(timezone=True)).label(column.name)
    return column


class SubscriberStatus(StrEnum):
    """subscribers.status"""

    PENDING = "pending"  # signed up, not confirmed yet (double opt-in)
    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


SENDABLE_SUBSCRIBER = (SubscriberStatus.ACTIVE,)

subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),  # normalised
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("locale", sa.String(16), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default=SubscriberStatus.ACTIVE.value),
    sa.Column("attributes", sa.JSON, nullable=False, default=dict),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
    sa.Column("confirmed_at", UTC, nullable=True),
    sa.Column("unsubscribed_at", UTC, nullable=True),
    sqlite_autoincrement=True,  # ids never come back: a link signed for an erased reader names nobody
)


class EnrollmentState(StrEnum):
    """enrollments.state"""

    ACTIVE = "active"
    COMPLETED = "completed"
    LEFT = "left"  # unsubscribed from this course only


enrollments = sa.Table(
    "enrollments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("course", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default=EnrollmentState.ACTIVE.value),
    sa.Column("started_at", UTC, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
    sqlite_autoincrement=True,
)
# One current enrollment per subscriber and course; left ones stay beside it, with what they were sent.
_current = enrollments.c.state != EnrollmentState.LEFT.value
sa.Index(
    "uq_enrollments_subscriber_id_course_current",
    enrollments.c.subscriber_id,
    enrollments.c.course,
    unique=True,
    sqlite_where=_current,
    postgresql_where=_current,
)


class DeliveryStatus(StrEnum):
    """deliveries.status"""

    PENDING = "pending"  # waiting for its due_at, or leased by a worker until leased_until
    SENT = "sent"
    FAILED = "failed"  # permanent failure or attempts exhausted
    CANCELLED = "cancelled"  # subscriber left, or the step was removed from the course
    SKIPPED = "skipped"  # step added behind the subscriber's position (a recorded choice)


# Newsletter lists, created by migration 0010_newsletters. A list is named in the site's
# newsletter definitions; its row says since when it exists (the first digest starts there).
lists = sa.Table(
    "lists",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("created_at", UTC, nullable=False),
)


class MemberState(StrEnum):
    """list_members.state: a left membership stays as history, a return starts a new one."""

    ACTIVE = "active"
    LEFT = "left"


list_members = sa.Table(
    "list_members",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("list", sa.String(200), sa.ForeignKey("lists.name", ondelete="CASCADE"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default=MemberState.ACTIVE.value),
    sa.Column("joined_at", UTC, nullable=False),
    sa.Column("left_at", UTC, nullable=True),
    sqlite_autoincrement=True,
)
# One current membership per subscriber and list; left ones stay beside it.
_current_member = list_members.c.state != MemberState.LEFT.value
sa.Index(
    "uq_list_members_subscriber_id_list_current",
    list_members.c.subscriber_id,
    list_members.c.list,
    unique=True,
    sqlite_where=_current_member,
    postgresql_where=_current_member,
)
# Members are read in id order, a batch at a time (keyset pagination).
sa.Index("ix_list_members_list_id", list_members.c.list, list_members.c.id)

# newsletter_issues.kind
DIGEST = "digest"
BROADCAST = "broadcast"

newsletter_issues = sa.Table(
    "newsletter_issues",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("list", sa.String(200), sa.ForeignKey("lists.name", ondelete="CASCADE"), nullable=False),
    # The list and the period ("weekly:2026-W49") or broadcast file: several workers may
    # decide to send the same issue at the same moment, and only one row can exist.
    sa.Column("key", sa.String(500), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("subject", sa.String(500), nullable=False, server_default=""),
    sa.Column("send_at", UTC, nullable=False),
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("post_urls", sa.JSON, nullable=False),  # ["/posts/x/", ...], in the issue's order
    sa.Column("counts", sa.JSON, nullable=True),  # what the last complete writing of its deliveries did
    # {"subject", "html", "text"}: the issue as the archive shows it, rendered when it was created
    sa.Column("public_copy", sa.JSON, nullable=True),
    sqlite_autoincrement=True,
)

# deliveries.status
DUE = "pending"  # waiting for its due_at, or leased by a worker until leased_until
SENT = "sent"
FAILED = "failed"  # permanent failure or attempts exhausted
CANCELLED = "cancelled"  # subscriber left, or the step was removed from the course
SKIPPED = "skipped"  # step added behind the subscriber's position (a recorded choice)

# Percent of each deliveries page filled by inserts (PostgreSQL). A claim takes the rows due
# together, about one in five of a page when an enrollment's steps are written together, and a
# leased row's new version is half as large again (token, lease end). On bench/claim.py,
# 90 left room for half of them, 80 for five in six (a fifth more pages), 70 for all (two fifths).
FILLFACTOR = 80

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # A delivery belongs to one enrollment (a course step) or one newsletter issue, never both.
    sa.Column(
        "enrollment_id", sa.Integer, sa.ForeignKey("enrollments.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column(
        "issue_id", sa.Integer, sa.ForeignKey("newsletter_issues.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column(
        "subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("course", sa.String(200), nullable=False),  # the list's name for an issue
    sa.Column("step_key", sa.String(500), nullable=False),  # "issue:<key>" for an issue
    sa.Column("due_at", UTC, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default=DeliveryStatus.PENDING.value),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("provider_id", sa.String(500), nullable=True),
    sa.Column("sent_at", UTC, nullable=True),
    sa.Column("lease_token", sa.String(64), nullable=True),
    sa.Column("leased_until", UTC, nullable=True),
    # Set, under the lease, just before the row is handed to the transport and cleared when
    # its outcome is recorded: a row leased but never handed off cannot have gone out.
    # Unindexed, so marking a hand-off stays a HOT update on PostgreSQL.
    sa.Column("handed_off_at", UTC, nullable=True),
    # Set when a lease expired on a row handed off to the transport and never recorded:
    # the one case where the message may have reached the subscriber twice.
    sa.Column("possible_duplicate", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("note", sa.String(200), nullable=True),  # why cancelled/skipped, e.g. "step removed"
    sa.Column("created_at", UTC, nullable=False),
    sa.Column("updated_at", UTC, nullable=False),
    sa.UniqueConstraint("enrollment_id", "step_key"),
    sa.UniqueConstraint("issue_id", "subscriber_id"),  # one email per reader and issue, however often written
    sa.CheckConstraint("(enrollment_id IS NULL) <> (issue_id IS NULL)", name="one_owner"),
    sqlite_autoincrement=True,  # an outbox file is named by delivery id: never overwritten by another
    # Room on each page for the new version of a leased row: a claim touches no indexed
    # column, and PostgreSQL writes it as a HOT update only if it fits on the same page.
    postgresql_with={"fillfactor": FILLFACTOR},
)
# The queue: partial, so the history of sent rows is not in it. A lease leaves it unchanged.
_pending = deliveries.c.status == DeliveryStatus.PENDING.value
sa.Index(
    "ix_deliveries_due_at_pending", deliveries.c.due_at, sqlite_where=_pending, postgresql_where=_pending
)
sa.Index("ix_deliveries_subscriber_id", deliveries.c.subscriber_id)
# The funnel's "sent" per step (or issue) of a course (or list), read from the index alone.
# Partial, so the queue's rows are not in it; a lease touches none of its columns.
_sent = deliveries.c.status == DeliveryStatus.SENT.value
sa.Index(
    "ix_deliveries_sent",
    deliveries.c.course,
    deliveries.c.step_key,
    deliveries.c.sent_at,
    sqlite_where=_sent,
    postgresql_where=_sent,
)

# The steps of each course as last applied to the store: what `drip plan` diffs against.
course_versions = sa.Table(
    "course_versions",
    metadata,
    sa.Column("course", sa.String(200), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),  # [{"key": ..., "day": ..., "immediate": ...}, ...]
    sa.Column("applied_at", UTC, nullable=False),
)

# Keyed hashes of addresses that must never be mailed again (erasure, complaints, bounces).
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", UTC, nullable=False),
)

# The web endpoints' tables, created by migration 0002_web.
# One row per subscriber: when the last confirmation email left, for the cool-down.
web_confirmations = sa.Table(
    "web_confirmations",
    metadata,
    sa.Column("subscriber_id", sa.Integer, primary_key=True),
    sa.Column("sent_at", UTC, nullable=False),
)

# Confirmation emails per mailbox (keyed hash of the address without +tag, case-folded): the
# cool-down and the daily cap, so victim+1@, victim+2@ … share one allowance. No address is kept.
web_mailboxes = sa.Table(
    "web_mailboxes",
    metadata,
    sa.Column("mailbox_hash", sa.String(64), primary_key=True),
    sa.Column("last_sent_at", UTC, nullable=True),  # None: the last send failed, try again at once
    sa.Column("day_started_at", UTC, nullable=False),
    sa.Column("sent_that_day", sa.Integer, nullable=False),
)

# SendGrid retries a batch with new sg_event_id values: the key is a digest of the content.
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("received_at", UTC, nullable=False),
)

# `drip bounces`: each report read once (the digest of its Message-ID or bytes), and the soft
# bounces counted per keyed hash of the address until bounces.soft_limit suppresses it.
bounce_reports = sa.Table(
    "bounce_reports",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("hard", sa.Integer, nullable=False),
    sa.Column("soft", sa.Integer, nullable=False),
    sa.Column("received_at", UTC, nullable=False),
)

soft_bounces = sa.Table(
    "soft_bounces",
    metadata,
    sa.Column("email_hash", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("last_at", UTC, nullable=False),
)


class EventKind(StrEnum):
    """events.kind: what happened to one delivery (README, "What drip counts")."""

    ACCEPTED = "accepted"  # the provider took it (SendGrid "processed")
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"  # bounce or dropped
    COMPLAINED = "complained"
    CLICKED = "clicked"
    OPENED = "opened"
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"
    OTHER = "other"  # a provider event type drip does not name (kept in ``detail``)


# The ledger: one row per event of a delivery, from drip's click redirect, open image and
# unsubscribe pages and from providers' webhooks. ``first`` marks the first event of its kind
# (human or machine apart) for its delivery: the funnel counts those rows only, through the
# partial unique index, which is also what keeps a second "first" out under concurrency.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # "drip", "sendgrid"
    sa.Column("machine", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("first", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("link", sa.Integer, nullable=True),  # a click's link index in its email
    sa.Column("detail", sa.String(64), nullable=True),  # why machine, or the provider's event type
    sa.Column("digest", sa.String(64), nullable=True, unique=True),  # a provider event's identity
    sa.Column("occurred_at", UTC, nullable=False),
    # The delivery's course, step and hand-off, copied when the event is written: the funnel
    # counts first events from one index, without joining 100,000 deliveries.
    sa.Column("course", sa.String(200), nullable=True),
    sa.Column("step_key", sa.String(500), nullable=True),
    sa.Column("sent_at", UTC, nullable=True),
    sqlite_autoincrement=True,
)
_first = events.c.first == sa.true()
sa.Index(
    "uq_events_first",
    events.c.delivery_id,
    events.c.kind,
    events.c.machine,
    unique=True,
    sqlite_where=_first,
    postgresql_where=_first,
)
sa.Index("ix_events_delivery_id_occurred_at", events.c.delivery_id, events.c.occurred_at)
sa.Index(
    "ix_events_funnel",
    events.c.course,
    events.c.step_key,
    events.c.kind,
    events.c.machine,
    events.c.sent_at,
    sqlite_where=_first,
    postgresql_where=_first,
)
