"""Loading mailing lists and digests from schedules/: every mistake located, all at once.

A list::

    kind: list
    title: "La lettre du CTO"
    archive: true
    hold_during_course: wait      # wait | skip | false
    no_repeat_days: 30

A digest feeding it::

    kind: digest
    list: lettre
    cron: "0 9 * * mon"           # or send_window: {time: "09:00", days: [mon]}
    timezone: Europe/Paris
    posts: {tags: [management]}   # or "all"
    max_posts: 5
    since: 2026-09-01

Course schedules (no ``kind``, or ``kind: course``) are the course compiler's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator

from drip.config import Site, check_locale, check_timezone
from drip.content.duration import DEFAULT_GRACE, check_grace, grace_delta
from drip.course.kinds import DIGEST, LIST, files_of_kind
from drip.course.models import Sender, SendWindow
from drip.course.newsletter_models import Digest, MailingList, PostFilter
from drip.course.schedule import MessageModel, SenderModel, WindowModel
from drip.errors import InputError, Problem, ScheduleError, did_you_mean
from drip.inputs.yamlfile import Positions, load_yaml_file, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _hold(value: Any) -> Any:
    if value in ("wait", "skip", False):
        return value
    hint = did_you_mean(str(value), ("wait", "skip", "false"))
    raise ValueError(f"expected wait, skip or false, got {value!r}" + (f" ({hint})" if hint else ""))


def _names(value: Any) -> Any:
    """One name or a list of names."""
    return [value] if isinstance(value, str) else value


class ListModel(_Strict):
    kind: Literal["list"]
    title: str
    description: str = ""
    locale: str | None = None
    timezone: str | None = None
    sender: SenderModel | None = None
    archive: bool = False
    hold_during_course: Literal["wait", "skip", False] = False
    no_repeat_days: int = Field(default=0, ge=0, le=3650)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: None if v is None else check_timezone(v)))
    _locale = field_validator("locale")(classmethod(lambda cls, v: None if v is None else check_locale(v)))
    _hold = field_validator("hold_during_course", mode="before")(classmethod(lambda cls, v: _hold(v)))


class PostsModel(_Strict):
    pillars: list[str] = Field(default_factory=list)
    sections: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    _lists = field_validator("pillars", "sections", "tags", mode="before")(
        classmethod(lambda cls, v: _names(v))
    )


def _posts(value: Any) -> Any:
    if value is None or value == "all":
        return {}
    if isinstance(value, dict):
        return value
    raise ValueError(f'expected "all", or a mapping of pillars/sections/tags, got {value!r}')


def _cron(value: str | None) -> str | None:
    """A crontab line APScheduler accepts (minute hour day month weekday), checked where it is written."""
    if value is not None:
        try:
            CronTrigger.from_crontab(value, timezone=ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(f"not a valid cron expression: {exc}") from None
    return value


class DigestModel(MessageModel):
    kind: Literal["digest"]
    list: str
    title: str | None = None
    cron: str | None = None
    timezone: str | None = None
    send_window: WindowModel | None = None
    posts: PostsModel = Field(default_factory=PostsModel)
    max_posts: int = Field(default=10, ge=1, le=100)
    min_posts: int = Field(default=1, ge=1, le=100)
    since: dt.datetime | dt.date | None = None
    grace: str = DEFAULT_GRACE

    _tz = field_validator("timezone")(classmethod(lambda cls, v: None if v is None else check_timezone(v)))
    _cron = field_validator("cron")(classmethod(lambda cls, v: _cron(v)))
    _posts = field_validator("posts", mode="before")(classmethod(lambda cls, v: _posts(v)))
    _grace = field_validator("grace")(classmethod(lambda cls, v: check_grace(v)))


@dataclass(frozen=True)
class Newsletters:
    """Every list and digest of a site, by name."""

    lists: dict[str, MailingList] = field(default_factory=dict)
    digests: dict[str, Digest] = field(default_factory=dict)


def _read(path: Path, model: type[Any]) -> tuple[Any, Positions | None, list[Problem]]:
    try:
        data, pos = load_yaml_file(path)
    except InputError as exc:
        return None, None, list(exc.problems)
    if not isinstance(data, dict):
        return None, pos, [pos.problem((), "expected a mapping of settings at the top level")]
    found, problems = validate(model, data, pos)
    return found, pos, [*problems, *pos.repeated]


def read_list(path: Path, site: Site) -> tuple[MailingList | None, list[Problem]]:
    """One ``kind: list`` file, with the site's locale, zone and sender as defaults."""
    model, _, problems = _read(path, ListModel)
    if model is None:
        return None, problems
    cfg = site.config
    given = model.sender or SenderModel()
    return MailingList(
        name=path.stem,
        title=model.title,
        description=model.description,
        locale=model.locale or cfg.site.locale,
        timezone=model.timezone or cfg.site.timezone,
        sender=Sender(
            name=given.name or cfg.sender.name,
            email=given.email or cfg.sender.email,
            reply_to=given.reply_to or cfg.sender.reply_to,
        ),
        archive=model.archive,
        hold_during_course=model.hold_during_course,
        no_repeat_days=model.no_repeat_days,
        path=path,
    ), problems


