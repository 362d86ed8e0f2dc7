"""The preview web page: every course, every email at desktop and phone widths, its text and timeline.

Pages are rendered on each request, so an author edits a pillar, a schedule or a
template and reloads. Email HTML is served on its own URL, shown in sandboxed
iframes with a Content-Security-Policy that allows no script; every value that
enters the pages is escaped by Jinja's autoescape. What only some pages need (the course compiler,
email rendering, the timeline, newsletters, the store) is imported by those pages, so the app starts
without it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from drip.errors import InputError, NotFoundError

if TYPE_CHECKING:
    import sqlalchemy as sa
    import uvicorn

    from drip.config import Site
    from drip.course.models import Course
    from drip.store.events import StepFigures

TEMPLATES = Path(__file__).parent / "templates"
FRAMES = (("Desktop", 600), ("Mobile", 375))
EMAIL_CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; font-src https: data:; "
    "base-uri 'none'; form-action 'none'"
)
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; img-src 'self' data:; base-uri 'none'"
)


def page_environment() -> Environment:
    """The Jinja environment of the preview pages (not of the emails): autoescaped everywhere."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _course_summary(slug: str, course: Course) -> dict[str, Any]:
    return {
        "slug": slug,
        "title": course.title,
        "emails": len(course.steps),
        "pillar": course.pillar.title,
        "locale": course.locale,
        "timezone": course.timezone,
        "days": course.steps[-1].day if course.steps else 0,
        "problems": [],
    }


def newsletter_summary(site: Site) -> dict[str, Any]:
    """Lists with their digests and broadcasts for the index, or the problems that stop them loading."""
    from drip.render.archive import newsletters_of

    try:
        found, broadcasts = newsletters_of(site)
    except InputError as exc:
        return {"lists": [], "problems": [str(p) for p in exc.problems]}
    lists = [
        {
            "name": name,
            "title": mlist.title,
            "digests": [d for d, digest in found.digests.items() if digest.list == name],
            "broadcasts": [b for b, broadcast in broadcasts.items() if broadcast.list == name],
        }
        for name, mlist in found.lists.items()
    ]
    return {"lists": lists, "problems": []}


@dataclass
class PreviewPages:
    """The preview's three pages for one site; each app owns its own and its page templates."""

    site: Site
    clock: Callable[[], dt.datetime]
    timezone: str | None = None
    env: Environment = field(default_factory=page_environment)

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": PAGE_CSP})

    def problems_page(self, title: str, exc: InputError, status: int) -> HTMLResponse:
        problems = [str(p) for p in exc.problems]
        return self.page(
            "error.html", status=status, site=self.site.config.site, title=title, problems=problems
        )

    async def index(self, request: Request) -> Response:
        from drip.course.compile import compile_course, course_slugs

        courses: list[dict[str, Any]] = []
        for slug in course_slugs(self.site):
            try:
                courses.append(_course_summary(slug, compile_course(self.site, slug)))
            except InputError as exc:
                courses.append({"slug": slug, "problems": [str(p) for p in exc.problems]})
        return self.page(
            "index.html",
            site=self.site.config.site,
            courses=courses,
            newsletters=newsletter_summary(self.site),
        )

    async def newsletter_html(self, request: Request) -> Response:
        """The next issue of a digest or broadcast, with sample personal values."""
        from drip.preview.next_issue import find_newsletter, next_issue, sample_values

        try:
            item = find_newsletter(self.site, request.path_params["name"])
            upcoming = next_issue(self.site, item, self.clock())
        except NotFoundError as exc:
            return self.problems_page("Not found", exc, 404)
        except InputError as exc:
            return self.problems_page("The newsletter does not render", exc, 422)
        if upcoming.rendered is None:
            return self.page(
                "error.html",
                site=self.site.config.site,
                title=f"No issue at {upcoming.send_at.isoformat()}",
                problems=[f"too few posts ({len(upcoming.posts)})"],
            )
        _, html, _ = upcoming.rendered.personalise(sample_values(self.site, item.mlist))
        return HTMLResponse(
            html,
            headers={"Content-Security-Policy": EMAIL_CSP, "X-Content-Type-Options": "nosniff"},
        )

    async def course_page(self, request: Request) -> Response:
        from drip.preview.emails import compile_for_preview, preview_course
        from drip.preview.timeline import course_timeline, course_zone
        from drip.render.steps import sample_values

        site, slug = self.site, request.path_params["slug"]
        try:
            course = compile_for_preview(site, slug)
            values = sample_values(site, course)
            rendered, previews = preview_course(site, course, values)
            zone = course_zone(course, self.timezone)
            start = self.clock()
            rows = course_timeline(course, rendered, values, now=start, tz=zone)
        except NotFoundError as exc:
            return self.problems_page("Unknown course", exc, 404)
        except InputError as exc:
            return self.problems_page(f"Course {slug} does not compile", exc, 422)
        return self.page(
            "course.html",
            site=site.config.site,
            course=course,
            emails=list(zip(rows, previews, strict=True)),
            frames=FRAMES,
            start=start.astimezone(zone),
            zone=str(zone),
        )

    async def email_html(self, request: Request) -> Response:
        from drip.course.compile import compile_course
        from drip.render.steps import render_step, sample_values

        site, slug = self.site, request.path_params["slug"]
        try:
            course = compile_course(site, slug)
            step = course.step(request.path_params["number"])
            _, html, _ = render_step(site, course, step).personalise(sample_values(site, course))
        except NotFoundError as exc:
            return self.problems_page("Not found", exc, 404)
        except InputError as exc:
            return self.problems_page(f"Course {slug} does not compile", exc, 422)
        return HTMLResponse(
            html,
            headers={"Content-Security-Policy": EMAIL_CSP, "X-Content-Type-Options": "nosniff"},
        )

    async def stats_page(self, request: Request) -> Response:
        """The funnel of a course as inline SVG bars and a table: what `drip stats` prints."""
        from starlette.concurrency import run_in_threadpool

        from drip.course.compile import compile_course
        from drip.store.events import report_rows

        site, slug = self.site, request.path_params["slug"]
        try:
            course = compile_course(site, slug)
        except NotFoundError as exc:
            return self.problems_page("Unknown course", exc, 404)
        except InputError as exc:
            return self.problems_page(f"Course {slug} does not compile", exc, 422)
        keys = [s.key for s in course.steps]
        rows, empty = await run_in_threadpool(_funnel_rows, site, slug, lambda f: report_rows(f, keys))
        return self._stats(slug, "step", rows, empty)

    async def list_stats_page(self, request: Request) -> Response:
        """The funnel of a newsletter list, issue by issue: what `drip stats LIST` prints."""
        from starlette.concurrency import run_in_threadpool

        from drip.course.newsletter import load_newsletters
        from drip.errors import Problem, did_you_mean
        from drip.store.events import issue_rows
        from drip.store.issues import ISSUE_PREFIX

        name = request.path_params["name"]
        try:
            lists = load_newsletters(self.site).lists
        except InputError as exc:
            return self.problems_page("The newsletters do not load", exc, 422)
        if name not in lists:
            missing = NotFoundError(Problem(f"no list {name!r}", hint=did_you_mean(name, list(lists))))
            return self.problems_page("Unknown list", missing, 404)
        rows, empty = await run_in_threadpool(
            _funnel_rows, self.site, name, lambda f: issue_rows(f, ISSUE_PREFIX)
        )
        return self._stats(name, "issue", rows, empty)

    def _stats(self, name: str, label: str, rows: list[dict[str, object]], empty: str | None) -> HTMLResponse:
        top = max([int(str(r["sent"])) for r in rows] + [1])
        return self.page(
            "stats.html", site=self.site.config.site, slug=name, column=label, rows=rows, top=top, empty=empty
        )


