"""Two workers on PostgreSQL fire the same digest slot at the same moment: one issue, one email a member."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbfixtures import pg_schema
from test_lists import readers
from test_newsletter_dispatch import MINUTE, MONDAY_9, SECRET, _members, _site

from drip.dispatch.worker import drain
from drip.runtime import Runtime, frozen_clock
from drip.store.db import connect, upgrade
from drip.store.issues import list_issues
from drip.transports.memory import MemoryTransport

MEMBERS = 400


@pytest.fixture(name="pg_url")
def pg_url_fixture() -> Iterator[str]:
    for pg in pg_schema():
        engine = connect(pg.url)
        upgrade(engine)
        engine.dispose()
        yield pg.url


def _worker(url: str, site_root: Path, name: str, start: threading.Barrier, out: MemoryTransport) -> None:
    from drip.config import load_site

    site = load_site(site_root)
    engine = connect(url)
    now = (MONDAY_9 + MINUTE).astimezone(dt.UTC)
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock(now))
    try:
        start.wait()
        for _ in range(3):  # a few ticks: the later ones find nothing more to do
            drain(site, engine, out, runtime=runtime, worker=name, courses={})
    finally:
        engine.dispose()


def test_two_workers_firing_the_same_slot_make_one_issue_and_one_email_each(
    tmp_path: Path, pg_url: str
) -> None:
    site = _site(tmp_path)
    engine = connect(pg_url)
    readers(engine, MEMBERS)
    _members(engine, range(1, MEMBERS + 1))
    start = threading.Barrier(2)
    transports = [MemoryTransport(), MemoryTransport()]
    threads = [
        threading.Thread(target=_worker, args=(pg_url, site.root, f"w{i}", start, transports[i]))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    received = Counter(s.message.to_email for t in transports for s in t.sent)
    assert len(received) == MEMBERS
    assert set(received.values()) == {1}
    with engine.connect() as conn:
        issues = list_issues(conn, "lettre")
        sent = conn.execute(sa.text("select count(*) from deliveries where status = 'sent'")).scalar_one()
    assert len(issues) == 1
    assert sent == MEMBERS
    engine.dispose()
