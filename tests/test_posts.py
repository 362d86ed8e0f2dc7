"""Posts and the content index: classification, URLs, reading times, lookups, errors."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from drip.content import load_content, read_pillar, read_post
from drip.errors import ContentError

ROOT = Path(__file__).resolve().parent.parent
SITE_CONTENT = ROOT / "content"
CONTENT = Path(__file__).resolve().parent / "fixtures" / "content"
BASE = "https://example.com"


def test_post_reads_front_matter() -> None:
    post = read_post(CONTENT / "posts" / "premier-post.md", CONTENT)
    assert post.url == "/posts/premier-post/"
    assert post.title == "Le premier post"
    assert post.description == "Un post de test avec un temps de lecture donné."
    assert post.date == dt.date(2026, 4, 1)
    assert post.minutes == 7
    assert post.body == "Un court texte."


def test_page_bundle_post_falls_back_to_heading_and_word_count() -> None:
    post = read_post(CONTENT / "posts" / "second-post" / "index.md", CONTENT)
    assert post.url == "/posts/second-post/"
    assert post.title == "Le second post"
    assert post.date == dt.date(2026, 5, 2)  # a date-time in front matter keeps its day
    assert post.minutes == 3  # 601 words at 200 a minute
    assert post.description.startswith("mot0 mot1 mot2")


@pytest.mark.parametrize(("words", "minutes"), [(5, 1), (250, 1), (350, 2), (1000, 5)])
def test_reading_time_from_word_count(tmp_path: Path, words: int, minutes: int) -> None:
    body = " ".join(["mot"] * words)
    (tmp_path / "posts").mkdir()
    path = tmp_path / "posts" / "x.md"
    path.write_text(
        f"---\ntitle: X\n---\n\n{body}\n\n```\n{' '.join(['code'] * 2000)}\n```\n", encoding="utf-8"
    )
    assert read_post(path, tmp_path).minutes == minutes  # code blocks are not read as prose


@pytest.mark.parametrize("key", ["reading_time", "minutes"])
def test_reading_time_from_front_matter_wins(tmp_path: Path, key: str) -> None:
    path = tmp_path / "x.md"
    path.write_text(f"---\n{key}: 12\n---\n\nCourt.\n", encoding="utf-8")
    assert read_post(path, tmp_path).minutes == 12


def test_front_matter_url_wins(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text("---\nurl: /ailleurs/mon-post/\n---\n\nTexte.\n", encoding="utf-8")
    assert read_post(path, tmp_path).url == "/ailleurs/mon-post/"


def test_post_errors_are_located(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text(
        "---\ntitle: X\ndate: demain\nreading_time: 0\nurl: posts/x\n---\n\nTexte.\n", encoding="utf-8"
    )
    with pytest.raises(ContentError) as caught:
        read_post(path, tmp_path)
    assert [(p.line, p.key) for p in caught.value.problems] == [(3, "date"), (4, "reading_time"), (5, "url")]
    assert caught.value.problems[2].message == "url must be a site path starting with '/', got 'posts/x'"


def test_content_index_classifies_files() -> None:
    index = load_content(CONTENT)
    assert index.root == CONTENT
    # Top-level files are pillars, nested ones posts; `type:` decides either way; posts/_index.md is
    # the section page at /posts/ (a page, not a pillar: it has no reading path).
    assert index.pillars == {
        "guide-du-lead": CONTENT / "guide-du-lead.md",
        "page-pilier": CONTENT / "posts" / "page-pilier.md",
    }
    assert sorted(index.posts) == ["/a-propos/", "/posts/", "/posts/premier-post/", "/posts/second-post/"]
    assert index.known_urls() == {
        "/posts/",
        "/guide-du-lead/",
        "/posts/page-pilier/",  # where the site serves it: a pillar by `type:`, still under posts/
        "/a-propos/",
        "/posts/premier-post/",
        "/posts/second-post/",
    }


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("/posts/premier-post/", BASE, "/posts/premier-post/"),
        ("/posts/premier-post", BASE, "/posts/premier-post/"),
        ("posts/premier-post/", BASE, "/posts/premier-post/"),
        ("/posts/premier-post/?utm_source=x#suite", BASE, "/posts/premier-post/"),
        ("https://example.com/posts/second-post/?ref=guide#haut", BASE, "/posts/second-post/"),
        ("https://EXAMPLE.com/posts/second-post", BASE + "/", "/posts/second-post/"),
        ("http://example.com/posts/second-post/", BASE, "/posts/second-post/"),
        ("https://example.com/blog/posts/premier-post/", BASE + "/blog", "/posts/premier-post/"),
        ("https://example.com/posts/premier-post/", BASE + "/blog", None),
        ("https://ailleurs.example/posts/premier-post/", BASE, None),
        ("mailto:auteur@example.com", BASE, None),
        ("/posts/absent/", BASE, None),
        ("/posts/premier-post/index.html", BASE, None),
    ],
)
def test_post_for(url: str, base: str, expected: str | None) -> None:
    post = load_content(CONTENT).post_for(url, base)
    assert (post.url if post else None) == expected


def test_every_broken_file_is_reported_at_once(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content)
    (content / "casse.md").write_text('---\ntitle: "x\n---\n\nTexte.\n', encoding="utf-8")
    (content / "posts" / "liste.md").write_text("---\n- a\n---\n\nTexte.\n", encoding="utf-8")
    (content / "posts" / "doublon.md").write_text(
        "---\nurl: /posts/premier-post\n---\n\nTexte.\n", encoding="utf-8"
    )
    with pytest.raises(ContentError) as caught:
        load_content(content)
    assert sorted((p.file.name if p.file else "", p.line, p.message) for p in caught.value.problems) == [
        ("casse.md", 3, "invalid YAML: found unexpected end of stream (while scanning a quoted scalar)"),
        ("liste.md", 2, "front matter must be a mapping of keys (title: …), got a list"),
        (
            "premier-post.md",
            1,
            f"/posts/premier-post/ is already provided by {content / 'posts' / 'doublon.md'}",
        ),
    ]


def test_missing_content_folder(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="content folder not found"):
        load_content(tmp_path / "absent")


def test_site_content_provides_the_seed_reading_path() -> None:
    index = load_content(SITE_CONTENT)
    assert set(index.pillars) == {"le-role-du-cto"}
    pillar = read_pillar(index.pillars["le-role-du-cto"])
    posts = [index.post_for(item.url, "https://example.com") for item in pillar.reading_path]
    assert all(post is not None for post in posts)
    dated = [post.date for post in posts if post is not None]
    assert all(date is not None and date.year == 2026 for date in dated)
    # Every linked article beyond the reading path is left without a post.
    linked = {link.url for section in pillar.sections for link in section.links}
    assert linked - index.known_urls() == {"/posts/recruter-equipe-technique-cto-hiring-strategies/"}
    # At least one post has no reading time in its front matter: its minutes come from its words.
    texts = [post.path.read_text(encoding="utf-8") for post in index.posts.values()]
    assert any("reading_time:" not in t and "minutes:" not in t for t in texts)
