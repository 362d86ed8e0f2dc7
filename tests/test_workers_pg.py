"""Two `drip run` workers sharing one PostgreSQL store: all 5,000 welcomes sent, none twice."""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbfixtures import pg_schema
from delivery_fixtures import enroll_many, real_site, start_worker

from drip.config import Site
from drip.store.db import connect, open_store, upgrade
from drip.store.schema import deliveries

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUBSCRIBERS = 5000
_SENT = re.compile(r"^sent (\d+)", re.MULTILINE)


def welcomes_left(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.step_key == "welcome", deliveries.c.status != "sent")
            ).scalar_one()
        )


def run_workers(
    site: Site, engine: sa.Engine, logs: Path, env: dict[str, str]
) -> tuple[list[int], dict[str, str]]:
    """Two workers, alpha and beta, until every welcome is sent (or 140 s); their exit codes and logs."""
    started = time.monotonic()
    workers = [start_worker(site, name, logs, env) for name in ("alpha", "beta")]
    try:
        while welcomes_left(engine) and time.monotonic() - started < 140:
            if any(w.poll() is not None for w in workers):
                break
            time.sleep(0.25)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=30) for w in workers]
    return codes, {name: (logs / f"{name}.log").read_text() for name in ("alpha", "beta")}


def sent_rows(engine: sa.Engine) -> tuple[list[sa.Row[int, int, str | None, bool]], Counter[str]]:
    """The sent deliveries, and how many each worker claimed (the token starts with its name)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                deliveries.c.id,
                deliveries.c.attempts,
                deliveries.c.provider_id,
                deliveries.c.possible_duplicate,
            ).where(deliveries.c.status == "sent")
        ).all()
        tokens = conn.execute(
            sa.select(deliveries.c.lease_token).where(deliveries.c.status == "sent")
        ).scalars()
        return list(rows), Counter(t.split(":", 1)[0] for t in tokens)


@pytest.mark.timeout(170)
def test_two_workers_share_the_work_without_sending_twice(tmp_path: Path) -> None:
    schemas = pg_schema()
    pg = next(schemas)
    try:
        migrate = connect(pg.url)
        upgrade(migrate)
        migrate.dispose()
        site = real_site(
            tmp_path / "site",
            database=f'"{pg.url}"',
            transport="transport:\n  backend: outbox\n",
            batch_size=200,
            lease_seconds=60,
            tick_seconds=0.5,
        )
        engine = open_store(site.database_url)
        # Enrolled now: the welcome of each subscriber is due, the rest of the course is not.
        enroll_many(engine, site, SUBSCRIBERS, started=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        assert welcomes_left(engine) == SUBSCRIBERS
        env = {"DRIP_SECRET_KEY": "workers-test-" + "y" * 32, "DRIP_DATABASE_URL": pg.url}
        started = time.monotonic()
        codes, outputs = run_workers(site, engine, tmp_path / "logs", env)
        elapsed = time.monotonic() - started
        assert codes == [0, 0], outputs
        assert welcomes_left(engine) == 0
        rows, claimed_by = sent_rows(engine)
        engine.dispose()
    finally:
        schemas.close()

    # Each worker's own count of what it handed to the transport: together exactly one per delivery.
    sent_by = {name: sum(int(n) for n in _SENT.findall(text)) for name, text in outputs.items()}
    assert sum(sent_by.values()) == SUBSCRIBERS, sent_by
    assert all(n > 0 for n in sent_by.values()), f"one worker did all the work: {sent_by}"
    assert claimed_by.keys() == {"alpha", "beta"}
    # Claimed once, never reclaimed, never flagged.
    assert len(rows) == SUBSCRIBERS
    assert {r.attempts for r in rows} == {1}
    assert not any(r.possible_duplicate for r in rows)
    # One .eml per delivery, and each is the message the store recorded.
    files = sorted((site.outbox_dir).glob("*.eml"))
    assert len(files) == SUBSCRIBERS
    provider = {r.id: r.provider_id for r in rows}
    for path in files[:: max(1, len(files) // 200)]:
        msg = message_from_bytes(path.read_bytes())
        assert provider[int(msg["X-Drip-Delivery"])] == msg["Message-ID"]
    print(f"\n{SUBSCRIBERS} welcomes by two workers {sent_by} in {elapsed:.1f}s")
