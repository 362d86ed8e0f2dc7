"""GET /view/{token}: one email of a course as a web page ("view in browser").

The view token names the subscriber, the course and the step, so the page shows
exactly what that person was sent, personalised, with the same escaping.
"""

from __future__ import annotations

import datetime as dt

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from drip.dispatch.personalise import subscriber_values
from drip.errors import NotFoundError
from drip.store.subscribers import SubscriberRow
from drip.store.subscriptions import find_subscriber
from drip.tokens import BadToken
from drip.web import pages
from drip.web.state import WebState, state_of


def _values(
    state: WebState, subscriber: SubscriberRow, course: str, step: str, *, now: dt.datetime
) -> dict[str, str]:
    return subscriber_values(
        state.site.config.site.base_url,
        state.runtime.secret,
        subscriber_id=subscriber.id,
        name=subscriber.name or "",
        email=subscriber.email,
        attributes=subscriber.attributes,
        course=course,
        step=step,
        now=now,
        created_at=subscriber.created_at,
    )


def render_view(
    state: WebState, subscriber_id: int, course: str, step: str, *, now: dt.datetime
) -> str | None:
    """The personalised HTML of one step, or None when the subscriber, course or step is gone."""
    found = state.courses.get(course)
    if found is None:
        return None
    try:
        step_obj = found.step(step)
    except NotFoundError:
        return None
    subscriber = find_subscriber(state.engine, subscriber_id)
    if subscriber is None:
        return None
    rendered = state.runtime.renders(state.site, found, step_obj, locale=subscriber.locale)
    _subject, html, _text = rendered.personalise(_values(state, subscriber, course, step, now=now))
    return html


async def view(request: Request) -> Response:
    state = state_of(request)
    now = state.now()
    data = await pages.path_token(request, "view", now=now)
    if isinstance(data, Response):
        return data
    if data.course is None or data.step is None:
        return pages.bad_token(request, BadToken("invalid"))
    html = await run_in_threadpool(render_view, state, data.subscriber_id, data.course, data.step, now=now)
    if html is None:
        return pages.gone(request, pages.page_locale(request, state))
    return HTMLResponse(html)


routes = [Route("/view/{token}", view, methods=["GET"])]
