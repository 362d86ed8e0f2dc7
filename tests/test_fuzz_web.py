"""A thousand malformed requests of each kind the web side takes: never a 500, never a half-made row.

Form and JSON posts to /subscribe, /unsubscribe and /preferences (GET and POST, genuine and broken
tokens), and the SendGrid webhook (unsigned, and signed with a real P-256 key), through Starlette's
TestClient on a SQLite store. Every answer is below 500; every 4xx leaves the digest of every table
as it was. A 200 may change the store only where it should (a pending subscriber, a saved
preference, an applied event): the digest then becomes the new reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fuzz_support import FUZZ, VALUES, Tally, digest, mutated_bytes, mutated_text, run
from hypothesis import given
from hypothesis import strategies as st
from web_support import COURSE, SECRET, T0, Harness, Signer, make_harness

from drip.tokens import make_token
from drip.web.ratelimit import RateLimit
from drip.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER

FORM = "application/x-www-form-urlencoded"
SUBSCRIBE_FORM = f"email=ada%40example.org&name=Ada+Lovelace&course={COURSE}&locale=fr"
SUBSCRIBE_JSON = json.dumps({"email": "ada@example.org", "name": "Ada", "course": COURSE, "locale": "en"})
PREFERENCES_FORM = f"status=paused&timezone=Europe%2FParis&locale=fr&keep={COURSE}"
UNSUBSCRIBE_FORMS = ("List-Unsubscribe=One-Click", "scope=course", "scope=all")
EVENTS = json.dumps(
    [
        {"email": "ada@example.org", "event": "bounce", "timestamp": 1796112000, "sg_event_id": "a1"},
        {"email": "x@example.org", "event": "delivered", "timestamp": 1796112000, "sg_event_id": "d"},
    ]
)


class Store:
    """The digest the next answer is held to, moved on only by answers allowed to change the store."""

    def __init__(self, web: Harness) -> None:
        self.web = web
        self.reference = digest(web.engine)

    def check(self, status: int, text: str, *, may_change: bool) -> None:
        assert status < 500, text[:2000]
        assert "Traceback" not in text
        now = digest(self.web.engine)
        if status >= 400 or not may_change:
            assert now == self.reference, f"a {status} answer changed the store"
        self.reference = now


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def web(tmp_path: Path, signer: Signer) -> Iterator[Harness]:
    harness = make_harness(tmp_path, rate_limit=RateLimit(per_minute=0), webhook_public_key=signer.public)
    harness.subscribe("grace@example.org", name="Grace")
    harness.confirm("grace@example.org")
    with harness.client:  # one event loop for the whole run, not one per request
        yield harness
    harness.engine.dispose()


def subscriber_id(web: Harness, address: str) -> int:
    row = web.subscriber(address)
    assert row is not None
    return int(str(row["id"]))


def path_of(token: str) -> str:
    """A token as a path segment, whatever it holds (lone surrogates as their raw bytes)."""
    return quote(token.encode("utf-8", errors="surrogatepass"), safe="")


def json_bodies() -> st.SearchStrategy[bytes]:
    """JSON documents of every shape, the subscribe fields given wrong types, and broken JSON text."""
    field = st.one_of(st.just("ada@example.org"), st.text(max_size=40), VALUES)
    documents = st.one_of(
        st.fixed_dictionaries({}, optional={"email": field, "name": field, "course": field, "locale": field}),
        VALUES,
    )
    encoded = st.builds(
        lambda doc, ascii_only: json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"),
        documents,
        st.booleans(),
    )
    return st.one_of(encoded, mutated_bytes(SUBSCRIBE_JSON, structured=False))


def test_subscribe_form(web: Harness) -> None:
    store = Store(web)
    tally = Tally("subscribe form posts")

    @FUZZ
    @given(mutated_bytes(SUBSCRIBE_FORM, structured=False))
    def one(body: bytes) -> None:
        answer = web.client.post("/subscribe", content=body, headers={"Content-Type": FORM})
        store.check(answer.status_code, answer.text, may_change=True)
        tally(str(answer.status_code))

    run(tally, one)


def test_subscribe_json(web: Harness) -> None:
    store = Store(web)
    tally = Tally("subscribe JSON posts")

    @FUZZ
    @given(json_bodies())
    def one(body: bytes) -> None:
        answer = web.client.post("/subscribe", content=body, headers={"Content-Type": "application/json"})
        store.check(answer.status_code, answer.text, may_change=True)
        if answer.status_code == 400:
            assert answer.json()["errors"]
        tally(str(answer.status_code))

    run(tally, one)


def token_requests(scope: str, genuine: str, bodies: st.SearchStrategy[bytes]) -> st.SearchStrategy[Any]:
    tokens = st.one_of(st.just(genuine), mutated_text(genuine, structured=False), st.text(max_size=60))
    return st.tuples(st.sampled_from(("GET", "POST")), tokens, bodies)


def run_token_fuzz(web: Harness, scope: str, bodies: st.SearchStrategy[bytes], kind: str) -> None:
    genuine = make_token(SECRET, scope, subscriber_id(web, "grace@example.org"), COURSE, now=T0)  # type: ignore[arg-type]
    store = Store(web)
    tally = Tally(kind)

    @FUZZ
    @given(token_requests(scope, genuine, bodies))
    def one(request: tuple[str, str, bytes]) -> None:
        method, token, body = request
        url = f"/{scope}/{path_of(token)}"
        if method == "GET":
            answer = web.client.get(url)
        else:
            answer = web.client.post(url, content=body, headers={"Content-Type": FORM})
        store.check(answer.status_code, answer.text, may_change=token == genuine and method == "POST")
        tally(f"{method} {answer.status_code}")

    run(tally, one)


def test_unsubscribe(web: Harness) -> None:
    bodies = st.one_of(*(mutated_bytes(form, structured=False) for form in UNSUBSCRIBE_FORMS))
    run_token_fuzz(web, "unsubscribe", bodies, "unsubscribe requests")


def test_preferences(web: Harness) -> None:
    run_token_fuzz(
        web, "preferences", mutated_bytes(PREFERENCES_FORM, structured=False), "preferences requests"
    )


def webhook_bodies() -> st.SearchStrategy[bytes]:
    events = st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"email": st.one_of(st.just("ada@example.org"), st.text(max_size=40), VALUES)},
                optional={
                    "event": st.one_of(st.sampled_from(("bounce", "dropped", "spamreport", "open")), VALUES),
                    "sg_event_id": VALUES,
                    "timestamp": VALUES,
                },
            ),
            VALUES,
        ),
        max_size=5,
    )
    encoded = st.builds(
        lambda doc, ascii_only: json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"),
        st.one_of(events, VALUES),
        st.booleans(),
    )
    return st.one_of(encoded, mutated_bytes(EVENTS, structured=False))


def test_webhook_unsigned(web: Harness, signer: Signer) -> None:
    """Bodies with no signature, a broken one, another body's, or a stale one: refused, nothing written."""
    store = Store(web)
    tally = Tally("webhook bodies, unsigned or badly signed")
    stamp = int(T0.timestamp())
    real = signer.headers(EVENTS.encode(), stamp)

    headers: st.SearchStrategy[dict[str, str]] = st.one_of(
        st.just({}),
        st.just(real),  # the signature of another body
        st.builds(
            lambda sig, ts: {SIGNATURE_HEADER: sig, TIMESTAMP_HEADER: ts},
            st.one_of(
                mutated_text(real[SIGNATURE_HEADER], structured=False), st.just(real[SIGNATURE_HEADER])
            ),
            st.one_of(st.just(str(stamp)), st.just(str(stamp - 3600)), st.text(max_size=20)),
        ),
    )

    @FUZZ
    @given(webhook_bodies(), headers)
    def one(body: bytes, given_headers: dict[str, str]) -> None:
        if body == EVENTS.encode():
            return
        # What a client can send: any byte in a header value but line ends and NUL.
        safe = {
            k.encode("utf-8", "surrogatepass"): v.encode("utf-8", "surrogatepass").translate(
                None, b"\r\n\x00"
            )
            for k, v in given_headers.items()
        }
        answer = web.client.post("/webhooks/sendgrid", content=body, headers=safe)
        assert answer.status_code in (400, 403), answer.text
        store.check(answer.status_code, answer.text, may_change=False)
        tally(str(answer.status_code))

    run(tally, one)


def test_webhook_signed(web: Harness, signer: Signer) -> None:
    """Genuine signatures over malformed batches: 400 for what is not an array of events, never a 500."""
    store = Store(web)
    tally = Tally("webhook bodies, signed")
    stamp = int(T0.timestamp())
    sign: Callable[[bytes], dict[str, str]] = lambda body: signer.headers(body, stamp)  # noqa: E731

    @FUZZ
    @given(webhook_bodies())
    def one(body: bytes) -> None:
        answer = web.client.post("/webhooks/sendgrid", content=body, headers=sign(body))
        store.check(answer.status_code, answer.text, may_change=True)
        tally(str(answer.status_code))

    run(tally, one)
