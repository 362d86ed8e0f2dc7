"""Digests and broadcasts rendered once with open slots, compared with reviewed golden copies.

Regenerate ONLY on purpose, then review the diff in git:

    .venv/bin/python -m pytest tests/test_newsletter_render.py --update-golden
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from drip.config import Site
from drip.content import load_content
from drip.content.broadcasts import read_broadcast
from drip.course.issues import period_key
from drip.course.newsletter import load_newsletters
from drip.course.selection import gather_posts
from drip.render.newsletter import render_broadcast, render_digest
from drip.render.rendered import RenderedStep

GOLDEN = Path(__file__).resolve().parent / "golden" / "newsletters"
PARIS = ZoneInfo("Europe/Paris")
VALUES = {
    "name": "Camille",
    "email": "camille@example.org",
    "unsubscribe_url": "https://cto.example.org/unsubscribe/preview-token",
    "preferences_url": "https://cto.example.org/preferences/preview-token",
    "view_url": "https://cto.example.org/view/preview-token",
}

# The index as of a far date: every dated post is in it, and gather_posts applies its own `now`.
EVERYTHING = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def example_digest(site: Site) -> RenderedStep:
    found = load_newsletters(site)
    digest = found.digests["lettre-hebdo"]
    until = dt.datetime(2026, 3, 16, 9, tzinfo=PARIS)
    posts = gather_posts(
        digest,
        load_content(site.content_dir, now=EVERYTHING),
        dt.datetime(2026, 1, 1, tzinfo=PARIS),
        until,
        until,
    )
    assert posts is not None
    return render_digest(site, digest, found.lists[digest.list], posts, period_key(digest, until))


def example_broadcast(site: Site) -> RenderedStep:
    broadcast = read_broadcast(site.content_dir / "newsletters" / "rentree-2026.md")
    return render_broadcast(site, broadcast, load_newsletters(site).lists[broadcast.list])


def outputs(site: Site) -> dict[str, str]:
    out: dict[str, str] = {}
    for stem, rendered in (("digest", example_digest(site)), ("broadcast", example_broadcast(site))):
        subject, html, text = rendered.personalise(VALUES)
        out[f"{stem}.html"] = html
        out[f"{stem}.txt"] = f"Subject: {subject}\nPreheader: {rendered.preheader}\n\n{text}"
    return out


def test_outputs_match_golden_files(example_site: Site, update_golden: bool) -> None:
    found = outputs(example_site)
    if update_golden:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, content in found.items():
            (GOLDEN / name).write_text(content, encoding="utf-8", newline="")
        return
    mismatches: list[str] = []
    for name, content in found.items():
        path = GOLDEN / name
        expected = path.read_text(encoding="utf-8") if path.exists() else ""
        if content != expected:
            cut = re.compile(r"(?<=>)") if name.endswith(".html") else re.compile(r"(?<=\n)")
            diff = difflib.unified_diff(
                cut.split(expected), cut.split(content), f"golden/{name}", f"rendered/{name}", n=1
            )
            mismatches.append("".join(list(diff)[:40]))
    assert not mismatches, "rendered newsletters differ from the golden files:\n" + "\n".join(mismatches)


def test_digest_is_one_rendered_step_with_open_slots(example_site: Site) -> None:
    rendered = example_digest(example_site)
    assert (rendered.course, rendered.step_key, rendered.locale) == (
        "lettre-hebdo",
        "lettre-hebdo:2026-03-16T09:00+01:00",
        "fr",
    )
    assert {"name", "unsubscribe_url", "preferences_url", "view_url"} <= rendered.html.slot_names
    subject, html, text = rendered.personalise({**VALUES, "name": "<Ana>"})
    assert subject == "La lettre du CTO : 3 nouveaux articles"  # one line, as course subjects
    assert "Bonjour &lt;Ana&gt;," in html and "Bonjour <Ana>," in text
    assert "utm_campaign=lettre-hebdo&amp;utm_content=2026-03-16" in html
    assert "https://cto.example.org/unsubscribe/preview-token" in html


def test_broadcast_body_is_real_markdown(example_site: Site) -> None:
    _, html, text = example_broadcast(example_site).personalise(VALUES)
    for needle in (
        "<h1 ",
        "<h2 ",
        "<ul ",
        "<blockquote ",
        "<table ",
        "<pre ",
        'width="560"',
        'alt="Une boussole posée sur une carte"',
    ):
        assert needle in html
    assert "&lt;2026&gt;" in html and "<2026>" not in html  # code is escaped
    assert "mailto:bonjour@cto.example.org" in html
    assert "utm_campaign=rentree-2026&amp;utm_content=broadcast" in html
    assert "    # Vision technique <2026>" in text
    assert "Lead Dev | Comment le construire ?" in text
