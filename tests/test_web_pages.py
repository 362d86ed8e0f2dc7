"""Unsubscribe (one-click and page), preferences, view in browser, health: through the real app."""

from __future__ import annotations

import datetime as dt
import html

import pytest
import sqlalchemy as sa
from web_support import (
    COURSE,
    SECRET,
    Harness,
    OpenWeb,
    open_web_fixture,  # noqa: F401 - the fixture, by name
)

from drip.runtime import Runtime
from drip.store.claims import in_flight
from drip.store.schema import DeliveryStatus, deliveries, enrollments, subscribers
from drip.tokens import SECRET_ENV, MissingSecret, make_token
from drip.web.app import create_app
from drip.web.ratelimit import RateLimit


@pytest.fixture
def web(open_web: OpenWeb) -> Harness:
    return open_web(rate_limit=RateLimit(per_minute=0))


def active(web: Harness, address: str, name: str = "") -> int:
    web.subscribe(address, name=name)
    web.confirm(address)
    sub = web.subscriber(address)
    assert sub is not None
    return int(str(sub["id"]))


def delivery_statuses(web: Harness, sid: int) -> set[str]:
    with web.engine.connect() as conn:
        return set(
            conn.execute(sa.select(deliveries.c.status).where(deliveries.c.subscriber_id == sid)).scalars()
        )


def test_one_click_unsubscribe_cancels_pending_and_leased_before_answering(web: Harness) -> None:
    sid = active(web, "oneclick@example.org")
    with web.engine.begin() as conn:  # a worker holds the welcome email
        conn.execute(
            deliveries.update()
            .where(deliveries.c.subscriber_id == sid, deliveries.c.step_key == "welcome")
            .values(lease_token="w:held", leased_until=web.clock.now + dt.timedelta(minutes=5))
        )
    assert delivery_statuses(web, sid) == {DeliveryStatus.PENDING}
    with web.engine.connect() as conn:
        flying = sa.select(sa.func.count()).select_from(deliveries).where(in_flight(web.clock.now))
        assert conn.execute(flying).scalar_one() == 1
    token = make_token(SECRET, "unsubscribe", sid, COURSE, now=web.clock.now)
    # RFC 8058: form-encoded body, no cookie, no confirmation step.
    response = web.client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert delivery_statuses(web, sid) == {DeliveryStatus.CANCELLED}
    sub = web.subscriber("oneclick@example.org")
    assert sub is not None and sub["status"] == "unsubscribed"
    # Again: still 200, nothing else changes.
    again = web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200


def test_unsubscribe_page_offers_this_course_or_everything(web: Harness) -> None:
    sid = active(web, "page@example.org")
    token = make_token(SECRET, "unsubscribe", sid, COURSE, now=web.clock.now)
    page = web.client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and '<html lang="fr">' in page.text
    assert 'name="scope" value="course"' in page.text and 'name="scope" value="all"' in page.text
    assert delivery_statuses(web, sid) == {DeliveryStatus.PENDING}  # showing the page changes nothing
    done = web.client.post(f"/unsubscribe/{token}", data={"scope": "course"})
    assert done.status_code == 200 and "Tu ne recevras plus le parcours" in html.unescape(done.text)
    sub = web.subscriber("page@example.org")
    assert sub is not None and sub["status"] == "active"  # only the course was left
    with web.engine.connect() as conn:
        state = conn.execute(
            sa.select(enrollments.c.state).where(enrollments.c.subscriber_id == sid)
        ).scalar_one()
    assert state == "left" and delivery_statuses(web, sid) == {DeliveryStatus.CANCELLED}


