"""Planning an edit to a running course: what a change does to each subscriber already in it.

Pure: it compares the compiled course with the steps last applied and with each
active enrollment's deliveries, as :mod:`drip.store.course_edits` read them, and
returns a :class:`Plan`; writing it is the store's.

The rules:

* A step **added after** a subscriber's position gets a delivery at the step's
  own schedule, but never earlier than now and never closer than the course's
  cadence to the email before it (later pending emails shift to keep the gap).
* A step **added behind** a subscriber's position (they already received a later
  step) follows its ``when_added`` policy (the step's, else the course's):
  ``skip`` (the default) records it as skipped with note "added behind";
  ``catch_up`` sends it at the next send slot, and the pending emails after it
  shift to keep the spacing; ``append`` sends it after their last email, at the
  cadence. ``backfill`` means ``append`` for that run.
* A **removed** step's pending deliveries are cancelled with note "step removed".
* A **reordered or re-timed** step's pending delivery is rescheduled from the
  enrollment's start, under the same spacing rule; when it moved behind the
  subscriber's position and declares a policy, that policy decides instead
  (``skip`` records it as skipped with note "moved behind").
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

from drip.course.models import Course, Step, WhenAdded
from drip.course.timing import due_at, resolve_timezone

ADDED_BEHIND = "added behind"
MOVED_BEHIND = "moved behind"
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
    skipped: int = 0  # added (or moved) behind their position: recorded as skipped
    cancelled: int = 0  # removed: pending deliveries cancelled
    policy: WhenAdded = "skip"  # what readers already past it get (see when_added)


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
    withdraw: tuple[int, ...] = field(default=(), repr=False)  # pending ids moved behind, skipped
    pending: Mapping[str, int] = field(default_factory=dict, repr=False)  # step key → emails to send

    @property
    def has_changes(self) -> bool:
        """Applying would change a delivery or the recorded version: what ``drip plan``'s exit code says."""
        return self.pending_version or self.has_work

    @property
    def pending_version(self) -> bool:
        """The compiled course differs from the version last applied."""
        return self.fingerprint != self.applied_fingerprint

    @property
    def has_work(self) -> bool:
        return bool(self.new or self.cancel or self.reschedule or self.withdraw)


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


@dataclass(frozen=True)
class DeadLink:
    """A step still to be sent that links to a post no content file provides: renamed or deleted."""

    step_key: str
    url: str
    pending: int  # emails of that step still to be sent


def dead_links(course: Course, pending: Mapping[str, int]) -> tuple[DeadLink, ...]:
    """Steps with emails to send whose article (or one of a section's) has no post under content/."""
    out: list[DeadLink] = []
    for step in course.steps:
        if not pending.get(step.key):
            continue
        articles = (step.article,) if step.article is not None else step.section_articles
        for article in articles:
            if not article.found:
                out.append(DeadLink(step.key, article.url, pending[step.key]))
    return tuple(out)


def _pending(active: Sequence[ActiveEnrollment], edits: Sequence[EnrollmentEdit]) -> dict[str, int]:
    """Emails still to send per step once the edit is applied."""
    gone = {i for e in edits for i, _ in (*e.cancel, *e.withdraw)}
    counts = Counter(
        r.step_key for a in active for r in a.rows.values() if r.state == "waiting" and r.id not in gone
    )
    counts.update(n.step_key for e in edits for n in e.new if not n.skipped)
    return dict(counts)


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
    withdraw: tuple[tuple[int, str], ...] = ()  # (delivery id, step key) moved behind, skipped
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
    walk = _Walk(enrollment, edit, position, last)
    walk.run()
    after = sum(when <= horizon for when in walk.times)
    return EnrollmentEdit(
        new=tuple(walk.new),
        cancel=cancel,
        moves=tuple(walk.moves),
        withdraw=tuple(walk.withdraw),
        due_next_24h_before=before,
        due_next_24h_after=after,
    )


def behind_policy(step: Step, edit: Edit, *, added: bool) -> WhenAdded | None:
    """What a step behind the reader's position does: None keeps a moved step's own schedule."""
    if added and edit.backfill:
        return "append"
    if step.when_added is None:
        return "skip" if added else None
    return step.when_added


def next_slot(moment: dt.datetime, course: Course, tz: ZoneInfo) -> dt.datetime:
    """The first time of the course's send window at or after ``moment``, in the reader's zone."""
    return due_at(moment, 0, course.window, tz)


