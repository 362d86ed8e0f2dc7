"""The subscriber-facing web app (Starlette): subscribe, confirm, unsubscribe, preferences, view, webhooks.

It works on the same store and transport as `drip run`. Everything it needs is
gathered once in :class:`~drip.web.state.WebState`; each concern's routes live in their own
module. Request handlers are async only to read the request: database and
transport work runs in the thread pool.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drip.config import Site
from drip.course.compile import load_courses
from drip.course.models import Course
from drip.runtime import Clock, Runtime, wall_clock
from drip.store.db import open_store, ping
from drip.store.retry import StoreBusy
from drip.store.subscriptions import Allowance
from drip.transports import get_transport
from drip.transports.base import Transport
from drip.web import archive, clicks, pages, preferences, subscribe, unsubscribe, view, webhooks
from drip.web.ratelimit import RateLimit, TokenBucket
from drip.web.state import WebState, state_of

log = logging.getLogger(__name__)

WEBHOOK_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
DEFAULT_COOLDOWN = dt.timedelta(minutes=10)


async def healthz(request: Request) -> Response:
    """200 when the database answers, 503 otherwise: what a load balancer probes."""
    state = state_of(request)
    try:
        await run_in_threadpool(ping, state.engine)
    except sa.exc.SQLAlchemyError:
        log.exception("health check: database unreachable")
        return PlainTextResponse("database unreachable\n", status_code=503)
    return PlainTextResponse("ok\n")


class SecurityHeaders:
    """Headers on every answer, error pages included: no script, no framing, no referrer off the site."""

    HEADERS: tuple[tuple[bytes, bytes], ...] = (
        (
            b"content-security-policy",
            b"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
            b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (b"x-content-type-options", b"nosniff"),
        # Our own origin only: a same-site form post then names it in Origin, and a link to
        # another site never carries a token in its Referer.
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in self.HEADERS if n not in present]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


_TOKEN_PATH = re.compile(r"/(confirm|unsubscribe|preferences|view|c|o)/[^/?\s\"]+")


def redact_tokens(text: str) -> str:
    """A path with every subscriber token replaced: tokens act for people, logs must not hold them."""
    return _TOKEN_PATH.sub(r"/\1/…", text)


class RedactTokens(logging.Filter):
    """Logging filter for access logs (uvicorn's ``%s`` arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        return True


class _App(Starlette):
    """Starlette with the security headers outside its error middleware, so a 500 carries them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeaders(super().build_middleware_stack())


def server_options(site: Site) -> dict[str, object]:
    """uvicorn's settings for ``web.trusted_proxies``: X-Forwarded-For is believed from those
    addresses only, and ignored altogether without the setting (every client is its peer)."""
    trusted = list(site.config.web.trusted_proxies)
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def create_app(
    site: Site,
    *,
    runtime: Runtime | None = None,
    now_fn: Clock | None = None,
    secret: str | None = None,
    engine: sa.Engine | None = None,
    courses: Mapping[str, Course] | None = None,
    transport_factory: Callable[[], Transport] | None = None,
    rate_limit: RateLimit | None = None,
    cooldown: dt.timedelta = DEFAULT_COOLDOWN,
    confirmations_per_day: int | None = None,
    webhook_public_key: str | None = None,
) -> Starlette:
    """The ASGI app for ``site``. Every argument but ``site`` has a production default.

    ``runtime`` gives the signing key, clock and render cache; without one it is built from
    ``now_fn`` (tests move the clock) and ``secret`` (default DRIP_SECRET_KEY, refusing to
    start without it). ``confirmations_per_day`` defaults to ``web.confirmations_per_day``. The webhook key defaults to SENDGRID_WEBHOOK_PUBLIC_KEY (without it
    the webhook answers 403).
    """
    if runtime is None:
        runtime = Runtime(clock=now_fn or wall_clock, _secret=secret)
    elif now_fn is not None or secret is not None:
        raise TypeError("create_app: pass the clock and key in the runtime, not beside it")
    runtime.secret  # noqa: B018 - refuse to start without a signing key, not at the first link
    state = WebState(
        site=site,
        engine=engine if engine is not None else open_store(site.database_url),
        runtime=runtime,
        courses=courses if courses is not None else load_courses(site),
        transport_factory=transport_factory or (lambda: get_transport(site)),
        limiter=TokenBucket(rate_limit or RateLimit()),
        allowance=Allowance(cooldown, confirmations_per_day or site.config.web.confirmations_per_day),
        webhook_key=webhook_public_key or os.environ.get(WEBHOOK_KEY_ENV) or None,
    )
    return _assemble(state)


def _assemble(state: WebState) -> Starlette:
    """Every concern's routes, the security headers and the error pages around one state."""
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *subscribe.routes,
        *unsubscribe.routes,
        *preferences.routes,
        *view.routes,
        *webhooks.routes,
        *clicks.routes,
        *archive.routes,
    ]
    handlers: dict[int | type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: pages.http_error,
        StoreBusy: pages.busy,
        Exception: pages.server_error,
    }
    app = _App(routes=routes, exception_handlers=handlers)
    app.state.web = state
    return app
