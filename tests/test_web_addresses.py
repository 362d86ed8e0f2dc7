"""One address rule, seen from the subscribe form: each awkward address gets its answer, never a 500.

An internationalised domain is accepted (stored in Unicode); a non-ASCII local part, a Cyrillic
look-alike, bytes that are not UTF-8 and lone surrogates are refused with a 400 that says why, and
leave no row behind. A name over the store's limit is "too long", not "forbidden characters".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from web_support import COURSE, Harness, make_harness

from drip.store.schema import subscribers
from drip.store.subscribers import NAME_MAX
from drip.web.i18n import strings
from drip.web.ratelimit import RateLimit

EN = strings("en")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def web(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, rate_limit=RateLimit(per_minute=0))


def rows(web: Harness) -> int:
    with web.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one())


def post_json(web: Harness, **fields: str) -> tuple[int, dict[str, object]]:
    body = json.dumps({"course": COURSE, "locale": "en", **fields}).encode()
    answer = web.client.post("/subscribe", content=body, headers={"Content-Type": "application/json"})
    return answer.status_code, answer.json()


def errors(payload: dict[str, object]) -> dict[str, str]:
    found = payload["errors"]
    assert isinstance(found, list)
    return {str(e["key"]): str(e["message"]) for e in found}


def test_an_internationalised_domain_is_accepted_and_kept_in_unicode(web: Harness) -> None:
    answer = web.subscribe("User@Bücher.de", locale="en")
    assert answer.status_code == 200
    assert web.subscriber("user@bücher.de") is not None


@pytest.mark.parametrize(
    "address",
    [
        "josé@example.org",  # needs SMTPUTF8, which providers do not offer
        "аdmin@example.org",  # a Cyrillic а for the Latin a
        "ada@exa\x00mple.org",
        "ada@\ud800.org",
    ],
)
def test_an_address_that_cannot_be_mailed_is_a_400_and_no_row(web: Harness, address: str) -> None:
    status, payload = post_json(web, email=address, name="Ada")
    assert status == 400
    assert errors(payload) == {"email": EN["err_email"]}
    assert rows(web) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"email=ada%40example.org&name=Ada\xff\xfe&course=" + COURSE.encode() + b"&locale=en",
        b"email=ada%40example.org&name=Ada%FF&course=" + COURSE.encode() + b"&locale=en",
        b"email=ada%40example.org&name=%ED%A0%80&course=" + COURSE.encode() + b"&locale=en",
        b"email=ad\xffa%40example.org&name=Ada&course=" + COURSE.encode() + b"&locale=en",
        b"email=ada%FF%40example.org&name=Ada&course=" + COURSE.encode() + b"&locale=en",
    ],
)
def test_bytes_that_are_not_utf8_in_a_form_are_a_400_and_no_row(web: Harness, body: bytes) -> None:
    answer = web.client.post("/subscribe", content=body, headers=FORM)
    assert answer.status_code == 400, answer.text
    assert EN["err_control"] in answer.text or EN["err_email"] in answer.text
    assert rows(web) == 0


def test_a_lone_surrogate_in_a_name_is_a_400_and_no_row(web: Harness) -> None:
    status, payload = post_json(web, email="ada@example.org", name="Ada \ud800")
    assert status == 400
    assert errors(payload) == {"name": EN["err_control"]}
    assert rows(web) == 0


def test_a_name_one_over_the_limit_is_too_long_not_forbidden(web: Harness) -> None:
    status, payload = post_json(web, email="ada@example.org", name="a" * (NAME_MAX + 1))
    assert status == 400
    assert errors(payload) == {"name": EN["err_too_long"]}
    assert rows(web) == 0
    status, _ = post_json(web, email="ada@example.org", name="a" * NAME_MAX)
    assert status == 200 and rows(web) == 1


def test_an_address_over_the_limit_is_too_long_once(web: Harness) -> None:
    status, payload = post_json(web, email="a" * 250 + "@example.org")
    assert status == 400
    assert errors(payload) == {"email": EN["err_too_long"]}
    assert rows(web) == 0


def test_the_form_page_gives_back_a_too_long_name_with_the_right_message(web: Harness) -> None:
    answer = web.subscribe("ada@example.org", name="b" * 201, locale="en")
    assert answer.status_code == 400
    assert EN["err_too_long"] in answer.text and EN["err_control"] not in answer.text
    assert rows(web) == 0
