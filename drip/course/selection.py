"""Which posts a digest issue offers, and which of them one reader may get.

:func:`gather_posts` is the same for every reader of an issue: posts published in
``(since, until]``, kept by the digest's filter, newest first, at most
``max_posts``; fewer than ``min_posts`` means no issue. :func:`for_reader` then
drops what a reader's course already sent them recently or will send them later.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from drip.content import ContentIndex, read_pillar
from drip.content.models import Post
from drip.content.posts import normalise_path
from drip.content.source import read_source
from drip.course.newsletter_models import Digest, PostFilter
from drip.errors import InputError

BROADCASTS_FOLDER = "newsletters"  # content/newsletters/ holds broadcasts, not posts


@dataclass(frozen=True)
class DigestPost:
    """A post as a digest shows it: the post, when it was published, its tags and image."""

    post: Post
    published: dt.datetime  # aware, in the digest's zone
    tags: tuple[str, ...] = ()
    image: str | None = None  # as written in front matter (``image``, or the first of ``images``)
    image_alt: str | None = None


def is_published(post: Post, now: dt.datetime) -> bool:
    """Whether a post is public at ``now``: dated, and not in the future.

    The one publication rule digests use; it points at the content package's rule
    (drafts, publishDate, expiryDate) once posts carry those.
    """
    return post.date is not None and post.date <= now.date()


def published_at(post: Post, zone: str) -> dt.datetime | None:
    """A post's date as the start of that day in ``zone``."""
    if post.date is None:
        return None
    return dt.datetime.combine(post.date, dt.time(), tzinfo=ZoneInfo(zone))


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()


def post_extras(post: Post) -> tuple[tuple[str, ...], str | None, str | None]:
    """Tags, image and image alt text from a post's front matter (keys Post does not keep)."""
    meta = read_source(post.path).meta
    images = _strings(meta.get("image")) or _strings(meta.get("images"))
    alt = meta.get("image_alt")
    return _strings(meta.get("tags")), images[0] if images else None, str(alt) if alt else None


def _folder(post: Post, root: Path) -> str:
    try:
        return post.path.resolve().parent.relative_to(root.resolve()).as_posix()
    except ValueError:
        return ""


def _pillar_pages(slugs: Iterable[str], index: ContentIndex) -> set[str]:
    """Site paths of the posts that the named pillars link to (reading path and sections)."""
    pages: set[str] = set()
    for slug in slugs:
        path = index.pillars.get(slug)
        if path is None:
            continue  # reported by drip check
        try:
            pillar = read_pillar(path)
        except InputError:
            continue  # the pillar's own mistakes are reported by drip check
        links = [item.url for item in pillar.reading_path]
        stack = list(pillar.sections)
        while stack:
            section = stack.pop()
            links.extend(link.url for link in section.links)
            stack.extend(section.subsections)
        pages.update(page_of(url) for url in links)
    return pages


def page_of(url: str) -> str:
    """One spelling per page, for site paths and absolute URLs alike: ``/posts/x/``."""
    return normalise_path(urlsplit(url.strip()).path or "/")


def _matches(item: DigestPost, rule: PostFilter, folder: str, pillar_pages: set[str]) -> bool:
    if rule.everything:
        return True
    if any(folder == s.strip("/") or folder.startswith(s.strip("/") + "/") for s in rule.sections):
        return True
    if {t.lower() for t in rule.tags} & {t.lower() for t in item.tags}:
        return True
    return page_of(item.post.url) in pillar_pages


def candidates(digest: Digest, index: ContentIndex, now: dt.datetime) -> list[DigestPost]:
    """Every published post the digest's filter keeps, newest first (then by URL, for a stable order)."""
    pillar_pages = _pillar_pages(digest.posts.pillars, index)
    found: list[DigestPost] = []
    for post in index.posts.values():
        folder = _folder(post, index.root)
        when = published_at(post, digest.timezone)
        if when is None or not is_published(post, now) or folder.split("/", 1)[0] == BROADCASTS_FOLDER:
            continue
        tags, image, alt = post_extras(post)
        item = DigestPost(post, when, tags, image, alt)
        if _matches(item, digest.posts, folder, pillar_pages):
            found.append(item)
    found.sort(key=lambda p: (-p.published.timestamp(), page_of(p.post.url)))
    return found


def gather_posts(
    digest: Digest, index: ContentIndex, since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> tuple[DigestPost, ...] | None:
    """The posts of the issue covering ``(since, until]``, or None when there are too few for one."""
    chosen = [p for p in candidates(digest, index, now) if since < p.published <= until]
    chosen = chosen[: digest.max_posts]
    if len(chosen) < digest.min_posts:
        return None
    return tuple(chosen)


def for_reader(
    posts: Iterable[DigestPost],
    sent_or_scheduled_urls: Mapping[str, dt.datetime],
    no_repeat_days: int,
    now: dt.datetime,
) -> tuple[DigestPost, ...]:
    """The posts one reader may get: none their course sent in the last N days or will send later.

    ``sent_or_scheduled_urls`` maps each article URL of the reader's courses (site
    path or absolute) to when it was sent or is due. An empty result: no issue for them.
    """
    recent = dt.timedelta(days=no_repeat_days)
    taken: dict[str, dt.datetime] = {}
    for url, when in sent_or_scheduled_urls.items():
        page = page_of(url)
        taken[page] = max(when, taken.get(page, when))
    kept: list[DigestPost] = []
    for item in posts:
        last = taken.get(page_of(item.post.url))
        if last is not None and (last > now or now - last < recent):
            continue
        kept.append(item)
    return tuple(kept)
