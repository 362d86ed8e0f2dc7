"""Signed, scoped tokens for every link that acts for a subscriber.

A token is an HMAC-signed (itsdangerous, SHA-256) payload naming one subscriber,
optionally one course, and one *scope*: the scope is mixed into the signing salt,
so a confirm token can never unsubscribe anyone and the reverse. The key comes only
from the environment (``DRIP_SECRET_KEY``), read by :class:`drip.runtime.Runtime`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, Protocol

from drip.errors import DripError

if TYPE_CHECKING:
    from itsdangerous import URLSafeSerializer

Scope = Literal["confirm", "unsubscribe", "preferences", "view"]
SCOPES: tuple[Scope, ...] = ("confirm", "unsubscribe", "preferences", "view")
SECRET_ENV = "DRIP_SECRET_KEY"
# Only for the laptop quick start with the outbox transport; `drip serve` refuses it.
DEMO_SECRET = "drip-demo-key-not-secret"

# How long each kind of link stays valid; None: as long as the subscriber exists.
DEFAULT_TTL: dict[Scope, dt.timedelta | None] = {
    "confirm": dt.timedelta(days=7),
    "unsubscribe": None,  # an unsubscribe link must keep working in old emails
    "preferences": None,
    "view": None,
}


class BadToken(DripError):
    """A token that is tampered with, expired or meant for another action."""

    def __init__(self, reason: Literal["invalid", "expired", "scope"]) -> None:
        super().__init__(f"token {reason}")
        self.reason = reason


class MissingSecret(DripError):
    """DRIP_SECRET_KEY is not set where it must be."""


@dataclass(frozen=True)
class TokenData:
    scope: Scope
    subscriber_id: int
    course: str | None
    step: str | None = None
    born: int | None = None  # the subscriber's creation (:func:`born_of`); None in links made before it


def born_of(created_at: dt.datetime) -> int:
    """A subscriber's creation time in microseconds: a token carries it, so it dies with that row.

    Ids are never reused, and this binds a link to the one row it was made for even if an id came
    back (a restored backup, a reset sequence): a re-created subscriber has another creation time.
    """
    return round(created_at.timestamp() * 1_000_000)


def check_secret(value: str) -> str:
    """A signing key long enough to resist guessing, or :class:`MissingSecret` saying why not."""
    if len(value) < 16:
        raise MissingSecret(f"{SECRET_ENV} is too short: use at least 16 random characters")
    return value


@lru_cache(maxsize=64)
def _serializer(secret: str, scope: Scope) -> URLSafeSerializer:
    # Imported here: the key's rules (and `drip --help`) need no signing code.
    from itsdangerous import URLSafeSerializer

    return URLSafeSerializer(secret, salt=f"drip.{scope}", signer_kwargs={"digest_method": hashlib.sha256})


def make_token(
    secret: str,
    scope: Scope,
    subscriber_id: int,
    course: str | None = None,
    *,
    step: str | None = None,
    born: int | None = None,
    now: dt.datetime,
) -> str:
    """Sign a token for one action on one subscriber (and course), stamped with ``now``.

    ``born`` (:func:`born_of` the subscriber's creation) binds the link to that subscriber's row.
    """
    return signed(secret, scope, subscriber_id, course, step, born, int(now.timestamp()))


def signed(
    secret: str,
    scope: Scope,
    subscriber_id: int,
    course: str | None,
    step: str | None,
    born: int | None,
    issued: int,
) -> str:
    """:func:`make_token` with the issue time in whole seconds, every argument positional."""
    return link_signer(secret, scope, course, step, issued)(subscriber_id, born)


Sign = Callable[[int, int | None], str]


@lru_cache(maxsize=256)
def link_signer(
    secret: str, scope: Scope, course: str | None, step: str | None, issued: int, prefix: str = ""
) -> Sign:
    """``prefix`` followed by the token of ``scope`` for a subscriber ``(id, born)``.

    Everything the links of one kind share in one dispatch pass (the payload around the
    subscriber, the keyed HMAC) is prepared once here, so that each email's three links cost
    their hashing and little else: itsdangerous builds a signer and derives its key again for
    every token, which was the largest part of personalising an email. The token is the one
    :func:`_serializer` makes, never compressed: itsdangerous would zlib-compress a payload when
    that saves a byte, and a link's payload is a few dozen bytes, which compression shortens by
    a handful of characters for half the cost of a link. :func:`read_token` reads both forms
    with itsdangerous, so links in emails sent before keep working (tests/test_tokens.py signs
    both ways and reads both).
    """
    before, after = (part.replace("%", "%%") for part in _payload_head(scope, course, step, issued))
    # Templates in UTF-8 bytes: bytes formatting fills them, no text to encode per link.
    unborn, with_born = f"{before}%d{after}]".encode(), f"{before}%d{after},%d]".encode()
    inner_keyed, outer_keyed = _signing_hashes(secret, scope)
    head = prefix.encode()
    b2a, urlsafe = binascii.b2a_base64, _URLSAFE

    def sign(subscriber_id: int, born: int | None) -> str:
        text = unborn % subscriber_id if born is None else with_born % (subscriber_id, born)
        # One translate makes base64 URL-safe and drops its padding, the only "=" it holds.
        body = b2a(text, newline=False).translate(urlsafe, b"=")
        inner = inner_keyed.copy()
        inner.update(body)
        outer = outer_keyed.copy()
        outer.update(inner.digest())
        mac = b2a(outer.digest(), newline=False).translate(urlsafe, b"=")
        return (b"%s%s.%s" % (head, body, mac)).decode("ascii")

    return sign


@lru_cache(maxsize=256)
def _payload_head(scope: Scope, course: str | None, step: str | None, issued: int) -> tuple[str, str]:
    """The JSON of ``[scope, subscriber, course, step, issued, born]`` around the subscriber, as
    itsdangerous writes it (compact, not ASCII-escaped): the same for every link of one kind in a pass.
    """
    before, _, after = _json([scope, 0, course, step, issued]).partition(",0,")
    return f"{before},", f",{after[:-1]}"


def _json(payload: object) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _Hash(Protocol):
    def copy(self) -> _Hash: ...

    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


@lru_cache(maxsize=64)
def _signing_hashes(secret: str, scope: Scope) -> tuple[_Hash, _Hash]:
    """The two SHA-256 states of :func:`_serializer`'s HMAC, keyed once (RFC 2104, the key derived
    django-concat): the inner one has hashed ``key ^ ipad``, the outer one ``key ^ opad``.

    A link's MAC is then two copies of a plain hash state, which cost about 40% less than a copy
    of OpenSSL's HMAC object, whose copy duplicates its three digest contexts (tests/test_tokens.py
    reads every form back with itsdangerous).
    """
    key = hashlib.sha256(f"drip.{scope}".encode() + b"signer" + secret.encode()).digest()
    block = key.ljust(hashlib.sha256().block_size, b"\0")  # a 32-byte key fits one 64-byte block
    return (
        hashlib.sha256(bytes(b ^ 0x36 for b in block)),
        hashlib.sha256(bytes(b ^ 0x5C for b in block)),
    )


def read_token(secret: str, token: str, scope: Scope, *, now: dt.datetime) -> TokenData:
    """Verify a token for ``scope``; raise :class:`BadToken` saying why it is refused."""
    from itsdangerous import BadData

    try:
        payload = _serializer(secret, scope).loads(token)
    except BadData:
        # Genuine but for another action? Say so: the link is real, just not for this page.
        for other in SCOPES:
            if other == scope:
                continue
            try:
                _serializer(secret, other).loads(token)
            except BadData:
                continue
            raise BadToken("scope") from None
        raise BadToken("invalid") from None
    if not (isinstance(payload, list) and len(payload) in (5, 6) and payload[0] == scope):
        raise BadToken("invalid")
    _, subscriber_id, course, step, issued, *rest = payload
    born = rest[0] if rest else None
    if not isinstance(subscriber_id, int) or not isinstance(issued, int):
        raise BadToken("invalid")
    if born is not None and not isinstance(born, int):
        raise BadToken("invalid")
    ttl = DEFAULT_TTL[scope]
    if ttl is not None and now.timestamp() - issued > ttl.total_seconds():
        raise BadToken("expired")
    return TokenData(scope=scope, subscriber_id=subscriber_id, course=course, step=step, born=born)


# Click and open tokens go in every content link of an email: they must be short. Each is a
# delivery id and an HMAC; a click's MAC also covers the link's URL, so /c/ redirects only to a
# URL drip wrote into that email, found again in the rendered step, never one read from the token.
_MAC_CHARS = 16  # 96 bits of HMAC-SHA256, URL-safe base64
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class TrackRef:
    """A parsed click or open token: not yet verified."""

    delivery_id: int
    link: int | None  # the link's index in the email, a hint (None for an open)
    mac: str


def _b36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _B36[digit] + out
        if number == 0:
            return out


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:_MAC_CHARS]


def click_token(secret: str, delivery_id: int, link: int, url: str) -> str:
    """``<delivery>.<link>.<mac>`` for link number ``link`` (whose target is ``url``) of one delivery."""
    return f"{_b36(delivery_id)}.{link}.{_mac(secret, f'drip.click|{delivery_id}|{url}')}"


def open_token(secret: str, delivery_id: int) -> str:
    """``<delivery>.<mac>`` for the open pixel of one delivery."""
    return f"{_b36(delivery_id)}.{_mac(secret, f'drip.open|{delivery_id}')}"


def parse_track_token(token: str) -> TrackRef | None:
    """The parts of a click (3 parts) or open (2 parts) token, or None when it has neither shape."""
    parts = token.split(".")
    if len(parts) not in (2, 3) or len(parts[-1]) != _MAC_CHARS or len(parts[0]) > 12:
        return None
    try:
        delivery_id = int(parts[0], 36)
        link = int(parts[1]) if len(parts) == 3 and len(parts[1]) <= 4 else None
    except ValueError:
        return None
    if len(parts) == 3 and link is None:
        return None
    return TrackRef(delivery_id, link, parts[-1])


def click_matches(secret: str, ref: TrackRef, url: str) -> bool:
    """True when ``ref`` was signed for this delivery and this URL."""
    return hmac.compare_digest(ref.mac, _mac(secret, f"drip.click|{ref.delivery_id}|{url}"))


def open_matches(secret: str, ref: TrackRef) -> bool:
    return ref.link is None and hmac.compare_digest(ref.mac, _mac(secret, f"drip.open|{ref.delivery_id}"))
