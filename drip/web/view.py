"""GET /view/{token}: one email of a course as a web page ("view in browser").

The view token names the subscriber, the course and the step, so the page shows
exactly what that person was sent, personalised, with the same escaping.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from drip.dispatch.personalise import subscriber_values
from drip.errors import NotFoundError
from drip.render.steps import RenderCache
from drip.store.schema import subscribers
from drip.tokens import BadToken
from drip.web import pages
from drip.web.app import WebState, state_of

_rendered = RenderCache()


def _values(
    state: WebState, row: sa.RowMapping, course: str, step: str, *, now: dt.datetime
) -> dict[str, str]:
    return subscriber_values(
        state.site.config.site.base_url,
        state.secret,
        subscriber_id=row["id"],
        name=row["name"] or "",
        email=row["email"],
        attributes=row["attributes"] or {},
        course=course,
        step=step,
        now=now,
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
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    if row is None:
        return None
    rendered = _rendered(state.site, found, step_obj, locale=row._mapping["locale"])
    _subject, html, _text = rendered.personalise(_values(state, row._mapping, course, step, now=now))
    return html


async def view(request: Request) -> Response:
    state = state_of(request)
    now = state.now()
    data = pages.path_token(request, "view", now=now)
    if isinstance(data, Response):
        return data
    if data.course is None or data.step is None:
        return pages.bad_token(request, BadToken("invalid"))
    html = await run_in_threadpool(render_view, state, data.subscriber_id, data.course, data.step, now=now)
    if html is None:
        return pages.gone(request, pages.page_locale(request, state))
    return HTMLResponse(html)


routes = [Route("/view/{token}", view, methods=["GET"])]
