"""HTML pages: one Jinja environment with autoescape, localised, the same frame everywhere.

Every value that reaches a page goes through Jinja's autoescape; user input is
only ever a template *value*, never template source.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from drip.store.retry import StoreBusy
from drip.store.subscriptions import subscriber_created_at
from drip.tokens import BadToken, Scope, TokenData, born_of, read_token
from drip.web.i18n import negotiate, strings
from drip.web.state import WebState, state_of

log = logging.getLogger(__name__)

env = Environment(
    loader=PackageLoader("drip.web", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    undefined=StrictUndefined,
    trim_blocks=False,
)
# The plain-text email is not HTML: escaping it would show "&lt;" to the reader.
text_env = Environment(
    loader=PackageLoader("drip.web", "templates"),
    autoescape=False,  # noqa: S701 - plain text, never served as HTML
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def page_locale(request: Request, state: WebState, preferred: str | None = None) -> str:
    """The subscriber's locale when known, else the browser's, else the site's."""
    return negotiate(
        request.headers.get("accept-language"), preferred=preferred, default=state.site.config.site.locale
    )


def render(
    request: Request,
    template: str,
    *,
    locale: str,
    title_key: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A full page in ``locale``; ``title_key`` names the heading in the strings table."""
    state = state_of(request)
    t = strings(locale)
    html = env.get_template(template).render(
        locale=locale,
        t=t,
        title=t[title_key],
        site_name=state.site.config.site.name,
        postal_address=state.site.config.postal_address,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def message(
    request: Request,
    *,
    locale: str,
    title_key: str,
    paragraphs: list[str],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    link: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A page with a heading and a few sentences: confirmations, notices and errors."""
    return render(
        request,
        "message.html",
        locale=locale,
        title_key=title_key,
        status=status,
        headers=headers,
        paragraphs=paragraphs,
        link=link,
    )


def bad_token(request: Request, exc: BadToken) -> HTMLResponse:
    """400 with a page saying why the link is refused, in the browser's language."""
    locale = page_locale(request, state_of(request))
    return message(
        request,
        locale=locale,
        title_key="error_title",
        paragraphs=[strings(locale)[f"token_{exc.reason}"]],
        status=400,
    )


async def path_token(request: Request, scope: Scope, *, now: dt.datetime) -> TokenData | HTMLResponse:
    """The signed token in the URL checked for ``scope``, or the page saying why it is refused.

    A token bound to a subscriber's row (its creation time) is refused as no longer valid once that
    row is gone, even if its id were ever handed out again.
    """
    state = state_of(request)
    try:
        data = read_token(state.runtime.secret, request.path_params["token"], scope, now=now)
    except BadToken as exc:
        return bad_token(request, exc)
    if data.born is not None:
        created = await run_in_threadpool(subscriber_created_at, state.engine, data.subscriber_id)
        if created is None or born_of(created) != data.born:
            return gone(request, page_locale(request, state))
    return data


def gone(request: Request, locale: str) -> HTMLResponse:
    """The token is genuine but its subscriber was erased."""
    return message(
        request,
        locale=locale,
        title_key="error_title",
        paragraphs=[strings(locale)["token_gone"]],
        status=400,
    )


# Error statuses with a page of their own: (title, body) keys in the strings table.
_ERROR_PAGES = {
    403: ("origin_title", "origin_body"),
    404: ("not_found_title", "not_found_body"),
    413: ("too_large_title", "too_large_body"),
    503: ("busy_title", "busy_body"),
}


def cross_site(request: Request) -> HTTPException:
    """What a handler raises for a form posted from another site: a 403 page saying so."""
    log.warning("%s %s refused: posted from another origin", request.method, request.url.path.split("/")[1])
    return HTTPException(403)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    locale = page_locale(request, state_of(request))
    if exc.status_code in _ERROR_PAGES:
        title_key, body_key = _ERROR_PAGES[exc.status_code]
        return message(
            request,
            locale=locale,
            title_key=title_key,
            paragraphs=[strings(locale)[body_key]],
            status=exc.status_code,
            headers=exc.headers,
        )
    return HTMLResponse(
        f'<!doctype html><html lang="{locale}"><title>{exc.status_code}</title><p>{exc.status_code}</p></html>',
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


async def server_error(request: Request, exc: Exception) -> Response:
    """A plain 500 page; the details go to the log, never to the visitor."""
    log.error(
        "unhandled error on %s %s: %s", request.method, request.url.path.split("/")[1], type(exc).__name__
    )
    return HTMLResponse(
        '<!doctype html><html lang="en"><title>500</title><p>Internal error</p></html>', status_code=500
    )


async def busy(request: Request, exc: Exception) -> Response:
    """The database stayed locked past the write deadline: 503 and when to try again, never a 500."""
    assert isinstance(exc, StoreBusy)
    log.warning("%s %s: database busy past the deadline", request.method, request.url.path.split("/")[1])
    return await http_error(request, HTTPException(503, headers={"Retry-After": str(exc.retry_after)}))
