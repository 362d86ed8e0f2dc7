"""`drip embed`, `drip serve` refusing to start without a key, and personal-data export / erase."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from click.testing import CliRunner
from web_support import (
    COURSE,
    SECRET,
    Harness,
    OpenWeb,
    make_harness,
    messages_to,
    open_web_fixture,  # noqa: F401 - the fixture, by name
    outbox_messages,
)

from drip.cli import _register, cli
from drip.store.suppressions import email_hash, is_suppressed
from drip.web.ratelimit import RateLimit

_register()


@pytest.fixture
def web(tmp_path: Path) -> Harness:
    """The site on SQLite, for the commands that only read the site (embed, serve)."""
    return make_harness(tmp_path, rate_limit=RateLimit(per_minute=0))


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("DRIP_SECRET_KEY", SECRET)
    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    return CliRunner()


def test_embed_prints_a_labelled_form_with_honeypot_and_no_script(web: Harness, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--site", str(web.site.root), "embed", COURSE])
    assert result.exit_code == 0, result.output
    form = result.output
    assert f'action="{web.site.config.site.base_url}/subscribe"' in form
    assert f'name="course" value="{COURSE}"' in form
    assert 'name="website"' in form and 'tabindex="-1"' in form
    assert f'<label for="drip-email-{COURSE}">' in form and "<script" not in form
    english = runner.invoke(cli, ["--site", str(web.site.root), "embed", COURSE, "--locale", "en"])
    assert "Email address" in english.output
    typo = runner.invoke(cli, ["--site", str(web.site.root), "embed", "le-role-du-cta"])
    assert typo.exit_code == 1 and "did you mean 'le-role-du-cto'" in typo.output
    assert "Traceback" not in typo.output


def test_serve_refuses_to_start_without_a_key(
    web: Harness, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIP_SECRET_KEY")
    result = runner.invoke(cli, ["--site", str(web.site.root), "serve", "--port", "1"])
    assert result.exit_code == 1
    assert "DRIP_SECRET_KEY is not set" in result.output and "Traceback" not in result.output


def test_export_one_person_then_erase_everything_but_a_keyed_hash(
    open_web: OpenWeb, runner: CliRunner
) -> None:
    web = open_web(rate_limit=RateLimit(per_minute=0))
    web.subscribe("person@example.org", name="Personne")
    web.confirm("person@example.org")
    web.subscribe("other@example.org")
    site = ["--site", str(web.site.root)]

    exported = runner.invoke(cli, [*site, "subscribers", "export", "Person@Example.org"])
    assert exported.exit_code == 0, exported.output
    data = json.loads(exported.output)
    assert data["subscriber"]["email"] == "person@example.org" and data["subscriber"]["name"] == "Personne"
    assert [e["course"] for e in data["enrollments"]] == [COURSE]
    assert len(data["deliveries"]) >= 1 and data["suppressed"] is False
    whole_list = runner.invoke(cli, [*site, "subscribers", "export", "--format", "json"])
    assert whole_list.exit_code == 0 and {r["email"] for r in json.loads(whole_list.output)} == {
        "person@example.org",
        "other@example.org",
    }

    assert len(messages_to(web.site, "person@example.org")) == 1
    erased = runner.invoke(cli, [*site, "subscribers", "erase", "person@example.org", "--yes"])
    assert erased.exit_code == 0, erased.output
    assert web.subscriber("person@example.org") is None
    assert messages_to(web.site, "person@example.org") == []
    assert len(messages_to(web.site, "other@example.org")) == 1  # someone else's email stays
    with web.engine.connect() as conn:
        assert is_suppressed(conn, SECRET, "person@example.org")
    if web.kind == "sqlite":
        assert_erased_from_the_file(web)

    gone = runner.invoke(cli, [*site, "subscribers", "export", "person@example.org"])
    assert gone.exit_code == 1 and "no subscriber" in gone.output and "Traceback" not in gone.output
    again = runner.invoke(cli, [*site, "subscribers", "erase", "person@example.org", "--yes"])
    assert again.exit_code == 1  # nothing left to erase, nothing changed

    # Never mailed again unless they subscribe afresh and confirm.
    web.clock.advance(hours=1)
    web.subscribe("person@example.org")
    with web.engine.connect() as conn:
        assert is_suppressed(conn, SECRET, "person@example.org")
    web.confirm("person@example.org")
    with web.engine.connect() as conn:
        assert not is_suppressed(conn, SECRET, "person@example.org")
    assert len(outbox_messages(web.site)) == 2


def assert_erased_from_the_file(web: Harness) -> None:
    """No byte of the database file (journal included) holds the address or name any more."""
    db_bytes = (web.site.root / "drip.db").read_bytes() + b"".join(
        p.read_bytes() for p in web.site.root.glob("drip.db*") if p.is_file()
    )
    assert b"person@example.org" not in db_bytes.lower() and b"Personne" not in db_bytes
    assert b"other@example.org" in db_bytes  # the check reads real data: someone else is still there
    assert email_hash(SECRET, "person@example.org").encode() in db_bytes


def test_serve_demo_mode_says_so_loudly_and_serves(web: Harness, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DRIP_SECRET_KEY", "DRIP_DATABASE_URL")}
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "drip",
                "--site",
                str(web.site.root),
                "serve",
                "--demo",
                "--port",
                str(port),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while True:  # readiness poll of a real server
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert httpx2.get(f"http://127.0.0.1:{port}/subscribe?course={COURSE}").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    output = log.read_text()
    assert "DEMO MODE" in output and "anyone can forge them" in output


def test_both_languages_have_every_string() -> None:
    from drip.web.i18n import STRINGS

    assert set(STRINGS) == {"fr", "en"}
    assert set(STRINGS["fr"]) == set(STRINGS["en"])


def test_french_pages_say_tu_like_the_emails() -> None:
    """The emails say "tu": a "vous" on a page or in the confirmation email would switch register mid-journey."""
    import re

    from drip.render.i18n import CATALOGUES
    from drip.web.i18n import STRINGS

    formal = re.compile(r"\b(vous|votre|vos)\b", re.IGNORECASE)
    french = [*STRINGS["fr"].values(), *CATALOGUES["fr"].values()]
    assert [text for text in french if formal.search(text)] == []
    assert re.search(r"\btu\b", STRINGS["fr"]["unsub_intro"], re.IGNORECASE)
