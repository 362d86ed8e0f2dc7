"""Render a course's steps: Jinja → MJML → HTML (+ text), once per step and locale.

The output is a :class:`~drip.render.rendered.RenderedStep` whose subject, HTML
and text still hold the per-subscriber slots; personalising one email is then
a string join (design decision 3). Every content link is made absolute and
tagged with UTM parameters naming the course and the step.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

from drip.config import Site
from drip.content.links import absolute_url, add_utm
from drip.content.models import Article, Link
from drip.course.models import Course, Step
from drip.errors import Problem, TemplateError
from drip.render import mjml as mjml_compiler
from drip.render.i18n import Messages, messages
from drip.render.rendered import RenderedStep
from drip.render.slots import split
from drip.render.templates import (
    SlotRecorder,
    Subscriber,
    check_templates,
    environment,
    render,
    render_string,
)
from drip.render.text import tidy

UTM_SOURCE = "drip"
UTM_MEDIUM = "email"
SAMPLE_TOKEN = "preview-token"  # placeholder where a signed token goes in real emails
CLICK_SLOT = "click."  # + the link's index: filled per delivery with its /c/ link
OPEN_SLOT = "open_pixel"  # filled per delivery with its /o/ image; a blank image elsewhere
BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw=="

_SPACES = re.compile(r"\s+")
_MAX_COURSES = 256


def _paragraphs(text: str | None) -> list[str]:
    """Plain text split on blank lines, each paragraph on one line."""
    if not text:
        return []
    return [_SPACES.sub(" ", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


class _Linker:
    """Absolute URLs for the links of one step: UTM-tagged, and through /c/ when clicks are tracked.

    UTM tags go on the site's own links only (``tracking.utm.external`` tags every web link).
    With ``tracking.clicks``, each distinct link becomes a slot ``click.<n>`` whose default is
    the link itself (previews, "view in browser") and which dispatch fills with the signed /c/
    link of each delivery; the list of links is kept in the rendered step for /c/ to find.
    """

    def __init__(self, site: Site, course: Course, step: Step, recorder: SlotRecorder) -> None:
        self.base_url = site.config.site.base_url
        self.campaign = course.slug
        self.content = step.key
        tracking = site.config.tracking
        self.tag_external = tracking.utm.external
        self.recorder = recorder if tracking.clicks else None
        self.links: list[str] = []
        self._host = urlsplit(self.base_url).netloc.lower()

    def __call__(self, url: str) -> str:
        target = absolute_url(url, self.base_url)
        if self.tag_external or urlsplit(target).netloc.lower() == self._host:
            target = add_utm(
                target, source=UTM_SOURCE, medium=UTM_MEDIUM, campaign=self.campaign, content=self.content
            )
        if self.recorder is None or urlsplit(target).scheme.lower() not in ("http", "https"):
            return target
        if target not in self.links:
            self.links.append(target)
        return self.recorder.marker_for(f"{CLICK_SLOT}{self.links.index(target)}", target)


class _Card:
    """A link as templates see it; its tracked URL is built only if a template uses it."""

    def __init__(
        self,
        track: _Linker,
        href: str,
        title: str,
        *,
        description: str | None = None,
        label: str | None = None,
        minutes: int | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self._track = track
        self._href = href
        self.title = title
        self.description = description
        self.label = label
        self.minutes = minutes
        self.notes = list(notes)

    @functools.cached_property
    def url(self) -> str:
        return self._track(self._href)


def _article_card(article: Article, track: _Linker) -> _Card:
    return _Card(
        track,
        article.url,
        article.title,
        description=article.description,
        label=article.label,
        minutes=article.minutes,
        notes=article.notes,
    )


def _link_card(link: Link, track: _Linker, *, label: str | None = None) -> _Card:
    return _Card(track, link.url, link.text, description=link.description, label=label)


class _Links:
    """Fixed links of every email (site home, the pillar page), tracked on first use."""

    def __init__(self, track: _Linker, home: str, pillar: str) -> None:
        self._track = track
        self._home = home
        self._pillar = pillar

    @functools.cached_property
    def home(self) -> str:
        return self._track(self._home)

    @functools.cached_property
    def pillar(self) -> str:
        return self._track(self._pillar)


def _step_title(step: Step, closing_title: str) -> str:
    if step.article is not None:
        return step.article.title
    if step.section is not None:
        return step.section.title
    return closing_title


def _cadence(steps: Iterable[Step]) -> int | None:
    """The usual number of days between emails, when there is one."""
    days = [s.day for s in steps]
    gaps = [b - a for a, b in itertools.pairwise(days) if b > a]
    if not gaps:
        return None
    return max(set(gaps), key=lambda g: (gaps.count(g), -g))


def course_context(site: Site, course: Course, locale: str, env: jinja2.Environment) -> dict[str, Any]:
    """What a template sees that is the same for every step of a course: built once per course render."""
    t = messages(locale)
    pillar = course.pillar
    return {
        "locale": locale,
        "t": t,
        "theme": env.get_template("theme.j2").module,
        "site": {
            "name": site.config.site.name,
            "base_url": site.config.site.base_url,
            "postal_address": site.config.postal_address,
        },
        "course": {"slug": course.slug, "title": course.title_in(locale), "sender": course.sender.name},
        "pillar": {
            "title": pillar.title,
            "description": pillar.description,
            "intro_paragraphs": _paragraphs(pillar.intro),
        },
        "plan": [
            {"day": s.day, "title": _step_title(s, t("closing_title")), "kind": s.kind}
            for s in course.steps
            if s.kind != "welcome"
        ],
        "cadence": _cadence(s for s in course.steps if s.kind != "welcome"),
        "deeper_paragraphs": _paragraphs(pillar.deeper_text),
    }


def _context(
    site: Site, course: Course, step: Step, shared: dict[str, Any], recorder: SlotRecorder, track: _Linker
) -> dict[str, Any]:
    """Everything a template may use. Only ``subscriber`` (and ``name``) vary per reader: as slots."""
    t: Messages = shared["t"]
    subscriber = Subscriber(recorder)
    section: dict[str, Any] | None = None
    if step.section is not None:
        section = {
            "title": step.section.title,
            "slug": step.section.slug,
            "paragraphs": _paragraphs(step.section.text),
            "articles": [_article_card(a, track) for a in step.section_articles],
        }
    deeper = [
        _link_card(link, track, label=t("closing_deeper") if i == 0 else None)
        for i, link in enumerate(course.deeper)
    ]
    return {
        **shared,
        "step": {
            "key": step.key,
            "kind": step.kind,
            "number": step.number,
            "day": step.day,
            "total": len(course.steps),
        },
        "links": _Links(track, site.config.site.base_url + "/", course.pillar.url),
        "article": _article_card(step.article, track) if step.article is not None else None,
        "section": section,
        "deeper": deeper,
        "others": [_link_card(link, track) for link in course.other_pillars],
        "subscriber": subscriber,
        "name": subscriber("name"),
    }


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


class _Draft:
    """One step rendered through Jinja, markers still in: the input of MJML and of the text part."""

    def __init__(
        self, site: Site, course: Course, step: Step, locale: str | None, shared: dict[str, Any] | None = None
    ) -> None:
        self.locale = course.email_locale(locale)
        self.env = environment(site.templates_dir)
        self.recorder = SlotRecorder()
        self.step = step
        if shared is None or shared["locale"] != self.locale:
            shared = course_context(site, course, self.locale, self.env)
        self.linker = _Linker(site, course, step, self.recorder)
        context = _context(site, course, step, shared, self.recorder, self.linker)
        where = course.schedule_path
        subject, preheader = step.texts(self.locale)
        self.subject = _one_line(
            render_string(self.env, subject, context, what="subject", file=where, key=f"{step.key}.subject")
        )
        self.preheader = _one_line(
            render_string(
                self.env, preheader, context, what="preheader", file=where, key=f"{step.key}.preheader"
            )
        )
        context["subject"] = self.subject
        context["preheader"] = self.preheader
        self.mjml = render(self.env, f"{step.kind}.mjml", context, key=step.key)
        self.text = tidy(render(self.env, f"{step.kind}.txt", context, key=step.key))

    def template_path(self, suffix: str) -> Path | None:
        try:
            _, filename, _ = self.env.loader.get_source(self.env, f"{self.step.kind}.{suffix}")  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            return None
        return Path(filename) if filename else None

    def html(self) -> str:
        """The compiled HTML; the rendered MJML is linted first, since only it shows how the parts nest."""
        problems = mjml_compiler.lint(self.mjml)
        if problems:
            raise TemplateError([self._rendered_problem(p, "MJML is not valid") for p in problems])
        try:
            return mjml_compiler.to_html(self.mjml)
        except ValueError as exc:
            raise TemplateError(self._rendered_problem(Problem(str(exc)), "MJML does not compile")) from None

    def _rendered_problem(self, problem: Problem, what: str) -> Problem:
        """A problem of the rendered MJML, pinned on the step's template (its line is the output's)."""
        message = f"{what}: {problem.message}"
        if problem.line:
            message += f" at line {problem.line} of the rendered MJML"
        return Problem(message, file=self.template_path("mjml"), key=self.step.key, hint=problem.hint)


def render_step(site: Site, course: Course, step: Step, *, locale: str | None = None) -> RenderedStep:
    """Compile one step for a reader of ``locale``: subject, HTML and text with open slots.

    The email is in the reader's locale when the course speaks it (its schedule gives every step's
    subject and preheader in it), else wholly in the course's: one language per email.
    """
    check_templates(environment(site.templates_dir))
    return _render_checked(site, course, step, locale)


def _render_checked(
    site: Site, course: Course, step: Step, locale: str | None, shared: dict[str, Any] | None = None
) -> RenderedStep:
    draft = _Draft(site, course, step, locale, shared)
    html = draft.html()
    if site.config.tracking.opens:
        html = _with_pixel(html, draft.recorder.marker_for(OPEN_SLOT, BLANK_GIF))
    slots = draft.recorder.slots
    preheader = split(draft.preheader, slots).fill({}, escape=False)
    return RenderedStep(
        course=course.slug,
        step_key=step.key,
        locale=draft.locale,
        subject=split(draft.subject, slots),
        preheader=preheader,
        html=split(html, slots),
        text=split(draft.text, slots),
        links=tuple(draft.linker.links),
    )


def _with_pixel(html: str, src: str) -> str:
    """The open pixel at the end of the body: a 1x1 image that layout and readers never see."""
    pixel = (
        f'<img src="{src}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'
    )
    at = html.rfind("</body>")
    return html + pixel if at < 0 else html[:at] + pixel + html[at:]


def render_course(site: Site, course: Course) -> dict[str, RenderedStep]:
    """Every step of a course in its own locale, keyed by step key; one TemplateError for all steps."""
    env = environment(site.templates_dir)
    check_templates(env)
    shared = course_context(site, course, course.locale, env)
    rendered: dict[str, RenderedStep] = {}
    problems: list[Problem] = []
    for step in course.steps:
        try:
            rendered[step.key] = _render_checked(site, course, step, None, shared)
        except TemplateError as exc:  # every step's problems in one report, not the first step's
            problems.extend(p for p in exc.problems if p not in problems)
    if problems:
        raise TemplateError(problems)
    return rendered


def mjml_source(site: Site, course: Course, step: Step, *, locale: str | None = None) -> str:
    """The MJML a step compiles from, with sample subscriber values in place of the slots."""
    check_templates(environment(site.templates_dir))
    draft = _Draft(site, course, step, locale)
    return split(draft.mjml, draft.recorder.slots).fill(sample_values(site, course), escape=True)


def sample_values(
    site: Site, course: Course, *, name: str = "Camille", email: str = "camille@example.org"
) -> dict[str, str]:
    """Slot values for previews: a made-up reader and links with a placeholder token."""
    base = site.config.site.base_url
    return {
        "name": name,
        "email": email,
        "unsubscribe_url": f"{base}/unsubscribe/{SAMPLE_TOKEN}",
        "preferences_url": f"{base}/preferences/{SAMPLE_TOKEN}",
        "view_url": f"{base}/view/{SAMPLE_TOKEN}",
    }


def course_fingerprint(course: Course) -> str:
    """A digest of everything a course renders from, so an edited course is rendered afresh."""
    return hashlib.blake2b(repr(course).encode("utf-8"), digest_size=16).hexdigest()


class RenderCache:
    """Render each (course, step, locale) once per process; an edited course gets new entries.

    Callable like :func:`render_step`, so a dispatcher can take either. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rendered: dict[tuple[str, str, str, str, Path], RenderedStep] = {}
        self._fingerprints: dict[int, tuple[Course, str]] = {}

    def _fingerprint(self, course: Course) -> str:
        known = self._fingerprints.get(id(course))
        if known is not None and known[0] is course:
            return known[1]
        digest = course_fingerprint(course)
        if len(self._fingerprints) >= _MAX_COURSES:
            self._fingerprints.clear()  # a long-running process recompiling courses: forget old objects
        self._fingerprints[id(course)] = (course, digest)  # holding the course keeps its id unique
        return digest

    def __call__(self, site: Site, course: Course, step: Step, *, locale: str | None = None) -> RenderedStep:
        loc = course.email_locale(locale)
        with self._lock:
            key = (course.slug, step.key, loc, self._fingerprint(course), site.templates_dir)
            found = self._rendered.get(key)
        if found is not None:
            return found
        rendered = render_step(site, course, step, locale=loc)
        with self._lock:
            self._rendered[key] = rendered
        return rendered

    def get(self, site: Site, course: Course, step_key: str, *, locale: str | None = None) -> RenderedStep:
        """The rendered step named by key (or number); NotFoundError with the closest key."""
        return self(site, course, course.step(step_key), locale=locale)

    def clear(self) -> None:
        with self._lock:
            self._rendered.clear()
            self._fingerprints.clear()

    def __len__(self) -> int:
        return len(self._rendered)
