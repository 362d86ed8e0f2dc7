"""Site checks behind ``drip check``: everything a site ships, validated before anyone is mailed.

A check compiles every course, renders every email and follows every link in
the rendered HTML. Links are sorted into three outcomes:

* fine: an absolute external http(s) URL, a ``mailto:`` address, a site path
  that a content file provides (``ContentIndex.known_urls()``, compared after
  removing the base URL, the query string and the fragment), or one of drip's
  own per-subscriber links (unsubscribe, preferences, view in browser);
* warning: a path on the site that no file under content/ provides. Pillars
  often link to pages the site serves from elsewhere, so this is not an error
  unless the check is strict;
* error: an empty link, a malformed URL, a scheme other than http/https/mailto,
  or a relative link that cannot resolve in an inbox.

Each link problem points at the pillar file and line where the link is written
when it can be found there, and suggests the closest known site path.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from drip.config import Site
from drip.content import ContentIndex, load_content, read_pillar
from drip.content.cache import CACHE_DIR
from drip.content.links import absolute_url
from drip.content.models import Pillar
from drip.content.pillar import PillarMeta
from drip.content.posts import PostMeta, normalise_path, site_path_of
from drip.content.source import Meta, read_source
from drip.course.compile import compile_course, course_slugs
from drip.course.models import Course
from drip.errors import InputError, Problem, closest
from drip.render.steps import render_step, sample_values
from drip.render.templates import check_templates, environment, unused_site_templates

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True)
class CheckReport:
    """What ``drip check`` found: counts for the summary, then errors and warnings."""

    courses: int = 0
    emails: int = 0
    links: int = 0
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One line such as "2 courses, 10 emails, 34 links: all good"."""
        counts = ", ".join(
            [_plural(self.courses, "course"), _plural(self.emails, "email"), _plural(self.links, "link")]
        )
        if self.errors:
            return f"{counts}: {_plural(len(self.errors), 'error')}"
        if self.warnings:
            return f"{counts}: {_plural(len(self.warnings), 'warning')}"
        return f"{counts}: all good"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class LinkVerdict:
    """The outcome of checking one href: ``level`` is "ok", "warning" or "error"."""

    level: Literal["ok", "warning", "error"]
    message: str = ""
    site_path: str | None = None  # the same-site path, when the link points into the site
    hint: str | None = None


def classify_link(href: str, *, base_url: str, known: Iterable[str]) -> LinkVerdict:
    """Decide whether one href from a rendered email is fine, a warning or an error.

    Error messages are predicates ("is empty", "uses the unsupported scheme 'ftp'…")
    completed by the caller with the link as written.
    """
    target = href.strip()
    if not target:
        return LinkVerdict("error", "is empty")
    if any(ch.isspace() for ch in target) or any(ord(ch) < 32 for ch in target):
        return LinkVerdict("error", "is malformed: it contains spaces or control characters")
    try:
        parts = urlsplit(target)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        return LinkVerdict("error", f"is malformed: {exc}")
    scheme = parts.scheme.lower()
    if scheme == "mailto":
        if "@" not in parts.path:
            return LinkVerdict("error", "has no address after mailto:")
        return LinkVerdict("ok")
    if scheme and scheme not in ("http", "https"):
        return LinkVerdict("error", f"uses the unsupported scheme {scheme!r}: use https:// or mailto:")
    if not scheme:
        hint = None
        if target.startswith("/") and not target.startswith("//"):
            hint = f"write it as {absolute_url(target, base_url)}"
        return LinkVerdict(
            "error", "is relative and cannot resolve in an email: links must be absolute", hint=hint
        )
    host = parts.hostname or ""
    if not host or not port_ok or host.startswith(".") or ".." in host:
        return LinkVerdict("error", "is malformed: no valid host name")
    on_site = site_path_of(target, base_url)
    if on_site is None:
        return LinkVerdict("ok")  # another site, or this host outside the site's own folder
    path = normalise_path(on_site)
    known_paths = {normalise_path(k) for k in known}
    if path in known_paths or path == "/":
        return LinkVerdict("ok", site_path=path)
    suggestion = closest(path, known_paths)
    return LinkVerdict(
        "warning",
        f"no content file provides {path}",
        site_path=path,
        hint=f"did you mean '{suggestion}'?" if suggestion else None,
    )


