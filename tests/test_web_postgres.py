"""The web endpoints on the PostgreSQL server: the same double opt-in, one-click and webhook rules."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from delivery_fixtures import pg_schema
from web_support import COURSE, SECRET, Harness, make_harness

from drip.store.schema import CANCELLED, deliveries
from drip.store.suppressions import is_suppressed
from drip.tokens import make_token
from drip.web.ratelimit import RateLimit
from drip.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER

pytestmark = pytest.mark.postgres

KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Harness]:
    gen = pg_schema()
    schema = next(gen)
    harness = make_harness(
        tmp_path, database=schema.url, rate_limit=RateLimit(per_minute=0), webhook_public_key=PUBLIC
    )
    try:
        yield harness
    finally:
        harness.engine.dispose()
        gen.close()


def test_double_opt_in_one_click_and_webhook_on_postgresql(web: Harness) -> None:
    assert web.engine.dialect.name == "postgresql"
    web.subscribe("pg@example.org", name="Pg")
    web.subscribe("pg@example.org")  # cool-down: no second email
    web.client.get(web.confirm_link("pg@example.org"))
    sub = web.subscriber("pg@example.org")
    assert sub is not None and sub["status"] == "active"
    sid = int(str(sub["id"]))
    with web.engine.begin() as conn:  # a worker holds them all
        lease = {"lease_token": "w:held", "leased_until": web.clock.now + dt.timedelta(minutes=5)}
        conn.execute(deliveries.update().where(deliveries.c.subscriber_id == sid).values(lease))
    token = make_token(SECRET, "unsubscribe", sid, COURSE, now=web.clock.now)
    assert web.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with web.engine.connect() as conn:
        statuses = set(conn.execute(sa.select(deliveries.c.status)).scalars())
    assert statuses == {CANCELLED}

    body = json.dumps(
        [{"email": "pg@example.org", "event": "spamreport", "timestamp": 1, "sg_event_id": "x"}]
    ).encode()
    for event_id in ("x", "y"):  # the retry carries a new sg_event_id
        batch = body.replace(b'"x"', f'"{event_id}"'.encode())
        ts = str(int(web.clock.now.timestamp()))
        signature = base64.b64encode(KEY.sign(ts.encode() + batch, ec.ECDSA(hashes.SHA256()))).decode()
        response = web.client.post(
            "/webhooks/sendgrid", content=batch, headers={SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: ts}
        )
        assert response.status_code == 200
    assert response.json() == {"applied": 0, "duplicates": 1, "ignored": 0}
    sub = web.subscriber("pg@example.org")
    assert sub is not None and sub["status"] == "complained"
    with web.engine.connect() as conn:
        assert is_suppressed(conn, SECRET, "pg@example.org")
