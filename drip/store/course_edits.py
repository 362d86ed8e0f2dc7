"""Editing a live course: what a change does to subscribers already in it, then doing it.

Deliveries are keyed by step key, so a compiled course can change under its
subscribers. :func:`plan` compares the compiled course with each active
enrollment's deliveries (and with the steps last applied, kept in
``course_versions``) and says what would happen, writing nothing;
:func:`apply` does the same inside one write transaction and records the version.

The rules:

* A step **added after** a subscriber's position gets a delivery at the step's
  own schedule, but never earlier than now and never closer than the course's
  cadence to the email before it (later pending emails shift to keep the gap).
* A step **added behind** a subscriber's position (they already received a later
  step) is recorded as ``skipped`` with note "added behind"; ``backfill`` sends it
  instead, under the same spacing rule.
* A **removed** step's pending deliveries are cancelled with note "step removed".
* A **reordered or re-timed** step's pending delivery is rescheduled from the
  enrollment's start, under the same spacing rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from drip.config import Site
from drip.course.models import Course
from drip.course.timing import due_at, resolve_timezone
from drip.store.claims import in_flight, waiting
from drip.store.schema import (
    DUE,
    ENROLLED,
    SENT,
    SKIPPED,
    course_versions,
    deliveries,
    enrollments,
    subscribers,
)

ADDED_BEHIND = "added behind"
STEP_REMOVED = "step removed"
HORIZON = dt.timedelta(hours=24)
# A pending delivery under a live lease, as this module sees it: a worker may be sending
# it right now, so it counts as received and is neither moved nor cancelled.
IN_FLIGHT = "in flight"

ChangeKind = Literal["added", "removed", "moved"]


@dataclass(frozen=True)
class StepSpec:
    """What of a step decides when it is sent: stored in ``course_versions``."""

    key: str
    day: int
    immediate: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "day": self.day, "immediate": self.immediate}


@dataclass(frozen=True)
class StepChange:
    """One step's change and how many subscribers it touches."""

    kind: ChangeKind
    key: str
    detail: str  # "day 2 → 3", "position 4 → 2", "new at position 3"
    scheduled: int = 0  # subscribers who get (or get a new time for) this step
    skipped: int = 0  # added behind their position: recorded as skipped
    cancelled: int = 0  # removed: pending deliveries cancelled


@dataclass(frozen=True)
class NewDelivery:
    enrollment_id: int
    subscriber_id: int
    step_key: str
    due_at: dt.datetime
    status: str  # pending or skipped
    note: str | None = None


@dataclass(frozen=True)
class Plan:
    """What applying the compiled course will do; nothing is written to compute it."""

    course: str
    fingerprint: str
    applied_fingerprint: str | None  # None: never applied
    changes: tuple[StepChange, ...]
    shifted: int  # pending emails after an inserted or moved step, moved later to keep the spacing
    due_next_24h_before: int
    due_next_24h_after: int
    enrollments: int  # active enrollments examined
    new: tuple[NewDelivery, ...] = field(default=(), repr=False)
    cancel: tuple[int, ...] = field(default=(), repr=False)  # delivery ids
    reschedule: tuple[tuple[int, dt.datetime], ...] = field(default=(), repr=False)

    @property
    def pending_version(self) -> bool:
        """The compiled course differs from the version last applied."""
        return self.fingerprint != self.applied_fingerprint

    @property
    def has_work(self) -> bool:
        return bool(self.new or self.cancel or self.reschedule)


def specs(course: Course) -> list[StepSpec]:
    return [StepSpec(s.key, s.day, s.immediate) for s in course.steps]


