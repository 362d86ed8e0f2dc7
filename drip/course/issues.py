"""When a digest's issues fall, and the stable name of each slot.

A cron digest fires in its own zone through APScheduler's CronTrigger, so
"every Monday at 09:00 Europe/Paris" stays 09:00 on both sides of a DST change.
Two wall-clock rules on top of APScheduler's: a time that does not exist (the
spring-forward gap) is sent at the same instant written with the offset in force
(02:30 becomes 03:30), and a time that happens twice (fall back) is sent once, the
first time. A ``send_window`` digest has one slot a day on its weekdays at the
window's time, in the digest's zone; each reader's own zone is dispatch's business.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from drip.course.newsletter_models import Digest

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TICK = dt.timedelta(microseconds=1)
_REPEAT = dt.timedelta(hours=1)  # the longest DST shift in tzdata


def trigger(digest: Digest) -> CronTrigger:
    """The CronTrigger of a digest, in the digest's zone."""
    zone = ZoneInfo(digest.timezone)
    if digest.cron is not None:
        return CronTrigger.from_crontab(digest.cron, timezone=zone)
    window = digest.window
    assert window is not None  # the loader requires cron or send_window
    days = ",".join(_DAY_NAMES[d] for d in sorted(window.weekdays))
    return CronTrigger(day_of_week=days, hour=window.time.hour, minute=window.time.minute, timezone=zone)


def _repeated(moment: dt.datetime) -> bool:
    """True for the second pass of a wall-clock time repeated when clocks fall back."""
    first = moment.replace(fold=0)
    return first.utcoffset() != moment.utcoffset()


def next_issue_time(digest: Digest, after: dt.datetime) -> dt.datetime:
    """The first issue strictly after ``after`` (aware), as an aware datetime in the digest's zone."""
    if after.tzinfo is None:
        raise ValueError("after must be an aware datetime")
    zone = ZoneInfo(digest.timezone)
    fire = trigger(digest)
    moment = after
    while True:
        found = fire.get_next_fire_time(None, moment + _TICK)
        if found is None:  # pragma: no cover - a crontab always fires again
            raise ValueError(f"digest {digest.slug!r} never fires after {after.isoformat()}")
        local: dt.datetime = found.astimezone(dt.UTC).astimezone(zone)  # a gap time: the offset in force
        if not _repeated(local):
            return local
        moment = found + _REPEAT  # past the repeated hour: APScheduler would offer its times again


def period_key(digest: Digest, at: dt.datetime) -> str:
    """The slot's stable name, e.g. ``lettre-hebdo:2026-12-07T09:00+01:00``: one issue per key."""
    local = at.astimezone(ZoneInfo(digest.timezone))
    return f"{digest.slug}:{local.isoformat(timespec='minutes')}"