def classify_written(href: str, *, known: Iterable[str]) -> LinkVerdict | None:
    """Mistakes only visible in the link as written, before rendering makes it absolute.

    An empty target or a path relative to the pillar page ("posts/x", "../x", "#top")
    resolves against the page it is written on; in an email it would silently become
    another URL. Returns None when the written form is fine.
    """
    target = href.strip()
    if not target:
        return LinkVerdict("error", "is empty")
    if target.startswith(("/", "//")) or urlsplit(target).scheme:
        return None
    suggestion = closest(normalise_path(target.lstrip("./")), {normalise_path(k) for k in known})
    return LinkVerdict(
        "error",
        "is relative to the page it is written on and cannot resolve in an email: start it with / or https://",
        hint=f"did you mean '{suggestion}'?" if suggestion else None,
    )


class _Anchors(HTMLParser):
    """Every ``<a href>`` of an HTML document, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            for name, value in attrs:
                if name == "href":
                    self.hrefs.append(value or "")


def extract_links(html: str) -> list[str]:
    """The href of every anchor in ``html`` (entities decoded), in document order."""
    parser = _Anchors()
    parser.feed(html)
    parser.close()
    return parser.hrefs


def strip_tracking(url: str) -> str:
    """``url`` without its ``utm_*`` parameters, to match it against the link as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class SourceLink:
    """A link as written in a pillar file, with where it is written."""

    href: str
    file: Path
    line: int | None
    column: int | None


def pillar_hrefs(pillar: Pillar) -> list[str]:
    """Every link target a pillar contributes to emails, as written in the file."""
    hrefs = [item.url for item in pillar.reading_path]
    stack = list(pillar.sections)
    while stack:
        section = stack.pop(0)
        hrefs.extend(link.url for link in section.links)
        stack.extend(section.subsections)
    hrefs.extend(link.url for link in (*pillar.deeper, *pillar.other_pillars))
    return hrefs


def _line_column(text: str, at: int) -> tuple[int, int]:
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


def locate(text: str, href: str) -> tuple[int, int] | None:
    """1-based line and column of ``href`` in a file's text: a Markdown link target first.

    The match must end where the URL ends, so ``/guides/`` is never found inside ``/guides/book/``.
    """
    if not href:
        at = text.find("]()")
        return _line_column(text, at + 2) if at >= 0 else None
    escaped = re.escape(href)
    for pattern in (
        rf"(?<=\]\(){escaped}(?=[\s)])",
        rf"(?<=<){escaped}(?=>)",
        rf"(?<![\w/.~-]){escaped}(?![\w/.~-])",
    ):
        match = re.search(pattern, text)
        if match:
            return _line_column(text, match.start())
    return None


def source_links(pillar: Pillar, base_url: str) -> dict[str, SourceLink]:
    """Map each pillar link, made absolute, to where it is written in the pillar file."""
    try:
        text = pillar.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    out: dict[str, SourceLink] = {}
    for href in pillar_hrefs(pillar):
        if classify_written(href, known=()) is not None:
            continue  # reported as written; its rendered form would match unrelated links
        pos = locate(text, href)
        found = SourceLink(href, pillar.path, pos[0] if pos else None, pos[1] if pos else None)
        for form in {href, href.strip(), _safe_absolute(href, base_url)}:
            out.setdefault(form, found)
    return out


def _safe_absolute(href: str, base_url: str) -> str:
    try:
        return absolute_url(href, base_url)
    except (ValueError, TypeError):
        return href


def written_link_problems(pillar: Pillar, known: Iterable[str]) -> list[Problem]:
    """Pillar links that are wrong as written (empty, relative to the page), located in the file."""
    try:
        text = pillar.path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    problems: list[Problem] = []
    for href in dict.fromkeys(pillar_hrefs(pillar)):
        verdict = classify_written(href, known=known)
        if verdict is None:
            continue
        pos = locate(text, href)
        problems.append(
            Problem(
                f"link {href!r} {verdict.message}",
                file=pillar.path,
                line=pos[0] if pos else None,
                column=pos[1] if pos else None,
                hint=verdict.hint,
            )
        )
    return problems


