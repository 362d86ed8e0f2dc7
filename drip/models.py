"""The values that flow between drip's stages: content → course → rendered email.

Plain frozen dataclasses, built by one stage and read by the next; no behaviour
beyond small lookups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drip.errors import NotFoundError, Problem, did_you_mean


@dataclass(frozen=True)
class Link:
    """A link as written in content: its target, its text, and any words after it."""

    url: str
    text: str
    description: str | None = None  # "— Prendre des décisions…" after a pillar link


@dataclass(frozen=True)
class ReadingItem:
    """One entry of a pillar's reading path ("Par où commencer" / "Start here")."""

    url: str  # as written: "/posts/x/" or "https://…"
    title: str  # the link text
    label: str | None = None  # "Fondamental", "Practice"
    minutes: int | None = None  # reading time, when given
    notes: tuple[str, ...] = ()  # nested sub-items, kept as plain text
    group: str | None = None  # the lead-in above the list ("Si tu découvres ce sujet :")
    line: int | None = None  # 1-based line in the pillar file


@dataclass(frozen=True)
class Section:
    """An article section of a pillar ("Comprendre les rôles"), with its links."""

    title: str
    level: int
    slug: str
    text: str = ""
    links: tuple[Link, ...] = ()
    subsections: tuple[Section, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Pillar:
    """A hub page read from content/: front matter plus the structure of its body."""

    path: Path
    slug: str  # file stem, "le-role-du-cto"
    url: str  # site path, "/le-role-du-cto/" (front matter `url` wins)
    title: str
    description: str
    intro: str  # plain-text paragraphs that present the page (audience, purpose)
    reading_path_heading: str
    reading_path: tuple[ReadingItem, ...]
    sections: tuple[Section, ...] = ()
    deeper: tuple[Link, ...] = ()  # "Pour approfondir" / "Go deeper"; the first is the main resource
    deeper_text: str = ""
    other_pillars: tuple[Link, ...] = ()
    front_matter: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Post:
    """An article found under content/ (any Markdown file that is not a pillar)."""

    path: Path
    url: str  # site path, "/posts/<slug>/"
    title: str
    description: str
    date: dt.date | None
    minutes: int  # from front matter, or from the word count
    body: str = ""  # Markdown body


@dataclass(frozen=True)
class Article:
    """A reading-path item resolved against content/: what an email links to."""

    url: str  # absolute, without tracking parameters
    title: str
    description: str | None
    label: str | None
    minutes: int | None
    date: dt.date | None
    notes: tuple[str, ...] = ()
    found: bool = False  # a post exists under content/ for this link


@dataclass(frozen=True)
class SendWindow:
    """When emails may leave, in the subscriber's local time."""

    time: dt.time  # e.g. 08:30
    weekdays: frozenset[int]  # 0 = Monday … 6 = Sunday


StepKind = Literal["welcome", "article", "section", "closing"]


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
