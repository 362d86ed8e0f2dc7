"""Claim latency: lease 1,000 due deliveries among 1,000,000 pending, on SQLite and PostgreSQL.

Usage: .venv/bin/python bench/claim.py [--rows 1000000] [--batch 1000] [--rounds 30]
       [--backend sqlite|postgresql|both]   (PostgreSQL from DRIP_TEST_POSTGRES_URL)

Half the rows are due (due_at spread over the past and the next 30 days). Each
round claims one batch (timed), then records it sent in one transaction (timed
separately), as a worker does, so claimed rows never pile up. Target: claim < 25 ms.
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
STEPS_PER_ENROLLMENT = 100
SPAN = dt.timedelta(days=30)


def due_times(total: int) -> Iterator[dt.datetime]:
    """Evenly interleaved due times over [NOW - 30 d, NOW + 30 d): half of them due."""
    step = (2 * SPAN) / total
    for i in range(total):
        j = (i * 7919) % total  # scatter, so ids and due times are not in the same order
        yield NOW - SPAN + j * step


def rows(total: int) -> Iterator[tuple[int, int, str, str, dt.datetime]]:
    times = due_times(total)
    for i in range(total):
        e = i // STEPS_PER_ENROLLMENT + 1
        yield (e, e, "bench", f"step-{i % STEPS_PER_ENROLLMENT}", next(times))


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


def load_sqlite(engine: sa.Engine, total: int) -> None:
    subs, enrs = people(total // STEPS_PER_ENROLLMENT + 1)
    with engine.begin() as conn:
        conn.execute(subscribers.insert(), subs)
        conn.execute(enrollments.insert(), enrs)
    chunk: list[dict[str, object]] = []
    stmt = deliveries.insert()
    with engine.begin() as conn:
        for e, s, course, key, due in rows(total):
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


def load_postgresql(engine: sa.Engine, total: int) -> None:
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
        with cur.copy(f"COPY deliveries ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for e, s, course, key, due in rows(total):
                copy.write_row((e, s, course, key, due, "pending", 0, False, NOW, NOW))
        raw.commit()
        cur.execute("ANALYZE deliveries")
        raw.commit()
    finally:
        raw.close()


def explain(engine: sa.Engine) -> str:
    """The plan of the claim's inner SELECT: it must walk ix_deliveries_status_due_at, not sort the table."""
    select = (
        "SELECT id FROM deliveries WHERE status = 'pending' AND due_at <= {now} ORDER BY due_at LIMIT 1000"
    )
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "EXPLAIN QUERY PLAN " + select.format(now="'2026-12-01 08:00:00.000000'")
            return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(sql))
        sql = "EXPLAIN " + select.format(now="'2026-12-01 08:00:00+00'") + " FOR UPDATE SKIP LOCKED"
        return " | ".join(str(r[0]).strip() for r in conn.exec_driver_sql(sql))


def measure(name: str, engine: sa.Engine, batch: int, rounds: int) -> None:
    claim_ms: list[float] = []
    record_ms: list[float] = []
    for i in range(rounds):
        now = NOW + dt.timedelta(seconds=i)
        t0 = time.perf_counter()
        got = claim(engine, now=now, limit=batch, lease_seconds=300, worker="bench")
        t1 = time.perf_counter()
        assert len(got) == batch, f"claimed {len(got)}"
        record(
            engine,
            [Outcome(c.id, c.lease_token, "sent", provider_id=f"<{c.id}@bench>") for c in got],
            now=now,
        )
        t2 = time.perf_counter()
        claim_ms.append((t1 - t0) * 1000)
        record_ms.append((t2 - t1) * 1000)

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]

    print(
        f"{name:10} claim {batch}: median {statistics.median(claim_ms):6.1f} ms  p95 {p95(claim_ms):6.1f} ms   "
        f"record {batch} sent: median {statistics.median(record_ms):6.1f} ms  p95 {p95(record_ms):6.1f} ms"
    )


def run_sqlite(total: int, batch: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        t0 = time.perf_counter()
        load_sqlite(engine, total)
        print(f"sqlite     loaded {total:,} pending deliveries in {time.perf_counter() - t0:.1f} s")
        print(f"sqlite     plan: {explain(engine)}")
        measure("sqlite", engine, batch, rounds)
        engine.dispose()


def run_postgresql(url: str, total: int, batch: int, rounds: int) -> None:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = connect(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    engine = connect(f"{url}{sep}options={quote(f'-csearch_path={schema}')}")
    try:
        upgrade(engine)
        t0 = time.perf_counter()
        load_postgresql(engine, total)
        print(f"postgresql loaded {total:,} pending deliveries in {time.perf_counter() - t0:.1f} s")
        print(f"postgresql plan: {explain(engine)}")
        measure("postgresql", engine, batch, rounds)
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
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        run_sqlite(args.rows, args.batch, args.rounds)
    if args.backend in ("postgresql", "both"):
        url = os.environ.get("DRIP_TEST_POSTGRES_URL")
        if not url:
            print("postgresql skipped: set DRIP_TEST_POSTGRES_URL")
        else:
            run_postgresql(url, args.rows, args.batch, args.rounds)


if __name__ == "__main__":
    main()
