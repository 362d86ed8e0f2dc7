"""Links for emails: absolute URLs, UTM tags that respect what is written, items resolved to posts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from drip.content import absolute_url, add_utm, load_content, read_pillar, resolve_article
from drip.content.models import ReadingItem

ROOT = Path(__file__).resolve().parent.parent
CONTENT = Path(__file__).resolve().parent / "fixtures" / "content"
BASE = "https://example.com"
UTM = {"source": "drip", "medium": "email", "campaign": "le-role-du-cto", "content": "article-2"}


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/posts/x/", BASE, "https://example.com/posts/x/"),
        ("posts/x/", BASE, "https://example.com/posts/x/"),
        ("/posts/x/?a=1#b", BASE, "https://example.com/posts/x/?a=1#b"),
        ("/posts/x/", "https://example.com/blog", "https://example.com/blog/posts/x/"),
        ("/posts/x/", "https://example.com/blog/", "https://example.com/blog/posts/x/"),
        ("https://ailleurs.example/a?b=c", BASE, "https://ailleurs.example/a?b=c"),
        ("//cdn.example/a.pdf", BASE, "https://cdn.example/a.pdf"),
        ("mailto:moi@example.com", BASE, "mailto:moi@example.com"),
    ],
)
def test_absolute_url(url: str, base: str, expected: str) -> None:
    assert absolute_url(url, base) == expected


def test_add_utm_to_a_plain_url() -> None:
    assert add_utm("https://example.com/posts/x/", **UTM) == (
        "https://example.com/posts/x/?utm_source=drip&utm_medium=email&utm_campaign=le-role-du-cto"
        "&utm_content=article-2"
    )


def test_add_utm_keeps_query_string_and_fragment_as_written() -> None:
    url = "https://example.com/posts/x/?q=caf%C3%A9+cr%C3%A8me&page=2&flag#section-2"
    tagged = add_utm(url, **UTM)
    assert tagged.startswith(
        "https://example.com/posts/x/?q=caf%C3%A9+cr%C3%A8me&page=2&flag&utm_source=drip"
    )
    assert tagged.endswith("&utm_content=article-2#section-2")
    parts = urlsplit(tagged)
    assert parts.fragment == "section-2"
    assert parse_qsl(parts.query, keep_blank_values=True)[:3] == [
        ("q", "café crème"),
        ("page", "2"),
        ("flag", ""),
    ]


def test_add_utm_keeps_the_authors_own_utm_values() -> None:
    tagged = add_utm("https://partner.example/?utm_source=blog&x=1", **UTM)
    assert parse_qsl(urlsplit(tagged).query) == [
        ("utm_source", "blog"),
        ("x", "1"),
        ("utm_medium", "email"),
        ("utm_campaign", "le-role-du-cto"),
        ("utm_content", "article-2"),
    ]


def test_add_utm_escapes_values() -> None:
    tagged = add_utm("/posts/x/", source="drip", medium="email", campaign="été & co", content="a=b#c")
    assert (
        tagged
        == "/posts/x/?utm_source=drip&utm_medium=email&utm_campaign=%C3%A9t%C3%A9+%26+co&utm_content=a%3Db%23c"
    )
    assert dict(parse_qsl(urlsplit(tagged).query))["utm_content"] == "a=b#c"


def test_resolve_article_found_takes_the_posts_details() -> None:
    index = load_content(CONTENT)
    item = ReadingItem(url="/posts/premier-post/", title="Texte du lien", label="Fondamental", minutes=10)
    article = resolve_article(item, index, BASE)
    assert article.found
    assert article.url == "https://example.com/posts/premier-post/"
    assert article.title == "Le premier post"  # the post's title wins over the link text
    assert article.description == "Un post de test avec un temps de lecture donné."
    assert article.date == dt.date(2026, 4, 1)
    assert (article.label, article.minutes) == ("Fondamental", 10)  # the pillar's own label and time stay


def test_resolve_article_takes_minutes_from_the_post_when_the_item_has_none() -> None:
    index = load_content(CONTENT)
    item = ReadingItem(
        url="https://example.com/posts/second-post/?ref=guide#haut", title="Second", label="Pratique"
    )
    article = resolve_article(item, index, BASE)
    assert article.found
    assert article.url == "https://example.com/posts/second-post/?ref=guide#haut"
    assert (article.title, article.minutes, article.label) == ("Le second post", 3, "Pratique")


def test_resolve_article_not_found_uses_the_link_text() -> None:
    index = load_content(CONTENT)
    item = ReadingItem(url="/posts/absent/", title="Absent", label="Terrain", minutes=20, notes=("Une note",))
    article = resolve_article(item, index, BASE)
    assert not article.found
    assert (article.url, article.title, article.description, article.date) == (
        "https://example.com/posts/absent/",
        "Absent",
        None,
        None,
    )
    assert (article.label, article.minutes, article.notes) == ("Terrain", 20, ("Une note",))


def test_resolve_the_fixture_pillar_against_its_content_tree() -> None:
    index = load_content(CONTENT)
    pillar = read_pillar(index.pillars["guide-du-lead"])
    articles = [resolve_article(item, index, BASE) for item in pillar.reading_path]
    assert [(a.found, a.title, a.minutes) for a in articles] == [
        (True, "Le premier post", 10),
        (True, "Le second post", 3),
        (False, "Absent", 20),
    ]


def test_resolve_the_seed_pillar_against_the_site_content() -> None:
    index = load_content(ROOT / "content")
    pillar = read_pillar(ROOT / "content" / "le-role-du-cto.md")
    articles = [resolve_article(item, index, "https://example.com") for item in pillar.reading_path]
    assert all(a.found for a in articles)
    assert [a.minutes for a in articles] == [10, 15, 20]
    assert [a.label for a in articles] == ["Fondamental", "Posture", "Terrain"]
    assert all(a.url.startswith("https://example.com/posts/") for a in articles)


def test_only_web_links_are_tagged() -> None:
    for url in ("mailto:hello@example.org?subject=Hi", "tel:+33123456789"):
        assert add_utm(url, source="drip", medium="email", campaign="c", content="k") == url
