"""Posts, and the index of everything content/ provides.

How a file is classified:

- front matter ``type: pillar`` or ``type: post`` decides (other ``type`` values,
  such as a theme's layout name, are ignored);
- otherwise the Markdown files directly in content/ are pillars and the files in
  its subfolders (content/posts/…) are posts;
- files and folders whose name starts with ``_`` or ``.`` (section list pages,
  hidden files) are not content.

URLs are site paths relative to the site's base URL: front matter ``url`` wins;
else a post at content/posts/x.md (or content/posts/x/index.md) is ``/posts/x/``
and a pillar at content/x.md is ``/x/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from drip.content.duration import minutes_field, minutes_for_words
from drip.content.mdtree import parse_document, plain_text
from drip.content.models import Post
from drip.content.source import Meta, Source, read_source
from drip.errors import ContentError, Problem

PILLAR, POST = "pillar", "post"


class PostMeta(Meta):
    date: dt.date | None = None
    reading_time: int | None = Field(default=None, ge=1)
    minutes: int | None = Field(default=None, ge=1)

    @field_validator("date", mode="before")
    @classmethod
    def _day(cls, v: Any) -> Any:
        return v.date() if isinstance(v, dt.datetime) else v

    _reading_time = field_validator("reading_time", "minutes", mode="before")(
        classmethod(lambda cls, v: minutes_field(v))
    )


def read_post(path: Path, content_dir: Path) -> Post:
    """Read one post; its URL comes from its place under ``content_dir`` unless front matter says."""
    return _post(read_source(path), content_dir)


def _post(src: Source, content_dir: Path) -> Post:
    meta, problems = src.model(PostMeta)
    problems = [*src.problems, *problems]
    if problems or meta is None:
        raise ContentError(problems)
    title, description = meta.title, meta.description
    minutes = meta.reading_time or meta.minutes
    if title is None or description is None or minutes is None:
        # Parsing Markdown is the slow part of indexing: only when front matter leaves a gap.
        doc = parse_document(src.body, src.body_line)
        if title is None:
            title = doc.headings[0].text if doc.headings else src.path.stem
        if description is None:
            description = next((plain_text(b) for b in doc.blocks if b.type == "paragraph"), "")
        if minutes is None:
            minutes = minutes_for_words(doc.word_count())
    return Post(
        path=src.path,
        url=meta.url or site_path(src.path, content_dir),
        title=title,
        description=description,
        date=meta.date,
        minutes=minutes,
        body=src.body.strip(),
    )


def site_path(path: Path, content_dir: Path) -> str:
    """The URL a static site generator gives a content file: content/posts/x.md → /posts/x/."""
    try:
        relative = path.resolve().relative_to(content_dir.resolve())
    except ValueError:
        relative = Path(path.name)
    parts = list(relative.with_suffix("").parts)
    if parts and parts[-1] == "index":
        parts.pop()
    return "/" + "".join(f"{part}/" for part in parts)


def normalise_path(path: str) -> str:
    """One spelling per page: leading and trailing slash, percent-escapes decoded."""
    path = unquote(path)
    if not path.startswith("/"):
        path = "/" + path
    last = path.rsplit("/", 1)[-1]
    if last and "." not in last:
        path += "/"
    return path


@dataclass(frozen=True)
class ContentIndex:
    """What content/ holds: pillar files by slug, posts by site path."""

    root: Path
    pillars: dict[str, Path]  # slug → file
    posts: dict[str, Post]  # url path → Post
    pillar_urls: dict[str, str] = field(default_factory=dict)  # slug → url path, when not /<slug>/

    def pillar_url(self, slug: str) -> str:
        return self.pillar_urls.get(slug, f"/{slug}/")

    def known_urls(self) -> set[str]:
        """Every site path a content file provides, pillars and posts."""
        return {self.pillar_url(slug) for slug in self.pillars} | set(self.posts)

    def post_for(self, url: str, base_url: str) -> Post | None:
        """The post a link points to: "/posts/x/", "/posts/x", or an absolute URL on the site."""
        path = site_path_of(url, base_url)
        return self.posts.get(normalise_path(path)) if path is not None else None


def site_path_of(url: str, base_url: str) -> str | None:
    """The site path of ``url`` without query or fragment; None for another site's URL."""
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc:
        base = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != base.netloc.lower():
            return None
        prefix = base.path.rstrip("/")
        if prefix and not (parts.path == prefix or parts.path.startswith(prefix + "/")):
            return None
        return parts.path[len(prefix) :] or "/"
    return parts.path or None


def load_content(content_dir: Path) -> ContentIndex:
    """Index every pillar and post; every broken file is reported in one ContentError."""
    if not content_dir.is_dir():
        raise ContentError(Problem("content folder not found", file=content_dir))
    problems: list[Problem] = []
    pillars: dict[str, Path] = {}
    pillar_urls: dict[str, str] = {}
    posts: dict[str, Post] = {}
    for path in _markdown_files(content_dir):
        src = read_source(path)
        kind = _kind(src, content_dir)
        try:
            if kind == POST:
                post = _post(src, content_dir)
                url = normalise_path(post.url)
                if url in posts:
                    problems.append(_duplicate(path, url, posts[url].path))
                posts[url] = post
                continue
            meta, meta_problems = src.model(Meta)
            if src.problems or meta_problems:
                raise ContentError([*src.problems, *meta_problems])
            slug = path.stem
            if slug in pillars:
                problems.append(_duplicate(path, f"/{slug}/", pillars[slug]))
            pillars[slug] = path
            if meta and meta.url:
                pillar_urls[slug] = normalise_path(meta.url)
        except ContentError as exc:
            problems += exc.problems
    if problems:
        raise ContentError(problems)
    return ContentIndex(content_dir, pillars, posts, pillar_urls)


def _markdown_files(content_dir: Path) -> Iterator[Path]:
    for path in sorted(content_dir.rglob("*.md")):
        if not any(part.startswith(("_", ".")) for part in path.relative_to(content_dir).parts):
            yield path


def _kind(src: Source, content_dir: Path) -> str:
    declared = src.meta.get("type")
    if declared in (PILLAR, POST):
        return str(declared)
    return PILLAR if src.path.parent == content_dir else POST


def _duplicate(path: Path, url: str, first: Path) -> Problem:
    return Problem(f"{url} is already provided by {first}", file=path, line=1, column=1)
