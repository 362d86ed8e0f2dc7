"""When a course email is due: send windows in the subscriber's time zone, correct across DST.

Times are stored in UTC; windows ("08:30 on weekdays") are local. A local time
that does not exist on a spring-forward day moves to the first valid minute
after the gap; an ambiguous one on a fall-back day is its first occurrence, so
an email is never sent twice nor skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from drip.config import check_timezone
from drip.course.models import SendWindow, Step
from drip.errors import did_you_mean

_DAY_NAMES: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("mon", "monday", "lun", "lundi"),
        ("tue", "tuesday", "mar", "mardi"),
        ("wed", "wednesday", "mer", "mercredi"),
        ("thu", "thursday", "jeu", "jeudi"),
        ("fri", "friday", "ven", "vendredi"),
        ("sat", "saturday", "sam", "samedi"),
        ("sun", "sunday", "dim", "dimanche"),
    )
):
    for _name in _names:
        _DAY_NAMES[_name] = _index

_DAY_GROUPS: dict[str, frozenset[int]] = {
    "weekdays": frozenset(range(5)),
    "every day": frozenset(range(7)),
    "everyday": frozenset(range(7)),
    "weekend": frozenset({5, 6}),
    "en semaine": frozenset(range(5)),
    "tous les jours": frozenset(range(7)),
}

WEEKDAY_WORDS: tuple[str, ...] = (*_DAY_NAMES, *_DAY_GROUPS)
"""Every word accepted for a send window's days, for hints and documentation."""

_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_MAX_SEARCH_DAYS = 8  # any allowed weekday comes back within a week


def parse_time(text: str) -> dt.time:
    """``"08:30"`` → ``time(8, 30)``; anything else is a ValueError a marketer can act on."""
    match = _TIME.fullmatch(text.strip())
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return dt.time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f'invalid time {text!r}, expected HH:MM on a 24-hour clock, e.g. "08:30"')


def parse_weekdays(value: str | Iterable[str]) -> frozenset[int]:
    """Day names (English or French, short or long) or a group ("weekdays", "every day") → 0..6.

    Every unknown name is reported in one ValueError, each with the closest valid word.
    """
    words = [value] if isinstance(value, str) else list(value)
    days: set[int] = set()
    unknown: list[str] = []
    for word in words:
        key = " ".join(str(word).lower().split())
        if key in _DAY_GROUPS:
            days |= _DAY_GROUPS[key]
        elif key in _DAY_NAMES:
            days.add(_DAY_NAMES[key])
        else:
            hint = did_you_mean(key, WEEKDAY_WORDS)
            unknown.append(f"{word!r}" + (f" ({hint})" if hint else ""))
    if unknown:
        raise ValueError(
            f"unknown day name{'s' if len(unknown) > 1 else ''} {', '.join(unknown)};"
            ' use mon, tue, wed, thu, fri, sat, sun, "weekdays" or "every day"'
        )
    if not days:
        raise ValueError("at least one day is needed")
    return frozenset(days)


def local_moment(day: dt.date, time: dt.time, tz: ZoneInfo) -> dt.datetime:
    """``day`` at ``time`` in ``tz``: the first valid minute after a DST gap, the first of a fold."""
    naive = dt.datetime.combine(day, time)
    for _ in range(24 * 60):
        aware = naive.replace(tzinfo=tz, fold=0)
        # A wall time that does not exist does not survive a round trip through UTC.
        if aware.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) == naive:
            return aware
        naive = naive.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    raise ValueError(f"no valid local time on {day} in {tz.key}")  # pragma: no cover - no zone skips a day


def due_at(
    start: dt.datetime,
    day: int,
    window: SendWindow,
    tz: ZoneInfo,
    *,
    immediate: bool = False,
) -> dt.datetime:
    """The UTC moment an email ``day`` days after ``start`` leaves.

    The first window time on an allowed weekday, on or after the local date
    ``start`` + ``day``, and never before ``start``; ``immediate`` steps leave at ``start``.
    """
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if immediate:
        return start.astimezone(dt.UTC)
    if not window.weekdays:
        raise ValueError("a send window needs at least one weekday")
    first = start.astimezone(tz).date() + dt.timedelta(days=day)
    for offset in range(_MAX_SEARCH_DAYS + 1):
        date = first + dt.timedelta(days=offset)
        if date.weekday() not in window.weekdays:
            continue
        moment = local_moment(date, window.time, tz)
        if moment >= start:
            return moment.astimezone(dt.UTC)
    raise AssertionError("unreachable: an allowed weekday recurs within eight days")  # pragma: no cover


def course_schedule(
    start: dt.datetime, steps: Sequence[Step], window: SendWindow, tz: ZoneInfo
) -> list[dt.datetime]:
    """Due times (UTC) of a course's steps for one subscriber starting at ``start``.

    Each step leaves at :func:`due_at`, except that two emails never land on the
    same local day: when skipping closed weekdays would bunch steps together (day 4
    on a Saturday moving onto day 6's Monday), the later one moves to the next open day.
    """
    out: list[dt.datetime] = []
    local_start = start.astimezone(tz).date()
    last: dt.date | None = None
    for step in steps:
        when = due_at(start, step.day, window, tz, immediate=step.immediate)
        if last is not None and not step.immediate and when.astimezone(tz).date() <= last:
            when = due_at(start, (last - local_start).days + 1, window, tz)
        out.append(when)
        last = when.astimezone(tz).date()
    return out


def resolve_timezone(name: str | None, fallback: str) -> tuple[ZoneInfo, str | None]:
    """A subscriber's zone, or the course's ``fallback`` with a warning saying why — never silently UTC."""
    if name is None or not name.strip():
        return ZoneInfo(fallback), f"no time zone given; using {fallback}"
    try:
        return ZoneInfo(check_timezone(name.strip())), None
    except ValueError as exc:
        return ZoneInfo(fallback), f"{exc}; using {fallback}"