def _collect(problems: list[Problem], action: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Run one step of the check; keep its input problems and carry on with the next."""
    try:
        return action(*args, **kwargs)
    except InputError as exc:
        problems.extend(exc.problems)
        return None


def _unique(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    seen: set[str] = set()
    out: list[Problem] = []
    for problem in problems:
        text = str(problem)
        if text not in seen:
            seen.add(text)
            out.append(problem)
    return tuple(out)


@dataclass
class _EmailLinks:
    """Link problems of one course, grouped by link so each is reported once."""

    found: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def add(self, verdict: LinkVerdict, href: str, step_key: str) -> None:
        self.found.setdefault((verdict.level, href, verdict.message), []).append(step_key)


def check_course_links(
    site: Site, course: Course, html_by_step: Mapping[str, str], known: Iterable[str], personal: Iterable[str]
) -> tuple[int, list[Problem], list[Problem]]:
    """Check the links of one course's rendered emails: (links checked, errors, warnings)."""
    base_url = site.config.site.base_url
    known_set = set(known)
    personal_set = {p for p in personal if p}
    sources = source_links(course.pillar, base_url)
    grouped = _EmailLinks()
    verdicts: dict[str, LinkVerdict] = {}
    count = 0
    for step_key, html in html_by_step.items():
        for href in extract_links(html):
            count += 1
            if href in personal_set:
                continue
            verdict = classify_link(href, base_url=base_url, known=known_set)
            if verdict.level != "ok":
                verdicts[href] = verdict
                grouped.add(verdict, href, step_key)
    errors = written_link_problems(course.pillar, known_set)
    warnings: list[Problem] = []
    for (level, href, message), steps in grouped.found.items():
        source = sources.get(href) or sources.get(strip_tracking(href))
        where = ", ".join(f"{course.slug}.{key}" for key in dict.fromkeys(steps))
        written = source.href if source else href
        if level == "error":
            message = f"link {written!r} {message}"
        elif written.strip() != verdicts[href].site_path:
            message = f"link {written!r}: {message}"
        if level == "warning" and verdicts[href].site_path in _sent_posts(course, base_url):
            message = f"{message} (a post this course sends: renamed or deleted?)"
        problem = Problem(
            message,
            file=source.file if source else course.schedule_path,
            line=source.line if source else None,
            column=source.column if source else None,
            key=where,
            hint=verdicts[href].hint,
        )
        (errors if level == "error" else warnings).append(problem)
    return count, sorted(errors, key=_position), sorted(warnings, key=_position)


def _sent_posts(course: Course, base_url: str) -> set[str | None]:
    """Site paths of the posts the course's steps send that no content file provides."""
    articles = [a for s in course.steps for a in ((s.article,) if s.article else s.section_articles)]
    return {normalise_path(p) for a in articles if not a.found and (p := site_path_of(a.url, base_url))}


def _position(problem: Problem) -> tuple[str, int, int]:
    return str(problem.file or ""), problem.line or 0, problem.column or 0


def check_site(
    site: Site,
    *,
    strict: bool = False,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Validate content, schedules and templates, render every email and check its links.

    Every problem is collected: nothing stops at the first one. With ``strict``,
    warnings (links to site paths no content file provides) count as errors.
    ``progress`` is told of each content file read, and of their number.
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []
    cache = site.root / CACHE_DIR
    index: ContentIndex | None = _collect(
        errors,
        load_content,
        site.content_dir,
        now=now,
        cache_dir=cache,
        progress=progress,
        locale=site.config.site.locale,
    )
    slugs = _collect(errors, course_slugs, site) or []
    if not slugs:
        # "0 courses: all good" would hide a schedules folder that is misnamed or missing.
        folder = site.schedules_dir
        if folder.is_dir():
            warnings.append(Problem("no course yet: a course is a schedule file, <course>.yaml", file=folder))
        else:
            errors.append(Problem("schedules folder not found", file=folder))
    courses: list[Course] = []
    for slug in slugs:
        course = _collect(errors, compile_course, site, slug, content=index)
        if course is not None:
            courses.append(course)
    warnings.extend(w for course in courses for w in (*course.pillar.warnings, *course.warnings))
    if index is not None:
        warnings.extend(_unused_pillar_problems(index, courses, errors))
        warnings.extend(_misspelt_front_matter(index))
    warnings.extend(unused_site_templates(site.templates_dir))
    _collect(errors, check_templates, environment(site.templates_dir))  # even when no course compiles
    known: set[str] = index.known_urls() if index is not None else set()
    emails, links = _check_emails(site, courses, known, errors, warnings)
    from drip.preview.newsletters import check_newsletters  # it builds on this module's link checks

    newsletter_errors, newsletter_warnings = check_newsletters(site, index, known)
    errors.extend(newsletter_errors)
    warnings.extend(newsletter_warnings)
    if strict:
        errors.extend(replace(w, message=f"{w.message} (strict)") for w in warnings)
        warnings = []
    return CheckReport(
        courses=len(courses),
        emails=emails,
        links=links,
        errors=_unique(errors),
        warnings=_unique(warnings),
    )


def _check_emails(
    site: Site, courses: Sequence[Course], known: set[str], errors: list[Problem], warnings: list[Problem]
) -> tuple[int, int]:
    """Render every email of every course and check its links; (emails, links) counted."""
    emails = links = 0
    for course in courses:
        values = sample_values(site, course)
        html_by_step: dict[str, str] = {}
        for step in course.steps:
            rendered = _collect(errors, render_step, site, course, step)
            if rendered is None:
                continue
            emails += 1
            html_by_step[step.key] = rendered.personalise(values)[1]
        count, link_errors, link_warnings = check_course_links(
            site, course, html_by_step, known, _personal_links(values)
        )
        links += count
        errors.extend(link_errors)
        warnings.extend(link_warnings)
    return emails, links


def _personal_links(values: Mapping[str, str]) -> Sequence[str]:
    """drip's own per-subscriber links (unsubscribe, preferences, view): served by ``drip serve``."""
    return [v for k, v in values.items() if k.endswith("_url")]


def _misspelt_front_matter(index: ContentIndex) -> list[Problem]:
    """Front matter keys one typo away from a key drip reads ("titel"), which drip would otherwise ignore.

    Other keys belong to the site's generator (tags, draft, layout…) and stay silent:
    the cut-off is strict enough that "draft" is not taken for "date". A site uses few distinct
    keys: each is compared once, and only a file holding a suspect key is read again (for its position).
    """
    near: dict[tuple[str, type[Meta]], str | None] = {}

    def suspect(key: str, model: type[Meta]) -> str | None:
        if (key, model) not in near:
            known = list(model.model_fields)
            found = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            near[key, model] = found[0] if found and key not in known else None
        return near[key, model]

    files: list[tuple[Path, type[Meta], tuple[str, ...] | None]] = [
        (path, PillarMeta, None) for path in index.pillars.values()
    ]
    files += [(post.path, PostMeta, post.meta_keys) for post in index.posts.values()]
    problems: list[Problem] = []
    for path, model, keys in files:
        if keys is not None and not any(suspect(key, model) for key in keys):
            continue
        source = read_source(path)
        for key in source.meta:
            hint = suspect(key, model)
            if hint is not None:
                problems.append(
                    source.positions.problem(
                        (key,), "not a front matter key drip reads", hint=f"did you mean '{hint}'?", key=True
                    )
                )
    return problems


def _unused_pillar_problems(
    index: ContentIndex, courses: Sequence[Course], errors: Sequence[Problem]
) -> list[Problem]:
    """Pillars that no course compiles are still read, so a broken one is noticed before it is used.

    A pillar already named by an error is a course's pillar that failed to compile: not unused.
    A top-level page with no reading path (about, legal) is not a pillar and stays quiet.
    """
    used = {course.pillar.path.resolve() for course in courses}
    used |= {p.file.resolve() for p in errors if p.file is not None}
    problems: list[Problem] = []
    for path in index.pillars.values():
        if path.resolve() in used or index.url_of(path) not in index.hubs:
            continue
        try:
            read_pillar(path, content=index)
        except InputError as exc:
            problems.extend(
                replace(p, message=f"{p.message} (no course uses this pillar yet)") for p in exc.problems
            )
    return problems
