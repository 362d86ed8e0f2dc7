"""The figures ``drip status`` prints: per course, where every enrollment and delivery stands.

Read in one connection, grouped by course in SQL, so a report on a large store
stays a handful of queries whatever the number of subscribers.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from drip.store.claims import in_flight, waiting
from drip.store.schema import DeliveryStatus, course_versions, deliveries, enrollments

d = deliveries


@dataclass(frozen=True)
class Reason:
    """How many deliveries share one status and one note (why skipped, cancelled or failed)."""

    status: str
    note: str | None
    count: int


@dataclass(frozen=True)
class CourseFigures:
    """One course as the store holds it; a course no one is enrolled in has zeros everywhere."""

    course: str
    active: int = 0
    completed: int = 0
    left: int = 0
    pending: int = 0  # due and not held by a live lease
    in_flight: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    next_due: dt.datetime | None = None
    possible_duplicates: int = 0
    applied_fingerprint: str | None = None  # the version of the course its deliveries follow
    skipped_or_cancelled: tuple[Reason, ...] = ()  # most frequent first
    failures: tuple[Reason, ...] = ()  # failed, by last error
    retrying: tuple[Reason, ...] = ()  # still due after an error, by last error


@dataclass
class _Tally:
    statuses: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    states: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    reasons: dict[str, dict[str, list[Reason]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )


def _by_course(conn: sa.Connection, query: sa.Select[Any]) -> dict[str, Any]:
    return {course: value for course, value in conn.execute(query)}


def _reasons(conn: sa.Connection, tally: _Tally) -> None:
    """Skipped and cancelled by note, failed and retrying by last error: most frequent first."""
    count = sa.func.count()
    queries = {
        "skipped_or_cancelled": sa.select(d.c.course, d.c.status, d.c.note, count)
        .where(d.c.status.in_((DeliveryStatus.SKIPPED, DeliveryStatus.CANCELLED)))
        .group_by(d.c.course, d.c.status, d.c.note),
        "failures": sa.select(d.c.course, d.c.status, d.c.last_error, count)
        .where(d.c.status == DeliveryStatus.FAILED)
        .group_by(d.c.course, d.c.status, d.c.last_error),
        "retrying": sa.select(d.c.course, d.c.status, d.c.last_error, count)
        .where(d.c.status == DeliveryStatus.PENDING, d.c.last_error.is_not(None))
        .group_by(d.c.course, d.c.status, d.c.last_error),
    }
    for kind, query in queries.items():
        for course, status, note, n in conn.execute(query.order_by(d.c.course, count.desc())):
            tally.reasons[course][kind].append(Reason(status, note, n))


def course_figures(
    conn: sa.Connection, *, now: dt.datetime, also: Iterable[str] = ()
) -> dict[str, CourseFigures]:
    """Every course the store knows (by its enrollments or deliveries) and those in ``also``, as of ``now``.

    By course name, sorted: a course of ``also`` that no one is in has zeros (and its applied version).
    """
    tally = _Tally()
    for course, status, n in conn.execute(
        sa.select(d.c.course, d.c.status, sa.func.count()).group_by(d.c.course, d.c.status)
    ):
        tally.statuses[course][status] = n
    e = enrollments
    for course, state, n in conn.execute(
        sa.select(e.c.course, e.c.state, sa.func.count()).group_by(e.c.course, e.c.state)
    ):
        tally.states[course][state] = n
    per_course = sa.select(d.c.course).group_by(d.c.course)
    next_due = _by_course(conn, per_course.add_columns(sa.func.min(d.c.due_at)).where(waiting(now)))
    flying = _by_course(conn, per_course.add_columns(sa.func.count()).where(in_flight(now)))
    duplicates = _by_course(
        conn, per_course.add_columns(sa.func.count()).where(d.c.possible_duplicate.is_(True))
    )
    applied = _by_course(conn, sa.select(course_versions.c.course, course_versions.c.fingerprint))
    _reasons(conn, tally)
    figures: dict[str, CourseFigures] = {}
    for course in sorted(set(tally.statuses) | set(tally.states) | set(also)):
        statuses, states = tally.statuses.get(course, {}), tally.states.get(course, {})
        reasons = tally.reasons.get(course, {})
        held = int(flying.get(course, 0))
        figures[course] = CourseFigures(
            course=course,
            active=states.get("active", 0),
            completed=states.get("completed", 0),
            left=states.get("left", 0),
            pending=statuses.get(DeliveryStatus.PENDING, 0) - held,
            in_flight=held,
            sent=statuses.get(DeliveryStatus.SENT, 0),
            failed=statuses.get(DeliveryStatus.FAILED, 0),
            skipped=statuses.get(DeliveryStatus.SKIPPED, 0),
            cancelled=statuses.get(DeliveryStatus.CANCELLED, 0),
            next_due=next_due.get(course),
            possible_duplicates=int(duplicates.get(course, 0)),
            applied_fingerprint=applied.get(course),
            skipped_or_cancelled=tuple(reasons.get("skipped_or_cancelled", ())),
            failures=tuple(reasons.get("failures", ())),
            retrying=tuple(reasons.get("retrying", ())),
        )
    return figures
