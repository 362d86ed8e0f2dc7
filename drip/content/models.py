"""What content/ yields: pillars, posts, their links and the articles a course sends.

Plain frozen dataclasses, built by the readers and read by later stages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drip.errors import Problem


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
    warnings: tuple[Problem, ...] = ()  # what drip read past without using: `drip check` shows them


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
    meta_keys: tuple[
        str, ...
    ] = ()  # its front matter's keys, for `drip check` to spot typos without re-reading


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
