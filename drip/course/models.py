"""What a compiled course is: its send window, sender and ordered steps.

Plain frozen dataclasses, built by the compiler and read by render, store and dispatch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from drip.content.models import Article, Link, Pillar, Section
from drip.errors import NotFoundError, Problem, did_you_mean


@dataclass(frozen=True)
class SendWindow:
    """When emails may leave, in the subscriber's local time."""

    time: dt.time  # e.g. 08:30
    weekdays: frozenset[int]  # 0 = Monday … 6 = Sunday


StepKind = Literal["welcome", "article", "section", "closing"]
# What a step added or moved behind a reader's position does for that reader (drip.course.edits).
WhenAdded = Literal["catch_up", "skip", "append"]
WHEN_ADDED: tuple[WhenAdded, ...] = ("catch_up", "skip", "append")


@dataclass(frozen=True)
class Step:
    """One email of a course. Its key comes from what it is, never from its position."""

    key: str  # "welcome", "article:/posts/x/", "section:comprendre-les-roles", "deeper"
    kind: StepKind
    number: int  # 1-based position in the course
    day: int  # days after enrollment
    subject: str  # Jinja source, may use subscriber fields
    preheader: str
    article: Article | None = None
    section: Section | None = None
    section_articles: tuple[Article, ...] = ()
    immediate: bool = False  # sent as soon as due, ignoring the send window (welcome)
    when_added: WhenAdded | None = None  # None: added behind is skipped, moved keeps its own schedule
    localised: tuple[tuple[str, str, str], ...] = ()  # (locale, subject, preheader) beyond the course's

    def texts(self, locale: str) -> tuple[str, str]:
        """Subject and preheader in ``locale``, or the course's own when the schedule gives none for it."""
        for code, subject, preheader in self.localised:
            if code == locale:
                return subject, preheader
        return self.subject, self.preheader


@dataclass(frozen=True)
class Sender:
    name: str
    email: str
    reply_to: str | None = None


@dataclass(frozen=True)
class Course:
    """A schedule compiled against its pillar: the ordered steps subscribers receive."""

    slug: str  # schedule file stem
    title: str
    locale: str
    timezone: str  # default IANA zone for subscribers without one
    window: SendWindow
    sender: Sender
    pillar: Pillar
    steps: tuple[Step, ...]
    deeper: tuple[Link, ...] = ()  # absolute URLs
    other_pillars: tuple[Link, ...] = ()  # absolute URLs
    schedule_path: Path | None = None
    warnings: tuple[Problem, ...] = ()  # what the compiler left out on its own (`drip check` shows them)
    titles: tuple[tuple[str, str], ...] = ()  # (locale, title) beyond the course's

    @property
    def locales(self) -> tuple[str, ...]:
        """The course's locale, then every locale the schedule gives a subject and preheader for, on every step."""
        others = {code for step in self.steps for code, _, _ in step.localised}
        complete = [
            code for code in sorted(others) if all(code in {c for c, _, _ in s.localised} for s in self.steps)
        ]
        return (self.locale, *complete)

    def email_locale(self, wanted: str | None) -> str:
        """The language of an email for a reader of ``wanted`` locale: theirs if the course speaks it, else its own.

        An email is in one language: chrome, subject and content together.
        """
        if wanted:
            code = wanted.replace("_", "-")
            for candidate in (code, code.split("-", 1)[0]):
                if candidate in self.locales:
                    return candidate
        return self.locale

    def title_in(self, locale: str) -> str:
        return dict(self.titles).get(locale, self.title)

    def step(self, key_or_number: str | int) -> Step:
        """Find a step by key or 1-based number; a clear error naming the closest key."""
        text = str(key_or_number)
        if text.isdigit():
            n = int(text)
            if 1 <= n <= len(self.steps):
                return self.steps[n - 1]
            raise NotFoundError(Problem(f"course {self.slug!r} has steps 1 to {len(self.steps)}, not {n}"))
        for step in self.steps:
            if step.key == text:
                return step
        keys = [s.key for s in self.steps]
        raise NotFoundError(
            Problem(
                f"course {self.slug!r} has no step {text!r} (steps: {', '.join(keys)}, or 1 to {len(keys)})",
                hint=did_you_mean(text, keys),
            )
        )
