"""What every request handler needs, built once by the app factory and read through :func:`state_of`.

It lives apart from the app so route modules can use it without importing the
module that assembles them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from starlette.requests import Request

from drip.config import Site
from drip.course.models import Course
from drip.runtime import Runtime
from drip.store.subscriptions import Allowance
from drip.transports.base import Transport
from drip.web.ratelimit import TokenBucket


@dataclass(frozen=True)
class WebState:
    """The site, its store and courses, and the runtime (signing key, clock, render cache)."""

    site: Site
    engine: sa.Engine
    runtime: Runtime
    courses: Mapping[str, Course]
    transport_factory: Callable[[], Transport]
    limiter: TokenBucket
    allowance: Allowance  # confirmation emails one mailbox may get
    webhook_key: str | None

    def now(self) -> dt.datetime:
        return self.runtime.now().astimezone(dt.UTC)

    def url(self, path: str) -> str:
        """An absolute link on the site's public base URL."""
        return self.site.config.site.base_url + path


def state_of(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state
