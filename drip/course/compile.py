"""The course compiler: a schedule and its pillar page become a Course of ordered, keyed steps.

Order: the welcome email (day 0, sent at once), one email per reading-path
article, the optional section emails in the order the schedule lists them, and
the closing email with the go-deeper resource. Each step's key says what it is
("welcome", "article:/posts/x/", "section:<slug>", "deeper"), never where it
sits, so a course can be edited while subscribers are in it. Unless a schedule
sets a day, each email comes ``cadence`` days after the previous one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from drip.config import Site
from drip.content import ContentIndex, load_content, read_pillar
from drip.content.duration import format_minutes
from drip.content.links import absolute_url, resolve_article
from drip.content.models import Article, Link, Pillar, ReadingItem, Section
from drip.content.posts import normalise_path, site_path_of
from drip.course.kinds import course_files
from drip.course.models import Course, Step, StepKind, WhenAdded
from drip.course.schedule import (
    MessageModel,
    Schedule,
    TimedMessageModel,
    load_schedule,
    read_schedule,
)
from drip.errors import ContentError, InputError, NotFoundError, Problem, ScheduleError, did_you_mean
from drip.inputs.yamlfile import KeyPath

__all__ = ["Schedule", "compile_course", "compile_schedule", "course_slugs", "load_courses", "load_schedule"]

NBSP = "\u00a0"

# Default subjects and preheaders, per locale. Fields: {title} {day} {count} {emails} {every} {label} {duration} {resource}.
TEXTS: dict[str, dict[str, str]] = {
    "fr": {
        "welcome_subject": f"Bienvenue dans «{NBSP}{{title}}{NBSP}»",
        "welcome_preheader": f"Au programme{NBSP}: {{emails}}, {{every}}, pour aller à l'essentiel.",
        "emails_1": "1 email",
        "emails_n": "{count} emails",
        "every_1": "un par jour",
        "every_n": "un tous les {cadence} jours",
        "article_subject": "Jour {day} — {title}",
        "article_preheader": "Ta lecture du jour",
        "minutes": "{duration} de lecture",
        "section_subject": "Jour {day} — {title}",
        "section_preheader": f"{{count}} à lire pour creuser{NBSP}: {{title}}",
        "articles_1": "1 article",
        "articles_n": "{count} articles",
        "closing_subject": f"Pour aller plus loin{NBSP}: «{NBSP}{{resource}}{NBSP}»",
        "closing_subject_bare": f"Et maintenant, par où continuer{NBSP}?",
        "closing_preheader": "Une ressource pour approfondir, et d'autres piliers à explorer.",
        "closing_preheader_bare": "Une ressource pour approfondir le sujet.",
        "closing_preheader_pillars": "D'autres piliers à explorer pour continuer.",
    },
    "en": {
        "welcome_subject": "Welcome to “{title}”",
        "welcome_preheader": "Coming up: {emails}, {every}, straight to the essentials.",
        "emails_1": "1 email",
        "emails_n": "{count} emails",
        "every_1": "one a day",
        "every_n": "one every {cadence} days",
        "article_subject": "Day {day} — {title}",
        "article_preheader": "Today's read",
        "minutes": "{duration} read",
        "section_subject": "Day {day} — {title}",
        "section_preheader": "{count} to dig into: {title}",
        "articles_1": "1 article",
        "articles_n": "{count} articles",
        "closing_subject": "Going further: “{resource}”",
        "closing_subject_bare": "Where to go from here",
        "closing_preheader": "One resource to go deeper, and other topics to explore.",
        "closing_preheader_bare": "One resource to go deeper.",
        "closing_preheader_pillars": "Other topics to explore next.",
    },
}


def jinja_literal(text: str) -> str:
    """Content text placed in a Jinja subject stays literal, even if it contains ``{{`` or ``{%``."""
    return text.replace("{", "{{ '{' }}")


def course_slugs(site: Site) -> list[str]:
    """Every course of the site: the stems of its schedule files, sorted."""
    return list(course_files(site.schedules_dir))


def compile_course(
    site: Site, slug: str, *, content: ContentIndex | None = None, now: dt.datetime | None = None
) -> Course:
    """Compile the course ``slug``; NotFoundError names the closest course, ScheduleError every problem.

    ``now`` decides which pages are published (drafts, future and expired pages are not).
    """
    files = course_files(site.schedules_dir)
    if slug not in files:
        known = ", ".join(files) or "none"
        raise NotFoundError(
            Problem(
                f"no course {slug!r} in {site.schedules_dir.name}/ (courses: {known})",
                hint=did_you_mean(slug, files),
            )
        )
    index = (
        content
        if content is not None
        else load_content(site.content_dir, now=now, locale=site.config.site.locale)
    )
    return _compile_file(site, files[slug], index)


def load_courses(site: Site, *, now: dt.datetime | None = None) -> dict[str, Course]:
    """Compile every course; one ScheduleError carries the problems of all schedules at once."""
    index = load_content(site.content_dir, now=now, locale=site.config.site.locale)
    courses: dict[str, Course] = {}
    problems: list[Problem] = []
    for slug, path in course_files(site.schedules_dir).items():
        try:
            courses[slug] = _compile_file(site, path, index)
        except InputError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScheduleError(problems)
    return courses


def compile_schedule(site: Site, schedule: Schedule, content: ContentIndex) -> Course:
    """Check ``schedule`` against its pillar and build the course; every mismatch reported together."""
    pillar = _read_pillar(schedule, content)
    compiler = _Compiler(site.config.site.base_url, schedule, pillar, content)
    steps = compiler.steps()
    if compiler.problems:
        # The pillar's own faults first, then the schedule's, each in file order.
        order = sorted(compiler.problems, key=lambda p: (p.file == schedule.path, p.line or 0, p.column or 0))
        raise ScheduleError(order)
    base = site.config.site.base_url
    course = Course(
        slug=schedule.slug,
        title=_text_in(schedule.model.title, schedule.locale, schedule.locale) or pillar.title,
        titles=tuple(
            (code, text)
            for code in _other_locales(schedule)
            if (text := _text_in(schedule.model.title, code, schedule.locale)) is not None
        ),
        locale=schedule.locale,
        timezone=schedule.timezone,
        window=schedule.window,
        sender=schedule.sender,
        pillar=pillar,
        steps=steps,
        deeper=_absolute_links(pillar.deeper, base),
        other_pillars=_absolute_links(pillar.other_pillars, base),
        schedule_path=schedule.path,
        warnings=tuple(compiler.warnings),
    )
    return dataclasses.replace(course, warnings=(*course.warnings, *_partial_locales(schedule, course)))


def _partial_locales(schedule: Schedule, course: Course) -> list[Problem]:
    """A locale given for some emails only: its readers get the whole course in the course's locale."""
    problems = []
    for code in _other_locales(schedule):
        if code in course.locales:
            continue
        missing = [s.key for s in course.steps if code not in {c for c, _, _ in s.localised}]
        problems.append(
            schedule.problem(
                (),
                f"readers with locale {code} get this course in {course.locale}: no {code} subject and"
                f" preheader for {', '.join(missing)}",
            )
        )
    return problems


def _compile_file(site: Site, path: Path, content: ContentIndex) -> Course:
    """Compile one schedule file; its own mistakes and its mismatches with the pillar reported together."""
    schedule, problems = read_schedule(path, site)
    if schedule is not None:
        try:
            course = compile_schedule(site, schedule, content)
        except ScheduleError as exc:
            problems = [*problems, *exc.problems]
        else:
            if not problems:
                return course
    raise ScheduleError(sorted(problems, key=lambda p: (p.file == path, p.line or 0, p.column or 0)))


def _read_pillar(schedule: Schedule, content: ContentIndex) -> Pillar:
    path = _pillar_path(schedule, content)
    heading, others = schedule.model.reading_path, schedule.model.other_pillars
    try:
        return read_pillar(path, heading=heading, content=content, other_pillars=others)
    except ContentError as exc:
        problems = list(exc.problems)
    # A heading the schedule names but the page lacks is the schedule's mistake: point there.
    for key, name in (("reading_path", heading), ("other_pillars", others)):
        missing = [
            p for p in problems if name is not None and p.message.startswith(f"no heading {name!r} for")
        ]
        if missing:
            problems = [p for p in problems if p not in missing]
            problems.append(
                schedule.problem(
                    (key,), f"no heading {name!r} in {_shown(path, content)}", hint=missing[0].hint
                )
            )
    raise ScheduleError(problems)


def _pillar_path(schedule: Schedule, content: ContentIndex) -> Path:
    """The pillar file a schedule names, by slug or by a path inside content/."""
    name = schedule.pillar
    if name in content.pillars:
        return content.pillars[name]
    root = content.root.resolve()
    candidate = (root / name).resolve()
    if candidate.is_file() and candidate.is_relative_to(root):
        return candidate
    if schedule.model.pillar is None:
        message = f"no pillar page {name!r} in {content.root.name}/; set `pillar:` to the page's file name"
        where: KeyPath = ()
    else:
        message = f"no pillar page {name!r} in {content.root.name}/"
        where = ("pillar",)
    raise ScheduleError(schedule.problem(where, message, hint=did_you_mean(Path(name).stem, content.pillars)))


def _shown(path: Path, content: ContentIndex) -> str:
    try:
        return str(path.resolve().relative_to(content.root.resolve().parent))
    except ValueError:
        return str(path)


def _absolute_links(links: Iterable[Link], base_url: str) -> tuple[Link, ...]:
    return tuple(Link(absolute_url(link.url, base_url), link.text, link.description) for link in links)


def _walk_sections(sections: Iterable[Section]) -> Iterator[Section]:
    for section in sections:
        yield section
        yield from _walk_sections(section.subsections)


@dataclass(frozen=True)
class _Draft:
    """A step before its number is known."""

    key: str
    kind: StepKind
    day: int
    subject: str
    preheader: str
    article: Article | None = None
    section: Section | None = None
    section_articles: tuple[Article, ...] = ()
    immediate: bool = False
    override: MessageModel | None = None
    when_added: WhenAdded | None = None  # the step's own; the course's default is applied in steps()


def _text_in(value: str | dict[str, str] | None, locale: str, course_locale: str) -> str | None:
    """A schedule text in ``locale``: a plain text is in the course's locale only."""
    if isinstance(value, dict):
        return value.get(locale)
    return value if locale == course_locale else None


def _other_locales(schedule: Schedule) -> list[str]:
    """Every locale other than the course's that some text of the schedule is given in."""
    model = schedule.model
    messages = [model.welcome, model.closing, *model.articles.values(), *model.sections.values()]
    values = [model.title] + [
        getattr(m, f) for m in messages if m is not None for f in ("subject", "preheader")
    ]
    codes = {code for value in values if isinstance(value, dict) for code in value}
    return sorted(codes - {schedule.locale})


class _Compiler:
    """Builds the steps of one course, collecting every problem instead of stopping at the first."""

    def __init__(self, base_url: str, schedule: Schedule, pillar: Pillar, content: ContentIndex) -> None:
        self.base = base_url
        self.schedule = schedule
        self.model = schedule.model
        self.pillar = pillar
        self.content = content
        self.text = TEXTS.get(schedule.locale, TEXTS["en"])
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.drafts: list[_Draft] = []

    # -- helpers -------------------------------------------------------------------------------

    def page(self, url: str) -> str:
        """One spelling per page: ``/posts/x``, ``https://site/posts/x/#top`` → ``/posts/x/``.

        Links to other sites stay absolute (without their fragment).
        """
        path = site_path_of(url, self.base)
        return normalise_path(path) if path is not None else absolute_url(url, self.base).split("#", 1)[0]

    def next_day(self, override: TimedMessageModel, where: KeyPath, key: str) -> int:
        """The override's day, or ``cadence`` after the previous email; days must increase."""
        previous = self.drafts[-1] if self.drafts else None
        if override.day is None:
            return (previous.day if previous else 0) + self.model.cadence
        if previous is not None and override.day <= previous.day:
            self.problems.append(
                self.schedule.problem(
                    (*where, "day"),
                    f"day {override.day} must come after day {previous.day} of the email before it"
                    f" ({previous.key}); days must increase in course order",
                )
            )
        return override.day

    def article(self, item: ReadingItem) -> Article:
        return resolve_article(item, self.content, self.base)

    # -- steps ---------------------------------------------------------------------------------

    def steps(self) -> tuple[Step, ...]:
        articles = self.articles()
        sections = self.sections()
        self.add_welcome(len(articles) + len(sections) + self.has_closing())
        for item, article, override, where in articles:
            self.add_article(item, article, override, where)
        for section, override, where in sections:
            self.add_section(section, override, where)
        self.add_closing()
        return tuple(
            Step(
                key=d.key,
                kind=d.kind,
                number=n,
                day=d.day,
                subject=d.subject,
                preheader=d.preheader,
                article=d.article,
                section=d.section,
                section_articles=d.section_articles,
                immediate=d.immediate,
                localised=self.localised(d.override),
                when_added=d.when_added or self.model.when_added,
            )
            for n, d in enumerate(self.drafts, start=1)
        )

    def pick(self, override: MessageModel, field: str, default: str) -> str:
        """The schedule's text for ``field`` in the course's locale, else the default."""
        value = _text_in(getattr(override, field), self.schedule.locale, self.schedule.locale)
        return value if value is not None else default

    def localised(self, override: MessageModel | None) -> tuple[tuple[str, str, str], ...]:
        """(locale, subject, preheader) for each other locale the schedule gives both texts in."""
        if override is None:
            return ()
        out = []
        for code in _other_locales(self.schedule):
            subject = _text_in(override.subject, code, self.schedule.locale)
            preheader = _text_in(override.preheader, code, self.schedule.locale)
            if subject is not None and preheader is not None:
                out.append((code, subject, preheader))
        return tuple(out)

    def articles(self) -> list[tuple[ReadingItem, Article, TimedMessageModel, KeyPath]]:
        """Reading-path items with their overrides; unknown override URLs and duplicates reported."""
        by_page: dict[str, ReadingItem] = {}
        out = []
        for item in self.pillar.reading_path:
            page = self.page(item.url)
            if page in by_page:
                first = by_page[page]
                self.problems.append(
                    Problem(
                        f"{item.url} is already in the reading path (line {first.line}); each email needs"
                        " its own article",
                        file=self.pillar.path,
                        line=item.line,
                    )
                )
                continue
            by_page[page] = item
        overrides: dict[str, tuple[TimedMessageModel, KeyPath]] = {}
        for name, override in self.model.articles.items():
            page = self.page(name)
            if page not in by_page:
                paths = [self.page(i.url) for i in by_page.values()]
                self.problems.append(
                    self.schedule.entry_problem(
                        "articles",
                        name,
                        f"no article {name} in the reading path of {_shown(self.pillar.path, self.content)}",
                        hint=did_you_mean(name, paths),
                    )
                )
                continue
            overrides[page] = (override, ("articles", name))
        for page, item in by_page.items():
            override, where = overrides.get(page, (TimedMessageModel(), ("articles",)))
            out.append((item, self.article(item), override, where))
        return out

    def sections(self) -> list[tuple[Section, TimedMessageModel, KeyPath]]:
        known = {s.slug: s for s in _walk_sections(self.pillar.sections)}
        out: list[tuple[Section, TimedMessageModel, KeyPath]] = []
        for slug, override in self.model.sections.items():
            if slug not in known:
                self.problems.append(
                    self.schedule.entry_problem(
                        "sections",
                        slug,
                        f"no section {slug!r} in {_shown(self.pillar.path, self.content)}"
                        f" (sections: {', '.join(known) or 'none'})",
                        hint=did_you_mean(slug, known),
                    )
                )
                continue
            out.append((known[slug], override, ("sections", slug)))
        return out

    def add_welcome(self, count: int) -> None:
        override = self.model.welcome
        if override is None:
            return
        cadence = self.model.cadence
        every = self.text["every_1"] if cadence == 1 else self.text["every_n"].format(cadence=cadence)
        title = jinja_literal(
            _text_in(self.model.title, self.schedule.locale, self.schedule.locale) or self.pillar.title
        )
        emails = self.text["emails_1"] if count == 1 else self.text["emails_n"].format(count=count)
        self.drafts.append(
            _Draft(
                key="welcome",
                kind="welcome",
                override=override,
                day=0,
                subject=self.pick(override, "subject", self.text["welcome_subject"].format(title=title)),
                preheader=self.pick(
                    override, "preheader", self.text["welcome_preheader"].format(emails=emails, every=every)
                ),
                immediate=True,
            )
        )

    def add_article(
        self, item: ReadingItem, article: Article, override: TimedMessageModel, where: KeyPath
    ) -> None:
        key = f"article:{self.page(article.url)}"
        day = self.next_day(override, where, key)
        if article.description:
            preheader = jinja_literal(article.description)
        else:
            minutes = (
                self.text["minutes"].format(duration=format_minutes(article.minutes, self.schedule.locale))
                if article.minutes
                else None
            )
            bits = [jinja_literal(b) for b in (article.label, minutes) if b]
            preheader = " · ".join(bits) or self.text["article_preheader"]
        self.drafts.append(
            _Draft(
                key=key,
                kind="article",
                override=override,
                day=day,
                subject=self.pick(
                    override,
                    "subject",
                    self.text["article_subject"].format(day=day, title=jinja_literal(article.title)),
                ),
                preheader=self.pick(override, "preheader", preheader),
                article=article,
                when_added=override.when_added,
            )
        )

    def add_section(self, section: Section, override: TimedMessageModel, where: KeyPath) -> None:
        key = f"section:{section.slug}"
        day = self.next_day(override, where, key)
        articles = tuple(self.article(ReadingItem(url=link.url, title=link.text)) for link in section.links)
        n = len(articles)
        count = self.text["articles_1"] if n == 1 else self.text["articles_n"].format(count=n)
        title = jinja_literal(section.title)
        self.drafts.append(
            _Draft(
                key=key,
                kind="section",
                override=override,
                day=day,
                subject=self.pick(
                    override, "subject", self.text["section_subject"].format(day=day, title=title)
                ),
                preheader=self.pick(
                    override, "preheader", self.text["section_preheader"].format(count=count, title=title)
                ),
                section=section,
                section_articles=articles,
                when_added=override.when_added,
            )
        )

    def has_closing_content(self) -> bool:
        return bool(self.pillar.deeper or self.pillar.other_pillars)

    def has_closing(self) -> bool:
        """A closing email needs something to point to; left to its defaults, it is dropped with a warning."""
        if self.model.closing is None:
            return False
        if self.has_closing_content():
            return True
        shown = _shown(self.pillar.path, self.content)
        if "closing" in self.model.model_fields_set:
            self.problems.append(
                self.schedule.problem(
                    ("closing",),
                    f"{shown} has no go-deeper resource nor other pillars for the closing email;"
                    ' add a "Pour approfondir" section or set `closing: false`',
                )
            )
        else:
            self.warnings.append(
                self.schedule.problem(
                    (),
                    f"no closing email: {shown} has no go-deeper resource nor other pillars"
                    ' (add a "Pour approfondir" section, or set `closing: false` to silence this)',
                )
            )
        return False

    def add_closing(self) -> None:
        override = self.model.closing
        if override is None or not self.has_closing_content():
            return
        day = self.next_day(override, ("closing",), "deeper")
        if self.pillar.deeper:
            subject = self.text["closing_subject"].format(resource=jinja_literal(self.pillar.deeper[0].text))
        else:
            subject = self.text["closing_subject_bare"]
        if not self.pillar.deeper:
            preheader = self.text["closing_preheader_pillars"]
        elif self.pillar.other_pillars:
            preheader = self.text["closing_preheader"]
        else:
            preheader = self.text["closing_preheader_bare"]
        self.drafts.append(
            _Draft(
                key="deeper",
                kind="closing",
                override=override,
                day=day,
                subject=self.pick(override, "subject", subject),
                preheader=self.pick(override, "preheader", preheader),
                when_added=override.when_added,
            )
        )
