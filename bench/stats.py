"""`drip stats` on 1,000,000 events and 100,000 deliveries (SQLite and PostgreSQL), and the click
redirect under load from another process.

Usage: .venv/bin/python bench/stats.py [--deliveries 100000] [--events 1000000] [--rounds 10]
       [--backend sqlite|postgresql|both] [--clicks 3000] [--concurrency 16]

The funnel target: under 500 ms (median of ``--rounds`` runs, after one warm-up). The load is
10,000 readers × 10 steps, each delivery with ~10 events (delivered, opens, clicks by readers and
by scanners, a few bounces and unsubscribes), "first" flags set as the ledger sets them.
The click bench starts `drip serve` on a copy of the example site with ``tracking: {clicks: true}``
and follows signed /c/ links of sent deliveries (no redirect followed), printing requests/s and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
import yaml
from web_load import Timings, _fire, free_port, start_server

from drip.config import load_site
from drip.course.compile import load_courses
from drip.render.steps import render_course
from drip.store.db import connect, open_store, upgrade
from drip.store.events import funnel
from drip.store.schema import deliveries, enrollments, events, subscribers
from drip.tokens import click_token

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
COURSE = "cours"
STEPS = 10
KINDS = (
    "delivered",
    "opened",
    "opened",
    "clicked",
    "clicked",
    "clicked",
    "opened",
    "clicked",
    "bounced",
    "x",
)


def people(count: int, course: str = COURSE) -> Iterator[tuple[str, list[dict[str, object]]]]:
    yield (
        "subscribers",
        [
            {
                "id": i,
                "email": f"r{i}@example.org",
                "name": "",
                "status": "active",
                "attributes": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(1, count + 1)
        ],
    )
    yield (
        "enrollments",
        [
            {
                "id": i,
                "subscriber_id": i,
                "course": course,
                "state": "active",
                "started_at": NOW,
                "updated_at": NOW,
            }
            for i in range(1, count + 1)
        ],
    )


def delivery_rows(readers: int) -> list[dict[str, object]]:
    return [
        {
            "id": (r - 1) * STEPS + s + 1,
            "enrollment_id": r,
            "subscriber_id": r,
            "course": COURSE,
            "step_key": f"step-{s}",
            "due_at": NOW,
            "status": "sent",
            "sent_at": NOW + dt.timedelta(days=s),
            "created_at": NOW,
            "updated_at": NOW,
        }
        for r in range(1, readers + 1)
        for s in range(STEPS)
    ]


def event_rows(total_deliveries: int, total_events: int) -> Iterator[list[dict[str, object]]]:
    """About total_events rows, in chunks, with one "first" per (delivery, kind, machine)."""
    rng = random.Random(7)
    per = total_events // total_deliveries
    chunk: list[dict[str, object]] = []
    for delivery_id in range(1, total_deliveries + 1):
        seen: set[tuple[str, bool]] = set()
        for i in range(per):
            kind = KINDS[i] if KINDS[i] != "x" else "unsubscribed"
            if kind in ("bounced", "unsubscribed") and rng.random() > 0.05:
                kind = "clicked"
            machine = kind in ("clicked", "opened") and rng.random() < 0.3
            first = (kind, machine) not in seen
            seen.add((kind, machine))
            chunk.append(
                {
                    "course": COURSE,
                    "step_key": f"step-{(delivery_id - 1) % STEPS}",
                    "sent_at": NOW + dt.timedelta(days=(delivery_id - 1) % STEPS),
                    "delivery_id": delivery_id,
                    "kind": kind,
                    "source": "drip",
                    "machine": machine,
                    "first": first,
                    "link": i % 4,
                    "occurred_at": NOW + dt.timedelta(days=1, minutes=i),
                }
            )
        if len(chunk) >= 50_000:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load(engine: sa.Engine, total_deliveries: int, total_events: int) -> None:
    readers = total_deliveries // STEPS
    with engine.begin() as conn:
        for table, rows in people(readers):
            conn.execute(subscribers.insert() if table == "subscribers" else enrollments.insert(), rows)
        conn.execute(deliveries.insert(), delivery_rows(readers))
    for chunk in event_rows(readers * STEPS, total_events):
        with engine.begin() as conn:
            conn.execute(events.insert(), chunk)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def measure(name: str, engine: sa.Engine, rounds: int) -> None:
    funnel(engine, COURSE)  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        figures = funnel(engine, COURSE)
        times.append((time.perf_counter() - t0) * 1000)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    first = figures["step-0"]
    print(
        f"{name}: drip stats on {count:,} events: median {statistics.median(times):.0f} ms, "
        f"max {max(times):.0f} ms over {rounds} runs (step-0: sent {first.sent}, clicked {first.clicked}, "
        f"machine clicks {first.machine_clicked})"
    )


def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = connect(f"sqlite:///{tmp}/stats.db")
        upgrade(engine)
        t0 = time.perf_counter()
        load(engine, args.deliveries, args.events)
        print(f"sqlite loaded in {time.perf_counter() - t0:.1f} s")
        measure("sqlite", engine, args.rounds)
        engine.dispose()


def run_postgresql(url: str, args: argparse.Namespace) -> None:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    engine = connect(f"{url}{sep}options={quote(f'-csearch_path={schema}')}")
    try:
        upgrade(engine)
        t0 = time.perf_counter()
        load(engine, args.deliveries, args.events)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        print(f"postgresql loaded in {time.perf_counter() - t0:.1f} s")
        measure("postgresql", engine, args.rounds)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def click_site() -> Path:
    root = Path(tempfile.mkdtemp(prefix="drip-clicks-")) / "site"
    example = Path(__file__).resolve().parent.parent
    root.mkdir()
    for folder in ("content", "schedules", "email_templates"):
        shutil.copytree(example / folder, root / folder)
    config = yaml.safe_load((example / "drip.yaml").read_text(encoding="utf-8"))
    config["tracking"] = {"clicks": True}
    config["database"] = "sqlite:///drip.db"
    (root / "drip.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return root


def click_urls(root: Path, secret: str, readers: int, clicks: int) -> list[str]:
    """Signed /c/ links of ``readers`` sent welcome emails, ``clicks`` of them in random order."""
    site = load_site(root)
    course = next(iter(load_courses(site).values()))
    step = course.steps[0]
    links = render_course(site, course)[step.key].links
    engine = open_store(site.database_url)
    with engine.begin() as conn:
        for table, rows in people(readers, course.slug):
            conn.execute(subscribers.insert() if table == "subscribers" else enrollments.insert(), rows)
        conn.execute(
            deliveries.insert(),
            [
                {
                    "id": r,
                    "enrollment_id": r,
                    "subscriber_id": r,
                    "course": course.slug,
                    "step_key": step.key,
                    "due_at": NOW,
                    "status": "sent",
                    "sent_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for r in range(1, readers + 1)
            ],
        )
    engine.dispose()
    rng = random.Random(3)
    base = site.config.site.base_url
    out = []
    for _ in range(clicks):
        delivery, index = rng.randint(1, readers), rng.randrange(len(links))
        out.append(f"{base}/c/{click_token(secret, delivery, index, links[index])}")
    return out


def run_clicks(clicks: int, concurrency: int) -> None:
    os.environ.setdefault("DRIP_SECRET_KEY", secrets.token_urlsafe(32))
    root = click_site()
    urls = click_urls(root, os.environ["DRIP_SECRET_KEY"], 2000, clicks)
    port = free_port()
    server = start_server(root, port, root / "serve.log")
    try:
        base = load_site(root).config.site.base_url
        local = [u.replace(base, f"http://127.0.0.1:{port}") for u in urls]
        warm = Timings()
        asyncio.run(_fire([("GET", u, None, "") for u in local[:50]], 4, warm))
        timings = Timings()
        asyncio.run(_fire([("GET", u, None, "") for u in local[50:]], concurrency, timings))
        print(timings.summary(f"click redirect /c/ ({concurrency} in flight, another process)"))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both", "none"), default="both")
    parser.add_argument("--clicks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f}")
    if args.backend in ("sqlite", "both"):
        run_sqlite(args)
    if args.backend in ("postgresql", "both"):
        url = os.environ.get("DRIP_TEST_POSTGRES_URL")
        if url:
            run_postgresql(url, args)
        else:
            print("postgresql skipped: set DRIP_TEST_POSTGRES_URL")
    if args.clicks:
        run_clicks(args.clicks, args.concurrency)


if __name__ == "__main__":
    main()
