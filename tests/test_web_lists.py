"""The subscribe form with a newsletter list: double opt-in joins the list, not a course; unknown lists say so."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from web_support import (
    SECRET,
    Harness,
    OpenWeb,
    open_web_fixture,  # noqa: F401 - the fixture, by name
)

from drip.store.lists import join_list
from drip.store.schema import enrollments, list_members
from drip.tokens import make_token
from drip.web.ratelimit import RateLimit

LIST = 'kind: list\ntitle: "La lettre du CTO"\narchive: true\n'


@pytest.fixture
def web(open_web: OpenWeb) -> Harness:
    harness = open_web(rate_limit=RateLimit(per_minute=0))
    (harness.site.schedules_dir / "lettre.yaml").write_text(LIST, encoding="utf-8")
    return harness


def _rows(web: Harness, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
    with web.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def test_the_form_page_for_a_list_carries_the_list(web: Harness) -> None:
    page = web.client.get("/subscribe?list=lettre")
    assert page.status_code == 200
    assert 'name="list" value="lettre"' in page.text and "La lettre du CTO" in page.text
    assert web.client.get("/subscribe?list=nope").status_code == 404


def test_subscribing_to_a_list_is_double_opt_in_and_joins_the_list_only(web: Harness) -> None:
    answer = web.client.post("/subscribe", data={"email": "lea@example.org", "list": "lettre"})
    assert answer.status_code == 200
    assert _rows(web, list_members) == []  # nothing joined before the confirmation
    confirmed = web.confirm("lea@example.org")
    assert confirmed.status_code == 200 and "La lettre du CTO" in confirmed.text
    members = _rows(web, list_members)
    assert [(row.list, row.state) for row in members] == [("lettre", "active")]
    assert _rows(web, enrollments) == []


def test_an_unknown_list_is_a_400_with_the_closest_name(web: Harness) -> None:
    answer = web.client.post(
        "/subscribe",
        json={"email": "lea@example.org", "list": "letre"},
        headers={"Origin": "http://testserver"},
    )
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert error["key"] == "list" and error["hint"] == "did you mean 'lettre'?"
    form = web.client.post("/subscribe", data={"email": "lea@example.org", "list": "letre"})
    assert form.status_code == 400 and "lettre" in form.text


def _reader_in_course_and_list(web: Harness) -> int:
    web.subscribe("sam@example.org")
    web.confirm("sam@example.org")
    sub = web.subscriber("sam@example.org")
    assert sub is not None
    sid = int(str(sub["id"]))
    with web.engine.begin() as conn:
        join_list(conn, sid, "lettre", now=web.clock.now)
    return sid


def _state(web: Harness, sid: int) -> tuple[list[str], list[str]]:
    with web.engine.connect() as conn:
        courses = conn.execute(
            sa.select(enrollments.c.state).where(enrollments.c.subscriber_id == sid)
        ).scalars()
        lists = conn.execute(
            sa.select(list_members.c.state).where(list_members.c.subscriber_id == sid)
        ).scalars()
        return [str(c) for c in courses], [str(m) for m in lists]


PREFS = {"status": "active", "timezone": "Europe/Paris", "locale": "en", "shown_list": "lettre"}


def test_preferences_list_courses_and_newsletters_separately(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    page = web.client.get(f"/preferences/{make_token(SECRET, 'preferences', sid, now=web.clock.now)}")
    assert page.status_code == 200
    assert 'name="keep" value="le-role-du-cto"' in page.text
    assert 'name="keep_list" value="lettre"' in page.text and "La lettre du CTO" in page.text


def test_leaving_a_newsletter_in_preferences_leaves_the_course_alone(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "preferences", sid, now=web.clock.now)
    saved = web.client.post(f"/preferences/{token}", data={**PREFS, "keep": "le-role-du-cto"})
    assert saved.status_code == 200
    assert _state(web, sid) == (["active"], ["left"])


def test_leaving_a_course_in_preferences_leaves_the_newsletter_alone(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "preferences", sid, now=web.clock.now)
    saved = web.client.post(f"/preferences/{token}", data={**PREFS, "keep_list": "lettre"})
    assert saved.status_code == 200
    courses, lists = _state(web, sid)
    assert courses != ["active"] and lists == ["active"]


def test_the_unsubscribe_page_of_a_newsletter_leaves_that_list_only(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "unsubscribe", sid, "lettre", now=web.clock.now)
    done = web.client.post(f"/unsubscribe/{token}", data={"scope": "course"})
    assert done.status_code == 200 and "La lettre du CTO" in done.text
    assert _state(web, sid) == (["active"], ["left"])


def test_unsubscribing_from_everything_leaves_courses_and_lists(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "unsubscribe", sid, "lettre", now=web.clock.now)
    assert web.client.post(f"/unsubscribe/{token}", data={"scope": "all"}).status_code == 200
    courses, lists = _state(web, sid)
    assert "active" not in courses and lists == ["left"]


def test_one_click_on_a_newsletter_email_leaves_that_list_and_keeps_courses(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "unsubscribe", sid, "lettre", now=web.clock.now)
    done = web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click", "scope": "all"})
    assert done.status_code == 200
    assert _state(web, sid) == (["active"], ["left"])
    sub = web.subscriber("sam@example.org")
    assert sub is not None and sub["status"] == "active"


def test_the_unsubscribe_page_of_a_newsletter_offers_this_list_first_then_everything(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "unsubscribe", sid, "lettre", now=web.clock.now)
    page = web.client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    assert "La lettre du CTO" in page.text
    first, everything = page.text.index('value="list"'), page.text.index('value="all"')
    assert first < everything and 'value="course"' not in page.text
    done = web.client.post(f"/unsubscribe/{token}", data={"scope": "list"})
    assert done.status_code == 200 and "La lettre du CTO" in done.text
    assert _state(web, sid) == (["active"], ["left"])


def test_a_tampered_newsletter_token_naming_another_list_is_refused(web: Harness) -> None:
    sid = _reader_in_course_and_list(web)
    token = make_token(SECRET, "unsubscribe", sid, "lettre", now=web.clock.now)
    forged = make_token("another-key-" + "x" * 20, "unsubscribe", sid, "lettre", now=web.clock.now)
    assert (
        web.client.post(f"/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code != 200
    )
    assert (
        web.client.post(f"/unsubscribe/{token}x", data={"List-Unsubscribe": "One-Click"}).status_code != 200
    )
    assert _state(web, sid) == (["active"], ["active"])
