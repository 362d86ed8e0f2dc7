"""List archives: public copies of past issues (no reader's links), the Atom feed, static and served."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from newsletter_cli_support import NewsSite
from starlette.testclient import TestClient

from drip.dispatch.newsletters import plan_newsletters
from drip.runtime import Runtime, frozen_clock
from drip.web.app import create_app

ATOM = "{http://www.w3.org/2005/Atom}"
SENT = dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)
KEY = "hebdo:2026-11-30T09:00+01:00"
LATER = dt.datetime(2026, 12, 20, 8, tzinfo=dt.UTC)
CLOSED = 'kind: list\ntitle: "Fermée"\narchive: false\n'
HOSTILE = 'kind: list\ntitle: "<script>alert(1)</script> & co"\narchive: true\n'


def _news(root: Path, lists: str | None = None) -> NewsSite:
    news = NewsSite(root, lists=lists)
    news.issue(KEY, SENT, ["/posts/premiers-jours/"], subject="Premier numéro")
    news.issue(
        "hebdo:2026-12-28T09:00+01:00", dt.datetime(2026, 12, 28, 8, tzinfo=dt.UTC), ["/posts/vision/"]
    )
    return news


@pytest.fixture
def news(tmp_path: Path) -> NewsSite:
    return _news(tmp_path)


def _client(news: NewsSite) -> TestClient:
    runtime = Runtime(clock=frozen_clock(LATER), _secret="k" * 32)
    return TestClient(create_app(news.site, runtime=runtime, engine=news.engine))


def test_archive_command_writes_the_index_the_feed_and_one_public_page_per_past_issue(
    news: NewsSite, tmp_path: Path
) -> None:
    out = tmp_path / "public"
    result = news.run("archive", "--out", str(out), "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    assert "3 files written" in result.output
    page = (out / "lettre" / "hebdo-2026-11-30t09-00-01-00" / "index.html").read_text()
    assert "Premiers jours" in page
    assert "/unsubscribe/" not in page and "/preferences/" not in page and "preview-token" not in page
    assert "https://cto.example.org/subscribe?list=lettre" in page
    index = (out / "lettre" / "index.html").read_text()
    assert "Premier numéro" in index and "2026-12-28" not in index  # a future issue is not public yet


def test_the_atom_feed_parses_with_ids_updated_and_links(news: NewsSite, tmp_path: Path) -> None:
    out = tmp_path / "public"
    assert news.run("archive", "--out", str(out), "--now", LATER.isoformat()).exit_code == 0
    root = ET.parse(out / "lettre" / "feed.xml").getroot()
    assert root.tag == f"{ATOM}feed"
    assert root.findtext(f"{ATOM}id") == "https://cto.example.org/archive/lettre/"
    assert dt.datetime.fromisoformat(root.findtext(f"{ATOM}updated") or "") == SENT
    rels = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert rels["self"] == "https://cto.example.org/archive/lettre/feed.xml"
    (entry,) = root.findall(f"{ATOM}entry")
    url = "https://cto.example.org/archive/lettre/hebdo-2026-11-30t09-00-01-00/"
    assert entry.findtext(f"{ATOM}id") == url
    assert entry.find(f"{ATOM}link").get("href") == url  # type: ignore[union-attr]
    assert entry.findtext(f"{ATOM}title") == "Premier numéro"
    assert dt.datetime.fromisoformat(entry.findtext(f"{ATOM}updated") or "") == SENT


def test_a_list_with_archive_false_has_no_pages(tmp_path: Path) -> None:
    news = _news(tmp_path, lists=CLOSED)
    out = tmp_path / "public"
    result = news.run("archive", "--out", str(out), "--now", LATER.isoformat())
    assert result.exit_code == 0 and "0 files" in result.output
    assert _client(news).get("/archive/lettre/").status_code == 404


def test_serve_publishes_the_archive_with_security_headers(news: NewsSite) -> None:
    client = _client(news)
    index = client.get("/archive/lettre/")
    assert index.status_code == 200 and "Premier numéro" in index.text
    assert index.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in index.headers
    feed = client.get("/archive/lettre/feed.xml")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    ET.fromstring(feed.content)
    page = client.get("/archive/lettre/hebdo-2026-11-30t09-00-01-00/")
    assert page.status_code == 200 and "/unsubscribe/" not in page.text
    assert client.get("/archive/lettre/hebdo-2026-12-28t09-00-01-00/").status_code == 404
    assert client.get("/archive/nope/").status_code == 404
    assert client.get("/archive/lettre", follow_redirects=False).status_code == 308


def test_list_titles_are_escaped_on_the_archive_page(tmp_path: Path) -> None:
    news = _news(tmp_path, lists=HOSTILE)
    text = _client(news).get("/archive/lettre/").text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text


@pytest.mark.parametrize(
    ("lists", "note", "index_words"),
    [
        (
            None,
            "Abonne-toi à «\u00a0La lettre du CTO\u00a0»</a> pour recevoir les prochains numéros par email.",
            ("S&#39;abonner</a>", "Flux Atom</a>"),
        ),
        (
            'kind: list\ntitle: "The CTO letter"\narchive: true\nlocale: en\n',
            "Subscribe to The CTO letter</a> to get the next issues by email.",
            ("Subscribe</a>", "Atom feed</a>"),
        ),
    ],
)
def test_the_archive_speaks_the_list_language(
    tmp_path: Path, lists: str | None, note: str, index_words: tuple[str, ...]
) -> None:
    client = _client(_news(tmp_path, lists=lists))
    page = client.get("/archive/lettre/hebdo-2026-11-30t09-00-01-00/")
    assert page.status_code == 200 and note in page.text
    index = client.get("/archive/lettre/").text
    assert all(word in index for word in index_words)


def test_an_archive_with_no_issue_says_so_in_the_list_language(tmp_path: Path) -> None:
    news = NewsSite(tmp_path)
    assert "Aucun numéro pour l&#39;instant." in _client(news).get("/archive/lettre/").text


def test_the_archive_shows_an_issue_as_it_went_out_not_as_its_posts_read_today(tmp_path: Path) -> None:
    news = NewsSite(tmp_path)
    news.reader("lea@example.org")
    monday = dt.datetime(2026, 12, 7, 8, 5, tzinfo=dt.UTC)  # 09:05 in Paris, the digest's slot
    assert plan_newsletters(news.site, news.engine, now=monday)
    post = tmp_path / "content" / "posts" / "vision.md"
    post.write_text(post.read_text(encoding="utf-8").replace("Vision", "Vision réécrite"), encoding="utf-8")

    out = tmp_path / "public"
    assert news.run("archive", "--out", str(out), "--now", LATER.isoformat()).exit_code == 0
    [page] = [p for p in (out / "lettre").glob("hebdo-*/index.html")]
    html = page.read_text()
    assert "Vision" in html and "Premiers jours" in html
    assert "réécrite" not in html  # the copy kept when the issue was created
    assert "/unsubscribe/" not in html and "lea@example.org" not in html
    assert "https://cto.example.org/subscribe?list=lettre" in html  # the footer is added as it is shown
