"""Leases on due deliveries: how several workers share the work without sending twice.

A worker *claims* a batch: each row gets a fresh random ``lease_token`` and
``leased_until``, and keeps its status ``pending``. Only the holder of the
current token can record the outcome, so a worker that wakes up after its lease
expired cannot overwrite what the new owner did. A row whose lease expired is
claimable again; it is flagged ``possible_duplicate`` when its worker had marked it
handed off (``handed_off_at``, see :func:`drip.store.deliveries.hand_off`): its
first send may have reached the provider just before the worker died. A row
leased and never handed off cannot have gone out, and is sent again unflagged.

"In flight" is therefore derived, not stored: a pending row whose lease is
still live (:func:`in_flight`). Recording an outcome clears ``leased_until``, so
a pending row with a lease end was leased and never recorded.

Engines come from :func:`drip.store.db.connect`, whose SQLite transactions start
with ``BEGIN IMMEDIATE``: a claim or a recording holds the write lock from its
first statement, so concurrent processes queue instead of failing with SQLITE_BUSY.

Why the lease lives only in columns no index covers: on PostgreSQL a claim is
then a HOT update, the new row version written on the same page with no new
index entry (the table keeps free room on each page for it, see migration
0004). A claim walks one partial index, ``ix_deliveries_due_at_pending`` (the
queue, by due time), whose predicate a claim no longer changes; sent rows are
not in it. The status value is written into the SQL as a literal so both
planners can match the index predicate, whatever plan they cache.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from drip.store.db import among
from drip.store.schema import DeliveryStatus, as_driver_reads, deliveries

d = deliveries

OutcomeStatus = Literal["sent", "failed", "retry", "cancelled"]


@dataclass(slots=True)
class Claimed:
    """One delivery leased to this worker until ``leased_until``.

    Slotted and not frozen: a claim builds a thousand of these at a time, and a frozen
    instance costs twice as much to create (see :class:`drip.transports.base.OutgoingMessage`).
    """

    id: int
    enrollment_id: int | None  # None for a newsletter issue's email
    subscriber_id: int
    course: str
    step_key: str
    due_at: dt.datetime
    attempts: int  # including this one
    lease_token: str
    leased_until: dt.datetime
    possible_duplicate: bool  # an earlier lease expired unrecorded: it may have been sent already


@dataclass(slots=True)  # made per email: see Claimed
class Outcome:
    """What became of one claimed delivery, to be recorded under its lease."""

    delivery_id: int
    lease_token: str
    status: OutcomeStatus
    provider_id: str | None = None
    error: str | None = None  # last_error for failed / retry
    retry_at: dt.datetime | None = None  # for retry: the new due time
    note: str | None = None  # for cancelled: why


class _ArrayOf(sa.sql.expression.ColumnElement[Any]):
    """PostgreSQL's ``ARRAY(subquery)``: the subquery's rows as one array value."""

    # The subquery is part of the statement cache key, so two claims with different
    # conditions never share a compiled statement.
    _traverse_internals = [("select", InternalTraversal.dp_clauseelement)]  # noqa: RUF012
    inherit_cache = True
    type = ARRAY(sa.Integer())

    def __init__(self, select: sa.Select[tuple[int]]) -> None:
        self.select = select


@compiles(_ArrayOf)
def _compile_array_of(element: _ArrayOf, compiler: SQLCompiler, **kw: Any) -> str:
    return f"ARRAY({compiler.process(element.select, **kw)})"


def _status_is(status: DeliveryStatus) -> sa.ColumnElement[bool]:
    """``status = '<status>'`` with the value in the SQL text, as a partial index predicate needs.

    Written into the statement when it is compiled (a status is one of a few lowercase words),
    not rendered again at each execution as a ``literal_execute`` parameter is: that re-rendering
    was a tenth of a claim's client time.
    """
    if not status.isidentifier() or not status.islower():
        raise ValueError(f"not a delivery status: {status!r}")
    return d.c.status == sa.literal_column(f"'{status}'", d.c.status.type)


Moment = dt.datetime | sa.BindParameter[dt.datetime]


def in_flight(now: Moment) -> sa.ColumnElement[bool]:
    """Pending rows a worker holds a live lease on: they may be being sent right now."""
    return sa.and_(d.c.status == DeliveryStatus.PENDING, d.c.leased_until >= now)


def _unleased(now: Moment) -> sa.ColumnElement[bool]:
    return sa.or_(d.c.leased_until.is_(None), d.c.leased_until < now)


def waiting(now: Moment) -> sa.ColumnElement[bool]:
    """Pending rows no live lease holds: the queue, due or not (the complement of :func:`in_flight`)."""
    return sa.and_(d.c.status == DeliveryStatus.PENDING, _unleased(now))


_by_due_time = operator.attrgetter("due_at", "id")


def _returned(dialect: str) -> tuple[sa.ColumnElement[Any], ...]:
    return (
        d.c.id,
        d.c.enrollment_id,
        d.c.subscriber_id,
        d.c.course,
        d.c.step_key,
        as_driver_reads(d.c.due_at, dialect),
        d.c.attempts,
        d.c.possible_duplicate,
    )


@functools.cache
def _claim_statement(dialect: str) -> sa.Executable:
    """The claim UPDATE for one dialect; it takes b_now, b_limit, b_token, b_until.

    Built once: assembling the statement and its cache key on every call cost
    more client time than converting the thousand rows it returns.
    """
    now = sa.bindparam("b_now", type_=d.c.due_at.type)
    # On PostgreSQL the row locks make concurrent claimers skip each other's rows;
    # SQLite ignores FOR UPDATE and relies on the write lock of BEGIN IMMEDIATE.
    ids = (
        sa.select(d.c.id)
        .where(_status_is(DeliveryStatus.PENDING), _unleased(now), d.c.due_at <= now)
        .order_by(d.c.due_at)
        .limit(sa.bindparam("b_limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
    )
    if dialect == "postgresql":
        # `id IN (subquery)` lets PostgreSQL pick a hash semi-join over a sequential scan
        # of the whole table; `id = ANY(ARRAY(subquery))` runs the subquery once and
        # fetches the rows by primary key.
        chosen: sa.ColumnElement[bool] = d.c.id == sa.any_(_ArrayOf(ids))
    else:
        chosen = d.c.id.in_(ids)
    # No indexed column changes (status stays pending): on PostgreSQL a HOT update.
    # SET expressions read the row as it was, so a hand-off mark already there means an
    # earlier lease expired while the row was in a transport's hands, unrecorded: it may
    # have gone out. The flag stays once set; a row leased but never handed off is not flagged.
    values: dict[str, object] = {
        "lease_token": sa.bindparam("b_token", type_=d.c.lease_token.type),
        "leased_until": sa.bindparam("b_until", type_=d.c.leased_until.type),
        "attempts": d.c.attempts + 1,
        "updated_at": now,
        "possible_duplicate": sa.or_(d.c.possible_duplicate, d.c.handed_off_at.is_not(None)),
        "handed_off_at": None,
    }
    # Token and lease end are the same for the whole statement: they do not come back.
    return sa.update(d).where(chosen).values(values).returning(*_returned(dialect))


def claim(
    engine: sa.Engine, *, now: dt.datetime, limit: int, lease_seconds: float, worker: str
) -> list[Claimed]:
    """Atomically lease up to ``limit`` due deliveries, ordered by due time.

    A row whose earlier lease expired after it was handed to a transport, without
    an outcome (possibly sent), is flagged ``possible_duplicate``, for good. ``worker`` is mixed into the token
    so a lease can be traced to its holder.
    """
    if limit <= 0:
        return []
    token = f"{worker[:24]}:{secrets.token_hex(16)}"
    leased_until = now + dt.timedelta(seconds=lease_seconds)
    params = {"b_now": now, "b_limit": limit, "b_token": token, "b_until": leased_until}
    with engine.begin() as conn:
        rows = conn.execute(_claim_statement(conn.dialect.name), params).all()
    # all(): the driver converts the whole answer in one call, not one call per row.
    claimed = [
        Claimed(id_, e, s, course, key, due, attempts, token, leased_until, dup)
        for id_, e, s, course, key, due, attempts, dup in rows
    ]
    # RETURNING gives no order on either backend.
    claimed.sort(key=_by_due_time)
    return claimed


# Leased and not recorded yet (recording clears the lease end), live or expired: a
# late worker may still record while nobody else took the row, as its token says.
_held = sa.and_(d.c.status == DeliveryStatus.PENDING, d.c.leased_until.is_not(None))


def _update_many(conn: sa.Connection, rows: list[dict[str, object]], values: dict[str, object]) -> None:
    if not rows:
        return
    stmt = (
        sa.update(d)
        .where(d.c.id == sa.bindparam("b_id"))
        .where(d.c.lease_token == sa.bindparam("b_token"), _held)
        .values(values)
    )
    conn.execute(stmt, rows)


def _held_by(conn: sa.Connection, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The outcomes whose lease is still theirs, the rows locked until the transaction ends."""
    held = {
        (row.id, row.lease_token)
        for row in conn.execute(
            sa.select(d.c.id, d.c.lease_token)
            .where(among(conn, d.c.id, [o.delivery_id for o in outcomes]), _held)
            .with_for_update()
        )
    }
    return [o for o in outcomes if (o.delivery_id, o.lease_token) in held]


