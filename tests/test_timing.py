"""Send times: windows in local time, weekdays, and the four DST transitions of 2026."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from drip.course.models import SendWindow, Step
from drip.course.timing import (
    course_schedule,
    due_at,
    local_moment,
    parse_time,
    parse_weekdays,
    resolve_timezone,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC
EVERY_DAY = frozenset(range(7))
WEEKDAYS = frozenset(range(5))


def window(hhmm: str, days: frozenset[int] = EVERY_DAY) -> SendWindow:
    return SendWindow(time=parse_time(hhmm), weekdays=days)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- 08:30 local stays 08:30 local across DST -------------------------------------------------


def test_paris_spring_forward_keeps_local_time() -> None:
    start = utc(2026, 3, 27, 10, 0)  # Friday, CET (UTC+1)
    assert due_at(start, 1, window("08:30"), PARIS) == utc(2026, 3, 28, 7, 30)  # still CET
    assert due_at(start, 2, window("08:30"), PARIS) == utc(2026, 3, 29, 6, 30)  # CEST (UTC+2)


def test_paris_fall_back_keeps_local_time() -> None:
    start = utc(2026, 10, 23, 12, 0)
    assert due_at(start, 1, window("08:30"), PARIS) == utc(2026, 10, 24, 6, 30)  # CEST
    assert due_at(start, 2, window("08:30"), PARIS) == utc(2026, 10, 25, 7, 30)  # CET


def test_new_york_both_transitions_keep_local_time() -> None:
    start = utc(2026, 3, 6, 18, 0)
    assert due_at(start, 1, window("08:30"), NEW_YORK) == utc(2026, 3, 7, 13, 30)  # EST (UTC-5)
    assert due_at(start, 2, window("08:30"), NEW_YORK) == utc(2026, 3, 8, 12, 30)  # EDT (UTC-4)
    start = utc(2026, 10, 30, 18, 0)
    assert due_at(start, 1, window("08:30"), NEW_YORK) == utc(2026, 10, 31, 12, 30)  # EDT
    assert due_at(start, 2, window("08:30"), NEW_YORK) == utc(2026, 11, 1, 13, 30)  # EST


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK], ids=lambda z: z.key)
def test_every_day_of_2026_lands_on_the_window_in_local_time(tz: ZoneInfo) -> None:
    start = dt.datetime(2026, 1, 1, 0, 0, tzinfo=tz)
    for day in range(365):
        due = due_at(start, day, window("08:30"), tz).astimezone(tz)
        assert (due.date(), due.hour, due.minute) == (dt.date(2026, 1, 1) + dt.timedelta(days=day), 8, 30)


# --- times inside the gap and the fold ---------------------------------------------------------


def test_paris_gap_moves_to_first_valid_minute_after() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    due = due_at(utc(2026, 3, 28, 12, 0), 1, window("02:30"), PARIS)
    assert due == utc(2026, 3, 29, 1, 0)
    assert due.astimezone(PARIS).strftime("%H:%M %Z") == "03:00 CEST"


def test_new_york_gap_moves_to_first_valid_minute_after() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    due = due_at(utc(2026, 3, 7, 18, 0), 1, window("02:30"), NEW_YORK)
    assert due == utc(2026, 3, 8, 7, 0)
    assert due.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"


def test_paris_fold_is_the_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    due = due_at(utc(2026, 10, 24, 12, 0), 1, window("02:30"), PARIS)
    assert due == utc(2026, 10, 25, 0, 30)
    assert due.astimezone(PARIS).strftime("%H:%M %Z") == "02:30 CEST"


def test_new_york_fold_is_the_first_occurrence() -> None:
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice.
    due = due_at(utc(2026, 10, 31, 18, 0), 1, window("01:30"), NEW_YORK)
    assert due == utc(2026, 11, 1, 5, 30)
    assert due.astimezone(NEW_YORK).strftime("%H:%M %Z") == "01:30 EDT"


def test_enrolling_inside_the_fold_after_first_occurrence_waits_for_next_day() -> None:
    # The first 01:30 has passed; the second 01:30 (EST) must not send it again the same day.
    start = utc(2026, 11, 1, 5, 45)  # 01:45 EDT
    due = due_at(start, 0, window("01:30"), NEW_YORK)
    assert due == utc(2026, 11, 2, 6, 30)  # 01:30 EST the next day


def test_local_moment_round_trips_on_ordinary_days() -> None:
    moment = local_moment(dt.date(2026, 6, 1), dt.time(8, 30), PARIS)
    assert moment.utcoffset() == dt.timedelta(hours=2)
    assert (moment.hour, moment.minute, moment.fold) == (8, 30, 0)


# --- weekdays and the start moment -------------------------------------------------------------


def test_weekend_is_skipped() -> None:
    start = utc(2026, 11, 26, 9, 0)  # Thursday
    # day 2 is Saturday 28 → Monday 30 at 08:30 CET
    assert due_at(start, 2, window("08:30", WEEKDAYS), PARIS) == utc(2026, 11, 30, 7, 30)
    # day 1 is Friday 27 → itself
    assert due_at(start, 1, window("08:30", WEEKDAYS), PARIS) == utc(2026, 11, 27, 7, 30)


def test_start_after_todays_window_moves_to_next_allowed_day() -> None:
    thursday_late = utc(2026, 11, 26, 9, 0)  # 10:00 in Paris, after 08:30
    assert due_at(thursday_late, 0, window("08:30", WEEKDAYS), PARIS) == utc(2026, 11, 27, 7, 30)
    friday_late = utc(2026, 11, 27, 9, 0)
    assert due_at(friday_late, 0, window("08:30", WEEKDAYS), PARIS) == utc(2026, 11, 30, 7, 30)


def test_start_before_todays_window_sends_today() -> None:
    early = utc(2026, 11, 26, 6, 0)  # 07:00 in Paris
    assert due_at(early, 0, window("08:30", WEEKDAYS), PARIS) == utc(2026, 11, 26, 7, 30)


def test_start_exactly_at_window_is_not_pushed_back() -> None:
    start = utc(2026, 11, 26, 7, 30)
    assert due_at(start, 0, window("08:30"), PARIS) == start


def test_day_counts_from_the_local_date_not_the_utc_date() -> None:
    start = utc(2026, 11, 26, 23, 30)  # already Friday 27, 00:30 in Paris
    assert due_at(start, 1, window("08:30"), PARIS) == utc(2026, 11, 28, 7, 30)
    assert due_at(start, 1, window("08:30"), NEW_YORK) == utc(2026, 11, 27, 13, 30)  # Thursday evening there


def test_single_allowed_day_waits_up_to_a_week() -> None:
    monday_only = window("08:30", frozenset({0}))
    start = utc(2026, 11, 30, 8, 0)  # Monday 09:00 in Paris, window passed
    assert due_at(start, 0, monday_only, PARIS) == utc(2026, 12, 7, 7, 30)


def test_immediate_returns_start_in_utc() -> None:
    start = dt.datetime(2026, 11, 26, 22, 15, tzinfo=PARIS)
    due = due_at(start, 0, window("08:30", WEEKDAYS), PARIS, immediate=True)
    assert due == start
    assert due.tzinfo is UTC


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_at(dt.datetime(2026, 11, 26, 9, 0), 0, window("08:30"), PARIS)


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("08:30", dt.time(8, 30)), ("8:05", dt.time(8, 5)), ("23:59", dt.time(23, 59))]
)
def test_parse_time(text: str, expected: dt.time) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["8h30", "24:00", "08:60", "0830", "", "08:30:00"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_time(text)
    assert str(info.value) == f'invalid time {text!r}, expected HH:MM on a 24-hour clock, e.g. "08:30"'


def test_parse_weekdays_names_groups_and_french() -> None:
    assert parse_weekdays("weekdays") == WEEKDAYS
    assert parse_weekdays("Every  Day") == EVERY_DAY
    assert parse_weekdays(["mon", "Wednesday", "ven"]) == frozenset({0, 2, 4})
    assert parse_weekdays(["lundi", "samedi", "dim"]) == frozenset({0, 5, 6})


def test_parse_weekdays_reports_every_unknown_name() -> None:
    with pytest.raises(ValueError) as info:
        parse_weekdays(["mon", "tuseday", "blah"])
    assert str(info.value) == (
        "unknown day names 'tuseday' (did you mean 'tuesday'?), 'blah';"
        ' use mon, tue, wed, thu, fri, sat, sun, "weekdays" or "every day"'
    )


def test_parse_weekdays_needs_a_day() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        parse_weekdays([])


# --- subscriber time zones ---------------------------------------------------------------------


def test_resolve_timezone_valid() -> None:
    assert resolve_timezone("America/New_York", "Europe/Paris") == (NEW_YORK, None)


@pytest.mark.parametrize("name", [None, "", "  "])
def test_resolve_timezone_missing_falls_back_with_warning(name: str | None) -> None:
    assert resolve_timezone(name, "Europe/Paris") == (PARIS, "no time zone given; using Europe/Paris")


def test_resolve_timezone_typo_falls_back_with_suggestion() -> None:
    zone, warning = resolve_timezone("Europe/Pari", "America/New_York")
    assert zone == NEW_YORK
    assert warning == "unknown time zone 'Europe/Pari' (did you mean 'Europe/Paris'?); using America/New_York"


def test_resolve_timezone_never_reads_outside_the_zone_database() -> None:
    zone, warning = resolve_timezone("../../etc/passwd", "Europe/Paris")
    assert zone == PARIS
    assert warning is not None and warning.endswith("; using Europe/Paris")


def test_closed_days_never_bunch_two_emails_on_one_day() -> None:
    """Day 4 on a Saturday would move onto day 6's Monday; it takes the next open day instead."""
    window = SendWindow(time=dt.time(8, 30), weekdays=frozenset(range(5)))
    tz = ZoneInfo("Europe/Paris")
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)  # a Tuesday
    steps = [
        Step(key=k, kind="article", number=i + 1, day=d, subject="", preheader="", immediate=(i == 0))
        for i, (k, d) in enumerate([("welcome", 0), ("a", 2), ("b", 4), ("c", 6), ("d", 8)])
    ]
    local = [d.astimezone(tz) for d in course_schedule(start, steps, window, tz)]
    assert local[0] == start
    assert [d.strftime("%a %d %H:%M") for d in local[1:]] == [
        "Thu 03 08:30",
        "Mon 07 08:30",  # day 4 is Saturday the 5th: next open day
        "Tue 08 08:30",  # day 6 is Monday the 7th, taken: the next open day
        "Wed 09 08:30",  # day 8
    ]
