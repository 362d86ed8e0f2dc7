"""The preview page: served for real by uvicorn, driven in Debian's headless Chromium."""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx2
import pytest

from drip.config import load_site
from drip.course.compile import compile_course
from drip.preview.server import PreviewServer, create_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser

REPO = Path(__file__).resolve().parents[1]
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def first_article_title() -> str:
    """The title the first article email shows: its post's title, read from content/."""
    article = compile_course(load_site(REPO), "le-role-du-cto").steps[1].article
    assert article is not None
    return article.title


@pytest.fixture
def hostile_site(tmp_path: Path) -> Path:
    """The example site with markup in the course title and a subject override."""
    site = tmp_path / "site"
    for name in ("content", "schedules", "email_templates"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, site / name)
    shutil.copy(REPO / "drip.yaml", site / "drip.yaml")
    schedule = site / "schedules" / "le-role-du-cto.yaml"
    text = schedule.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("title:")]
    lines.append("title: \"<script>alert('t')</script> & co\"")
    schedule.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site


@pytest.fixture
def server() -> Iterator[str]:
    running = PreviewServer(create_app(load_site(REPO), now=NOW))
    url = running.start()
    yield url
    running.stop()


def test_pages_escape_what_comes_from_the_site(hostile_site: Path) -> None:
    running = PreviewServer(create_app(load_site(hostile_site), now=NOW))
    url = running.start()
    try:
        index = httpx2.get(url + "/")
        course = httpx2.get(url + "/courses/le-role-du-cto/")
    finally:
        running.stop()
    for page in (index, course):
        assert page.status_code == 200
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(&#39;t&#39;)&lt;/script&gt; &amp; co" in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_course_that_does_not_compile_is_shown_not_raised(hostile_site: Path) -> None:
    schedule = hostile_site / "schedules" / "le-role-du-cto.yaml"
    schedule.write_text(schedule.read_text(encoding="utf-8") + "cadense: <b>3</b>\n", encoding="utf-8")
    running = PreviewServer(create_app(load_site(hostile_site), now=NOW))
    url = running.start()
    try:
        index = httpx2.get(url + "/")
        course = httpx2.get(url + "/courses/le-role-du-cto/")
    finally:
        running.stop()
    assert index.status_code == 200
    assert course.status_code == 422
    for page in (index, course):
        assert f"{schedule}:" in page.text
        assert "cadense: unknown key (did you mean &#39;cadence&#39;?)" in page.text
        assert "<b>" not in page.text


def test_unknown_course_and_step_are_404_pages_with_a_hint(server: str) -> None:
    missing = httpx2.get(server + "/courses/le-role-du-ct/")
    assert missing.status_code == 404
    assert "did you mean &#39;le-role-du-cto&#39;?" in missing.text
    step = httpx2.get(server + "/courses/le-role-du-cto/emails/9.html")
    assert step.status_code == 404
    assert "has steps 1 to 5, not 9" in step.text


def test_email_documents_allow_no_script(server: str) -> None:
    page = httpx2.get(server + "/courses/le-role-du-cto/emails/2.html")
    assert page.status_code == 200
    assert html.escape(first_article_title()) in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy


@pytest.mark.browser
def test_preview_page_in_chromium(browser: Browser, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    title = first_article_title()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(server + "/")
        expect(page.get_by_role("heading", name="Courses")).to_be_visible()
        page.screenshot(path=str(tmp_path / "preview-index.png"))
        page.get_by_role("link", name="Le rôle du CTO").first.click()
        expect(page).to_have_url(server + "/courses/le-role-du-cto/")

        timeline = page.locator("table tbody tr")
        expect(timeline).to_have_count(5)
        expect(timeline.nth(0)).to_contain_text("Tue 2026-12-01 11:00 CET")

        email = page.locator("#email-2")
        subject = email.locator(".subject")
        expect(subject).not_to_be_empty()
        expect(email.locator("pre.text")).to_contain_text(title)

        for kind, width in (("desktop", 600), ("mobile", 375)):
            frame_element = email.locator(f"iframe.{kind}")
            box = frame_element.bounding_box()
            assert box is not None
            assert round(box["width"]) == width + (2 if kind == "desktop" else 16)  # plus the frame border
            frame = frame_element.content_frame
            expect(frame.locator("body")).to_contain_text(title)
            unsubscribe = frame.locator("a[href*='/unsubscribe/']")
            expect(unsubscribe.first).to_be_attached()

        # No horizontal scrolling inside the phone frame: the email fits 375 px.
        phone = email.locator("iframe.mobile").element_handle()
        assert phone is not None
        content = phone.content_frame()
        assert content is not None
        assert content.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        page.screenshot(path=str(tmp_path / "preview-course.png"))
        email.screenshot(path=str(tmp_path / "preview-email.png"))
        assert (tmp_path / "preview-email.png").stat().st_size > 10_000
    finally:
        page.close()


def test_serve_command_prints_its_url_and_serves(tmp_path: Path) -> None:
    """`drip preview --serve --port 0` binds first, then prints the URL it really listens on."""
    command = [sys.executable, "-m", "drip", "--site", str(REPO), "preview", "le-role-du-cto", "--serve"]
    command += ["--port", "0", "--now", NOW.isoformat()]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"Preview on (http://127\.0\.0\.1:(\d+)/courses/le-role-du-cto/) \(Ctrl-C to stop\)\n", line
        )
        assert match, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        assert int(match.group(2)) > 0
        page = httpx2.get(match.group(1), timeout=30)
        assert page.status_code == 200
        assert "Tue 2026-12-01 11:00 CET" in page.text
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_command_fails_fast_on_an_unknown_course() -> None:
    command = [
        sys.executable,
        "-m",
        "drip",
        "--site",
        str(REPO),
        "preview",
        "le-role",
        "--serve",
        "--port",
        "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no course 'le-role'" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.browser
def test_preview_pages_fit_a_390_px_phone(browser: Browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        for path in ("/", "/courses/le-role-du-cto/", "/courses/le-role-du-ct/"):
            page.goto(server + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        page.close()


def test_the_english_preview_ui_uses_english_quotes(server: str) -> None:
    pillar = compile_course(load_site(REPO), "le-role-du-cto").pillar.title
    index = httpx2.get(server + "/").text
    course = httpx2.get(server + "/courses/le-role-du-cto/").text
    assert f"From the pillar “{html.escape(pillar)}”" in index
    assert f"emails from “{html.escape(pillar)}”" in course
    assert "« " not in index and "« " not in course.split("<h1>", 1)[1].split("</p>", 1)[0]


def example_site(root: Path) -> Path:
    """A copy of the example site's sources: no database, whatever the checkout holds."""
    for name in ("content", "schedules", "email_templates"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "drip.yaml", root / "drip.yaml")
    return root


def test_serving_the_stats_page_creates_no_database(tmp_path: Path) -> None:
    """`drip preview --serve` on a site that never sent: the funnel page says so, and no drip.db appears."""
    site = example_site(tmp_path / "site")
    command = [sys.executable, "-m", "drip", "--site", str(site), "preview", "le-role-du-cto", "--serve"]
    env = {k: v for k, v in os.environ.items() if k != "DRIP_DATABASE_URL"}
    proc = subprocess.Popen(
        [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://\S+/courses/le-role-du-cto/)", line)
        assert match, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        page = httpx2.get(match.group(1) + "stats", timeout=30)
        assert page.status_code == 200
        assert "No figures yet: nothing has been sent" in page.text
    finally:
        proc.terminate()
        proc.wait(10)
    assert sorted(p.name for p in site.iterdir() if p.name.startswith("drip.db")) == []


def test_the_stats_page_reads_an_old_database_without_migrating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drip.store.db import connect, current_revisions, migrate

    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    site = load_site(example_site(tmp_path / "site"))
    engine = connect(site.database_url)
    migrate(engine, "0009_handoff")
    engine.dispose()
    running = PreviewServer(create_app(site, now=NOW))
    url = running.start()
    try:
        page = httpx2.get(f"{url}/courses/le-role-du-cto/stats", timeout=30)
    finally:
        running.stop()
    assert page.status_code == 200
    assert "The database is at revision 0009_handoff" in html.unescape(page.text)
    engine = connect(site.database_url)
    try:
        assert current_revisions(engine) == {"0009_handoff"}  # the preview moved nothing
    finally:
        engine.dispose()
