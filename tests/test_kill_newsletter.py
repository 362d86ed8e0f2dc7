"""A newsletter issue under SIGKILL: a real `drip run` worker killed mid-send, then another, nothing lost.

The example site gets a broadcast due a minute ago and a few hundred list members. A
worker writes the issue and sends it over SMTP to an aiosmtpd server in this process;
it is SIGKILLed once the server has some but not all of the messages. A new worker
takes over the dead one's batch when its lease expires. Every member gets the issue,
a message received twice is flagged ``possible_duplicate`` (one hand-off chunk at
most), and the issue exists once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_fixtures import unfinished
from kill_support import DELIVERY_HEADER, Workers, smtp_site, wait_while_progressing
from smtp_server import smtp_server

from drip.store.db import open_store
from drip.store.lists import join_lists
from drip.store.schema import deliveries, newsletter_issues, subscribers
from drip.transports.smtp import SmtpTransport

pytestmark = pytest.mark.slow

MEMBERS = 300


def _broadcast(send_at: dt.datetime) -> str:
    return (
        '---\nsubject: "Une annonce"\nlist: lettre\n'
        f"send_at: {send_at.isoformat(timespec='minutes')}\n---\n\nBonjour, voici **une annonce**.\n"
    )


def _members(engine: sa.Engine, count: int, now: dt.datetime) -> set[str]:
    emails = [f"membre{i}@example.org" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {"email": e, "status": "active", "attributes": {}, "created_at": now, "updated_at": now}
                for e in emails
            ],
        )
        ids = list(conn.execute(sa.select(subscribers.c.id)).scalars())
        join_lists(conn, ids, ["lettre"], now=now)
    return set(emails)


@pytest.mark.timeout(180)
def test_a_worker_sigkilled_mid_issue_then_restarted_sends_every_member_the_issue_once(
    tmp_path: Path,
) -> None:
    now = dt.datetime.now(dt.UTC)
    with smtp_server() as server:
        server.handler.data_delay = 0.005  # a provider's few milliseconds: the kill lands mid-send
        site = smtp_site(tmp_path, server.port)
        # Only the broadcast is due: no other broadcast, and no digest slot whatever the day.
        for old in (site.root / "content" / "newsletters").glob("*.md"):
            old.unlink()
        (site.root / "schedules" / "lettre-hebdo.yaml").unlink()
        (site.root / "content" / "newsletters" / "annonce.md").write_text(
            _broadcast(now - dt.timedelta(minutes=1)), encoding="utf-8"
        )
        engine = open_store(site.database_url)
        expected = _members(engine, MEMBERS, now - dt.timedelta(days=1))
        workers = Workers(site, tmp_path / "logs", {"DRIP_SECRET_KEY": "kill-test-" + "x" * 32})
        workers.start()
        try:
            deadline = time.monotonic() + 60
            while len(server.messages) < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            workers.kill("w1")
            at_kill = len(server.messages)
            assert 0 < at_kill < MEMBERS, f"{at_kill} messages received when the worker died"
            workers.start()
            wait_while_progressing(engine)
            assert unfinished(engine) == 0
        finally:
            codes = workers.stop()
        assert codes == {"w2": 0}, workers.log_tail("w2")
        received = list(server.messages)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.possible_duplicate)
        ).all()
        issue_rows = conn.execute(sa.select(newsletter_issues.c.id)).all()
    engine.dispose()

    assert len(issue_rows) == 1
    assert len(rows) == MEMBERS and {r.status for r in rows} == {"sent"}
    by_member = Counter(rcpt for msg in received for rcpt in msg.rcpt_tos)
    assert set(by_member) == expected
    by_delivery = Counter(int(m.group(1)) for msg in received if (m := DELIVERY_HEADER.search(msg.data)))
    assert sum(by_delivery.values()) == len(received)
    duplicated = {i for i, n in by_delivery.items() if n > 1}
    flagged = {r.id for r in rows if r.possible_duplicate}
    assert duplicated <= flagged
    assert len(flagged) <= SmtpTransport.handoff_size
    assert all(n <= 2 for n in by_member.values())
    print(
        f"\n{MEMBERS} members, killed at {at_kill} received, {len(received)} received in all, "
        f"{len(duplicated)} duplicates, {len(flagged)} flagged"
    )
