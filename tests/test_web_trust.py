"""Issue 8, "Trust": what the web side guarantees against robots, other sites, proxies, floods and load.

Each test here failed on the code before the change it names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient
from web_support import (
    COURSE,
    SECRET,
    Harness,
    OpenWeb,
    Signer,
    make_harness,
    messages_to,
    open_web_fixture,  # noqa: F401 - the fixture, by name
    outbox_messages,
)

from drip.store.schema import SubscriberStatus, enrollments, subscribers
from drip.tokens import make_token
from drip.web.ratelimit import RateLimit

EVIL = "https://evil.example"
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy")


@pytest.fixture
def web(open_web: OpenWeb) -> Harness:
    return open_web(rate_limit=RateLimit(per_minute=0))


def active(web: Harness, address: str) -> int:
    web.subscribe(address)
    web.confirm(address)
    sub = web.subscriber(address)
    assert sub is not None and sub["status"] == SubscriberStatus.ACTIVE
    return int(str(sub["id"]))


def status(web: Harness, address: str) -> object:
    sub = web.subscriber(address)
    return sub["status"] if sub is not None else None


def token(web: Harness, scope: str, sid: int, course: str | None = COURSE) -> str:
    return make_token(SECRET, scope, sid, course, now=web.clock.now)  # type: ignore[arg-type]


# 1. A link scanner following the confirmation link subscribes nobody.


def test_get_and_head_on_the_confirm_link_change_nothing_the_button_confirms(web: Harness) -> None:
    web.subscribe("scanned@example.org")
    link = web.confirm_link("scanned@example.org")
    page = web.client.get(link)
    assert page.status_code == 200
    assert f'<form method="post" action="{link}">' in page.text and "<button" in page.text
    assert web.client.head(link).status_code == 200
    assert status(web, "scanned@example.org") == SubscriberStatus.PENDING
    with web.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar_one() == 0
    done = web.client.post(link)
    assert done.status_code == 200 and "Inscription confirmée" in done.text
    assert status(web, "scanned@example.org") == SubscriberStatus.ACTIVE


# 2. Forms posted from another site are refused; RFC 8058 one-click is not.


def test_cross_site_form_posts_are_refused_with_a_clear_page(web: Harness) -> None:
    sid = active(web, "reader@example.org")
    prefs = f"/preferences/{token(web, 'preferences', sid, None)}"
    unsub = f"/unsubscribe/{token(web, 'unsubscribe', sid)}"
    for headers in ({"Origin": EVIL}, {"Referer": EVIL + "/page"}, {"Origin": "null"}):
        r = web.client.post(prefs, data={"status": "paused"}, headers=headers)
        assert r.status_code == 403 and "Formulaire refusé" in r.text, headers
        assert all(name in r.headers for name in SECURITY_HEADERS)
        assert web.client.post(unsub, data={"scope": "all"}, headers=headers).status_code == 403
    assert status(web, "reader@example.org") == SubscriberStatus.ACTIVE
    r = web.client.post(
        "/subscribe", data={"email": "new@example.org", "course": COURSE}, headers={"Origin": EVIL}
    )
    j = web.client.post(
        "/subscribe", json={"email": "new@example.org", "course": COURSE}, headers={"Origin": EVIL}
    )
    assert r.status_code == j.status_code == 403 and messages_to(web.site, "new@example.org") == []
    web.subscribe("x@example.org")
    confirm = web.confirm_link("x@example.org")
    assert web.client.post(confirm, headers={"Origin": EVIL}).status_code == 403
    assert status(web, "x@example.org") == SubscriberStatus.PENDING


def test_the_site_itself_this_host_no_header_and_one_click_are_accepted(web: Harness) -> None:
    site = web.site.config.site.base_url
    for i, headers in enumerate(
        ({"Origin": site}, {"Origin": "http://testserver"}, {"Referer": site + "/blog/post"}, {})
    ):
        r = web.client.post(
            "/subscribe", data={"email": f"ok{i}@example.org", "course": COURSE}, headers=headers
        )
        assert r.status_code == 200, headers
        assert len(messages_to(web.site, f"ok{i}@example.org")) == 1
    sid = active(web, "leaving@example.org")
    one_click = web.client.post(
        f"/unsubscribe/{token(web, 'unsubscribe', sid)}",
        data={"List-Unsubscribe": "One-Click"},
        headers={"Origin": EVIL},
    )
    assert (
        one_click.status_code == 200 and status(web, "leaving@example.org") == SubscriberStatus.UNSUBSCRIBED
    )


# 3. Behind a reverse proxy, each visitor has their own bucket, and only trusted proxies are believed.


def _served(tmp_path: Any, trusted: tuple[str, ...], peer: str) -> TestClient:
    import uvicorn

    from drip.config import WebSection
    from drip.web.app import server_options

    web = make_harness(tmp_path, rate_limit=RateLimit(per_minute=1, burst=2))
    site = dataclasses.replace(
        web.site, config=web.site.config.model_copy(update={"web": WebSection(trusted_proxies=trusted)})
    )
    config = uvicorn.Config(web.client.app, **server_options(site))  # type: ignore[arg-type]
    config.load()
    return TestClient(config.loaded_app, client=(peer, 4000))


@pytest.mark.parametrize(
    ("trusted", "peer", "separate"),
    [
        (("127.0.0.1", "10.0.0.0/8"), "10.1.2.3", True),  # a listed proxy: X-Forwarded-For is the client
        (("127.0.0.1", "10.0.0.0/8"), "203.0.113.9", False),  # anyone else: the header is ignored
        ((), "10.1.2.3", False),  # no setting: always ignored
    ],
)
def test_rate_limit_bucket_follows_trusted_proxies_only(
    tmp_path: Any, trusted: tuple[str, ...], peer: str, separate: bool
) -> None:
    client = _served(tmp_path, trusted, peer)
    answers = [
        client.post(
            "/subscribe",
            data={"email": f"v{i}@example.org", "course": COURSE},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        ).status_code
        for i in range(4)
    ]
    assert answers == ([200] * 4 if separate else [200, 200, 429, 429])


# 4. +tags share the mailbox's cool-down and daily cap; nothing says whether an address is known.


def test_plus_tags_and_case_share_one_mailbox_allowance_with_a_daily_cap(web: Harness) -> None:
    first = web.subscribe("victim+1@example.org")
    answers = [first.text]
    answers.append(web.subscribe("Victim+2@Example.org").text)
    answers.append(web.subscribe("victim@example.org").text)
    assert len(outbox_messages(web.site)) == 1  # one cool-down for the mailbox
    for n in (3, 4, 5):
        web.clock.advance(minutes=11)
        answers.append(web.subscribe(f"victim+{n}@example.org").text)
    assert len(outbox_messages(web.site)) == 3  # the day's cap (3) is reached
    assert len(set(answers)) == 1
    assert web.subscriber("victim+2@example.org") is not None  # each row keeps the address given
    web.clock.advance(days=1)
    web.subscribe("victim+6@example.org")
    assert len(outbox_messages(web.site)) == 4


# 5. Security headers on every answer, errors included.


def test_every_error_answer_carries_the_security_headers(tmp_path: Any) -> None:
    def broken() -> Any:
        raise RuntimeError("transport down")

    web = make_harness(tmp_path, transport_factory=broken)
    client = TestClient(web.client.app, raise_server_exceptions=False)
    answers = {
        500: client.post("/subscribe", data={"email": "a@example.org", "course": COURSE}),
        404: client.get("/nowhere"),
        405: client.put("/subscribe"),
        413: client.post("/subscribe", content=b"x" * 20000),
    }
    for code, response in answers.items():
        assert response.status_code == code
        assert all(name in response.headers for name in SECURITY_HEADERS), (code, response.headers)


# 6. Bodies are capped while streaming, before parsing; deep JSON is a 400.


def _drive(
    app: Any, path: str, chunks: int, size: int, headers: list[tuple[bytes, bytes]]
) -> tuple[int, int]:
    """POST ``chunks`` chunks of ``size`` bytes straight to the ASGI app: (status, chunks it read)."""
    read = [0]
    answer: list[int] = []

    async def receive() -> dict[str, Any]:
        read[0] += 1
        return {"type": "http.request", "body": b"a" * size, "more_body": read[0] < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    return answer[0], read[0]


def test_bodies_past_the_cap_are_refused_without_reading_the_rest(tmp_path: Any) -> None:
    app = make_harness(tmp_path, webhook_public_key=Signer().public).client.app
    form = [(b"content-type", b"application/x-www-form-urlencoded")]
    # Declared too large: refused before a byte is read (100 MB to the form, 200 MB to the webhook).
    assert _drive(app, "/subscribe", 1600, 65536, [*form, (b"content-length", b"104857600")]) == (413, 0)
    assert _drive(app, "/webhooks/sendgrid", 3200, 65536, [(b"content-length", b"209715200")]) == (413, 0)
    # Not declared (chunked): refused as soon as it passes the cap, the rest never read.
    status, read = _drive(app, "/subscribe", 1600, 4096, form)
    assert status == 413 and read <= 5
    status, read = _drive(app, "/webhooks/sendgrid", 3200, 65536, [])
    assert status == 413 and read <= 81


def test_deeply_nested_json_is_a_400_not_a_500(tmp_path: Any) -> None:
    signer = Signer()
    web = make_harness(tmp_path, webhook_public_key=signer.public)
    deep = b"[" * 8000 + b"]" * 8000
    r = web.client.post("/subscribe", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    deeper = b"[" * 100_000 + b"]" * 100_000
    headers = signer.headers(deeper, int(web.clock.now.timestamp()))
    assert web.client.post("/webhooks/sendgrid", content=deeper, headers=headers).status_code == 400


# 7. A 20,000-event webhook batch commits in chunks, fast, while unsubscribes go through.


def bounces(count: int) -> list[dict[str, object]]:
    return [
        {"email": f"b{i}@example.net", "event": "bounce", "timestamp": 1796112000, "sg_event_id": f"e{i}"}
        for i in range(count)
    ]


def test_a_20000_event_batch_is_applied_in_chunks_while_a_one_click_unsubscribe_succeeds(
    open_web: OpenWeb,
) -> None:
    signer = Signer()
    web = open_web(rate_limit=RateLimit(per_minute=0), webhook_public_key=signer.public)
    reader = active(web, "reader@example.org")
    batch = bounces(20_000)
    batch.insert(700, dict(batch[3], sg_event_id="retried"))  # the same event again, in another chunk
    body = json.dumps(batch).encode()
    results: dict[str, Any] = {}

    def deliver() -> None:
        headers = signer.headers(body, int(web.clock.now.timestamp()))
        results["webhook"] = web.client.post("/webhooks/sendgrid", content=body, headers=headers)

    worker = threading.Thread(target=deliver)
    worker.start()
    unsub = f"/unsubscribe/{token(web, 'unsubscribe', reader)}"
    one_click = web.client.post(unsub, data={"List-Unsubscribe": "One-Click"})
    worker.join()
    assert one_click.status_code == 200 and status(web, "reader@example.org") == SubscriberStatus.UNSUBSCRIBED
    assert results["webhook"].json() == {"applied": 20_000, "duplicates": 1, "ignored": 0}
    headers = signer.headers(body, int(web.clock.now.timestamp()))
    replay = web.client.post("/webhooks/sendgrid", content=body, headers=headers).json()
    assert replay == {"applied": 0, "duplicates": 20_001, "ignored": 0}


# 8. A busy database: writes wait within a deadline, then 503 with Retry-After, never 500.


def _hold_write_lock(web: Harness, seconds: float, held: threading.Event) -> None:
    with web.engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, the write lock
        if web.kind == "postgresql":
            conn.exec_driver_sql("LOCK TABLE subscribers IN EXCLUSIVE MODE")
        else:
            conn.execute(sa.select(subscribers.c.id).limit(1))
        held.set()
        time.sleep(seconds)


def _one_click_under_lock(web: Harness, sid: int, seconds: float) -> Any:
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(web, seconds, held))
    holder.start()
    held.wait(10)
    response = web.client.post(
        f"/unsubscribe/{token(web, 'unsubscribe', sid)}", data={"List-Unsubscribe": "One-Click"}
    )
    holder.join()
    return response


def test_one_click_waits_out_a_short_write_lock(web: Harness) -> None:
    sid = active(web, "patient@example.org")
    response = _one_click_under_lock(web, sid, 0.5)
    assert response.status_code == 200 and status(web, "patient@example.org") == SubscriberStatus.UNSUBSCRIBED


def test_a_lock_past_the_deadline_is_a_503_with_retry_after(
    open_web: OpenWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drip.store import retry

    web = open_web(rate_limit=RateLimit(per_minute=0))
    sid = active(web, "hurried@example.org")
    monkeypatch.setattr(retry, "BUSY_DEADLINE_S", 0.3)
    web.client = TestClient(web.client.app, raise_server_exceptions=False)
    response = _one_click_under_lock(web, sid, 1.5)
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    assert all(name in response.headers for name in SECURITY_HEADERS)
    assert (
        status(web, "hurried@example.org") == SubscriberStatus.ACTIVE
    )  # nothing half done; the client tries again