def _keys(o: Outcome) -> dict[str, object]:
    return {"b_id": o.delivery_id, "b_token": o.lease_token}


def _write(conn: sa.Connection, status: OutcomeStatus, outcomes: list[Outcome], now: dt.datetime) -> None:
    """One UPDATE for every outcome of one status."""
    if status == "sent":
        rows = [{**_keys(o), "b_provider": o.provider_id} for o in outcomes]
        values: dict[str, object] = {
            "status": DeliveryStatus.SENT,
            "provider_id": sa.bindparam("b_provider"),
            "sent_at": now,
            "last_error": None,
        }
    elif status == "failed":
        rows = [{**_keys(o), "b_error": o.error} for o in outcomes]
        values = {"status": DeliveryStatus.FAILED, "last_error": sa.bindparam("b_error")}
    elif status == "retry":
        rows = [{**_keys(o), "b_error": o.error, "b_due": o.retry_at or now} for o in outcomes]
        values = {
            "status": DeliveryStatus.PENDING,
            "last_error": sa.bindparam("b_error"),
            "due_at": sa.bindparam("b_due", type_=d.c.due_at.type),
        }
    else:
        rows = [{**_keys(o), "b_note": o.note} for o in outcomes]
        values = {"status": DeliveryStatus.CANCELLED, "note": sa.bindparam("b_note")}
    _update_many(conn, rows, {**values, "leased_until": None, "handed_off_at": None, "updated_at": now})


