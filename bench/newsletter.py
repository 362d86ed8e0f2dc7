"""One newsletter issue to a large list: time and memory of writing its delivery rows.

Usage: .venv/bin/python bench/newsletter.py [--sizes 10000,100000,200000] [--batch 5000]
       [--backend sqlite|postgresql|both]   (PostgreSQL from DRIP_TEST_POSTGRES_URL)

For each size, a fresh store gets that many active subscribers, all members of one
list (written in bulk, a chunk at a time), in one process; a second, fresh process
then creates an issue and times :func:`drip.store.issues.create_issue_deliveries`,
so each size's peak RSS is its own and the load's memory is not counted. Printed:
rows written, seconds, rows/s, the process's RSS before the call and its peak
(``getrusage``) after. Target: the peak at the largest size is at most 1.5 times
the peak at the smallest (members are streamed in batches, so memory should not
grow with the list).
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
from pathlib import Path
from urllib.parse import quote

from drip.store.db import connect, upgrade
from drip.store.issues import create_issue, create_issue_deliveries
from drip.store.lists import join_lists
from drip.store.schema import subscribers

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
LIST = "bench"
CHUNK = 10_000  # subscribers written per transaction while loading


def load(url: str, size: int) -> None:
    """``size`` active subscribers, every one a member of the list."""
    engine = connect(url)
    upgrade(engine)
    for start in range(1, size + 1, CHUNK):
        ids = range(start, min(start + CHUNK, size + 1))
        rows = [
            {"id": i, "email": f"b{i}@example.org", "attributes": {}, "created_at": NOW, "updated_at": NOW}
            for i in ids
        ]
        with engine.begin() as conn:
            conn.execute(subscribers.insert(), rows)
            join_lists(conn, ids, [LIST], now=NOW)
    engine.dispose()


def _rss_kib() -> int:
    """The process's resident set now, in KiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def measure(url: str, batch: int) -> dict[str, float]:
    """Create one issue and its deliveries; the figures of that call alone."""
    engine = connect(url)
    issue = create_issue(
        engine, list=LIST, key="bench:1", kind="broadcast", send_at=NOW, post_urls=[], now=NOW
    )
    assert issue is not None
    before = _rss_kib()
    started = time.perf_counter()
    counts = create_issue_deliveries(engine, issue, batch_size=batch, now=NOW)
    seconds = time.perf_counter() - started
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"rows": counts.created, "seconds": seconds, "rss_before_kib": before, "peak_kib": peak}


def _child(*args: str) -> str:
    done = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return done.stdout


def _pg_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def run_size(backend: str, size: int, batch: int) -> dict[str, float]:
    """Load a fresh store of ``size`` members and measure it, each in its own process."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            _child("--load", url, str(size))
            result: dict[str, float] = json.loads(_child("--measure", url, str(batch)))
            return result
    base = os.environ["DRIP_TEST_POSTGRES_URL"]
    schema = f"bench_{secrets.token_hex(4)}"
    admin = connect(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        url = _pg_url(base, schema)
        _child("--load", url, str(size))
        result = json.loads(_child("--measure", url, str(batch)))
        return result
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def report(backend: str, sizes: list[int], batch: int) -> None:
    print(f"{backend}: batch {batch}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'members':>9} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'RSS before':>11} {'peak RSS':>9}")
    peaks: list[float] = []
    for size in sizes:
        r = run_size(backend, size, batch)
        peaks.append(r["peak_kib"])
        print(
            f"{size:>9,} {int(r['rows']):>9,} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>9,.0f} "
            f"{r['rss_before_kib'] / 1024:>9.1f}MB {r['peak_kib'] / 1024:>7.1f}MB"
        )
    ratio = peaks[-1] / peaks[0]
    verdict = "ok" if ratio <= 1.5 else "OVER TARGET"
    print(f"peak RSS at {sizes[-1]:,} / at {sizes[0]:,}: {ratio:.2f} (target at most 1.5: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,200000")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--load", nargs=2, metavar=("URL", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, metavar=("URL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load[0], int(args.load[1]))
        return
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "postgresql" and not os.environ.get("DRIP_TEST_POSTGRES_URL"):
            print("postgresql: skipped (DRIP_TEST_POSTGRES_URL is not set)")
            continue
        report(backend, sizes, args.batch)


if __name__ == "__main__":
    main()