def fingerprint(course: Course) -> str:
    """A digest of the step keys, order and timing: what a live edit is about."""
    data = json.dumps([s.as_json() for s in specs(course)], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def cadence(course: Course) -> dt.timedelta:
    """The smallest gap between consecutive emails of the course (at least a day)."""
    days = sorted(s.day for s in course.steps)
    gaps = [b - a for a, b in itertools.pairwise(days) if b > a]
    return dt.timedelta(days=max(1, min(gaps))) if gaps else dt.timedelta(days=1)


def moved_keys(previous: Sequence[StepSpec] | None, current: Sequence[StepSpec]) -> dict[str, str]:
    """Steps present in both versions whose timing or relative order changed, with what changed."""
    if previous is None:
        return {}
    before = {s.key: s for s in previous}
    common_prev = [s.key for s in previous if s.key in {c.key for c in current}]
    common_now = [s.key for s in current if s.key in before]
    moved: dict[str, str] = {}
    for spec in current:
        old = before.get(spec.key)
        if old is None:
            continue
        parts = []
        if common_prev.index(spec.key) != common_now.index(spec.key):
            parts.append(f"position {common_prev.index(spec.key) + 1} → {common_now.index(spec.key) + 1}")
        if old.day != spec.day:
            parts.append(f"day {old.day} → {spec.day}")
        if old.immediate != spec.immediate:
            parts.append("immediate" if spec.immediate else "in the send window")
        if parts:
            moved[spec.key] = ", ".join(parts)
    return moved


@dataclass
class _Row:
    id: int
    step_key: str
    status: str
    due_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass
class _Enrollment:
    id: int
    subscriber_id: int
    started_at: dt.datetime
    timezone: str | None
    rows: dict[str, _Row] = field(default_factory=dict)


def _applied(conn: sa.Connection, slug: str) -> tuple[str | None, list[StepSpec] | None]:
    row = conn.execute(
        sa.select(course_versions.c.fingerprint, course_versions.c.steps).where(
            course_versions.c.course == slug
        )
    ).first()
    if row is None:
        return None, None
    return row.fingerprint, [StepSpec(s["key"], int(s["day"]), bool(s.get("immediate"))) for s in row.steps]


def _enrollments(conn: sa.Connection, slug: str, *, now: dt.datetime) -> list[_Enrollment]:
    found: dict[int, _Enrollment] = {}
    query = (
        sa.select(
            enrollments.c.id,
            enrollments.c.subscriber_id,
            enrollments.c.started_at,
            subscribers.c.timezone,
            deliveries.c.id,
            deliveries.c.step_key,
            deliveries.c.status,
            deliveries.c.due_at,
            deliveries.c.sent_at,
            in_flight(now),
        )
        .join(subscribers, subscribers.c.id == enrollments.c.subscriber_id)
        .outerjoin(deliveries, deliveries.c.enrollment_id == enrollments.c.id)
        .where(enrollments.c.course == slug, enrollments.c.state == ENROLLED)
        .order_by(enrollments.c.id)
    )
    for eid, sid, started, zone, did, key, status, due, sent, flying in conn.execute(query):
        enrollment = found.get(eid)
        if enrollment is None:
            enrollment = found[eid] = _Enrollment(eid, sid, started, zone)
        if did is not None:
            enrollment.rows[key] = _Row(did, key, IN_FLIGHT if flying else status, due, sent)
    return list(found.values())


def _compute(conn: sa.Connection, course: Course, *, now: dt.datetime, backfill: bool) -> Plan:
    applied_fp, previous = _applied(conn, course.slug)
    current = specs(course)
    keys = [s.key for s in current]
    index = {k: i for i, k in enumerate(keys)}
    moved = moved_keys(previous, current)
    gap = cadence(course)
    horizon = now + HORIZON

    added: dict[str, int] = defaultdict(int)
    rescheduled: dict[str, int] = defaultdict(int)
    skipped: dict[str, int] = defaultdict(int)
    cancelled: dict[str, int] = defaultdict(int)
    new: list[NewDelivery] = []
    cancel: list[int] = []
    reschedule: list[tuple[int, dt.datetime]] = []
    shifted = 0
    before_24h = after_24h = 0

    active = _enrollments(conn, course.slug, now=now)
    for enrollment in active:
        tz: ZoneInfo = resolve_timezone(enrollment.timezone, course.timezone)[0]

        def schedule(i: int, e: _Enrollment = enrollment, zone: ZoneInfo = tz) -> dt.datetime:
            step = course.steps[i]
            return due_at(e.started_at, step.day, course.window, zone, immediate=step.immediate)

        rows = enrollment.rows
        before_24h += sum(r.status == DUE and r.due_at <= horizon for r in rows.values())
        for old in rows.values():
            if old.step_key not in index and old.status == DUE:
                cancel.append(old.id)
                cancelled[old.step_key] += 1
        received = {k: r for k, r in rows.items() if k in index and r.status in (SENT, IN_FLIGHT)}
        position = max((index[k] for k in received), default=-1)
        # The latest email they got: nothing new may follow it closer than the cadence.
        last = max((r.sent_at or r.due_at for r in received.values()), default=None)

        # Walk the course in order; from the first added or moved step on, each pending
        # email keeps at least `gap` after the one before it and is never in the past.
        disturbed = False
        for i, key in enumerate(keys):
            row = rows.get(key)
            if row is not None and row.status != DUE:
                continue  # received (counted in `last`), or failed, cancelled, skipped
            if row is None:
                if i < position and not backfill:
                    new.append(
                        NewDelivery(enrollment.id, enrollment.subscriber_id, key, now, SKIPPED, ADDED_BEHIND)
                    )
                    skipped[key] += 1
                    continue
                disturbed = True
                when = _spaced(schedule(i), now, last, gap)
                new.append(NewDelivery(enrollment.id, enrollment.subscriber_id, key, when, DUE))
                added[key] += 1
            else:
                base = row.due_at
                if key in moved:
                    disturbed = True
                    base = schedule(i)
                when = _spaced(base, now, last, gap) if disturbed else row.due_at
                if when != row.due_at:
                    reschedule.append((row.id, when))
                    if key in moved:
                        rescheduled[key] += 1
                    else:
                        shifted += 1
            after_24h += when <= horizon
            last = when if last is None else max(last, when)

    previous_keys = {s.key for s in previous} if previous is not None else None
    changes: list[StepChange] = []
    for i, key in enumerate(keys):
        if added[key] or skipped[key] or (previous_keys is not None and key not in previous_keys):
            changes.append(StepChange("added", key, f"new at position {i + 1}", added[key], skipped[key]))
        elif key in moved:
            changes.append(StepChange("moved", key, moved[key], scheduled=rescheduled[key]))
    gone = {k for k in previous_keys or () if k not in index} | set(cancelled)
    for key in sorted(gone):
        changes.append(StepChange("removed", key, "no longer in the course", cancelled=cancelled[key]))

    return Plan(
        course=course.slug,
        fingerprint=fingerprint(course),
        applied_fingerprint=applied_fp,
        changes=tuple(changes),
        shifted=shifted,
        due_next_24h_before=before_24h,
        due_next_24h_after=after_24h,
        enrollments=len(active),
        new=tuple(new),
        cancel=tuple(cancel),
        reschedule=tuple(reschedule),
    )


def _spaced(when: dt.datetime, now: dt.datetime, last: dt.datetime | None, gap: dt.timedelta) -> dt.datetime:
    """``when``, but not before now and not closer than ``gap`` after the previous email."""
    when = max(when, now)
    if last is not None:
        when = max(when, last + gap)
    return when


def plan(site: Site, engine: sa.Engine, course: Course, *, now: dt.datetime, backfill: bool = False) -> Plan:
    """What applying ``course`` would do to its subscribers, without writing anything.

    ``site`` is not read today (the compiled course carries what is needed); it
    keeps the call shape of the other steps of the flow.
    """
    with engine.connect() as conn:
        return _compute(conn, course, now=now, backfill=backfill)


def _lock_course(conn: sa.Connection, slug: str) -> None:
    """Serialise appliers of one course. SQLite's BEGIN IMMEDIATE already does."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"drip.course:{slug}"})


def apply(site: Site, engine: sa.Engine, course: Course, *, now: dt.datetime, backfill: bool = False) -> Plan:
    """Do what :func:`plan` says, in one transaction, and record the applied version."""
    with engine.begin() as conn:
        _lock_course(conn, course.slug)
        done = _compute(conn, course, now=now, backfill=backfill)
        if done.new:
            conn.execute(
                deliveries.insert(),
                [
                    {
                        "enrollment_id": n.enrollment_id,
                        "subscriber_id": n.subscriber_id,
                        "course": course.slug,
                        "step_key": n.step_key,
                        "due_at": n.due_at,
                        "status": n.status,
                        "note": n.note,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in done.new
                ],
            )
        # A worker may have leased a row since it was read: then it is left alone.
        pending_only = sa.and_(deliveries.c.id == sa.bindparam("b_id"), waiting(now))
        if done.cancel:
            conn.execute(
                deliveries.update()
                .where(pending_only)
                .values(status="cancelled", note=STEP_REMOVED, updated_at=now),
                [{"b_id": i} for i in done.cancel],
            )
        if done.reschedule:
            conn.execute(
                deliveries.update()
                .where(pending_only)
                .values(due_at=sa.bindparam("b_due", type_=deliveries.c.due_at.type), updated_at=now),
                [{"b_id": i, "b_due": when} for i, when in done.reschedule],
            )
        _store_version(conn, course, now=now)
    return done


def _store_version(conn: sa.Connection, course: Course, *, now: dt.datetime) -> None:
    values = {
        "fingerprint": fingerprint(course),
        "steps": [s.as_json() for s in specs(course)],
        "applied_at": now,
    }
    updated = conn.execute(
        course_versions.update().where(course_versions.c.course == course.slug).values(values)
    ).rowcount
    if not updated:
        conn.execute(course_versions.insert().values(course=course.slug, **values))
