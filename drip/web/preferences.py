"""GET/POST /preferences/{token}: pause or resume, time zone, language, which courses and newsletters to keep.

A form without JavaScript. Invalid choices are all reported together and change
nothing; leaving a course goes through the same unsubscribe as the email link.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import available_timezones

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from drip.config import LOCALES, check_timezone
from drip.errors import did_you_mean
from drip.store import subscriptions
from drip.store.schema import SubscriberStatus
from drip.web import pages
from drip.web.body import read_form
from drip.web.origin import is_cross_site
from drip.web.state import WebState, state_of
from drip.web.subscribe import FieldProblem, list_titles, problem_text


@lru_cache(maxsize=1)
def zones() -> tuple[str, ...]:
    return tuple(sorted(z for z in available_timezones() if "/" in z or z == "UTC"))


@dataclass(frozen=True)
class CourseRef:
    slug: str
    title: str


@dataclass(frozen=True)
class Preferences:
    email: str
    status: str
    timezone: str
    locale: str
    courses: tuple[CourseRef, ...]  # the courses they are in now
    lists: tuple[CourseRef, ...] = ()  # the newsletter lists they are members of


@dataclass(frozen=True)
class Change:
    status: str | None  # None: not changeable (unsubscribed, bounced…)
    timezone: str
    locale: str
    keep: frozenset[str]
    leave_lists: frozenset[str] = frozenset()  # lists shown on the page and unticked


def load(state: WebState, subscriber_id: int) -> Preferences | None:
    """What the page shows, the site's zone and language standing in for unset ones."""
    stored = subscriptions.read_preferences(state.engine, subscriber_id)
    if stored is None:
        return None
    courses = tuple(
        CourseRef(slug, state.courses[slug].title if slug in state.courses else slug)
        for slug in stored.courses
    )
    titles = list_titles(state)
    lists = tuple(CourseRef(name, titles.get(name, name)) for name in stored.lists)
    site = state.site.config.site
    return Preferences(
        email=stored.email,
        status=stored.status,
        timezone=stored.timezone or site.timezone,
        locale=stored.locale or site.locale,
        courses=courses,
        lists=lists,
    )


def validate(form: FormData, prefs: Preferences) -> Change | list[FieldProblem]:
    problems: list[FieldProblem] = []
    status: str | None = None
    if prefs.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        status = str(form.get("status", prefs.status))
        if status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
            problems.append(
                FieldProblem(
                    "status",
                    "err_status",
                    did_you_mean(status, (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED)),
                )
            )
    zone = str(form.get("timezone", prefs.timezone)).strip()
    try:
        check_timezone(zone)
    except ValueError:
        problems.append(FieldProblem("timezone", "err_timezone", did_you_mean(zone, zones())))
    locale = str(form.get("locale", prefs.locale)).strip()
    if locale not in LOCALES:
        problems.append(FieldProblem("locale", "err_locale", did_you_mean(locale, LOCALES)))
    keep = frozenset(str(v) for v in form.getlist("keep"))
    shown = {str(v) for v in form.getlist("shown_list")}
    leave_lists = frozenset(shown - {str(v) for v in form.getlist("keep_list")})
    if problems:
        return problems
    return Change(status=status, timezone=zone, locale=locale, keep=keep, leave_lists=leave_lists)


def apply(state: WebState, subscriber_id: int, change: Change, *, now: dt.datetime) -> None:
    """Write every change in one transaction; courses not kept are left like an unsubscribe link would."""
    subscriptions.save_preferences(
        state.engine,
        subscriber_id,
        status=change.status,
        timezone=change.timezone,
        locale=change.locale,
        keep=change.keep,
        now=now,
        leave_lists=change.leave_lists,
    )


def _page(
    request: Request,
    prefs: Preferences,
    *,
    status: int = 200,
    saved: bool = False,
    problems: list[FieldProblem] | None = None,
) -> Response:
    state = state_of(request)
    locale = pages.page_locale(request, state, prefs.locale)
    return pages.render(
        request,
        "preferences.html",
        locale=locale,
        title_key="prefs_title",
        status=status,
        action=request.url.path,
        email=prefs.email,
        saved=saved,
        problems=[problem_text(p, locale) for p in problems or []],
        closed=prefs.status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED),
        current_status=prefs.status,
        zones=zones(),
        timezone=prefs.timezone,
        locales=LOCALES,
        subscriber_locale=prefs.locale,
        courses=prefs.courses,
        lists=prefs.lists,
    )


async def preferences_page(request: Request) -> Response:
    state = state_of(request)
    data = await pages.path_token(request, "preferences", now=state.now())
    if isinstance(data, Response):
        return data
    prefs = await run_in_threadpool(load, state, data.subscriber_id)
    if prefs is None:
        return pages.gone(request, pages.page_locale(request, state))
    return _page(request, prefs)


async def preferences_post(request: Request) -> Response:
    state = state_of(request)
    data = await pages.path_token(request, "preferences", now=state.now())
    if isinstance(data, Response):
        return data
    subscriber_id = data.subscriber_id
    form = await read_form(request, max_fields=200)
    if is_cross_site(request, state.site.config.site.base_url):
        raise pages.cross_site(request)
    prefs = await run_in_threadpool(load, state, subscriber_id)
    if prefs is None:
        return pages.gone(request, pages.page_locale(request, state))
    change = validate(form, prefs)
    if isinstance(change, list):
        return _page(request, prefs, status=400, problems=change)
    await run_in_threadpool(apply, state, subscriber_id, change, now=state.now())
    updated = await run_in_threadpool(load, state, subscriber_id)
    assert updated is not None
    return _page(request, updated, saved=True)


routes = [
    Route("/preferences/{token}", preferences_page, methods=["GET"]),
    Route("/preferences/{token}", preferences_post, methods=["POST"]),
]
