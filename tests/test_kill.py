"""The delivery guarantee under SIGKILL: real `drip run` workers, a real SMTP server, nothing lost.

Two worker processes send the example course to subscribers through the SMTP
transport to an aiosmtpd server in this process. Workers holding a lease (a
batch in flight) are killed with SIGKILL again and again and restarted. In the
end every delivery must be recorded sent and have reached the server at least
once; a message received twice must be one that a lease expiry made another
worker send again, flagged ``possible_duplicate``, and there can be at most one
batch of those per kill. Only rows the dead worker had marked handed off are
flagged, so at most one hand-off chunk per kill.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_fixtures import enroll_many, unfinished
from kill_support import BATCH, DELIVERY_HEADER, Workers, holders, smtp_site, wait_while_progressing
from smtp_server import smtp_server

from drip.store.db import open_store
from drip.store.schema import deliveries
from drip.transports.smtp import SmtpTransport

pytestmark = pytest.mark.slow

SUBSCRIBERS = 240  # × 5 steps = 1,200 deliveries
KILLS = 6


def kill_holders(workers: Workers, watcher: sa.Engine, rng: random.Random, *, started: float) -> int:
    """Kill only a worker caught holding a batch, so every kill lands mid-send; restart one each time."""
    kills = 0
    while kills < KILLS and time.monotonic() - started < 50:
        caught = [name for name in holders(watcher) if name in workers.running]
        if not caught:
            time.sleep(0.05)
            continue
        workers.kill(rng.choice(caught))
        kills += 1
        workers.start()
        time.sleep(rng.uniform(0.3, 1.0))
    return kills


@pytest.mark.timeout(120)
@pytest.mark.timeout(900)  # a loaded machine is slow; the stall check above still ends a stuck run
def test_sigkilled_workers_lose_nothing_and_flag_every_duplicate(tmp_path: Path) -> None:
    rng = random.Random()
    with smtp_server() as server:
        # A provider that takes a few milliseconds a message keeps batches in flight long
        # enough to be caught, however fast or loaded the machine is.
        server.handler.data_delay = 0.01
        site = smtp_site(tmp_path, server.port)
        engine = open_store(site.database_url)
        # A plain engine (no BEGIN IMMEDIATE) reads the WAL snapshot beside the workers
        # without queueing for the write lock behind their short transactions.
        watcher = sa.create_engine(site.database_url)
        total = enroll_many(
            engine, site, SUBSCRIBERS, started=dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        )
        assert total >= 1000
        workers = Workers(site, tmp_path / "logs", {"DRIP_SECRET_KEY": "kill-test-" + "x" * 32})
        for _ in range(2):
            workers.start()
        started = time.monotonic()
        try:
            kills = kill_holders(workers, watcher, rng, started=started)
            assert kills >= 5, f"only {kills} workers were caught holding a lease"
            # The survivors finish, reclaiming the batches of the dead once their leases expire. A
            # loaded machine (pytest -n 8 on two cores) is slow, not stuck: wait while work moves.
            wait_while_progressing(engine)
            assert unfinished(engine) == 0
        finally:
            codes = workers.stop()
        # SIGTERM: the batch in flight is finished and recorded, then a clean exit.
        failed = {name: code for name, code in codes.items() if code != 0}
        assert not failed, "\n".join(f"{n} exited {c}:\n{workers.log_tail(n)}" for n, c in failed.items())

        ids = [DELIVERY_HEADER.search(msg.data) for msg in server.messages]
        assert all(ids), "every message names its delivery"
        received = Counter(int(m.group(1)) for m in ids if m)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.possible_duplicate)
        ).all()
    engine.dispose()
    watcher.dispose()

    # Zero lost: every delivery is recorded sent and reached the server at least once.
    assert {r.status for r in rows} == {"sent"}
    assert set(received) == {r.id for r in rows}
    # Duplicates are bounded by what was in flight when workers died, and all are flagged.
    duplicated = {i for i, n in received.items() if n > 1}
    assert sum(received[i] - 1 for i in duplicated) <= kills * BATCH
    flagged = {r.id for r in rows if r.possible_duplicate}
    assert duplicated <= flagged
    # Only rows a dead worker had handed to the transport are flagged: one chunk per kill at most.
    assert len(flagged) <= kills * SmtpTransport.handoff_size
    false_flags = sum(received[i] == 1 for i in flagged)
    print(
        f"\n{len(rows)} deliveries, {kills} SIGKILLs, {len(server.messages)} messages received, "
        f"{len(duplicated)} duplicates (all flagged), {len(flagged)} flagged possible_duplicate "
        f"({false_flags} received once), "
        f"{time.monotonic() - started:.1f}s"
    )
