"""`drip stats LIST`: the funnel of a newsletter list per issue, on a fixture with known events."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import sqlalchemy as sa
from newsletter_cli_support import NewsSite

from drip.store.events import Event, record_click, record_events
from drip.store.issues import create_issue, create_issue_deliveries
from drip.store.schema import deliveries

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def fixture(root: Path) -> NewsSite:
    """5 readers on ``lettre``; issue "n1" (sent day 0) to all, "n2" (day 7) to 4 of them.
    n1: 5 delivered, 2 readers clicked (one twice), a scanner clicked, 1 unsubscribed after it;
    n2: 1 bounced, 1 reader clicked."""
    news = NewsSite(root)
    readers = [news.reader(f"r{i}@example.org") for i in range(1, 6)]
    ids: dict[tuple[str, int], int] = {}
    for key, day in (("n2", 7), ("n1", 0)):  # created out of order: the report follows the sends
        at = T0 + dt.timedelta(days=day)
        issue = create_issue(
            news.engine, list="lettre", key=key, kind="broadcast", send_at=at, post_urls=[], now=at
        )
        assert issue is not None
        create_issue_deliveries(news.engine, issue, now=at)
        with news.engine.begin() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.id, deliveries.c.subscriber_id).where(
                    deliveries.c.issue_id == issue.id
                )
            ).all()
            for delivery_id, subscriber_id in rows:
                ids[(key, readers.index(int(subscriber_id)) + 1)] = int(delivery_id)
                if key == "n1" or subscriber_id != readers[4]:
                    conn.execute(
                        deliveries.update()
                        .where(deliveries.c.id == delivery_id)
                        .values(status="sent", sent_at=at)
                    )
    later = T0 + dt.timedelta(days=1)
    with news.engine.begin() as conn:
        record_events(
            conn,
            [Event(ids[("n1", r)], "delivered", "sendgrid", later) for r in range(1, 6)]
            + [Event(ids[("n1", 5)], "unsubscribed", "drip", later)]
            + [Event(ids[("n2", 2)], "bounced", "sendgrid", T0 + dt.timedelta(days=8))],
        )
    for reader in (1, 1, 2):
        record_click(news.engine, ids[("n1", reader)], 0, now=later, links=3)
    record_click(news.engine, ids[("n1", 3)], 0, now=later, links=3, machine="scanner: proofpoint")
    record_click(news.engine, ids[("n2", 1)], 0, now=T0 + dt.timedelta(days=8), links=3)
    return news


def test_json_gives_each_issue_in_the_order_sent_with_counts_and_rates(tmp_path: Path) -> None:
    news = fixture(tmp_path)
    result = news.run("stats", "lettre", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    issues = data["issues"]
    assert [i["issue"] for i in issues] == ["n1", "n2"]
    n1, n2 = issues
    assert (n1["sent"], n1["delivered"], n1["clicked"], n1["machine_clicked"], n1["unsubscribed"]) == (
        5,
        5,
        2,
        1,
        1,
    )
    assert n1["click_rate"] == 0.4 and n1["unsubscribe_rate"] == 0.2 and n1["drop_off"] is None
    assert (n2["sent"], n2["bounced"], n2["clicked"], n2["unsubscribed"]) == (4, 1, 1, 0)
    assert n2["bounce_rate"] == 0.25 and n2["drop_off"] == 0.2


def test_csv_the_table_and_a_time_range(tmp_path: Path) -> None:
    news = fixture(tmp_path)
    rows = list(csv.DictReader(io.StringIO(news.run("stats", "lettre", "--csv").output)))
    assert [(r["issue"], r["sent"], r["clicked"]) for r in rows] == [("n1", "5", "2"), ("n2", "4", "1")]
    table = news.run("stats", "lettre").output
    assert "issue" in table and "n1" in table and "40.0%" in table
    ranged = news.run("stats", "lettre", "--json", "--since", "2026-12-05T00:00")
    assert [(i["issue"], i["sent"]) for i in json.loads(ranged.output)["issues"]] == [("n2", 4)]


def test_a_name_neither_course_nor_list_suggests_the_nearest(tmp_path: Path) -> None:
    news = fixture(tmp_path)
    result = news.run("stats", "letre")
    assert result.exit_code == 1
    assert "no course or list 'letre'" in result.output and "did you mean 'lettre'" in result.output


def test_the_preview_page_draws_a_list_issue_by_issue_and_refuses_an_unknown_list(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from drip.preview.server import create_app

    news = fixture(tmp_path)
    client = TestClient(create_app(news.site))
    page = client.get("/lists/lettre/stats")
    assert page.status_code == 200, page.text
    assert "<svg" in page.text and "<script" not in page.text
    assert page.text.index(">n1<") < page.text.index(">n2<")  # in the order the issues went out
    assert "<title>sent: 5</title>" in page.text and "<title>clicked: 2</title>" in page.text
    assert "<title>sent: 4</title>" in page.text
    assert 'href="/lists/lettre/stats"' in client.get("/").text
    unknown = client.get("/lists/letre/stats")
    assert unknown.status_code == 404 and "lettre" in unknown.text  # the nearest name is suggested
