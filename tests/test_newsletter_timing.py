"""Digest issues fall at the same local time on both sides of a DST change, as exact UTC instants."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from drip.course.issues import next_issue_time, period_key
from drip.course.models import SendWindow
from drip.course.newsletter_models import Digest, PostFilter

UTC = dt.UTC


def digest(cron: str | None, zone: str, window: SendWindow | None = None) -> Digest:
    return Digest("hebdo", "lettre", "La lettre", "fr", zone, cron, window, PostFilter())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def issues(d: Digest, after: dt.datetime, n: int) -> list[dt.datetime]:
    out: list[dt.datetime] = []
    for _ in range(n):
        after = next_issue_time(d, after)
        out.append(after.astimezone(UTC))
    return out


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # Paris springs forward on 29 March 2026: 09:00 is 08:00 UTC, then 07:00 UTC.
        ("Europe/Paris", utc(2026, 3, 20), [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]),
        # Paris falls back on 25 October 2026.
        ("Europe/Paris", utc(2026, 10, 20), [utc(2026, 10, 26, 8), utc(2026, 11, 2, 8)]),
        ("Europe/Paris", utc(2026, 10, 13), [utc(2026, 10, 19, 7), utc(2026, 10, 26, 8)]),
        # New York springs forward on 8 March 2026 and falls back on 1 November 2026.
        ("America/New_York", utc(2026, 3, 1), [utc(2026, 3, 2, 14), utc(2026, 3, 9, 13)]),
        ("America/New_York", utc(2026, 10, 27), [utc(2026, 11, 2, 14), utc(2026, 11, 9, 14)]),
        ("America/New_York", utc(2026, 10, 20), [utc(2026, 10, 26, 13), utc(2026, 11, 2, 14)]),
    ],
)
def test_weekly_issue_keeps_its_local_time_across_dst(
    zone: str, after: dt.datetime, expected: list[dt.datetime]
) -> None:
    assert issues(digest("0 9 * * mon", zone), after, 2) == expected


def test_a_time_in_the_spring_gap_is_sent_at_the_same_instant_with_the_new_offset() -> None:
    d = digest("30 2 * * *", "Europe/Paris")
    first = next_issue_time(d, utc(2026, 3, 28, 3))
    assert first.isoformat() == "2026-03-29T03:30:00+02:00"
    assert issues(d, utc(2026, 3, 28, 3), 2) == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    d = digest("30 2 * * *", "America/New_York")
    assert issues(d, utc(2026, 3, 7, 12), 2) == [utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]


def test_a_time_repeated_when_clocks_fall_back_is_sent_once() -> None:
    d = digest("30 1 * * *", "America/New_York")
    assert issues(d, utc(2026, 10, 31, 12), 2) == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    d = digest("30 2 * * *", "Europe/Paris")
    assert issues(d, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_the_next_issue_is_strictly_after() -> None:
    d = digest("0 9 * * mon", "Europe/Paris")
    monday = dt.datetime.fromisoformat("2026-12-07T09:00+01:00")
    assert next_issue_time(d, monday).isoformat() == "2026-12-14T09:00:00+01:00"
    assert next_issue_time(d, monday - dt.timedelta(seconds=1)) == monday


def test_a_send_window_digest_fires_on_its_days_at_its_time() -> None:
    d = digest(None, "Europe/Paris", SendWindow(dt.time(7, 45), frozenset({1, 4})))
    assert [t.isoformat() for t in issues(d, utc(2026, 3, 25), 3)] == [
        "2026-03-27T06:45:00+00:00",
        "2026-03-31T05:45:00+00:00",
        "2026-04-03T05:45:00+00:00",
    ]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_issue_time(digest("0 9 * * mon", "UTC"), dt.datetime(2026, 1, 1))


def test_period_key_names_the_local_slot() -> None:
    d = digest("0 9 * * mon", "Europe/Paris")
    assert period_key(d, utc(2026, 12, 7, 8)) == "hebdo:2026-12-07T09:00+01:00"
    assert period_key(d, utc(2026, 6, 1, 7)) == "hebdo:2026-06-01T09:00+02:00"
    other = dataclasses.replace(d, slug="autre")
    assert period_key(other, utc(2026, 12, 7, 8)) == "autre:2026-12-07T09:00+01:00"
