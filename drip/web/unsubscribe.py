"""Unsubscribe: RFC 8058 one-click POST, and a page to leave one course, one list or everything.

A newsletter email's token names its list (schedule names are unique, so a name is a
course or a list, never both): its one-click POST leaves that list only, and its page
offers that list (the default) or everything. A course email's one-click leaves
everything, its page offers that course or everything.

Both take effect inside the request's transaction (status or enrollment changed,
pending deliveries cancelled, leased or not) before the answer is sent; dispatch
checks the subscriber's status again at send time.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from drip.store import subscriptions
from drip.store.lists import leave_list
from drip.store.subscriptions import Contact
from drip.tokens import make_token
from drip.web import pages
from drip.web.body import read_form
from drip.web.i18n import strings
from drip.web.origin import is_cross_site
from drip.web.state import WebState, state_of
from drip.web.subscribe import list_titles

log = logging.getLogger(__name__)

ONE_CLICK = "One-Click"


def list_of(state: WebState, name: str | None) -> tuple[str, str] | None:
    """The list (name, title) a token names, or None when it names a course or nothing."""
    if name is None or name in state.courses:
        return None
    title = list_titles(state).get(name)
    return None if title is None else (name, title)


def leave(state: WebState, subscriber_id: int, course: str | None, *, now: dt.datetime) -> Contact | None:
    """Unsubscribe from ``course`` (or everything when None); the address and locale, None if erased.

    A newsletter's emails name their list where a course's name theirs: leaving it leaves
    that list only, and courses are untouched.
    """
    if list_of(state, course) is not None:
        assert course is not None
        with state.engine.begin() as conn:
            leave_list(conn, subscriber_id, course, now=now)
        return subscriptions.find_contact(state.engine, subscriber_id)
    done = subscriptions.leave(state.engine, subscriber_id, course, now=now)
    if done is None:
        return None
    if not done.was_enrolled:
        # Leaving it is already true; only the course's absence is confirmed, nothing else stops.
        log.info("unsubscribe from a course the subscriber is not in")
    return done.contact


async def unsubscribe_page(request: Request) -> Response:
    """GET: what will happen, with one button per choice (no JavaScript, no auto-action)."""
    state = state_of(request)
    data = await pages.path_token(request, "unsubscribe", now=state.now())
    if isinstance(data, Response):
        return data
    found = await run_in_threadpool(subscriptions.find_contact, state.engine, data.subscriber_id)
    if found is None:
        return pages.gone(request, pages.page_locale(request, state))
    locale = pages.page_locale(request, state, found.locale)
    course = state.courses.get(data.course) if data.course else None
    mlist = await run_in_threadpool(list_of, state, data.course)
    prefs = make_token(
        state.runtime.secret, "preferences", data.subscriber_id, born=data.born, now=state.now()
    )
    return pages.render(
        request,
        "unsubscribe.html",
        locale=locale,
        title_key="unsub_title",
        action=request.url.path,
        email=found.email,
        course_title=course.title if course else "",
        list_title=mlist[1] if mlist else "",
        preferences_url="/preferences/" + prefs,
    )


async def unsubscribe_post(request: Request) -> Response:
    """POST: RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's form."""
    state = state_of(request)
    data = await pages.path_token(request, "unsubscribe", now=state.now())
    if isinstance(data, Response):
        return data
    form = await read_form(request, max_fields=10)
    one_click = form.get("List-Unsubscribe") == ONE_CLICK
    # RFC 8058: the mail client posts from wherever it runs; the signed token is the proof.
    if not one_click and is_cross_site(request, state.site.config.site.base_url):
        raise pages.cross_site(request)
    mlist = await run_in_threadpool(list_of, state, data.course)
    chosen = form.get("scope")
    scope: Literal["course", "all"] = "all"
    if mlist is not None:  # a newsletter email: its list unless everything is asked for
        scope = "all" if chosen == "all" and not one_click else "course"
    elif chosen == "course" and data.course:
        scope = "course"
    course = data.course if scope == "course" else None
    done = await run_in_threadpool(leave, state, data.subscriber_id, course, now=state.now())
    if one_click:
        # Mail clients only look at the status; the body is for humans reading logs.
        return PlainTextResponse("unsubscribed\n")
    if done is None:
        return pages.gone(request, pages.page_locale(request, state))
    locale = pages.page_locale(request, state, done.locale)
    t = strings(locale)
    if course is None:
        text = t["unsub_done_all"]
    elif mlist is not None:
        text = t["unsub_done_list"].format(list=mlist[1])
    else:
        found_course = state.courses.get(course)
        text = t["unsub_done_course"].format(course=found_course.title if found_course else course)
    return pages.message(request, locale=locale, title_key="unsub_done_title", paragraphs=[text])


routes = [
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
]
