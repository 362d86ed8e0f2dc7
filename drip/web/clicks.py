"""GET /c/{token}: the first-party click redirect; GET /o/{token}.gif: the optional open image.

A click token names a delivery and carries an HMAC over the delivery id and the link's URL.
The URL is never read from the request: the delivery's step is rendered again (once per
process, from the render cache) and the redirect goes to the one link of that email whose
MAC matches, or nowhere (404). So /c/ is never an open redirect, and an edited or foreign
token leads nowhere. Machine traffic is recorded as such and not counted as readers:
HEAD requests, link scanners' user agents, clicks within seconds of the email's arrival,
and every link of an email clicked at once (decided in the store, which sees the others).
The click is committed before the redirect is answered; clicks arriving together share one
transaction (see :func:`drip.store.events.record_click`).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import re

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from drip.errors import DripError
from drip.store.events import Tracked, record_click, record_open, tracked_delivery
from drip.store.retry import StoreBusy
from drip.tokens import click_matches, open_matches, parse_track_token
from drip.web.state import WebState, state_of

log = logging.getLogger(__name__)

# A human opens an email and reads before clicking; scanners fetch as the message lands.
TOO_SOON = dt.timedelta(seconds=10)
_SCANNERS = re.compile(
    r"bot\b|crawler|spider|preview|scan|safelinks|microsoft office|ms-office|outlook-ios-linkscan|"
    r"barracuda|proofpoint|mimecast|symantec|forcepoint|zscaler|trend ?micro|fireeye|cisco|sophos|"
    r"python-|curl/|wget/|go-http-client|okhttp|java/|libwww|headlesschrome|facebookexternalhit|slack",
    re.IGNORECASE,
)
_BARE = {"", "mozilla/5.0"}  # Apple's Mail Privacy Protection proxy and scripts say no more than this
PIXEL = base64.b64decode("R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==")


def scanner_name(user_agent: str) -> str | None:
    """Why a user agent is a machine's (a link scanner, a prefetcher, a script), or None."""
    agent = user_agent.strip()
    if agent.lower() in _BARE:
        return "no browser named"
    found = _SCANNERS.search(agent)
    return f"scanner: {found.group(0).lower()}" if found else None


def machine_reason(request: Request, tracked: Tracked, now: dt.datetime) -> str | None:
    """Why this request is a machine's, or None when a reader may have made it."""
    if request.method == "HEAD":
        return "HEAD request"
    reason = scanner_name(request.headers.get("user-agent", ""))
    if reason is None and tracked.arrived_at is not None and now - tracked.arrived_at < TOO_SOON:
        reason = "seconds after delivery"
    return reason


def _target(state: WebState, tracked: Tracked, token: str) -> tuple[str, int] | None:
    """The URL drip wrote for this token in this delivery's email and how many links it has, or None."""
    ref = parse_track_token(token)
    course = state.courses.get(tracked.course)
    if ref is None or ref.link is None or course is None:
        return None
    try:
        rendered = state.runtime.renders(
            state.site, course, course.step(tracked.step_key), locale=tracked.locale
        )
    except DripError:
        return None
    links = rendered.links
    order = [ref.link] if 0 <= ref.link < len(links) else []
    order += [i for i in range(len(links)) if i != ref.link]  # an edited course may have moved it
    secret = state.runtime.secret
    found = next((links[i] for i in order if click_matches(secret, ref, links[i])), None)
    return None if found is None else (found, len(links))


def _follow(state: WebState, request: Request, token: str, now: dt.datetime) -> str | None:
    ref = parse_track_token(token)
    if ref is None or ref.link is None:
        return None
    tracked = tracked_delivery(state.engine, ref.delivery_id)
    if tracked is None:
        return None
    target = _target(state, tracked, token)
    if target is None:
        return None
    url, links = target
    try:
        record_click(
            state.engine,
            ref.delivery_id,
            ref.link,
            now=now,
            links=links,
            machine=machine_reason(request, tracked, now),
        )
    except StoreBusy:
        log.warning("click on delivery %d not recorded: the database stayed busy", ref.delivery_id)
    return url


async def click(request: Request) -> Response:
    state = state_of(request)
    url = await run_in_threadpool(_follow, state, request, request.path_params["token"], state.now())
    if url is None:
        raise HTTPException(404)
    return RedirectResponse(url, status_code=302)


def _opened(state: WebState, request: Request, token: str, now: dt.datetime) -> bool:
    ref = parse_track_token(token)
    if ref is None or not open_matches(state.runtime.secret, ref):
        return False
    tracked = tracked_delivery(state.engine, ref.delivery_id)
    if tracked is None:
        return False
    try:
        record_open(state.engine, ref.delivery_id, now=now, machine=machine_reason(request, tracked, now))
    except StoreBusy:
        log.warning("open of delivery %d not recorded: the database stayed busy", ref.delivery_id)
    return True


async def opened(request: Request) -> Response:
    state = state_of(request)
    if not state.site.config.tracking.opens:
        raise HTTPException(404)
    if not await run_in_threadpool(_opened, state, request, request.path_params["token"], state.now()):
        raise HTTPException(404)
    return Response(PIXEL, media_type="image/gif")


routes = [
    Route("/c/{token}", click, methods=["GET", "HEAD"]),
    Route("/o/{token}.gif", opened, methods=["GET", "HEAD"]),
]
