"""When each email of a course would leave for someone who subscribes at a given moment."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from drip.course.models import Course
from drip.course.timing import course_schedule
from drip.render.rendered import RenderedStep


@dataclass(frozen=True)
class TimelineRow:
    """One email of the course as a subscriber would receive it."""

    number: int
    key: str
    day: int
    send_at: dt.datetime  # aware, in the zone the timeline was asked for
    subject: str  # rendered with sample values
    preheader: str
    article_title: str | None


def course_timeline(
    course: Course,
    rendered: Mapping[str, RenderedStep],
    values: Mapping[str, str],
    *,
    now: dt.datetime,
    tz: ZoneInfo,
) -> list[TimelineRow]:
    """Rows in step order for a subscriber in ``tz`` who subscribes at ``now`` (aware UTC)."""
    rows: list[TimelineRow] = []
    # The same rule enrollment uses, so the timeline shows the dates emails really leave.
    dues = course_schedule(now, course.steps, course.window, tz)
    for step, due in zip(course.steps, dues, strict=True):
        step_render = rendered[step.key]
        title = step.article.title if step.article else (step.section.title if step.section else None)
        rows.append(
            TimelineRow(
                number=step.number,
                key=step.key,
                day=step.day,
                send_at=due.astimezone(tz),
                subject=step_render.subject.fill(values, escape=False),
                preheader=step_render.preheader,
                article_title=title,
            )
        )
    return rows


def course_zone(course: Course, override: str | None) -> ZoneInfo:
    """The zone a timeline is shown in: ``--timezone`` when given, else the course's."""
    return ZoneInfo(override or course.timezone)