def _funnel_rows(
    site: Site, name: str, shape: Callable[[dict[str, StepFigures]], list[dict[str, object]]]
) -> tuple[list[dict[str, object]], str | None]:
    """The funnel of course or list ``name`` from the site's store, opened read-only, in ``shape``'s
    rows: ``(rows, None)``, or ``([], why there are no figures)``. Previewing never creates a
    database nor moves its schema: sending does that."""
    import sqlalchemy as sa

    from drip.errors import DripError
    from drip.store.db import current_revisions, head_revisions, store_failure
    from drip.store.events import funnel

    try:
        engine = read_only_store(site.database_url)
    except DripError as exc:
        return [], str(exc)
    if engine is None:
        return [], "No figures yet: nothing has been sent (the site has no database yet)."
    try:
        current = current_revisions(engine)
        if not current:
            return [], "No figures yet: nothing has been sent (the database has no drip tables yet)."
        if current != head_revisions():
            return [], (
                f"The database is at revision {', '.join(sorted(current))}, not the one this drip reads: "
                "figures show once it is upgraded (`drip db upgrade`, or the next send)."
            )
        return shape(funnel(engine, name)), None
    except sa.exc.DBAPIError as exc:
        return [], str(store_failure(engine.url, exc, "read"))
    finally:
        engine.dispose()


def read_only_store(url: str) -> sa.Engine | None:
    """An engine that reads the store at ``url`` and cannot write it; None for a SQLite file that does
    not exist (opening it would create it). No migration runs: see :func:`drip.store.db.open_store`."""
    import sqlite3
    from urllib.parse import quote

    import sqlalchemy as sa

    from drip.store.db import connect, normalise_url

    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return connect(url).execution_options(postgresql_readonly=True)
    database = parsed.database
    if not database or database == ":memory:" or not Path(database).is_file():
        return None
    uri = f"file:{quote(str(Path(database).resolve()))}?mode=ro"
    return sa.create_engine(
        "sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)
    )


def create_app(
    site: Site,
    *,
    now: dt.datetime | None = None,
    timezone: str | None = None,
    clock: Callable[[], dt.datetime] | None = None,
) -> Starlette:
    """The preview app for ``site``; the timeline starts at ``now`` (aware UTC) or the clock's time."""

    def current() -> dt.datetime:
        if now is not None:
            return now
        return clock() if clock is not None else dt.datetime.now(dt.UTC)

    pages = PreviewPages(site, current, timezone)
    return Starlette(
        routes=[
            Route("/", pages.index),
            Route("/courses/{slug}/", pages.course_page),
            Route("/courses/{slug}/emails/{number:int}.html", pages.email_html),
            Route("/courses/{slug}/stats", pages.stats_page),
            Route("/newsletters/{name}.html", pages.newsletter_html),
            Route("/lists/{name}/stats", pages.list_stats_page),
        ]
    )


class PreviewServer:
    """uvicorn serving the preview app in a background thread; for tests and ``--serve``."""

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server: uvicorn.Server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        sockets = [s for server in self.server.servers for s in server.sockets]
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> str:
        """Start serving and wait until the socket listens; returns the base URL."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the preview server did not start")
            pause.wait(0.01)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
