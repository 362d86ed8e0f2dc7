"""The click redirect and the open image, end to end: a real email from dispatch, its /c/ links followed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from starlette.testclient import TestClient
from web_support import COURSE, SECRET, Clock, Harness, body_html, body_text, copy_site, messages_to

from drip.config import load_site
from drip.course.compile import load_courses
from drip.dispatch.batch import dispatch_once
from drip.render.steps import render_course
from drip.runtime import Runtime
from drip.store.db import connect, upgrade
from drip.store.schema import EventKind, events
from drip.tokens import click_token
from drip.transports import get_transport
from drip.web.app import create_app

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
READER = "click@example.org"


@pytest.fixture
def web(tmp_path: Path, db_url: str) -> Iterator[Harness]:
    copy_site(tmp_path, database=db_url)
    config = yaml.safe_load((tmp_path / "drip.yaml").read_text(encoding="utf-8"))
    config["tracking"] = {"clicks": True, "opens": True}
    (tmp_path / "drip.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    site = load_site(tmp_path)
    engine = connect(db_url)
    upgrade(engine)
    clock = Clock()
    runtime = Runtime.for_tests(SECRET, clock=clock)
    app = create_app(site, runtime=runtime, engine=engine)
    harness = Harness(
        site, clock, TestClient(app, raise_server_exceptions=True, headers={"user-agent": BROWSER}), engine
    )
    harness.subscribe(READER)
    harness.confirm(READER)
    dispatch_once(site, engine, get_transport(site), runtime=runtime, worker="t")
    yield harness
    engine.dispose()


def click_links(web: Harness) -> list[str]:
    mails = messages_to(web.site, READER)
    html = body_html(mails[-1])
    return [web.url_path(u) for u in dict.fromkeys(re.findall(r'href="(https?://[^"]+/c/[^"]+)"', html))]


def clicks(web: Harness) -> list[tuple[bool, bool, str | None]]:
    with web.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.machine, events.c.first, events.c.detail)
            .where(events.c.kind == EventKind.CLICKED)
            .order_by(events.c.id)
        ).all()
    return [(bool(r[0]), bool(r[1]), r[2]) for r in rows]


def test_a_click_records_one_human_click_and_redirects_exactly_to_the_link_drip_wrote(web: Harness) -> None:
    links = click_links(web)
    assert links, "the welcome email has no tracked link"
    written = {
        link for r in render_course(web.site, load_courses(web.site)[COURSE]).values() for link in r.links
    }
    web.clock.advance(minutes=5)
    first = web.client.get(links[0], follow_redirects=False)
    assert first.status_code == 302
    target = first.headers["location"]
    assert target in written and target.startswith("https://cto.example.org")
    assert "utm_campaign=" in target  # the site's own link, tagged as it would be untracked
    again = web.client.get(links[0], follow_redirects=False)
    assert again.headers["location"] == target
    assert clicks(web) == [(False, True, None), (False, False, None)]  # one reader, counted once


def test_the_text_part_carries_the_same_tracked_links(web: Harness) -> None:
    text = body_text(messages_to(web.site, READER)[-1])
    assert "/c/" in text
    assert all(web.url_path(u) in click_links(web) for u in re.findall(r"https?://\S+/c/[\w.\-]+", text))


@pytest.mark.parametrize("edit", ["forged", "edited", "foreign", "other_delivery", "garbage"])
def test_a_forged_edited_or_foreign_token_goes_nowhere(web: Harness, edit: str) -> None:
    path = click_links(web)[0]
    token = path.rsplit("/", 1)[1]
    delivery, link, mac = token.split(".")
    bad = {
        "forged": f"{delivery}.{link}.{'A' * 16}",
        "edited": f"{delivery}.{int(link) + 1}.{mac[:-1]}{'B' if mac[-1] != 'B' else 'C'}",
        "foreign": click_token(
            "another-secret-key-0123456789", int(delivery, 36), int(link), "https://evil.example/"
        ),
        "other_delivery": f"{int(delivery, 36) + 1:x}.{link}.{mac}",
        "garbage": "not-a-token",
    }[edit]
    web.clock.advance(minutes=5)
    response = web.client.get(f"/c/{bad}", follow_redirects=False)
    assert response.status_code == 404 and "location" not in response.headers
    assert clicks(web) == []


def test_a_token_signed_for_a_url_drip_did_not_write_goes_nowhere(web: Harness) -> None:
    token = click_links(web)[0].rsplit("/", 1)[1]
    delivery = int(token.split(".")[0], 36)
    evil = click_token(SECRET, delivery, 0, "https://evil.example/")
    assert web.client.get(f"/c/{evil}", follow_redirects=False).status_code == 404


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("head", "HEAD request"),
        ("scanner", "scanner: safelinks"),
        ("bare", "no browser named"),
        ("soon", "seconds after delivery"),
    ],
)
def test_scanner_patterns_are_recorded_as_machines_not_readers(web: Harness, how: str, reason: str) -> None:
    path = click_links(web)[0]
    if how != "soon":
        web.clock.advance(minutes=5)
    headers = {"scanner": {"user-agent": "Microsoft SafeLinks/1.0"}, "bare": {"user-agent": "Mozilla/5.0"}}
    if how == "head":
        response = web.client.head(path, follow_redirects=False)
    else:
        response = web.client.get(path, follow_redirects=False, headers=headers.get(how, {}))
    assert response.status_code == 302  # the scanner is still sent on: the link must work
    assert clicks(web) == [(True, True, reason)]


def test_every_link_clicked_at_once_is_a_scanner_even_the_first(web: Harness) -> None:
    links = click_links(web)
    assert len(links) >= 2
    web.clock.advance(minutes=5)
    for path in links:
        web.clock.advance(seconds=1)
        web.client.get(path, follow_redirects=False)
    found = clicks(web)
    assert all(machine for machine, _first, _ in found) and len(found) == len(links)
    web.clock.advance(minutes=10)
    web.client.get(links[0], follow_redirects=False)  # the reader, later: now the first human click
    assert clicks(web)[-1] == (False, True, None)


def test_the_open_image_records_opens_and_machine_opens_apart(web: Harness) -> None:
    html = body_html(messages_to(web.site, READER)[-1])
    pixel = web.url_path(re.findall(r'src="(https?://[^"]+/o/[^"]+\.gif)"', html)[0])
    web.clock.advance(minutes=5)
    assert web.client.get(pixel, headers={"user-agent": "Mozilla/5.0"}).headers["content-type"] == "image/gif"
    assert web.client.get(pixel).status_code == 200
    assert web.client.get(pixel.replace(".gif", "x.gif")).status_code == 404
    with web.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.machine, events.c.first).where(events.c.kind == EventKind.OPENED)
        ).all()
    assert sorted((bool(m), bool(f)) for m, f in rows) == [(False, True), (True, True)]


def test_with_tracking_off_the_email_has_no_redirect_and_no_pixel(tmp_path: Path) -> None:
    site = copy_site(tmp_path)
    rendered = render_course(site, load_courses(site)[COURSE])
    assert all(not r.links for r in rendered.values())
    assert not any("/c/" in r.html.parts[0] or "/o/" in "".join(r.html.parts) for r in rendered.values())


def test_click_tokens_are_compact() -> None:
    token = click_token(SECRET, 123_456_789, 12, "https://cto.example.org/posts/x/?utm_source=drip")
    assert len(token) <= 32  # fits in any email link
