"""The subscribe form with a newsletter list: double opt-in joins the list, not a course; unknown lists say so."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from web_support import (
    Harness,
    OpenWeb,
    open_web_fixture,  # noqa: F401 - the fixture, by name
)

from drip.store.schema import enrollments, list_members
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
