"""Which posts an issue offers (window, filters, limits) and which a reader gets."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from newsletter_support import make_site, post, write

from drip.content import load_content
from drip.content.posts import ContentIndex
from drip.course.newsletter import load_newsletters
from drip.course.newsletter_models import Digest, PostFilter
from drip.course.selection import DigestPost, for_reader, gather_posts, is_published

PARIS = ZoneInfo("Europe/Paris")
SINCE = dt.datetime(2026, 11, 1, tzinfo=PARIS)
UNTIL = dt.datetime(2026, 12, 7, 9, tzinfo=PARIS)
NOW = UNTIL

# The index as of a far date: every dated post is in it, and gather_posts applies its own `now`.
EVERYTHING = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Digest, ContentIndex]:
    site = make_site(tmp_path)
    write(tmp_path, "content/newsletters/rentree.md", post("Une annonce", "2026-12-01"))
    return load_newsletters(site).digests["hebdo"], load_content(site.content_dir, now=EVERYTHING)


def titles(posts: tuple[DigestPost, ...] | None) -> list[str] | None:
    return None if posts is None else [p.post.title for p in posts]


def test_published_posts_of_the_period_newest_first(setup: tuple[Digest, ContentIndex]) -> None:
    digest, index = setup
    found = gather_posts(digest, index, SINCE, UNTIL, NOW)
    # Undated, future-dated and broadcast files are never offered.
    assert titles(found) == ["Recruter", "Vision", "Premiers jours"]
    assert found is not None
    vision = found[1]
    assert (vision.image, vision.image_alt) == ("https://cto.example.org/img/vision.png", "Une boussole")
    assert vision.published == dt.datetime(2026, 12, 2, tzinfo=PARIS)
    assert found[2].tags == ("management",)


def test_the_period_is_half_open(setup: tuple[Digest, ContentIndex]) -> None:
    digest, index = setup
    assert titles(gather_posts(digest, index, dt.datetime(2026, 12, 2, tzinfo=PARIS), UNTIL, NOW)) == [
        "Recruter"
    ]
    assert titles(gather_posts(digest, index, SINCE, dt.datetime(2026, 12, 2, tzinfo=PARIS), NOW)) == [
        "Vision",
        "Premiers jours",
    ]


def test_a_post_dated_after_now_waits(setup: tuple[Digest, ContentIndex]) -> None:
    digest, index = setup
    later = dt.datetime(2027, 2, 1, tzinfo=PARIS)
    assert titles(gather_posts(digest, index, UNTIL, later, NOW)) is None
    assert titles(gather_posts(digest, index, UNTIL, later, later)) == ["Plus tard"]
    futur = index.posts["/posts/futur/"]
    assert not is_published(futur, NOW) and is_published(futur, later)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (PostFilter(tags=("equipe",)), ["Recruter"]),
        (PostFilter(sections=("posts",)), ["Vision", "Premiers jours"]),
        (PostFilter(sections=("equipe/",)), ["Recruter"]),
        (PostFilter(pillars=("le-role-du-cto",)), ["Premiers jours"]),
        (PostFilter(pillars=("le-role-du-cto",), tags=("equipe",)), ["Recruter", "Premiers jours"]),
    ],
)
def test_filters_keep_posts_matching_any_criterion(
    setup: tuple[Digest, ContentIndex], rule: PostFilter, expected: list[str]
) -> None:
    digest, index = setup
    assert titles(gather_posts(dataclasses.replace(digest, posts=rule), index, SINCE, UNTIL, NOW)) == expected


def test_max_and_min_posts(setup: tuple[Digest, ContentIndex]) -> None:
    digest, index = setup
    assert titles(gather_posts(dataclasses.replace(digest, max_posts=2), index, SINCE, UNTIL, NOW)) == [
        "Recruter",
        "Vision",
    ]
    assert gather_posts(dataclasses.replace(digest, min_posts=4), index, SINCE, UNTIL, NOW) is None
    assert (
        gather_posts(digest, index, UNTIL, UNTIL + dt.timedelta(days=7), NOW) is None
    )  # nothing new: no issue


def test_for_reader_drops_what_their_course_sent_recently_or_will_send(
    setup: tuple[Digest, ContentIndex],
) -> None:
    digest, index = setup
    posts = gather_posts(digest, index, SINCE, UNTIL, NOW)
    assert posts is not None
    course = {
        "https://cto.example.org/posts/premiers-jours/": NOW - dt.timedelta(days=10),  # sent 10 days ago
        "/posts/vision": NOW + dt.timedelta(days=3),  # due later
    }
    assert titles(for_reader(posts, course, 30, NOW)) == ["Recruter"]
    assert titles(for_reader(posts, course, 5, NOW)) == ["Recruter", "Premiers jours"]
    assert titles(for_reader(posts, {}, 30, NOW)) == ["Recruter", "Vision", "Premiers jours"]
    everything = dict.fromkeys(["/posts/premiers-jours/", "/posts/vision/", "/equipe/recrutement/"], NOW)
    assert for_reader(posts, everything, 30, NOW) == ()
