"""What a step added or moved behind a reader does (``when_added``): pure planning, no database."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from delivery_fixtures import make_course
from pydantic import ValidationError

from drip.course.edits import (
    ADDED_BEHIND,
    ActiveEnrollment,
    Delivery,
    EnrollmentEdit,
    Plan,
    StepSpec,
    edit_plan,
    specs,
)
from drip.course.models import Course, WhenAdded
from drip.course.schedule import ScheduleModel

UTC = dt.UTC
START = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris; the window is 08:30 every day
NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
V1 = [("welcome", 0), ("article:/a/", 2), ("article:/b/", 4), ("article:/c/", 5)]
V2 = [V1[0], ("article:/early/", 1), *V1[1:]]  # added behind a reader who already got b


def at(day: int, hour: int = 7, minute: int = 30) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def reader(*, c_due: dt.datetime | None = None) -> ActiveEnrollment:
    """Got welcome, a and b; c is pending (by default on 6 December at 08:30 Paris)."""
    c_due = c_due or at(6)
    rows = {
        "welcome": Delivery(1, "welcome", "received", START, START),
        "article:/a/": Delivery(2, "article:/a/", "received", at(3), at(3)),
        "article:/b/": Delivery(3, "article:/b/", "received", at(5), at(5)),
        "article:/c/": Delivery(4, "article:/c/", "waiting", c_due, None),
    }
    return ActiveEnrollment(10, 7, START, "Europe/Paris", rows)


def with_policy(course: Course, key: str, policy: WhenAdded | None) -> Course:
    steps = tuple(dataclasses.replace(s, when_added=policy) if s.key == key else s for s in course.steps)
    return dataclasses.replace(course, steps=steps)


def planned(course: Course, *, previous: list[tuple[str, int]] = V1, backfill: bool = False) -> Plan:
    before = [StepSpec(k, d, k == "welcome") for k, d in previous]
    return edit_plan(
        course, [reader()], applied_fingerprint="old", previous=before, now=NOW, backfill=backfill
    )


def due(p: Plan) -> dict[int | str, dt.datetime]:
    """Delivery id (moved) or step key (new, sent) → due time."""
    out: dict[int | str, dt.datetime] = {n.step_key: n.due_at for n in p.new if not n.skipped}
    out.update(dict(p.reschedule))
    return out


def test_skip_is_the_default_and_records_the_step_as_skipped() -> None:
    p = planned(make_course(steps=V2))
    [new] = p.new
    assert (new.step_key, new.skipped, new.note) == ("article:/early/", True, ADDED_BEHIND)
    assert p.reschedule == () and p.shifted == 0
    [change] = p.changes
    assert (change.kind, change.skipped, change.policy) == ("added", 1, "skip")


def test_catch_up_sends_at_the_next_send_slot_and_the_rest_shifts() -> None:
    p = planned(with_policy(make_course(steps=V2), "article:/early/", "catch_up"))
    # b came on 5 December; with a cadence of one day the next slot is 6 December, 08:30 Paris.
    assert due(p) == {"article:/early/": at(6), 4: at(7)}  # c shifts a day to keep the gap
    assert p.shifted == 1
    assert p.changes[0].scheduled == 1 and p.changes[0].policy == "catch_up"


def test_append_sends_after_the_readers_last_email_at_the_cadence() -> None:
    p = planned(with_policy(make_course(steps=V2), "article:/early/", "append"))
    assert due(p) == {"article:/early/": at(7)}  # after c (6 December), c keeps its time
    assert p.shifted == 0


def test_backfill_means_append_for_that_run() -> None:
    assert due(planned(make_course(steps=V2), backfill=True)) == {"article:/early/": at(7)}


def test_the_next_slot_respects_the_send_window_in_the_readers_zone() -> None:
    course = with_policy(make_course(steps=V2), "article:/early/", "catch_up")
    late = dt.datetime(2026, 12, 6, 8, 0, tzinfo=UTC)  # 09:00 in Paris: today's slot has passed
    p = edit_plan(
        course,
        [reader(c_due=at(8))],
        applied_fingerprint="old",
        previous=[StepSpec(k, d, k == "welcome") for k, d in V1],
        now=late,
    )
    assert due(p)["article:/early/"] == at(7)


def test_a_step_added_ahead_keeps_its_own_schedule_whatever_its_policy() -> None:
    steps = [*V1, ("article:/d/", 7)]
    for policy in ("skip", "catch_up", "append", None):
        p = planned(with_policy(make_course(steps=steps), "article:/d/", policy))
        assert due(p) == {"article:/d/": at(8)}, policy


def test_a_step_moved_behind_follows_its_declared_policy() -> None:
    # c moves before a: the reader, past a and b, has not had it yet.
    moved = [V1[0], ("article:/c/", 1), ("article:/a/", 2), ("article:/b/", 4)]
    plain = planned(make_course(steps=moved))
    # Undeclared: rescheduled from the start under the spacing rule, as before (here its own time).
    assert plain.withdraw == () and plain.reschedule == ()
    skipped = planned(with_policy(make_course(steps=moved), "article:/c/", "skip"))
    assert skipped.withdraw == (4,) and skipped.reschedule == ()
    assert skipped.changes[0].kind == "moved" and skipped.changes[0].skipped == 1
    appended = planned(with_policy(make_course(steps=moved), "article:/c/", "append"))
    assert appended.withdraw == () and appended.reschedule == ()  # already the reader's last, one day on


def test_plan_says_whether_anything_changes() -> None:
    same = make_course(steps=V1)
    from drip.course.edits import fingerprint

    p = edit_plan(same, [reader()], applied_fingerprint=fingerprint(same), previous=specs(same), now=NOW)
    assert not p.has_changes
    assert planned(make_course(steps=V2)).has_changes
    assert isinstance(EnrollmentEdit(), EnrollmentEdit)


def test_the_schedule_accepts_the_three_policies_per_step_and_per_course() -> None:
    model = ScheduleModel.model_validate(
        {"when_added": "catch_up", "articles": {"/posts/x/": {"when_added": "append"}}}
    )
    assert model.when_added == "catch_up"
    assert model.articles["/posts/x/"].when_added == "append"
    assert ScheduleModel().when_added is None
    with pytest.raises(ValidationError):
        ScheduleModel.model_validate({"when_added": "later"})
