"""The whole subscriber journey in headless Chromium against a real uvicorn server.

Embed form on the site → subscribe → confirmation email (.eml) → confirm link → its button → `drip run --once`
sends the welcome → one-click unsubscribe (RFC 8058) from its List-Unsubscribe header
→ later dispatch passes send nothing more to that address, while a control
subscriber keeps receiving the course.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import pytest
import uvicorn
from click.testing import CliRunner
from web_support import COURSE, SECRET, Clock, copy_site, link_in, messages_to

from drip.cli import _register, cli
from drip.config import Site
from drip.web.app import create_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

T0 = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)

_register()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, site: Site, clock: Clock, port: int) -> None:
        self.site, self.clock, self.port = site, clock, port
        config = uvicorn.Config(
            create_app(site, now_fn=clock, secret=SECRET), host="127.0.0.1", port=port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:  # readiness poll of a real server, not a clock wait
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("DRIP_SECRET_KEY", SECRET)
    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    port = free_port()
    site = copy_site(tmp_path / "site", base_url=f"http://127.0.0.1:{port}")
    with Served(site, Clock(T0), port) as s:
        yield s


def run_once(site: Site, now: dt.datetime) -> None:
    result = CliRunner().invoke(cli, ["--site", str(site.root), "run", "--once", "--now", now.isoformat()])
    assert result.exit_code == 0, result.output


def test_subscriber_journey_in_a_real_browser(browser: Browser, served: Served, tmp_path: Path) -> None:
    site = served.site
    embed = CliRunner().invoke(cli, ["--site", str(site.root), "embed", COURSE])
    assert embed.exit_code == 0, embed.output
    # The form is embedded on the site itself (its base URL's origin): cross-site posts are refused.
    host_page = (
        f'<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Blog</title></head>'
        f"<body><h1>Mon blog</h1>{embed.output}</body></html>"
    )
    blog_url = f"{site.config.site.base_url}/blog/"
    reader = "lea.martin@example.org"
    page = browser.new_page(java_script_enabled=False)  # the form must work without JavaScript
    keys = browser.new_page(extra_http_headers={"Accept-Language": "en"})
    try:
        page.route(
            blog_url, lambda route: route.fulfill(body=host_page, content_type="text/html; charset=utf-8")
        )
        page.goto(blog_url)
        page.get_by_label("Adresse email").fill(reader)
        page.get_by_label("Prénom (facultatif)").fill("Léa")
        with page.expect_navigation():
            page.get_by_role("button", name="M'inscrire").click()
        assert page.locator("h1").inner_text() == "Vérifie ta boîte de réception"
        assert page.locator("html").get_attribute("lang") == "fr"

        (confirmation,) = messages_to(site, reader)
        assert "Confirme ton inscription" in confirmation["Subject"]
        confirm_url = link_in(confirmation, "confirm")
        page.goto(confirm_url)  # the link only shows a page: a mail scanner following it confirms nothing
        assert page.locator("h1").inner_text() == "Confirme ton inscription"
        with page.expect_navigation():
            page.get_by_role("button", name="Confirmer mon inscription").click()
        assert page.locator("h1").inner_text() == "Inscription confirmée"

        # Keyboard only on drip's own form page: Tab reaches the fields in order, skips the honeypot.
        keys.goto(f"http://127.0.0.1:{served.port}/subscribe?course={COURSE}")
        assert keys.locator("html").get_attribute("lang") == "en"
        keys.keyboard.press("Tab")
        assert keys.evaluate("document.activeElement.id") == "drip-email"
        keys.keyboard.type("clavier@example.org")
        keys.keyboard.press("Tab")
        assert keys.evaluate("document.activeElement.id") == "drip-name"
        keys.keyboard.press("Tab")
        assert keys.evaluate("document.activeElement.tagName") == "BUTTON"
        with keys.expect_navigation():  # Enter only starts the form's navigation
            keys.keyboard.press("Enter")
        assert keys.locator("h1").inner_text() == "Check your inbox"
        assert len(messages_to(site, "clavier@example.org")) == 1
    finally:
        page.close()
        keys.close()

    # A control reader who stays subscribed, so "nothing more" below means something.
    control = "controle@example.org"
    with httpx2.Client(base_url=f"http://127.0.0.1:{served.port}") as client:
        assert client.post("/subscribe", data={"email": control, "course": COURSE}).status_code == 200
        (control_mail,) = messages_to(site, control)
        assert client.post(link_in(control_mail, "confirm")).status_code == 200

    run_once(site, T0 + dt.timedelta(minutes=5))
    welcome = [m for m in messages_to(site, reader) if m["X-Drip-Step"] == "welcome"]
    assert len(welcome) == 1
    header = welcome[0]["List-Unsubscribe"]
    assert welcome[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.search(r"<(https?://[^>]+/unsubscribe/[^>]+)>", header)
    assert match is not None, header
    # What a mail client does for RFC 8058: a bare POST, no cookie, no page.
    response = httpx2.post(
        match.group(1),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    sent_to_reader = len(messages_to(site, reader))

    for days in (1, 3, 7, 14, 30, 60):
        run_once(site, T0 + dt.timedelta(days=days, hours=2))
    assert len(messages_to(site, reader)) == sent_to_reader
    control_steps = {m["X-Drip-Step"] for m in messages_to(site, control)}
    assert "welcome" in control_steps and len(control_steps - {"confirm", "welcome"}) >= 1
