"""One address rule for the web form, the CLI and import: what is stored, what is refused, and why."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from drip.errors import InputError
from drip.inputs.address import AddressError, normalise_address, sending_form
from drip.store.subscribers import FieldError, make_profile, upsert_subscriber
from drip.store.suppressions import email_hash

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "stored", "sent"),
    [
        ("user@bücher.de", "user@bücher.de", "user@xn--bcher-kva.de"),
        ("User@XN--BCHER-KVA.DE", "user@bücher.de", "user@xn--bcher-kva.de"),
        ("  Camille@Example.ORG ", "camille@example.org", "camille@example.org"),
        ("a@раураl.com", "a@раураl.com", "a@xn--l-7sba6dbr.com"),
    ],
)
def test_one_stored_form_and_one_sent_form(raw: str, stored: str, sent: str) -> None:
    assert normalise_address(raw) == stored
    assert sending_form(stored) == sent


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("josé@example.org", "before the @"),
        ("раураl@example.com", "before the @"),  # a Cyrillic look-alike of "paypal"
        ("x\udcff@example.org", "invalid characters"),
        ("ab\x00c@example.org", "control"),
        ("a" * 250 + "@example.org", "at most 254"),
        ("no-at-sign", "@-sign"),
    ],
)
def test_what_cannot_be_delivered_is_refused_with_its_reason(raw: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        normalise_address(raw)


def test_a_provider_punycode_address_and_the_stored_one_are_one_suppression() -> None:
    secret = "k" * 32
    assert email_hash(secret, "user@xn--bcher-kva.de") == email_hash(secret, "User@Bücher.de")


def test_a_name_with_a_lone_surrogate_is_refused_as_invalid_not_a_crash() -> None:
    with pytest.raises(FieldError, match="invalid characters"):
        make_profile("a@example.org", name="Zo\udce9")


def test_a_refused_address_stores_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    from drip.store.schema import subscribers

    with engine.begin() as conn:
        with pytest.raises(InputError, match="before the @"):
            upsert_subscriber(conn, "josé@example.org", now=NOW)
        upsert_subscriber(conn, "zoe@bücher.de", now=NOW)
    with engine.connect() as conn:
        assert conn.execute(sa.select(subscribers.c.email)).scalars().all() == ["zoe@bücher.de"]
