"""One newsletter issue to a large list: writing its delivery rows, then sending them, end to end.

Usage: .venv/bin/python bench/newsletter.py [--sizes 10000,100000,200000]
       [--backends sqlite,postgresql] [--sample 20000]
       (PostgreSQL from DRIP_TEST_POSTGRES_URL)

Backends: SQLite with the outbox transport (.eml files in a temporary folder), and
PostgreSQL with the SendGrid transport, through the official sendgrid client, to the
loopback server of tests/sendgrid_server.py in its own process, with its schema check
switched off as in bench/transports.py (validating 1,000 personalizations costs the
server more than the client's whole send; the tests validate every body).

For each size, a fresh store gets that many active members of one list (written in
bulk, in one process); a second, fresh process, the measured one, then does what
``drip run --once`` does with a broadcast due: :func:`drip.dispatch.newsletters.plan_newsletters`
creates the issue and its delivery rows (timed: rows/s), then
:func:`drip.dispatch.batch.dispatch_once` passes (claim, re-check, personalise, send,
record: what :func:`drip.dispatch.worker.drain` loops over) send the first ``--sample``
recipients of the issue (all of them when the list is smaller), timed per wall second
and per CPU second of that process. The CPU is the drip process's only: the SendGrid
server and the database server run elsewhere; on PostgreSQL the CPU of the database
backends serving the drip process is read from /proc and printed beside it. Peak RSS
(``getrusage``) is the measured process's, over both halves. Targets: peak RSS at
the largest size at most 1.5 times that at the smallest; SendGrid on PostgreSQL at
least 20,000 recipients per CPU second of the drip process; outbox on SQLite at least
2,000 emails per wall second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drip.store.db import connect, upgrade
from drip.store.lists import join_lists
from drip.store.schema import DeliveryStatus, deliveries, subscribers

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
LIST = "bench"
CHUNK = 10_000  # subscribers written per transaction while loading
SECRET = "bench-" + "k" * 32
TARGET_SENDGRID_CPU = 20_000
TARGET_OUTBOX_WALL = 2_000

DRIP_YAML = """\
site:
  name: "Bench"
  base_url: "https://bench.example.org"
  locale: en
  timezone: UTC
sender:
  name: "Bench"
  email: "letter@bench.example.org"
postal_address: "1 Bench Street, 75001 Paris"
database: "{database}"
transport:
{transport}
"""

LIST_YAML = 'kind: list\ntitle: "The bench letter"\n'

BROADCAST = """\
---
subject: "News for {{{{ name }}}}"
preheader: "Three things this week"
list: bench
send_at: 2026-12-01 07:30
---

Hello {{{{ name }}}},

This week: [a first post](https://bench.example.org/posts/one/), [a second](https://bench.example.org/posts/two/)
and a longer paragraph so that the email has the size of a real one. {text}
"""


def write_site(root: Path, database: str, transport: str) -> Path:
    """A site with one list and one broadcast to it, due at NOW."""
    (root / "content" / "newsletters").mkdir(parents=True)
    (root / "schedules").mkdir()
    (root / "drip.yaml").write_text(DRIP_YAML.format(database=database, transport=transport), "utf-8")
    (root / "schedules" / f"{LIST}.yaml").write_text(LIST_YAML, "utf-8")
    text = "Some words of the letter. " * 40
    (root / "content" / "newsletters" / "issue-1.md").write_text(BROADCAST.format(text=text), "utf-8")
    return root


def load(url: str, size: int) -> None:
    """``size`` active subscribers, every one a member of the list."""
    engine = connect(url)
    upgrade(engine)
    for start in range(1, size + 1, CHUNK):
        ids = range(start, min(start + CHUNK, size + 1))
        rows = [
            {
                "id": i,
                "email": f"b{i}@example.org",
                "name": f"Reader {i}",
                "attributes": {},
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in ids
        ]
        with engine.begin() as conn:
            conn.execute(subscribers.insert(), rows)
            join_lists(conn, ids, [LIST], now=NOW)
    if engine.dialect.name == "postgresql":  # statistics, as autovacuum keeps them on a list grown over time
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def _rss_kib() -> int:
    """The process's resident set now, in KiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process on this machine, from /proc; 0 when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Backends:
    """The PostgreSQL server processes serving an engine's connections, and their CPU."""

    def __init__(self, engine: sa.Engine) -> None:
        self.pids: set[int] = set()
        if engine.dialect.name != "postgresql":
            return

        @sa.event.listens_for(engine, "checkout")
        def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            if "backend_pid" not in record.info:  # once per connection, whenever it was opened
                record.info["backend_pid"] = dbapi_conn.info.backend_pid
            self.pids.add(record.info["backend_pid"])

    def cpu(self) -> float:
        return sum(_proc_cpu(pid) for pid in self.pids)


def measure(site_root: str, sample: int) -> dict[str, float]:
    """Plan the broadcast (its delivery rows), then send the first ``sample`` of them."""
    from drip.config import load_site
    from drip.dispatch.batch import DispatchReport, dispatch_once
    from drip.dispatch.newsletters import plan_newsletters
    from drip.runtime import Runtime, frozen_clock
    from drip.store.db import open_store
    from drip.transports import get_transport

    site = load_site(Path(site_root))
    engine = open_store(site.database_url)
    backends = Backends(engine)
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock(NOW))
    before = _rss_kib()
    started = time.perf_counter()
    lines = plan_newsletters(site, engine, now=NOW, renders=runtime.issue_renders)
    create_seconds = time.perf_counter() - started
    assert len(lines) == 1, lines
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one()
    transport = get_transport(site)
    total = DispatchReport()
    with transport:
        wall, cpu, db_cpu = time.perf_counter(), time.process_time(), backends.cpu()
        while total.sent < sample:
            report = dispatch_once(site, engine, transport, runtime=runtime, worker="bench", now=NOW)
            total += report
            if not report.full:
                break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        db_cpu = backends.cpu() - db_cpu
    with engine.connect() as conn:
        sent = conn.execute(
            sa.select(sa.func.count()).where(deliveries.c.status == DeliveryStatus.SENT)
        ).scalar_one()
    engine.dispose()
    assert sent == total.sent and total.failed == total.retried == total.cancelled == 0, total
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "rows": rows,
        "create_seconds": create_seconds,
        "sent": total.sent,
        "batch": total.batch_size,
        "send_wall": wall,
        "send_cpu": cpu,
        "db_cpu": db_cpu,
        "rss_before_kib": before,
        "peak_kib": peak,
    }


