"""Editing a live course: loading what an edit needs, and applying its plan.

Deliveries are keyed by step key, so a compiled course can change under its
subscribers. :func:`plan` reads each active enrollment's deliveries (and the steps
last applied, kept in ``course_versions``) and lets :func:`drip.course.edits.edit_plan`
say what would happen, writing nothing; :func:`apply` does the same inside one
write transaction and records the version. The rules are in :mod:`drip.course.edits`.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from drip.config import Site
from drip.course.edits import (
    ADDED_BEHIND,
    MOVED_BEHIND,
    STEP_REMOVED,
    ActiveEnrollment,
    Delivery,
    NewDelivery,
    Plan,
    RowState,
    StepChange,
    StepSpec,
    cadence,
    edit_plan,
    fingerprint,
    specs,
)
from drip.course.models import Course
from drip.store.claims import in_flight, waiting
from drip.store.schema import (
    DeliveryStatus,
    EnrollmentState,
    course_versions,
    deliveries,
    enrollments,
    subscribers,
)

# Re-exported: callers that plan and apply through the store name them here.
__all__ = [
    "ADDED_BEHIND",
    "MOVED_BEHIND",
    "STEP_REMOVED",
    "Plan",
    "StepChange",
    "apply",
    "cadence",
    "fingerprint",
    "plan",
]


def _applied(conn: sa.Connection, slug: str) -> tuple[str | None, list[StepSpec] | None]:
    row = conn.execute(
        sa.select(course_versions.c.fingerprint, course_versions.c.steps).where(
            course_versions.c.course == slug
        )
    ).first()
    if row is None:
        return None, None
    return row.fingerprint, [StepSpec(s["key"], int(s["day"]), bool(s.get("immediate"))) for s in row.steps]


def _state(status: str, flying: bool) -> RowState:
    """A pending delivery under a live lease counts as received: a worker may be sending it."""
    if status == DeliveryStatus.SENT or (status == DeliveryStatus.PENDING and flying):
        return "received"
    return "waiting" if status == DeliveryStatus.PENDING else "settled"


def _enrollments(conn: sa.Connection, slug: str, *, now: dt.datetime) -> list[ActiveEnrollment]:
    found: dict[int, ActiveEnrollment] = {}
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
        .where(enrollments.c.course == slug, enrollments.c.state == EnrollmentState.ACTIVE)
        .order_by(enrollments.c.id)
    )
    rows: dict[int, dict[str, Delivery]] = {}
    for eid, sid, started, zone, did, key, status, due, sent, flying in conn.execute(query):
        if eid not in found:
            rows[eid] = {}
            found[eid] = ActiveEnrollment(eid, sid, started, zone, rows[eid])
        if did is not None:
            rows[eid][key] = Delivery(did, key, _state(status, bool(flying)), due, sent)
    return list(found.values())


def _compute(conn: sa.Connection, course: Course, *, now: dt.datetime, backfill: bool) -> Plan:
    applied_fp, previous = _applied(conn, course.slug)
    return edit_plan(
        course,
        _enrollments(conn, course.slug, now=now),
        applied_fingerprint=applied_fp,
        previous=previous,
        now=now,
        backfill=backfill,
    )


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
        _insert(conn, course.slug, done.new, now=now)
        # A worker may have leased a row since it was read: then it is left alone.
        pending_only = sa.and_(deliveries.c.id == sa.bindparam("b_id"), waiting(now))
        if done.cancel:
            conn.execute(
                deliveries.update()
                .where(pending_only)
                .values(status="cancelled", note=STEP_REMOVED, updated_at=now),
                [{"b_id": i} for i in done.cancel],
            )
        if done.withdraw:
            conn.execute(
                deliveries.update()
                .where(pending_only)
                .values(status=DeliveryStatus.SKIPPED, note=MOVED_BEHIND, updated_at=now),
                [{"b_id": i} for i in done.withdraw],
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


def _insert(conn: sa.Connection, slug: str, new: tuple[NewDelivery, ...], *, now: dt.datetime) -> None:
    if not new:
        return
    conn.execute(
        deliveries.insert(),
        [
            {
                "enrollment_id": n.enrollment_id,
                "subscriber_id": n.subscriber_id,
                "course": slug,
                "step_key": n.step_key,
                "due_at": n.due_at,
                "status": DeliveryStatus.SKIPPED if n.skipped else DeliveryStatus.PENDING,
                "note": n.note,
                "created_at": now,
                "updated_at": now,
            }
            for n in new
        ],
    )


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