def _since(value: dt.datetime | dt.date | None, zone: str) -> dt.datetime | None:
    """A date starts at midnight in the digest's zone; a time without offset is read in it too."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


def read_digest(
    path: Path, lists: dict[str, MailingList], broken: frozenset[str] = frozenset()
) -> tuple[Digest | None, list[Problem]]:
    """One ``kind: digest`` file; its list must exist (closest name suggested), and it needs one timing.

    A list whose own file has mistakes (``broken``) exists: those mistakes are reported there.
    """
    model, pos, problems = _read(path, DigestModel)
    if model is None or pos is None:
        return None, problems
    owner = lists.get(model.list)
    if owner is None and model.list not in broken:
        known = ", ".join(lists) or "none"
        message = f"no list {model.list!r} in schedules/ (lists: {known}); a list is a file with `kind: list`"
        problems.append(pos.problem(("list",), message, hint=did_you_mean(model.list, lists)))
    if (model.cron is None) == (model.send_window is None):
        problems.append(pos.problem((), "set either `cron` or `send_window`, not both nor neither"))
    if model.min_posts > model.max_posts:
        problems.append(
            pos.problem(
                ("min_posts",), f"min_posts ({model.min_posts}) exceeds max_posts ({model.max_posts})"
            )
        )
    if owner is None or problems:
        return None, problems
    zone = model.timezone or owner.timezone
    window = model.send_window
    return Digest(
        slug=path.stem,
        list=owner.name,
        title=model.title or owner.title,
        locale=owner.locale,
        timezone=zone,
        cron=model.cron,
        window=SendWindow(time=window.time, weekdays=window.days) if window else None,
        posts=PostFilter(tuple(model.posts.pillars), tuple(model.posts.sections), tuple(model.posts.tags)),
        max_posts=model.max_posts,
        min_posts=model.min_posts,
        since=_since(model.since, zone),
        grace=grace_delta(model.grace),
        subject=model.subject,
        preheader=model.preheader,
        path=path,
    ), problems


def read_newsletters(site: Site) -> tuple[Newsletters, list[Problem]]:
    """Every list and digest that loads, and the problems of those that do not."""
    problems: list[Problem] = []
    lists: dict[str, MailingList] = {}
    list_files = files_of_kind(site.schedules_dir, LIST)
    for name, path in list_files.items():
        found, issues = read_list(path, site)
        problems.extend(issues)
        if found is not None and not issues:
            lists[name] = found
    broken = frozenset(list_files) - set(lists)
    digests: dict[str, Digest] = {}
    for name, path in files_of_kind(site.schedules_dir, DIGEST).items():
        digest, issues = read_digest(path, lists, broken)
        problems.extend(issues)
        if digest is not None:
            digests[name] = digest
    return Newsletters(lists, digests), problems


def load_newsletters(site: Site) -> Newsletters:
    """Every list and digest; one ScheduleError carries the problems of all files at once."""
    found, problems = read_newsletters(site)
    if problems:
        raise ScheduleError(problems)
    return found
