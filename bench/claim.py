"""Claim latency: lease 1,000 due deliveries among 1,000,000 pending, on SQLite and PostgreSQL.

Usage: .venv/bin/python bench/claim.py [--rows 1000000] [--batch 1000] [--rounds 30] [--warmup 3]
       [--backend sqlite|postgresql|both]   (PostgreSQL from DRIP_TEST_POSTGRES_URL)

About half the rows are due (see :func:`rows` for the two layouts). Each
round claims one batch (timed), then records it sent in one transaction (timed
separately), as a worker does, so leased rows never pile up. Target: claim < 25 ms.
On PostgreSQL the share of claimed rows written as HOT updates (same page, no
index entry) is printed too: a claim changes no indexed column, so only a page
without room for the new row version stops it.

The store is measured as a running worker sees it: statistics gathered and, on
PostgreSQL, vacuumed (what autovacuum does to a table that took a bulk load:
hint bits and visibility map set) and checkpointed, so the load's own writes
are not billed to the first claims; a few untimed rounds warm the cache and the
prepared statements first. The machine's load average is printed with the
figures, since other processes share the cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from drip.store.claims import Outcome, claim, record
from drip.store.db import connect, upgrade
from drip.store.schema import deliveries, enrollments, subscribers

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
STEPS_PER_ENROLLMENT = 5
SPAN = dt.timedelta(days=30)


def rows(total: int, layout: str) -> Iterator[tuple[int, int, str, str, dt.datetime]]:
    """(enrollment, subscriber, course, step, due) for ``total`` deliveries.

    ``enrolled``: as drip writes them — each enrollment inserts its steps together
    (one every 2 days), enrollments spread evenly over the 60 days around NOW, so
    rows due together sit near each other. ``scattered``: due times in random
    order relative to the rows, the worst case for page locality.
    """
    per = STEPS_PER_ENROLLMENT
    count = total // per
    spread = 2 * SPAN / count
    for i in range(total):
        e, k = divmod(i, per)
        if layout == "scattered":
            j = (i * 7919) % total
            due = NOW - SPAN + j * (2 * SPAN / total)
        else:
            due = NOW - SPAN - dt.timedelta(days=2 * per) + e * spread + dt.timedelta(days=2 * k)
        yield (e + 1, e + 1, "bench", f"step-{k}", due)


def people(count: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    subs = [
        {
            "id": i,
            "email": f"b{i}@example.org",
            "name": "",
            "status": "active",
            "attributes": {},
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(1, count + 1)
    ]
    enrs = [
        {
            "id": i,
            "subscriber_id": i,
            "course": "bench",
            "state": "active",
            "started_at": NOW,
            "updated_at": NOW,
        }
        for i in range(1, count + 1)
    ]
    return subs, enrs


def load_sqlite(engine: sa.Engine, total: int, layout: str) -> None:
    subs, enrs = people(total // STEPS_PER_ENROLLMENT + 1)
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), subs)
        conn.execute(enrollments.insert(), enrs)
    chunk: list[dict[str, object]] = []
    stmt = deliveries.insert()
    with engine.begin() as conn:
        for e, s, course, key, due in rows(total, layout):
            chunk.append(
                {
                    "enrollment_id": e,
                    "subscriber_id": s,
                    "course": course,
                    "step_key": key,
                    "due_at": due,
                    "status": "pending",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            if len(chunk) == 50_000:
                conn.execute(stmt, chunk)
                chunk.clear()
        if chunk:
            conn.execute(stmt, chunk)
        conn.exec_driver_sql("ANALYZE")


def load_postgresql(engine: sa.Engine, total: int, layout: str) -> None:
    subs, enrs = people(total // STEPS_PER_ENROLLMENT + 1)
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), subs)
        conn.execute(enrollments.insert(), enrs)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        columns = (
            "enrollment_id, subscriber_id, course, step_key, due_at, status, attempts, possible_duplicate, "
            "created_at, updated_at"
        )
        with cur.copy(f"COPY deliveries ({columns}) FROM STDIN") as copy:
            for e, s, course, key, due in rows(total, layout):
                copy.write_row((e, s, course, key, due, "pending", 0, False, NOW, NOW))
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) deliveries")
        conn.exec_driver_sql("CHECKPOINT")


def explain(engine: sa.Engine) -> str:
    """The plan of the claim's inner SELECT: it must walk ix_deliveries_due_at_pending, not sort the table."""
    select = (
        "SELECT id FROM deliveries WHERE status = 'pending' AND (leased_until IS NULL OR leased_until < {now}) "
        "AND due_at <= {now} ORDER BY due_at LIMIT 1000"
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "EXPLAIN QUERY PLAN " + select.format(now="'2026-12-01 08:00:00.000000'")
            return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(sql))
        sql = "EXPLAIN " + select.format(now="'2026-12-01 08:00:00+00'") + " FOR UPDATE SKIP LOCKED"
        return " | ".join(str(r[0]).strip() for r in conn.exec_driver_sql(sql))


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def row_updates(engine: sa.Engine) -> tuple[int, int]:
    """(row updates, of which HOT) on deliveries, after this backend's statistics are flushed.

    The bench uses its connections one at a time, so the pool holds one: its backend did the work.
    """
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        conn.commit()  # flushed as the backend goes idle
        row = conn.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'deliveries'::regclass"
        ).one()
        return int(row[0]), int(row[1])


