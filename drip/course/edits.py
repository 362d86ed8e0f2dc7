"""Planning an edit to a running course: what a change does to each subscriber already in it.

Pure: it compares the compiled course with the steps last applied and with each
active enrollment's deliveries, as :mod:`drip.store.course_edits` read them, and
returns a :class:`Plan`; writing it is the store's.

The rules:

* A step **added after** a subscriber's position gets a delivery at the step's
  own schedule, but never earlier than now and never closer than the course's
  cadence to the email before it (later pending emails shift to keep the gap).
* A step **added behind** a subscriber's position (they already received a later
  step) is recorded as skipped with note "added behind"; ``backfill`` sends it
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
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from drip.course.models import Course, Step
from drip.course.timing import due_at, resolve_timezone

ADDED_BEHIND = "added behind"
STEP_REMOVED = "step removed"
HORIZON = dt.timedelta(hours=24)

ChangeKind = Literal["added", "removed", "moved"]
# A delivery as planning sees it: still to send; received (sent, or under a live lease: a
# worker may be sending it right now, so it is neither moved nor cancelled); or settled
# (failed, cancelled, skipped), which an edit leaves alone.
RowState = Literal["waiting", "received", "settled"]


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
    skipped: bool = False  # recorded as skipped (added behind), not sent
    note: str | None = None


@dataclass(frozen=True)
class Move:
    """A pending delivery given a new due time: its own step moved, or to keep the spacing."""

    delivery_id: int
    step_key: str
    due_at: dt.datetime
    moved: bool  # its step moved (else it shifted behind an added or moved one)


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


@dataclass(frozen=True)
class Delivery:
    """One delivery of an active enrollment, as the store read it."""

    id: int
    step_key: str
    state: RowState
    due_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True)
class ActiveEnrollment:
    """An active enrollment and its deliveries by step key."""

    id: int
    subscriber_id: int
    started_at: dt.datetime
    timezone: str | None
    rows: Mapping[str, Delivery]


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


def spaced(when: dt.datetime, now: dt.datetime, last: dt.datetime | None, gap: dt.timedelta) -> dt.datetime:
    """``when``, but not before now and not closer than ``gap`` after the previous email."""
    when = max(when, now)
    if last is not None:
        when = max(when, last + gap)
    return when


@dataclass(frozen=True)
class Edit:
    """What every enrollment's plan shares: the course, what moved, and the moment."""

    course: Course
    moved: Mapping[str, str]
    now: dt.datetime
    backfill: bool = False

    @cached_property
    def index(self) -> dict[str, int]:
        return {s.key: i for i, s in enumerate(self.course.steps)}

    @cached_property
    def gap(self) -> dt.timedelta:
        return cadence(self.course)

    @property
    def horizon(self) -> dt.datetime:
        return self.now + HORIZON


@dataclass(frozen=True)
class EnrollmentEdit:
    """What an edit does to one enrollment's deliveries."""

    new: tuple[NewDelivery, ...] = ()
    cancel: tuple[tuple[int, str], ...] = ()  # (delivery id, step key) of a removed step
    moves: tuple[Move, ...] = ()
    due_next_24h_before: int = 0
    due_next_24h_after: int = 0


def edit_enrollment(enrollment: ActiveEnrollment, edit: Edit) -> EnrollmentEdit:
    """Cancel what was removed, then walk the course: add, skip, move or shift each pending email."""
    index = edit.index
    rows = enrollment.rows.values()
    horizon = edit.horizon
    before = sum(r.state == "waiting" and r.due_at <= horizon for r in rows)
    cancel = tuple((r.id, r.step_key) for r in rows if r.step_key not in index and r.state == "waiting")
    received = [r for r in rows if r.step_key in index and r.state == "received"]
    position = max((index[r.step_key] for r in received), default=-1)
    # The latest email they got: nothing new may follow it closer than the cadence.
    last = max((r.sent_at or r.due_at for r in received), default=None)
    new, moves, after = _walk(enrollment, edit, position=position, last=last)
    return EnrollmentEdit(new, cancel, moves, before, after)


