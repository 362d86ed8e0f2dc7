"""Double opt-in through the real app: pending until confirmed, one email per cool-down, no address leak."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa
from web_support import (
    COURSE,
    SECRET,
    Harness,
    OpenWeb,
    messages_to,
    open_web_fixture,  # noqa: F401 - the fixture, by name
    outbox_messages,
)

from drip.store.schema import SubscriberStatus, deliveries, enrollments
from drip.store.suppressions import is_suppressed, suppress
from drip.web.ratelimit import RateLimit


@pytest.fixture
def web(open_web: OpenWeb) -> Harness:
    return open_web(rate_limit=RateLimit(per_minute=0))


def enrolled(web: Harness, address: str) -> list[str]:
    sub = web.subscriber(address)
    assert sub is not None
    with web.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(enrollments.c.course).where(enrollments.c.subscriber_id == sub["id"])
            ).scalars()
        )


def test_subscribe_sends_a_confirmation_and_only_confirming_enrolls(web: Harness) -> None:
    response = web.subscribe("Camille@Example.org", name="Camille")
    assert response.status_code == 200
    assert "Vérifie ta boîte de réception" in response.text
    sub = web.subscriber("camille@example.org")
    assert sub is not None and sub["status"] == SubscriberStatus.PENDING
    assert enrolled(web, "camille@example.org") == []
    (mail,) = messages_to(web.site, "camille@example.org")
    assert mail["From"].addresses[0].addr_spec == web.site.config.sender.email
    assert "Confirme ton inscription" in mail["Subject"]
    assert web.site.config.postal_address in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    confirmed = web.confirm("camille@example.org")
    assert confirmed.status_code == 200 and "Inscription confirmée" in confirmed.text
    sub = web.subscriber("camille@example.org")
    assert sub is not None and sub["status"] == SubscriberStatus.ACTIVE and sub["confirmed_at"] is not None
    assert enrolled(web, "camille@example.org") == [COURSE]
    with web.engine.connect() as conn:
        due = conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one()
    assert due == len(web.client.app.state.web.courses[COURSE].steps)  # type: ignore[attr-defined]
    # Following the link again changes nothing and still says it worked.
    again = web.confirm("camille@example.org")
    assert again.status_code == 200
    assert enrolled(web, "camille@example.org") == [COURSE]


def test_cool_down_and_same_answer_for_known_and_unknown_addresses(web: Harness) -> None:
    first = web.subscribe("known@example.org")
    repeat = web.subscribe("known@example.org")
    fresh = web.subscribe("fresh@example.org")
    assert first.status_code == repeat.status_code == fresh.status_code == 200
    assert repeat.text == fresh.text == first.text
    assert len(messages_to(web.site, "known@example.org")) == 1  # the file is per subscriber
    mtime = (web.site.outbox_dir / "-00000001.eml").stat().st_mtime_ns
    web.clock.advance(minutes=9)
    web.subscribe("known@example.org")
    assert (web.site.outbox_dir / "-00000001.eml").stat().st_mtime_ns == mtime  # nothing re-sent
    web.clock.advance(minutes=2)
    old_link = web.confirm_link("known@example.org")
    web.subscribe("known@example.org")
    assert web.confirm_link("known@example.org") != old_link  # a new email replaced the old one

    j1 = web.client.post("/subscribe", json={"email": "known@example.org", "course": COURSE})
    j2 = web.client.post("/subscribe", json={"email": "other@example.org", "course": COURSE})
    assert j1.status_code == j2.status_code == 200 and j1.json() == j2.json()


def test_an_active_subscriber_is_not_changed_by_someone_filling_the_form(web: Harness) -> None:
    web.subscribe("owner@example.org", name="Owner")
    web.confirm("owner@example.org")
    web.clock.advance(hours=1)
    web.subscribe("owner@example.org", name="Intruder", locale="en")
    sub = web.subscriber("owner@example.org")
    assert sub is not None and sub["name"] == "Owner" and sub["status"] == SubscriberStatus.ACTIVE


def test_every_field_error_reported_at_once_and_nothing_recorded(web: Harness) -> None:
    response = web.subscribe(
        "not-an-address", name="a\r\nBcc: x@evil.test", course="le-role-du-cta", locale="de"
    )
    assert response.status_code == 400
    text = html.unescape(response.text)
    assert "n'est pas valide" in text and "caractères interdits" in text
    assert "Ce parcours n'existe pas" in text and "le-role-du-cto" in text  # closest course named
    assert "Langue inconnue" in text
    assert outbox_messages(web.site) == []
    assert web.subscriber("not-an-address") is None

    api = web.client.post("/subscribe", json={"email": "x@", "course": "nope", "name": ""})
    assert api.status_code == 400
    keys = {e["key"] for e in api.json()["errors"]}
    assert keys == {"email", "course"}


def test_honeypot_answers_like_success_and_sends_nothing(web: Harness) -> None:
    response = web.subscribe("bot@example.org", website="http://spam.test")
    assert response.status_code == 200 and "Vérifie ta boîte" in response.text
    assert outbox_messages(web.site) == [] and web.subscriber("bot@example.org") is None


def test_rate_limit_answers_429_with_retry_after(open_web: OpenWeb) -> None:
    web = open_web(rate_limit=RateLimit(per_minute=6, burst=2))
    assert web.subscribe("a@example.org").status_code == 200
    assert web.subscribe("b@example.org").status_code == 200
    limited = web.subscribe("c@example.org")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "10"
    assert web.subscriber("c@example.org") is None
    web.clock.advance(seconds=10)
    assert web.subscribe("c@example.org").status_code == 200


def test_erased_or_suppressed_address_may_confirm_again_which_lifts_suppression(web: Harness) -> None:
    with web.engine.begin() as conn:
        suppress(conn, SECRET, "gone@example.org", "erased", now=web.clock.now)
    web.subscribe("gone@example.org")
    assert len(messages_to(web.site, "gone@example.org")) == 1  # a confirmation may still go
    with web.engine.connect() as conn:
        assert is_suppressed(conn, SECRET, "gone@example.org")  # not lifted by the form alone
    assert enrolled(web, "gone@example.org") == []
    web.confirm("gone@example.org")
    with web.engine.connect() as conn:
        assert not is_suppressed(conn, SECRET, "gone@example.org")
    assert enrolled(web, "gone@example.org") == [COURSE]


def test_confirm_link_expires_after_a_week(web: Harness) -> None:
    web.subscribe("late@example.org")
    link = web.confirm_link("late@example.org")
    web.clock.advance(days=7, seconds=1)
    response = web.client.get(link)
    assert response.status_code == 400 and "expiré" in html.unescape(response.text)
    assert enrolled(web, "late@example.org") == []


def test_english_pages_from_accept_language(web: Harness) -> None:
    response = web.client.post(
        "/subscribe",
        data={"email": "en@example.org", "course": COURSE},
        headers={"Accept-Language": "en-GB,en;q=0.9"},
    )
    assert '<html lang="en">' in response.text and "Check your inbox" in response.text
    (mail,) = messages_to(web.site, "en@example.org")
    assert mail["Subject"].startswith("Confirm your subscription")
    page = web.client.get(f"/subscribe?course={COURSE}", headers={"Accept-Language": "fr"})
    assert '<html lang="fr">' in page.text and '<label for="drip-email">' in page.text


def test_confirming_again_after_unsubscribing_restarts_the_course_and_keeps_what_was_sent(
    web: Harness,
) -> None:
    from drip.store.personal_data import export_person
    from drip.store.schema import DeliveryStatus
    from drip.tokens import make_token

    web.subscribe("back@example.org")
    web.confirm("back@example.org")
    sub = web.subscriber("back@example.org")
    assert sub is not None
    with web.engine.begin() as conn:  # the welcome went out before they left
        conn.execute(
            deliveries.update()
            .where(deliveries.c.step_key == "welcome")
            .values(status=DeliveryStatus.SENT, sent_at=web.clock.now, provider_id="outbox-1")
        )
    token = make_token(SECRET, "unsubscribe", int(str(sub["id"])), COURSE, now=web.clock.now)
    web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    web.clock.advance(hours=1)
    web.subscribe("back@example.org")
    with web.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.status == DeliveryStatus.PENDING)
            ).scalar_one()
            == 0
        )
    web.confirm("back@example.org")
    sub = web.subscriber("back@example.org")
    assert sub is not None and sub["status"] == SubscriberStatus.ACTIVE
    with web.engine.connect() as conn:
        states = list(conn.execute(sa.select(enrollments.c.state).order_by(enrollments.c.id)).scalars())
        due = (
            conn.execute(
                sa.select(deliveries.c.step_key).where(deliveries.c.status == DeliveryStatus.PENDING)
            )
            .scalars()
            .all()
        )
        sent = conn.execute(
            sa.select(deliveries.c.step_key, deliveries.c.provider_id).where(
                deliveries.c.status == DeliveryStatus.SENT
            )
        ).all()
        exported = export_person(conn, SECRET, "back@example.org")
    # The course starts afresh (welcome included), beside the old enrollment and what it sent.
    assert states == ["left", "active"] and "welcome" in due
    assert [tuple(row) for row in sent] == [("welcome", "outbox-1")]
    assert any(
        d["status"] == DeliveryStatus.SENT and d["step_key"] == "welcome" for d in exported["deliveries"]
    )
    assert [e["state"] for e in exported["enrollments"]] == ["left", "active"]
    # Confirming again changes nothing more: still one current enrollment.
    web.confirm("back@example.org")
    with web.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar_one() == 2


def test_oversized_json_body_is_refused_before_parsing(web: Harness) -> None:
    response = web.client.post(
        "/subscribe",
        content=b'{"email": "' + b"a" * 20000 + b'@example.org"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413 and outbox_messages(web.site) == []
