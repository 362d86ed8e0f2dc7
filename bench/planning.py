"""A worker's newsletter planning tick on a site that keeps every broadcast it sent.

The site is the tests' newsletter site (tests/newsletter_support.py) with ``--broadcasts``
broadcast files whose issues are already written, as a site a year old holds them, and two
readers on the list (SQLite). A planning tick runs every ``dispatch.tick_seconds``; it reads
the lists, digests and broadcasts, looks up each broadcast's issue and finds nothing new.
The baseline reads every definition file each tick (no runtime, as a one-off command does);
the worker keeps them on its runtime and reads them again only when a file of theirs
changes. Figures are CPU milliseconds of this process per tick, the median of ``--runs``;
what is left with the files kept is mostly the issue lookups.

    .venv/bin/python bench/planning.py [--broadcasts 300] [--runs 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from newsletter_support import DIGEST, make_site, write

from drip.config import load_site
from drip.dispatch.newsletters import plan_newsletters
from drip.runtime import Runtime, frozen_clock
from drip.store.db import open_store
from drip.store.lists import join_lists
from drip.store.schema import subscribers

LIST = 'kind: list\ntitle: "La lettre du CTO"\nhold_during_course: false\n'
SENT = """\
---
subject: "Annonce {n}"
list: lettre
send_at: 2026-12-08 09:55
---

Bonjour, voici **une annonce**.
"""
NOW = dt.datetime(2026, 12, 8, 9, 0, tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broadcasts", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drip-bench-planning-") as tmp:
        root = Path(tmp) / "site"
        make_site(root, digest=DIGEST + "since: 2026-12-04\n", lists=LIST)
        for n in range(args.broadcasts):
            write(root, f"content/newsletters/annonce-{n:04d}.md", SENT.format(n=n))
        site = load_site(root)
        engine = open_store(f"sqlite:///{Path(tmp) / 'drip.db'}")
        with engine.begin() as conn:  # two readers on the list, so that every broadcast is an issue
            rows = [
                {"email": f"r{i}@example.org", "attributes": {}, "created_at": NOW, "updated_at": NOW}
                for i in (1, 2)
            ]
            conn.execute(subscribers.insert(), rows)
            join_lists(conn, [1, 2], ["lettre"], now=NOW - dt.timedelta(days=60))
        runtime = Runtime.for_tests("bench-secret-" * 4, clock=frozen_clock(NOW))
        planned = plan_newsletters(site, engine, now=NOW, runtime=runtime)  # every broadcast's issue

        def tick(**kw: Any) -> float:
            started = time.process_time()
            assert plan_newsletters(site, engine, now=NOW, **kw) == []
            return (time.process_time() - started) * 1e3

        baseline = statistics.median(tick() for _ in range(args.runs))
        kept = statistics.median(tick(runtime=runtime) for _ in range(args.runs))
        engine.dispose()
    print(f"planning tick, {args.broadcasts} broadcasts already planned ({len(planned)} issues):")
    print(f"  every definition read again (no runtime): {baseline:7.1f} ms CPU")
    print(f"  kept on the worker's runtime:             {kept:7.1f} ms CPU  ({kept / baseline:.2f} of it)")


if __name__ == "__main__":
    main()
