"""Tokens that are tampered with, expired or for another page; hostile input in every field; logs."""

from __future__ import annotations

import base64
import html
import logging

import pytest
import sqlalchemy as sa
from markupsafe import escape
from web_support import (
    COURSE,
    SECRET,
    Harness,
    OpenWeb,
    body_html,
    body_text,
    link_in,
    messages_to,
    open_web_fixture,  # noqa: F401 - the fixture, by name
    outbox_messages,
)

from drip.store.schema import subscribers
from drip.tokens import make_token
from drip.web.ratelimit import RateLimit

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flipped(token: str, i: int) -> str:
    """The token with character ``i`` changed so its decoded bits differ (top bit of the sextet)."""
    ch = token[i]
    other = ALPHABET[ALPHABET.index(ch) ^ 32] if ch in ALPHABET else "A"
    return token[:i] + other + token[i + 1 :]


@pytest.fixture
def web(open_web: OpenWeb) -> Harness:
    return open_web(rate_limit=RateLimit(per_minute=0))


def active_subscriber(web: Harness, address: str, name: str = "") -> int:
    web.subscribe(address, name=name)
    web.confirm(address)
    sub = web.subscriber(address)
    assert sub is not None and sub["status"] == "active"
    return int(str(sub["id"]))


def test_every_changed_character_of_every_token_gives_a_400_page(web: Harness) -> None:
    sid = active_subscriber(web, "flip@example.org")
    now = web.clock.now
    cases = [
        ("GET", "confirm", make_token(SECRET, "confirm", sid, COURSE, now=now)),
        ("GET", "unsubscribe", make_token(SECRET, "unsubscribe", sid, COURSE, now=now)),
        ("POST", "unsubscribe", make_token(SECRET, "unsubscribe", sid, COURSE, now=now)),
        ("GET", "preferences", make_token(SECRET, "preferences", sid, COURSE, now=now)),
        ("POST", "preferences", make_token(SECRET, "preferences", sid, COURSE, now=now)),
        ("GET", "view", make_token(SECRET, "view", sid, COURSE, step="welcome", now=now)),
    ]
    for method, scope, token in cases:
        for i in range(len(token)):
            bad = flipped(token, i)
            assert bad != token
            response = web.client.request(
                method,
                f"/{scope}/{bad}",
                data={"List-Unsubscribe": "One-Click"} if method == "POST" else None,
            )
            assert response.status_code == 400, (scope, i, bad)
            assert "Ce lien est incomplet ou a été modifié" in html.unescape(response.text)
            assert "Traceback" not in response.text
    sub = web.subscriber("flip@example.org")
    assert sub is not None and sub["status"] == "active"  # no flipped unsubscribe link worked


