"""One object built at the edge and passed down: the signing key, the clock, the consoles and the caches.

A CLI command, the web app factory or a bench script builds one :class:`Runtime`; every layer below takes
what it needs from it as arguments. Nothing in drip keeps state at module level, so two runtimes in one
process (tests, a worker and a web app) never share a cache, a warning or a terminal width.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from drip.tokens import DEMO_SECRET, SECRET_ENV, MissingSecret, check_secret

if TYPE_CHECKING:
    from rich.console import Console

    from drip.content.broadcasts import Broadcast
    from drip.course.newsletter import Newsletters
    from drip.inputs.stamps import Stamp
    from drip.render.rendered import LruCache, RenderedStep
    from drip.render.steps import RenderCache

    Definitions = tuple[Newsletters, Mapping[str, Broadcast]]

log = logging.getLogger("drip")

Clock = Callable[[], dt.datetime]
PIPE_WIDTH = 1000  # when output is not a terminal, rows stay on one line so other tools can read them


# Where nothing reaches a mailbox, the public demo key may sign links (with a warning): a laptop's outbox,
# or the memory transport of a user's tests. Everywhere else DRIP_SECRET_KEY is required.
DEMO_BACKENDS = ("outbox", "memory")


def demo_key_allowed(backend: str) -> bool:
    """Whether links may be signed with the public demo key when DRIP_SECRET_KEY is not set."""
    return backend in DEMO_BACKENDS


def wall_clock() -> dt.datetime:
    """The real time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def frozen_clock(moment: dt.datetime) -> Clock:
    """A clock stopped at ``moment`` (``--now``)."""
    return lambda: moment


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=PIPE_WIDTH)
    return console


# Renders of newsletter issues a runtime keeps: an issue's readers share a few (one per language and
# per subset of its posts a reader is left with), and a pass sends an issue or two.
ISSUE_RENDERS = 64


def keep_startup_objects() -> None:
    """Leave what is alive now (the site, its templates and courses, the database engine) out of
    every later garbage collection, once loading is done.

    Sending thousands of emails makes hundreds of collections, and each full one walked every
    object the process had loaded: a sixth of a send's CPU (bench/newsletter.py). What is kept
    here stays for the process's life anyway; call it once per process, not per tick.
    """
    gc.collect()
    gc.freeze()


@dataclass
class Runtime:
    """What one invocation of drip shares between its layers.

    ``demo_key`` says whether the public demo signing key may stand in for a missing DRIP_SECRET_KEY
    (the outbox on a laptop, ``drip serve --demo``); it is used at most once per runtime with one warning.
    """

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    clock: Clock = wall_clock
    demo_key: bool = False
    _secret: str | None = field(default=None, repr=False)
    _warned_demo: bool = field(default=False, repr=False)

    @classmethod
    def for_tests(cls, secret: str, *, clock: Clock = wall_clock) -> Runtime:
        """A runtime with a fixed key and no environment: what tests and benches build."""
        return cls(environ={}, clock=clock, _secret=check_secret(secret))

    def now(self) -> dt.datetime:
        return self.clock()

    @property
    def secret(self) -> str:
        """DRIP_SECRET_KEY; the public demo key only where ``demo_key`` allows it, with one warning."""
        key = self.quiet_secret
        if key == DEMO_SECRET and not self._warned_demo:
            self._warned_demo = True
            log.warning("%s is not set: links are signed with the public demo key", SECRET_ENV)
        return key

    @property
    def quiet_secret(self) -> str:
        """The same key under the same rule, without the demo key's warning: for keyed hashes
        (the suppression list signs no link), or where the caller says it louder (``drip serve --demo``)."""
        if self._secret is None:
            value = self.environ.get(SECRET_ENV, "")
            if value:
                self._secret = check_secret(value)
            elif self.demo_key:
                self._secret = DEMO_SECRET
            else:
                raise MissingSecret(
                    f"{SECRET_ENV} is not set: export a long random value, e.g. "
                    "`export DRIP_SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))')\"`"
                )
        return self._secret

    @property
    def uses_demo_key(self) -> bool:
        return self.quiet_secret == DEMO_SECRET

    @cached_property
    def console(self) -> Console:
        """Standard output for this invocation, sized when first used (so COLUMNS is honoured)."""
        return _console(stderr=False)

    @cached_property
    def err_console(self) -> Console:
        return _console(stderr=True)

    @cached_property
    def renders(self) -> RenderCache:
        """Each (course, step, locale) rendered once for the life of this runtime."""
        from drip.render.steps import RenderCache

        return RenderCache()

    @cached_property
    def issue_renders(self) -> LruCache[tuple[int, str, tuple[str, ...]], RenderedStep]:
        """Each newsletter issue rendered once per (issue id, locale, posts), the most recent
        :data:`ISSUE_RENDERS` kept: a worker running for months sees issue after issue."""
        from drip.render.rendered import LruCache

        return LruCache(ISSUE_RENDERS)

    @cached_property
    def newsletter_definitions(self) -> LruCache[tuple[str, Stamp], Definitions]:
        """The lists, digests and broadcast files as last read, by site and by the stamp of their
        files: a pass reads them again only when one changed (a site keeps every broadcast it sent)."""
        from drip.render.rendered import LruCache

        return LruCache(4)
