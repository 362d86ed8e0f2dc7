"""SendGrid's Event Webhook, signed with a real EC P-256 key: verified, applied once, replay-proof."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from web_support import (
    SECRET,
    Harness,
    OpenWeb,
    Signer,
    open_web_fixture,  # noqa: F401 - the fixture, by name
)

from drip.store.schema import DeliveryStatus, deliveries, subscribers, suppressions, webhook_events
from drip.store.suppressions import is_suppressed
from drip.web.ratelimit import RateLimit
from drip.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def web(open_web: OpenWeb, signer: Signer) -> Harness:
    return open_web(rate_limit=RateLimit(per_minute=0), webhook_public_key=signer.public)


def active(web: Harness, address: str) -> int:
    web.subscribe(address)
    web.confirm(address)
    sub = web.subscriber(address)
    assert sub is not None
    return int(str(sub["id"]))


def snapshot(web: Harness) -> tuple[object, ...]:
    with web.engine.connect() as conn:
        return (
            conn.execute(sa.select(subscribers.c.id, subscribers.c.status).order_by(subscribers.c.id)).all(),
            conn.execute(sa.select(deliveries.c.id, deliveries.c.status).order_by(deliveries.c.id)).all(),
            conn.execute(sa.select(suppressions.c.email_hash)).all(),
            conn.execute(sa.select(webhook_events.c.digest)).all(),
        )


def events(*pairs: tuple[str, str], eid: str = "a") -> bytes:
    batch = [
        {
            "email": email,
            "event": kind,
            "timestamp": 1796112000,
            "sg_event_id": f"{eid}{i}",
            "sg_message_id": f"m{i}",
        }
        for i, (kind, email) in enumerate(pairs)
    ]
    batch.append(
        {"email": "x@example.org", "event": "delivered", "timestamp": 1796112000, "sg_event_id": "d"}
    )
    return json.dumps(batch).encode()


def post(web: Harness, signer: Signer, body: bytes, *, offset: int = 0) -> int:
    ts = int(web.clock.now.timestamp()) + offset
    status: int = web.client.post(
        "/webhooks/sendgrid", content=body, headers=signer.headers(body, ts)
    ).status_code
    return status


def test_suppressing_events_stop_all_mail_and_a_replay_changes_nothing(web: Harness, signer: Signer) -> None:
    bounce, spam, unsub, group = (
        active(web, a) for a in ("b@example.org", "s@example.org", "u@example.org", "g@example.org")
    )
    with web.engine.begin() as conn:  # one delivery already leased by a worker
        conn.execute(
            deliveries.update()
            .where(deliveries.c.subscriber_id == bounce, deliveries.c.step_key == "welcome")
            .values(lease_token="w:held", leased_until=web.clock.now + dt.timedelta(minutes=5))
        )
    body = events(
        ("bounce", "B@example.org"),
        ("spamreport", "s@example.org"),
        ("unsubscribe", "u@example.org"),
        ("group_unsubscribe", "g@example.org"),
        ("dropped", "never-subscribed@example.org"),
    )
    assert post(web, signer, body) == 200
    with web.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(subscribers.c.id, subscribers.c.status)).all())
    assert statuses[bounce] == "bounced" and statuses[spam] == "complained"
    assert statuses[unsub] == statuses[group] == "unsubscribed"
    with web.engine.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count())
            .select_from(deliveries)
            .where(deliveries.c.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENT)))
        ).scalar_one()
        assert left == 0
        for address in (
            "b@example.org",
            "s@example.org",
            "u@example.org",
            "g@example.org",
            "never-subscribed@example.org",
        ):
            assert is_suppressed(conn, SECRET, address)
    before = snapshot(web)
    # SendGrid's retry: same events, new sg_event_id values, later signature.
    web.clock.advance(minutes=1)
    replay = events(
        ("bounce", "B@example.org"),
        ("spamreport", "s@example.org"),
        ("unsubscribe", "u@example.org"),
        ("group_unsubscribe", "g@example.org"),
        ("dropped", "never-subscribed@example.org"),
        eid="retry",
    )
    response = web.client.post(
        "/webhooks/sendgrid", content=replay, headers=signer.headers(replay, int(web.clock.now.timestamp()))
    )
    assert (
        response.status_code == 200 and response.json()["duplicates"] == 5 and response.json()["applied"] == 0
    )
    assert snapshot(web) == before


def test_bad_signature_edited_body_stale_or_missing_headers_are_refused(web: Harness, signer: Signer) -> None:
    active(web, "v@example.org")
    body = events(("bounce", "v@example.org"))
    ts = int(web.clock.now.timestamp())
    before = snapshot(web)
    good = signer.headers(body, ts)

    edited = body.replace(b"v@example.org", b"w@example.org")
    assert web.client.post("/webhooks/sendgrid", content=edited, headers=good).status_code == 403
    other = Signer().headers(body, ts)
    assert web.client.post("/webhooks/sendgrid", content=body, headers=other).status_code == 403
    moved = {**good, TIMESTAMP_HEADER: str(ts + 1)}
    assert web.client.post("/webhooks/sendgrid", content=body, headers=moved).status_code == 403
    for offset in (-301, 301):
        assert post(web, signer, body, offset=offset) == 403
    assert web.client.post("/webhooks/sendgrid", content=body).status_code == 403
    garbage = {**good, SIGNATURE_HEADER: "not base64 !!"}
    assert web.client.post("/webhooks/sendgrid", content=body, headers=garbage).status_code == 403
    assert snapshot(web) == before
    # Within five minutes either way it is accepted.
    assert post(web, signer, body, offset=-299) == 200
    assert snapshot(web) != before


def test_webhook_without_a_configured_key_refuses_everything(open_web: OpenWeb, signer: Signer) -> None:
    web = open_web(rate_limit=RateLimit(per_minute=0))
    body = events(("bounce", "a@example.org"))
    assert post(web, signer, body) == 403
    with web.engine.connect() as conn:
        assert not is_suppressed(conn, SECRET, "a@example.org")