class _Walk:
    """One enrollment's walk through the course; what it decides accumulates on the instance."""

    def __init__(
        self, enrollment: ActiveEnrollment, edit: Edit, position: int, last: dt.datetime | None
    ) -> None:
        self.enrollment, self.edit, self.position, self.last = enrollment, edit, position, last
        self.tz: ZoneInfo = resolve_timezone(enrollment.timezone, edit.course.timezone)[0]
        self.new: list[NewDelivery] = []
        self.moves: list[Move] = []
        self.withdraw: list[tuple[int, str]] = []
        self.times: list[dt.datetime] = []  # every pending due time after the edit
        self.appended: list[tuple[Step, Delivery | None]] = []
        self.disturbed = False

    def own(self, step: Step) -> dt.datetime:
        """The step's own schedule from the enrollment's start."""
        course = self.edit.course
        return due_at(self.enrollment.started_at, step.day, course.window, self.tz, immediate=step.immediate)

    def spaced(self, when: dt.datetime) -> dt.datetime:
        return spaced(when, self.edit.now, self.last, self.edit.gap)

    def place(self, step: Step, row: Delivery | None, when: dt.datetime, *, moved: bool) -> None:
        """Record ``step`` at ``when``: a new row, or a move of its pending one."""
        if row is None:
            self.new.append(NewDelivery(self.enrollment.id, self.enrollment.subscriber_id, step.key, when))
        elif when != row.due_at:
            self.moves.append(Move(row.id, step.key, when, moved))
        self.times.append(when)
        self.last = when if self.last is None else max(self.last, when)

    def run(self) -> None:
        """From the first added or moved step on, each pending email keeps at least the cadence
        after the one before it and is never in the past; steps behind follow their policy."""
        for i, step in enumerate(self.edit.course.steps):
            row = self.enrollment.rows.get(step.key)
            if row is not None and row.state != "waiting":
                continue  # received (counted in `last`), or failed, cancelled, skipped
            moved = row is not None and step.key in self.edit.moved
            policy = behind_policy(step, self.edit, added=row is None) if i < self.position else None
            if (row is None or moved) and policy is not None:
                self.behind(step, row, policy)
            elif row is None:
                self.disturbed = True
                self.place(step, None, self.spaced(self.own(step)), moved=False)
            else:
                self.disturbed = self.disturbed or moved
                when = self.spaced(self.own(step) if moved else row.due_at) if self.disturbed else row.due_at
                self.place(step, row, when, moved=moved)
        self.append_tail()

    def behind(self, step: Step, row: Delivery | None, policy: WhenAdded) -> None:
        """A step the reader is already past: skipped, caught up now, or kept for the end."""
        if policy == "skip":
            if row is None:
                enrollment = self.enrollment
                now = self.edit.now
                self.new.append(
                    NewDelivery(enrollment.id, enrollment.subscriber_id, step.key, now, True, ADDED_BEHIND)
                )
            else:
                self.withdraw.append((row.id, step.key))
        elif policy == "catch_up":
            self.disturbed = True
            floor = self.edit.now if self.last is None else max(self.edit.now, self.last + self.edit.gap)
            self.place(step, row, next_slot(floor, self.edit.course, self.tz), moved=True)
        else:
            self.appended.append((step, row))

    def append_tail(self) -> None:
        """Appended steps follow the reader's last email, one cadence apart, in course order."""
        for step, row in self.appended:
            floor = self.edit.now if self.last is None else max(self.edit.now, self.last + self.edit.gap)
            self.place(step, row, next_slot(floor, self.edit.course, self.tz), moved=True)


def _changes(
    course: Course,
    previous: Sequence[StepSpec] | None,
    moved: Mapping[str, str],
    edits: Sequence[EnrollmentEdit],
) -> tuple[StepChange, ...]:
    """Per step: added (how many scheduled, how many skipped), moved, or removed (how many cancelled)."""
    added = Counter(n.step_key for e in edits for n in e.new if not n.skipped)
    skipped = Counter(n.step_key for e in edits for n in e.new if n.skipped)
    withdrawn = Counter(key for e in edits for _, key in e.withdraw)
    cancelled = Counter(key for e in edits for _, key in e.cancel)
    rescheduled = Counter(m.step_key for e in edits for m in e.moves if m.moved)
    previous_keys = {s.key for s in previous} if previous is not None else None
    keys = [s.key for s in course.steps]
    changes: list[StepChange] = []
    for i, step in enumerate(course.steps):
        key = step.key
        policy = step.when_added or "skip"
        if added[key] or skipped[key] or (previous_keys is not None and key not in previous_keys):
            detail = f"new at position {i + 1}"
            changes.append(StepChange("added", key, detail, added[key], skipped[key], policy=policy))
        elif key in moved:
            changes.append(
                StepChange("moved", key, moved[key], rescheduled[key], withdrawn[key], policy=policy)
            )
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
        withdraw=tuple(i for e in edits for i, _ in e.withdraw),
        pending=_pending(active, edits),
    )
