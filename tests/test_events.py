"""The events ledger: SendGrid events of every type once, unsubscribes charged to the last email, the
funnel's figures on a fixture with known events."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from delivery_fixtures import seed
from web_support import (
    Harness,
    OpenWeb,
    Signer,
    open_web_fixture,  # noqa: F401 - the fixture, by name
)

from drip.store.events import Event, funnel, record_click, record_events, record_unsubscribe, report_rows
from drip.store.schema import deliveries, events
from drip.web.ratelimit import RateLimit

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
STEPS = ["welcome", "a", "b"]


def sent_fixture(engine: sa.Engine) -> dict[tuple[int, str], int]:
    """10 readers; welcome sent to all, a to 8, b to 5. Returns delivery ids by (reader, step)."""
    seed(engine, subscribers_count=10, steps=[(k, T0) for k in STEPS])
    with engine.begin() as conn:
        ids = {
            (int(r[1]), str(r[2])): int(r[0])
            for r in conn.execute(
                sa.select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.step_key)
            )
        }
        reached = {"welcome": 10, "a": 8, "b": 5}
        for (reader, step), delivery_id in ids.items():
            if reader <= reached[step]:
                at = T0 + dt.timedelta(days=STEPS.index(step))
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == delivery_id)
                    .values(status="sent", sent_at=at)
                )
    return ids


def test_the_funnel_adds_up_known_events(engine: sa.Engine) -> None:
    ids = sent_fixture(engine)
    later = T0 + dt.timedelta(days=5)
    with engine.begin() as conn:
        record_events(
            conn,
            [Event(ids[(r, "welcome")], "delivered", "sendgrid", later) for r in range(1, 10)]
            + [Event(ids[(10, "welcome")], "bounced", "sendgrid", later)]
            + [Event(ids[(1, "welcome")], "delivered", "sendgrid", later)],  # twice: counted once
        )
    for reader in (1, 2, 3, 1):
        assert record_click(engine, ids[(reader, "welcome")], 0, now=later, links=5) is True
    record_click(engine, ids[(4, "welcome")], 0, now=later, links=5, machine="scanner: safelinks")
    record_click(engine, ids[(1, "a")], 1, now=later, links=5)
    with engine.begin() as conn:
        record_unsubscribe(conn, 6, "cours", now=later)  # reader 6 got welcome and a: a is charged
    figures = funnel(engine, "cours")
    assert figures["welcome"].sent == 10 and figures["welcome"].delivered == 9
    assert figures["welcome"].bounced == 1
    assert figures["welcome"].clicked == 3 and figures["welcome"].machine_clicked == 1
    assert figures["a"].sent == 8 and figures["a"].clicked == 1 and figures["a"].unsubscribed == 1
    assert figures["b"].sent == 5 and figures["b"].clicked == 0
    rows = report_rows(figures, STEPS)
    assert [r["step"] for r in rows] == STEPS
    assert rows[0]["click_rate"] == 0.3 and rows[0]["drop_off"] is None
    assert rows[1]["drop_off"] == 0.2 and rows[2]["drop_off"] == 3 / 8
    assert rows[1]["unsubscribe_rate"] == 1 / 8


def test_a_time_range_counts_the_emails_sent_within_it(engine: sa.Engine) -> None:
    sent_fixture(engine)
    figures = funnel(engine, "cours", since=T0 + dt.timedelta(days=1), until=T0 + dt.timedelta(days=2))
    assert set(figures) == {"a"} and figures["a"].sent == 8


def test_a_second_first_never_appears(engine: sa.Engine) -> None:
    ids = sent_fixture(engine)
    for _ in range(3):
        record_click(engine, ids[(2, "welcome")], 0, now=T0 + dt.timedelta(hours=1), links=1)
    with engine.connect() as conn:
        firsts = conn.execute(sa.select(sa.func.count()).where(events.c.first == sa.true())).scalar_one()
    assert firsts == 1


def test_clicks_from_many_threads_at_once_are_each_recorded_once_with_one_first_per_reader(
    engine: sa.Engine,
) -> None:
    ids = sent_fixture(engine)
    later = T0 + dt.timedelta(hours=1)
    clicks = [(ids[(r, "welcome")], link) for r in range(1, 11) for link in (0, 0, 1)]
    clicks += [(ids[(r, "a")], 0) for r in range(1, 5)]
    with ThreadPoolExecutor(8) as pool:
        counted = list(
            pool.map(lambda c: record_click(engine, c[0], c[1], now=later, links=5, machine=None), clicks)
        )
    assert all(counted)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.delivery_id, events.c.first, events.c.step_key)).all()
    assert len(rows) == len(clicks)
    firsts = [r[0] for r in rows if r[1]]
    assert sorted(firsts) == sorted({d for d, _ in clicks})  # one first per delivery, whichever came first
    assert {r[2] for r in rows} == {"welcome", "a"}  # the delivery's step is copied onto the row
    figures = funnel(engine, "cours")
    assert (figures["welcome"].clicked, figures["a"].clicked) == (10, 4)


ALL_TYPES = [
    "processed",
    "dropped",
    "delivered",
    "deferred",
    "bounce",
    "open",
    "click",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
    "something_new",
]


def _post(web: Harness, signer: Signer, batch: list[dict[str, object]]) -> None:
    body = json.dumps(batch).encode()
    response = web.client.post(
        "/webhooks/sendgrid", content=body, headers=signer.headers(body, int(web.clock.now.timestamp()))
    )
    assert response.status_code == 200, response.text


def test_sendgrid_events_of_every_type_land_in_the_ledger_once(open_web: OpenWeb) -> None:
    signer = Signer()
    web = open_web(rate_limit=RateLimit(per_minute=0), webhook_public_key=signer.public)
    seed(web.engine, subscribers_count=1, steps=[("welcome", T0)], domain="ledger.example")
    with web.engine.connect() as conn:
        delivery_id = conn.execute(sa.select(deliveries.c.id)).scalar_one()
    batch: list[dict[str, object]] = [
        {
            "email": "lecteur1@ledger.example",
            "event": kind,
            "timestamp": 1796112000 + i,
            "sg_event_id": f"e{i}",
            "delivery_id": str(delivery_id),
        }
        for i, kind in enumerate(ALL_TYPES)
    ]
    batch[5]["sg_machine_open"] = True
    batch.append({"email": "nobody@ledger.example", "event": "delivered", "timestamp": 1796112000})
    _post(web, signer, batch)
    _post(web, signer, [dict(e, sg_event_id=f"retry-{e.get('sg_event_id')}") for e in batch])  # a retry
    with web.engine.connect() as conn:
        rows = conn.execute(
            sa.select(events.c.kind, events.c.detail, events.c.delivery_id, events.c.machine).order_by(
                events.c.id
            )
        ).all()
    assert len(rows) == len(batch)
    kinds = [r[0] for r in rows]
    assert kinds[:12] == [
        "accepted",
        "bounced",
        "delivered",
        "deferred",
        "bounced",
        "opened",
        "clicked",
        "complained",
        "unsubscribed",
        "unsubscribed",
        "resubscribed",
        "other",
    ]
    assert rows[11][1] == "something_new" and rows[5][1] == "sg_machine_open" and rows[5][3]
    assert all(r[2] == delivery_id for r in rows[:12]) and rows[12][2] is None