# Outcomes written alike (same status, lease and values but the provider's id) are one
# UPDATE … WHERE id IN (…) RETURNING id, up to this many groups per recording; more distinct
# values (retries each with its own due time) take the locked read and one UPDATE per status.
_MAX_GROUPS = 4
# Ids per UPDATE on SQLite, each a bound parameter; PostgreSQL takes a whole group as one array
# (:func:`drip.store.db.among`), and a second statement for the half of a request cost a round trip.
_IDS_PER_UPDATE = 500


def _same(o: Outcome) -> tuple[object, ...]:
    """What outcomes written by one statement share (a provider id may differ: see :func:`_write_alike`)."""
    return (o.status, o.lease_token, o.error, o.retry_at, o.note)


def _write_alike(conn: sa.Connection, group: list[Outcome], now: dt.datetime) -> set[int]:
    """One UPDATE for outcomes written alike, only where the lease is still theirs; the ids it changed."""
    first = group[0]
    values: dict[str, object] = {"leased_until": None, "handed_off_at": None, "updated_at": now}
    if first.status == "sent":
        values |= {"status": DeliveryStatus.SENT, "sent_at": now, "last_error": None}
    elif first.status == "failed":
        values |= {"status": DeliveryStatus.FAILED, "last_error": first.error}
    elif first.status == "retry":
        values |= {
            "status": DeliveryStatus.PENDING,
            "last_error": first.error,
            "due_at": first.retry_at or now,
        }
    else:
        values |= {"status": DeliveryStatus.CANCELLED, "note": first.note}
    done: set[int] = set()
    size = len(group) if conn.dialect.name == "postgresql" else _IDS_PER_UPDATE
    for at in range(0, len(group), size):
        part = group[at : at + size]
        each: list[Outcome] = []  # sent with a message id of its own (an outbox's, SMTP's)
        if first.status == "sent":
            if len({o.provider_id for o in part}) == 1:  # one for a whole SendGrid request
                values["provider_id"] = first.provider_id
            else:
                values.pop("provider_id", None)
                each = part
        stmt = (
            sa.update(d)
            .where(
                among(conn, d.c.id, [o.delivery_id for o in part]),
                d.c.lease_token == first.lease_token,
                _held,
            )
            .values(values)
            .returning(d.c.id)
        )
        changed = conn.execute(stmt).scalars().all()
        done.update(changed)
        if each and changed:
            _provider_ids(conn, [o for o in each if o.delivery_id in done])
    return done