def test_wrong_scope_and_truncated_tokens(web: Harness) -> None:
    sid = active_subscriber(web, "scope@example.org")
    confirm = make_token(SECRET, "confirm", sid, COURSE, now=web.clock.now)
    response = web.client.post(f"/unsubscribe/{confirm}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert "ne correspond pas à cette page" in html.unescape(response.text)
    english = web.client.get(f"/preferences/{confirm}", headers={"Accept-Language": "en"})
    assert english.status_code == 400 and "not meant for this page" in english.text
    for broken in ("", "x", confirm[:-1], confirm + "A", "%00", "..%2f..%2fdrip.db"):
        r = web.client.get(f"/confirm/{broken}")
        assert r.status_code in (400, 404), broken
    forged_key = make_token("another-secret-0123456789", "unsubscribe", sid, COURSE, now=web.clock.now)
    assert (
        web.client.post(f"/unsubscribe/{forged_key}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 400
    )
    sub = web.subscriber("scope@example.org")
    assert sub is not None and sub["status"] == "active"


HOSTILE = [
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    "a\r\nBcc: victim@evil.test",
    '"><img src=x onerror=alert(1)>',
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_in_every_subscribe_field_are_escaped_or_refused(web: Harness, value: str) -> None:
    for field in ("email", "name", "course", "locale", "website"):
        data = {"email": "ok@example.org", "name": "Ok", "course": COURSE, "locale": "fr", "website": ""}
        data[field] = value
        response = web.client.post("/subscribe", data=data)
        assert response.status_code in (200, 400)
        assert "<script>" not in response.text and "<img src=x" not in response.text
        assert "49" not in response.text
        if field in ("email", "course", "locale") or (field == "name" and "\r" in value):
            assert response.status_code == 400
            if field == "email":
                assert str(escape(value)) in response.text or "\r" in value  # shown back, escaped
    for _path, mail in outbox_messages(web.site):
        raw = bytes(mail)
        assert b"Bcc" not in raw
        assert "victim@evil.test" not in str(mail["To"])
        assert "<script>" not in body_html(mail)


def test_name_with_markup_is_escaped_in_the_confirmation_email_and_the_text_part_is_plain(
    web: Harness,
) -> None:
    web.subscribe("markup@example.org", name="<script>x</script> {{ 7*7 }}")
    (mail,) = messages_to(web.site, "markup@example.org")
    assert "&lt;script&gt;x&lt;/script&gt; {{ 7*7 }}" in body_html(mail)
    assert "<script>x</script> {{ 7*7 }}" in body_text(mail)
    assert "49" not in body_html(mail)
    assert mail["Subject"] and "\n" not in mail["Subject"]


def test_hostile_values_in_preferences_fields_change_nothing(web: Harness) -> None:
    sid = active_subscriber(web, "prefs@example.org")
    token = make_token(SECRET, "preferences", sid, now=web.clock.now)
    for value in HOSTILE:
        for field in ("status", "timezone", "locale"):
            data = {
                "status": "active",
                "timezone": "Europe/Paris",
                "locale": "fr",
                "keep": COURSE,
                field: value,
            }
            response = web.client.post(f"/preferences/{token}", data=data)
            assert response.status_code == 400, (field, value)
            assert "<script>" not in response.text and "49" not in response.text
    with web.engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == sid)).one()._mapping
    assert row["status"] == "active" and row["timezone"] is None and row["locale"] == "fr"


def test_pages_forbid_scripts_and_framing(web: Harness) -> None:
    response = web.client.get(f"/subscribe?course={COURSE}")
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "same-origin"  # no token leaves the site in a Referer
    assert response.headers["x-frame-options"] == "DENY"


def test_the_secret_never_reaches_a_log_line(open_web: OpenWeb, caplog: pytest.LogCaptureFixture) -> None:
    from drip.web.app import RedactTokens

    caplog.set_level(logging.DEBUG)
    access = logging.getLogger("uvicorn.access")
    redactor = RedactTokens()
    web = open_web(rate_limit=RateLimit(per_minute=6, burst=1))
    sid = active_subscriber(web, "logs@example.org")
    token = make_token(SECRET, "unsubscribe", sid, COURSE, now=web.clock.now)
    web.subscribe("second@example.org")  # rate limited
    web.client.post("/webhooks/sendgrid", content=b"[]")  # refused: no key configured
    web.client.get(f"/unsubscribe/{token}")
    web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    web.client.get(f"/confirm/{token[:-3]}")
    # What uvicorn would log for these requests, through the filter `drip serve` installs.
    record = access.makeRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/unsubscribe/{token}", "1.1", 200),
        None,
    )
    redactor.filter(record)
    everything = [r.getMessage() for r in caplog.records] + [record.getMessage()]
    # The test client (httpx) logs the URLs it requests; the server side must not.
    server_side = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]
    server_side.append(record.getMessage())
    assert any("SENDGRID_WEBHOOK_PUBLIC_KEY" in line for line in server_side)
    secret_b64 = base64.b64encode(SECRET.encode()).decode()
    for line in everything:
        assert SECRET not in line and secret_b64 not in line
    for line in server_side:
        assert token not in line
    assert "/unsubscribe/…" in record.getMessage()


def test_links_die_with_their_subscriber_even_if_the_id_came_back(web: Harness) -> None:
    """An erased reader's links never act on whoever gets their id later (a restored backup, a reset
    sequence): each token carries its subscriber's creation time, and a re-created row has another."""
    import datetime as dt

    from drip.tokens import born_of

    web.subscribe("first@example.org", name="First")
    [mail] = messages_to(web.site, "first@example.org")
    confirm = web.url_path(link_in(mail, "confirm"))
    old = web.subscriber("first@example.org")
    assert old is not None and isinstance(old["created_at"], dt.datetime)
    sid, born = int(str(old["id"])), born_of(old["created_at"])
    now = web.clock.now
    links = {
        scope: f"/{scope}/{make_token(SECRET, scope, sid, COURSE, born=born, now=now)}"
        for scope in ("unsubscribe", "preferences", "view")
    }
    assert web.client.get(links["preferences"]).status_code == 200  # bound links work for their reader
    with web.engine.begin() as conn:
        conn.execute(subscribers.delete().where(subscribers.c.id == sid))
        later = now + dt.timedelta(days=1)
        conn.execute(
            subscribers.insert().values(
                id=sid,
                email="second@example.org",
                name="Second",
                status="pending",
                attributes={},
                created_at=later,
                updated_at=later,
            )
        )
    for path in (confirm, *links.values()):
        page = web.client.get(path)
        assert page.status_code == 400 and "existe plus" in page.text, (path, page.status_code)
    assert web.client.post(confirm).status_code == 400
    assert web.client.post(links["unsubscribe"], data={"List-Unsubscribe": "One-Click"}).status_code == 400
    second = web.subscriber("second@example.org")
    assert second is not None and second["status"] == "pending"
