"""Signed, scoped tokens: tampering, expiry and scope are each refused with a reason."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from drip.runtime import Runtime, demo_key_allowed
from drip.tokens import (
    DEMO_SECRET,
    BadToken,
    MissingSecret,
    Scope,
    link_signer,
    make_token,
    read_token,
)

SECRET = "k" * 32
NOW = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def test_round_trip_keeps_subscriber_course_and_step() -> None:
    token = make_token(SECRET, "view", 42, "le-role-du-cto", step="welcome", now=NOW)
    data = read_token(SECRET, token, "view", now=NOW)
    assert (data.subscriber_id, data.course, data.step) == (42, "le-role-du-cto", "welcome")


@pytest.mark.parametrize(
    ("scope", "course", "step", "born"),
    [
        ("unsubscribe", "lettre", "issue:broadcast:la-rentree", 1_764_576_000_000_000),
        ("confirm", None, None, None),
        ("view", "métier-é", "article:/posts/x/" * 5, 5),  # not ASCII
        ("preferences", "日本", "welcome", None),
        ("unsubscribe", "100%-remote", "%d %s %%", 7),  # the payload is a printf format inside
    ],
)
def test_tokens_are_signed_as_itsdangerous_signs_them(
    scope: Scope, course: str | None, step: str | None, born: int | None
) -> None:
    """Byte for byte what itsdangerous's signer makes of the payload, uncompressed."""
    from itsdangerous import URLSafeSerializer
    from itsdangerous.encoding import base64_encode

    reference = URLSafeSerializer(
        SECRET, salt=f"drip.{scope}", signer_kwargs={"digest_method": hashlib.sha256}
    )
    payload = [scope, 42, course, step, int(NOW.timestamp()), *([born] if born is not None else [])]
    token = make_token(SECRET, scope, 42, course, step=step, born=born, now=NOW)
    json_text = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert token == reference.make_signer().sign(base64_encode(json_text)).decode()
    assert reference.loads(token) == payload
    assert read_token(SECRET, token, scope, now=NOW).born == born
    # The links of an email: the same token behind the page's address.
    sign = link_signer(SECRET, scope, course, step, int(NOW.timestamp()), "https://x.example/u/")
    assert sign(42, born) == "https://x.example/u/" + token


def test_a_token_written_compressed_before_still_reads() -> None:
    """The links of emails already sent were compressed when that was shorter: they keep working."""
    from itsdangerous import URLSafeSerializer

    reference = URLSafeSerializer(
        SECRET, salt="drip.unsubscribe", signer_kwargs={"digest_method": hashlib.sha256}
    )
    payload = ["unsubscribe", 42, "lettre", "issue:broadcast:" + "x" * 40, int(NOW.timestamp()), 5]
    earlier = reference.dumps(payload)
    assert earlier.startswith(".")  # itsdangerous's mark of a compressed payload
    assert read_token(SECRET, earlier, "unsubscribe", now=NOW).step == payload[3]


def test_a_confirm_token_cannot_unsubscribe_and_the_reverse() -> None:
    confirm = make_token(SECRET, "confirm", 1, "c", now=NOW)
    unsubscribe = make_token(SECRET, "unsubscribe", 1, "c", now=NOW)
    with pytest.raises(BadToken) as info:
        read_token(SECRET, confirm, "unsubscribe", now=NOW)
    assert info.value.reason == "scope"
    with pytest.raises(BadToken) as info:
        read_token(SECRET, unsubscribe, "confirm", now=NOW)
    assert info.value.reason == "scope"


def test_every_flipped_character_is_refused() -> None:
    token = make_token(SECRET, "unsubscribe", 7, "c", now=NOW)
    for i, ch in enumerate(token):
        flipped = token[:i] + ("A" if ch != "A" else "B") + token[i + 1 :]
        with pytest.raises(BadToken):
            read_token(SECRET, flipped, "unsubscribe", now=NOW)


def test_another_key_is_refused() -> None:
    token = make_token(SECRET, "unsubscribe", 7, "c", now=NOW)
    with pytest.raises(BadToken) as info:
        read_token("z" * 32, token, "unsubscribe", now=NOW)
    assert info.value.reason == "invalid"


def test_confirm_links_expire_after_a_week_unsubscribe_links_never() -> None:
    confirm = make_token(SECRET, "confirm", 1, "c", now=NOW)
    unsubscribe = make_token(SECRET, "unsubscribe", 1, "c", now=NOW)
    read_token(SECRET, confirm, "confirm", now=NOW + dt.timedelta(days=6, hours=23))
    with pytest.raises(BadToken) as info:
        read_token(SECRET, confirm, "confirm", now=NOW + dt.timedelta(days=7, seconds=1))
    assert info.value.reason == "expired"
    assert (
        read_token(SECRET, unsubscribe, "unsubscribe", now=NOW + dt.timedelta(days=3650)).subscriber_id == 1
    )


def test_secret_comes_from_the_environment_with_one_demo_rule() -> None:
    with pytest.raises(MissingSecret, match="DRIP_SECRET_KEY is not set"):
        _ = Runtime(environ={}).secret
    assert Runtime(environ={}, demo_key=True).secret == DEMO_SECRET
    with pytest.raises(MissingSecret, match="too short"):
        _ = Runtime(environ={"DRIP_SECRET_KEY": "short"}).secret
    assert Runtime(environ={"DRIP_SECRET_KEY": SECRET}, demo_key=True).secret == SECRET
    assert [b for b in ("outbox", "memory", "smtp", "sendgrid") if demo_key_allowed(b)] == [
        "outbox",
        "memory",
    ]