def measure(name: str, engine: sa.Engine, batch: int, rounds: int, warmup: int) -> None:
    claim_ms: list[float] = []
    record_ms: list[float] = []
    claim_cpu: list[float] = []  # this process only: the client side, and all of SQLite
    print(f"{name:10} before: {load_average()}")
    for i in range(-warmup, rounds):
        now = NOW + dt.timedelta(seconds=i)
        c0 = time.process_time()
        t0 = time.perf_counter()
        got = claim(engine, now=now, limit=batch, lease_seconds=300, worker="bench")
        t1 = time.perf_counter()
        claim_cpu.append((time.process_time() - c0) * 1000)
        assert len(got) == batch, f"claimed {len(got)}"
        record(
            engine,
            [Outcome(c.id, c.lease_token, "sent", provider_id=f"<{c.id}@bench>") for c in got],
            now=now,
        )
        t2 = time.perf_counter()
        if i < 0:
            continue
        claim_ms.append((t1 - t0) * 1000)
        record_ms.append((t2 - t1) * 1000)

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]

    print(
        f"{name:10} claim {batch}: median {statistics.median(claim_ms):6.1f} ms  p95 {p95(claim_ms):6.1f} ms "
        f"(client CPU median {statistics.median(claim_cpu):5.1f} ms)   "
        f"record {batch} sent: median {statistics.median(record_ms):6.1f} ms  p95 {p95(record_ms):6.1f} ms"
    )
    print(f"{name:10} after:  {load_average()}")


def run_sqlite(total: int, batch: int, rounds: int, warmup: int, layout: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        t0 = time.perf_counter()
        load_sqlite(engine, total, layout)
        print(f"sqlite     loaded {total:,} pending deliveries in {time.perf_counter() - t0:.1f} s")
        print(f"sqlite     plan: {explain(engine)}")
        measure("sqlite", engine, batch, rounds, warmup)
        engine.dispose()


def run_postgresql(url: str, total: int, batch: int, rounds: int, warmup: int, layout: str) -> None:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = connect(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    engine = connect(f"{url}{sep}options={quote(f'-csearch_path={schema}')}")
    try:
        upgrade(engine)
        t0 = time.perf_counter()
        load_postgresql(engine, total, layout)
        print(f"postgresql loaded {total:,} pending deliveries in {time.perf_counter() - t0:.1f} s")
        print(f"postgresql plan: {explain(engine)}")
        updated, hot = row_updates(engine)
        measure("postgresql", engine, batch, rounds, warmup)
        updated, hot = (a - b for a, b in zip(row_updates(engine), (updated, hot), strict=True))
        claimed = (rounds + warmup) * batch
        # Recording a send changes the status, an index predicate: those updates are never HOT.
        print(
            f"postgresql claims written as HOT updates: {hot:,} of {claimed:,} rows ({hot / claimed:.0%}); "
            f"row updates in all (claims and records): {updated:,}"
        )
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--layout", choices=("enrolled", "scattered"), default="enrolled")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        run_sqlite(args.rows, args.batch, args.rounds, args.warmup, args.layout)
    if args.backend in ("postgresql", "both"):
        url = os.environ.get("DRIP_TEST_POSTGRES_URL")
        if not url:
            print("postgresql skipped: set DRIP_TEST_POSTGRES_URL")
        else:
            run_postgresql(url, args.rows, args.batch, args.rounds, args.warmup, args.layout)


if __name__ == "__main__":
    main()
