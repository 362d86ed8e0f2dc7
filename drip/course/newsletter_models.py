"""What a newsletter is once loaded: a mailing list, and the digests that feed it.

Plain frozen dataclasses, built by :mod:`drip.course.newsletter` from schedules/
and read by selection, timing, render and check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drip.course.models import Sender, SendWindow

Hold = Literal["wait", "skip", False]


@dataclass(frozen=True)
class MailingList:
    """A list readers join: ``schedules/<name>.yaml`` with ``kind: list``.

    ``hold_during_course`` and ``no_repeat_days`` say how the list shares a reader
    with a course they follow (wait until it ends, skip issues meanwhile, or neither).
    """

    name: str  # file stem
    title: str
    description: str
    locale: str
    timezone: str
    sender: Sender
    archive: bool = False
    hold_during_course: Hold = False
    no_repeat_days: int = 0
    path: Path | None = None


@dataclass(frozen=True)
class PostFilter:
    """Which posts a digest offers: all of them, or those matching any criterion given."""

    pillars: tuple[str, ...] = ()  # pillar slugs: posts their reading path or sections link to
    sections: tuple[str, ...] = ()  # content folders relative to content/: "posts", "posts/equipe"
    tags: tuple[str, ...] = ()  # front matter ``tags``

    @property
    def everything(self) -> bool:
        return not (self.pillars or self.sections or self.tags)


@dataclass(frozen=True)
class Digest:
    """A recurring issue gathering the posts published since the previous one."""

    slug: str  # file stem
    list: str  # the MailingList name
    title: str
    locale: str
    timezone: str  # the zone of ``cron``, or the default zone of readers for ``window``
    cron: str | None  # a crontab expression (APScheduler's CronTrigger), or None with a window
    window: SendWindow | None  # send at this local time, in each reader's zone
    posts: PostFilter
    max_posts: int = 10
    min_posts: int = 1
    since: dt.datetime | None = None  # where the first issue starts (aware); None: the list's creation
    grace: dt.timedelta = dt.timedelta(hours=6)  # a slot missed longer ago (no worker up) is not sent late
    subject: str | None = None  # Jinja source; None: the catalogue's subject
    preheader: str | None = None
    path: Path | None = None