def _walk(
    enrollment: ActiveEnrollment, edit: Edit, *, position: int, last: dt.datetime | None
) -> tuple[tuple[NewDelivery, ...], tuple[Move, ...], int]:
    """From the first added or moved step on, each pending email keeps at least the cadence
    after the one before it and is never in the past; returns new rows, moves, and how many
    are due within the horizon."""
    course, now, gap, horizon = edit.course, edit.now, edit.gap, edit.horizon
    tz: ZoneInfo = resolve_timezone(enrollment.timezone, course.timezone)[0]
    new: list[NewDelivery] = []
    moves: list[Move] = []
    after = 0
    disturbed = False

    def own(step: Step) -> dt.datetime:
        """The step's own schedule from the enrollment's start."""
        return due_at(enrollment.started_at, step.day, course.window, tz, immediate=step.immediate)

    for i, step in enumerate(course.steps):
        key = step.key
        row = enrollment.rows.get(key)
        if row is not None and row.state != "waiting":
            continue  # received (counted in `last`), or failed, cancelled, skipped
        if row is None:
            if i < position and not edit.backfill:
                new.append(NewDelivery(enrollment.id, enrollment.subscriber_id, key, now, True, ADDED_BEHIND))
                continue
            disturbed = True
            when = spaced(own(step), now, last, gap)
            new.append(NewDelivery(enrollment.id, enrollment.subscriber_id, key, when))
        else:
            moved = key in edit.moved
            disturbed = disturbed or moved
            when = spaced(own(step) if moved else row.due_at, now, last, gap) if disturbed else row.due_at
            if when != row.due_at:
                moves.append(Move(row.id, key, when, moved))
        after += when <= horizon
        last = when if last is None else max(last, when)
    return tuple(new), tuple(moves), after


def _changes(
    course: Course,
    previous: Sequence[StepSpec] | None,
    moved: Mapping[str, str],
    edits: Sequence[EnrollmentEdit],
) -> tuple[StepChange, ...]:
    """Per step: added (how many scheduled, how many skipped), moved, or removed (how many cancelled)."""
    added = Counter(n.step_key for e in edits for n in e.new if not n.skipped)
    skipped = Counter(n.step_key for e in edits for n in e.new if n.skipped)
    cancelled = Counter(key for e in edits for _, key in e.cancel)
    rescheduled = Counter(m.step_key for e in edits for m in e.moves if m.moved)
    previous_keys = {s.key for s in previous} if previous is not None else None
    keys = [s.key for s in course.steps]
    changes: list[StepChange] = []
    for i, key in enumerate(keys):
        if added[key] or skipped[key] or (previous_keys is not None and key not in previous_keys):
            changes.append(StepChange("added", key, f"new at position {i + 1}", added[key], skipped[key]))
        elif key in moved:
            changes.append(StepChange("moved", key, moved[key], scheduled=rescheduled[key]))
    gone = {k for k in previous_keys or () if k not in keys} | set(cancelled)
    for key in sorted(gone):
        changes.append(StepChange("removed", key, "no longer in the course", cancelled=cancelled[key]))
    return tuple(changes)


def edit_plan(
    course: Course,
    active: Sequence[ActiveEnrollment],
    *,
    applied_fingerprint: str | None,
    previous: Sequence[StepSpec] | None,
    now: dt.datetime,
    backfill: bool = False,
) -> Plan:
    """What applying ``course`` does to its ``active`` enrollments, given the version last applied."""
    moved = moved_keys(previous, specs(course))
    edit = Edit(course, moved, now, backfill)
    edits = [edit_enrollment(e, edit) for e in active]
    moves = [m for e in edits for m in e.moves]
    return Plan(
        course=course.slug,
        fingerprint=fingerprint(course),
        applied_fingerprint=applied_fingerprint,
        changes=_changes(course, previous, moved, edits),
        shifted=sum(not m.moved for m in moves),
        due_next_24h_before=sum(e.due_next_24h_before for e in edits),
        due_next_24h_after=sum(e.due_next_24h_after for e in edits),
        enrollments=len(active),
        new=tuple(n for e in edits for n in e.new),
        cancel=tuple(i for e in edits for i, _ in e.cancel),
        reschedule=tuple((m.delivery_id, m.due_at) for m in moves),
    )
