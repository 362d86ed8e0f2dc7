"""A subscriber's values: the links drip signs are URL-safe by construction, which transports rely on."""

from __future__ import annotations

import datetime as dt
import html

from fuzz_support import FUZZ
from hypothesis import assume, given
from hypothesis import strategies as st

from drip.config import check_base_url
from drip.dispatch.personalise import LINK_SLOTS, plain_slots, subscriber_values
from drip.transports.message import check_url
from drip.transports.sendgrid import _PLAIN

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
SECRET = "k" * 32


@FUZZ
@given(
    host=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20),
    path=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
    subscriber_id=st.integers(1, 2**62),
    course=st.text(max_size=30),
    step=st.text(max_size=60),
    created=st.datetimes(timezones=st.just(dt.UTC)),
)
def test_every_link_on_a_checked_base_url_reads_the_same_in_json_html_and_a_header(
    host: str, path: str, subscriber_id: int, course: str, step: str, created: dt.datetime
) -> None:
    try:
        base_url = check_base_url(f"https://{host}/{path}")
    except ValueError:
        assume(False)
        raise
    assert plain_slots(base_url) == LINK_SLOTS
    values = subscriber_values(
        base_url,
        SECRET,
        subscriber_id=subscriber_id,
        name="x",
        email="x@example.org",
        attributes={},
        course=course,
        step=step,
        now=NOW,
        created_at=created,
    )
    for slot in LINK_SLOTS:
        link = values[slot]
        assert _PLAIN.fullmatch(link) and html.escape(link) == link, link
        assert check_url(link, role="test") == link


def test_links_on_an_unchecked_base_url_are_not_said_plain() -> None:
    """A Pass built by hand may carry any base_url: its links then go through every check."""
    assert plain_slots("https://example.org/a&b") == frozenset()
    assert plain_slots('https://example.org/"') == frozenset()
    assert plain_slots("https://example.org") == LINK_SLOTS