def test_preferences_pause_resume_zone_language_and_leaving_a_course(web: Harness) -> None:
    sid = active(web, "prefs@example.org", name="Éloïse")
    token = make_token(SECRET, "preferences", sid, now=web.clock.now)
    page = web.client.get(f"/preferences/{token}")
    assert page.status_code == 200 and "prefs@example.org" in page.text
    assert '<label for="pref-timezone">' in page.text and 'value="le-role-du-cto" checked' in page.text

    saved = web.client.post(
        f"/preferences/{token}",
        data={"status": "paused", "timezone": "America/Montreal", "locale": "en", "keep": COURSE},
    )
    assert (
        saved.status_code == 200
        and '<html lang="en">' in saved.text
        and "Your preferences are saved" in saved.text
    )
    with web.engine.connect() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == sid)).one()._mapping
    assert (row["status"], row["timezone"], row["locale"]) == ("paused", "America/Montreal", "en")

    bad = web.client.post(
        f"/preferences/{token}",
        data={"status": "active", "timezone": "Europe/Pari", "locale": "en", "keep": COURSE},
    )
    assert bad.status_code == 400 and "Europe/Paris" in bad.text  # closest zone suggested
    sub = web.subscriber("prefs@example.org")
    assert sub is not None and sub["status"] == "paused"  # the bad form changed nothing

    web.client.post(
        f"/preferences/{token}", data={"status": "active", "timezone": "Europe/Paris", "locale": "fr"}
    )
    sub = web.subscriber("prefs@example.org")
    assert sub is not None and sub["status"] == "active"
    with web.engine.connect() as conn:
        state = conn.execute(
            sa.select(enrollments.c.state).where(enrollments.c.subscriber_id == sid)
        ).scalar_one()
    assert state == "left" and delivery_statuses(web, sid) == {
        DeliveryStatus.CANCELLED
    }  # unticked course left


def test_view_in_browser_shows_the_personalised_step(web: Harness) -> None:
    sid = active(web, "view@example.org", name="<b>Zoé</b>")
    token = make_token(SECRET, "view", sid, COURSE, step="welcome", now=web.clock.now)
    page = web.client.get(f"/view/{token}")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert "&lt;b&gt;Zoé&lt;/b&gt;" in page.text and "<b>Zoé</b>" not in page.text
    assert "/unsubscribe/" in page.text
    missing = make_token(SECRET, "view", sid, COURSE, step="article:/nope/", now=web.clock.now)
    assert web.client.get(f"/view/{missing}").status_code == 400


def test_erased_subscriber_links_say_so(web: Harness) -> None:
    sid = active(web, "erased@example.org")
    with web.engine.begin() as conn:
        conn.execute(deliveries.delete().where(deliveries.c.subscriber_id == sid))
        conn.execute(enrollments.delete().where(enrollments.c.subscriber_id == sid))
        conn.execute(subscribers.delete().where(subscribers.c.id == sid))
    prefs = make_token(SECRET, "preferences", sid, now=web.clock.now)
    response = web.client.get(f"/preferences/{prefs}")
    assert response.status_code == 400 and "n'existe plus" in html.unescape(response.text)
    unsub = make_token(SECRET, "unsubscribe", sid, COURSE, now=web.clock.now)
    assert web.client.post(f"/unsubscribe/{unsub}", data={"List-Unsubscribe": "One-Click"}).status_code == 200


def test_healthz_and_localised_404(web: Harness) -> None:
    assert web.client.get("/healthz").text == "ok\n"
    missing = web.client.get("/nowhere", headers={"Accept-Language": "en"})
    assert missing.status_code == 404 and "Page not found" in missing.text
    web.lose_database()
    assert web.client.get("/healthz").status_code == 503


def test_the_app_takes_its_key_and_clock_from_one_runtime(
    web: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = web.client.app.state.web  # type: ignore[attr-defined]
    assert state.runtime.secret == SECRET and state.now() == web.clock.now
    with pytest.raises(TypeError):
        create_app(web.site, runtime=Runtime.for_tests(SECRET), secret=SECRET, engine=web.engine)
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(MissingSecret):  # refuses to start, not at the first link
        create_app(web.site, engine=web.engine)
    legacy = create_app(web.site, now_fn=web.clock, secret=SECRET, engine=web.engine)
    assert legacy.state.web.runtime.secret == SECRET and legacy.state.web.now() == web.clock.now