def _child(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env
    )
    return done.stdout


def _pg_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    base = os.environ["DRIP_TEST_POSTGRES_URL"]
    schema = f"bench_{secrets.token_hex(4)}"
    admin = connect(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_url(base, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def run_size(backend: str, size: int, sample: int, sendgrid_url: str | None) -> dict[str, float]:
    """Load a fresh store of ``size`` members and measure it, each in its own process."""
    with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
        env = dict(os.environ)
        if backend == "sqlite":
            transport = "  backend: outbox"
        else:
            from sendgrid_server import API_KEY

            transport = f"  backend: sendgrid\n  sendgrid: {{host: '{sendgrid_url}'}}"
            env["SENDGRID_API_KEY"] = API_KEY
        root = write_site(Path(tmp) / "site", url, transport)
        _child("--load", url, str(size))
        result: dict[str, float] = json.loads(_child("--measure", str(root), str(sample), env=env))
        return result


def report(backend: str, sizes: list[int], sample: int, sendgrid_url: str | None) -> None:
    if backend == "sqlite":
        what = "SQLite, outbox transport"
    else:
        what = "PostgreSQL, SendGrid transport (official client, loopback server, schema check off)"
    print(f"{what}: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{'members':>9} {'rows':>9} {'create s':>9} {'rows/s':>8} | {'sent':>7} {'batch':>5} "
        f"{'send s':>7} {'/wall s':>8} {'/CPU s':>8}"
        + (f" {'DB CPU s':>8} {'/(drip+DB) CPU s':>16}" if backend == "postgresql" else "")
        + f" | {'RSS before':>10} {'peak RSS':>9}"
    )
    peaks: list[float] = []
    rates: list[tuple[float, float]] = []
    for size in sizes:
        r = run_size(backend, size, sample, sendgrid_url)
        peaks.append(r["peak_kib"])
        wall_rate, cpu_rate = r["sent"] / r["send_wall"], r["sent"] / r["send_cpu"]
        rates.append((wall_rate, cpu_rate))
        db = ""
        if backend == "postgresql":
            both = r["sent"] / (r["send_cpu"] + r["db_cpu"])
            db = f" {r['db_cpu']:>8.2f} {both:>16,.0f}"
        print(
            f"{size:>9,} {int(r['rows']):>9,} {r['create_seconds']:>9.2f} "
            f"{r['rows'] / r['create_seconds']:>8,.0f} | {int(r['sent']):>7,} {int(r['batch']):>5} "
            f"{r['send_wall']:>7.2f} {wall_rate:>8,.0f} {cpu_rate:>8,.0f}{db} | "
            f"{r['rss_before_kib'] / 1024:>8.1f}MB {r['peak_kib'] / 1024:>7.1f}MB"
        )
    if any(size > sample for size in sizes):
        print(f"  send: the first {sample:,} recipients of each issue (all of it when smaller)")
    print(
        "  /CPU s: recipients per CPU second of the drip process alone"
        + ("; DB CPU s: its PostgreSQL backends' CPU (from /proc)" if backend == "postgresql" else "")
    )
    ratio = peaks[-1] / peaks[0]
    print(
        f"  peak RSS at {sizes[-1]:,} / at {sizes[0]:,}: {ratio:.2f} "
        f"(target at most 1.5: {'ok' if ratio <= 1.5 else 'MISSED'})"
    )
    if backend == "postgresql":
        worst = min(cpu for _, cpu in rates)
        verdict = "ok" if worst >= TARGET_SENDGRID_CPU else "MISSED"
        print(
            f"  SendGrid end to end, lowest: {worst:,.0f}/CPU s (target {TARGET_SENDGRID_CPU:,}: {verdict})"
        )
    else:
        worst = min(wall for wall, _ in rates)
        verdict = "ok" if worst >= TARGET_OUTBOX_WALL else "MISSED"
        print(f"  outbox end to end, lowest: {worst:,.0f}/wall s (target {TARGET_OUTBOX_WALL:,}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,200000")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--sample", type=int, default=20_000, help="recipients sent per issue, at most")
    parser.add_argument("--load", nargs=2, metavar=("URL", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, metavar=("SITE", "SAMPLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], int(args.load[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    for backend in args.backends.split(","):
        if backend == "postgresql" and not os.environ.get("DRIP_TEST_POSTGRES_URL"):
            print("postgresql: skipped (DRIP_TEST_POSTGRES_URL is not set)")
            continue
        if backend == "postgresql":
            from transports import served

            with served("sendgrid") as url:
                report(backend, sizes, args.sample, url)
        else:
            report(backend, sizes, args.sample, None)
        print()


if __name__ == "__main__":
    main()
