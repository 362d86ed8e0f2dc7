"""GET /archive/<list>/: a list's past issues as public pages, and their Atom feed.

Public copies carry no reader's personal links (see :mod:`drip.preview.archive`);
a list with ``archive: false`` has no archive, so its pages are 404 like any unknown list.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from drip.course.newsletter import load_newsletters
from drip.course.newsletter_models import MailingList
from drip.errors import InputError
from drip.render.archive import archive_index, atom_feed, public_issues
from drip.store.issues import list_issues
from drip.web.state import WebState, state_of

ATOM = "application/atom+xml; charset=utf-8"


def _archived(state: WebState, name: str) -> MailingList:
    try:
        mlist = load_newsletters(state.site).lists.get(name)
    except InputError:
        mlist = None
    if mlist is None or not mlist.archive:
        raise HTTPException(404)
    return mlist


def _page(state: WebState, name: str, slug: str | None) -> Response:
    """The archive page, the feed (slug ``feed.xml``) or one issue of the list ``name``."""
    mlist = _archived(state, name)
    now = state.now()
    with state.engine.connect() as conn:
        issues = list_issues(conn, name)
    copies = public_issues(state.site, name, issues, now=now)
    if slug is None:
        return HTMLResponse(archive_index(state.site, mlist, copies))
    if slug == "feed.xml":
        return Response(atom_feed(state.site, mlist, copies, now=now), media_type=ATOM)
    for copy in copies:
        if copy.slug == slug:
            return HTMLResponse(copy.html)
    raise HTTPException(404)


async def archive_home(request: Request) -> Response:
    name = request.path_params["list"]
    return await run_in_threadpool(_page, state_of(request), name, None)


async def archive_item(request: Request) -> Response:
    name, slug = request.path_params["list"], request.path_params["item"]
    return await run_in_threadpool(_page, state_of(request), name, slug)


async def archive_feed(request: Request) -> Response:
    return await run_in_threadpool(_page, state_of(request), request.path_params["list"], "feed.xml")


async def archive_redirect(request: Request) -> Response:
    return RedirectResponse(f"{request.url.path}/", status_code=308)


routes = [
    Route("/archive/{list}", archive_redirect, methods=["GET"]),
    Route("/archive/{list}/", archive_home, methods=["GET"]),
    Route("/archive/{list}/feed.xml", archive_feed, methods=["GET"]),
    Route("/archive/{list}/{item}/", archive_item, methods=["GET"]),
]