def _provider_ids(conn: sa.Connection, outcomes: Sequence[Outcome]) -> None:
    """Each recorded row's own message id, in the recording's transaction: one executemany, where a
    CASE of a hundred branches cost more to build than the rest of the recording."""
    stmt = sa.update(d).where(d.c.id == sa.bindparam("b_id")).values(provider_id=sa.bindparam("b_provider"))
    conn.execute(stmt, [{"b_id": o.delivery_id, "b_provider": o.provider_id} for o in outcomes])


def record(engine: sa.Engine, outcomes: Sequence[Outcome], *, now: dt.datetime) -> set[int]:
    """Record a whole batch in one transaction; only rows whose lease is still ours change.

    Returns the ids that were recorded. An id missing from the answer lost its
    lease (it expired and another worker claimed the row): its outcome is dropped.
    A chunk whose outcomes are alike (all sent, as a transport's chunk mostly is)
    is one statement that checks the lease and writes in the same go.
    """
    if not outcomes:
        return set()
    groups: dict[tuple[object, ...], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(_same(o), []).append(o)
        if len(groups) > _MAX_GROUPS:
            break
    with engine.begin() as conn:
        if len(groups) <= _MAX_GROUPS:
            done: set[int] = set()
            for group in groups.values():
                done |= _write_alike(conn, group, now)
            return done
        mine = _held_by(conn, outcomes)
        by_status: dict[OutcomeStatus, list[Outcome]] = {
            "sent": [],
            "failed": [],
            "retry": [],
            "cancelled": [],
        }
        for o in mine:
            by_status[o.status].append(o)
        for status, some in by_status.items():
            _write(conn, status, some, now)
    return {o.delivery_id for o in mine}


def record_sent(
    engine: sa.Engine, delivery_id: int, lease_token: str, *, provider_id: str | None, now: dt.datetime
) -> bool:
    """Mark one delivery sent; False when the lease was lost (the outcome is dropped)."""
    return bool(record(engine, [Outcome(delivery_id, lease_token, "sent", provider_id=provider_id)], now=now))


def record_failure(
    engine: sa.Engine,
    delivery_id: int,
    lease_token: str,
    *,
    error: str,
    permanent: bool,
    retry_at: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    """Mark one delivery failed (permanent, or no ``retry_at``) or due again at ``retry_at``."""
    if permanent or retry_at is None:
        outcome = Outcome(delivery_id, lease_token, "failed", error=error)
    else:
        outcome = Outcome(delivery_id, lease_token, "retry", error=error, retry_at=retry_at)
    return bool(record(engine, [outcome], now=now))
