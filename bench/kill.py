"""The delivery guarantee under many SIGKILLs: 30,000 deliveries, two `drip run` workers per database.

    .venv/bin/python bench/kill.py [--deliveries 30000] [--kills 50] [--batch 50] [--lease 5]
                                   [--backend sqlite|postgresql|both]   (PostgreSQL from DRIP_TEST_POSTGRES_URL)

Real `drip run` processes send the example course over SMTP to an aiosmtpd server
in this process. A worker caught holding a lease is SIGKILLed at a random moment
of its batch and a new one started, until ``--kills`` kills; the survivors then
finish (reclaiming the dead's batches once their leases expire) and are stopped
with SIGTERM. Printed per database:

- lost: deliveries not recorded sent, or recorded sent and never received (must be 0);
- duplicates: extra copies the server received, against the bound kills × batch;
- flagged: rows marked possible_duplicate (each duplicate must be one of them);
- false flags: flagged rows the server received once, i.e. flags that were not needed.
  A reclaimed row is flagged only when its dead worker had marked it handed off,
  so at most one hand-off chunk (the SMTP transport's ``handoff_size``) per kill.

Not run in CI (a few minutes per database); tests/test_kill.py is the quick version.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from delivery_fixtures import enroll_many, real_site, start_worker, unfinished
from smtp_server import smtp_server

from drip.config import Site
from drip.store.claims import in_flight
from drip.store.db import connect, open_store, upgrade
from drip.store.schema import deliveries
from drip.transports.smtp import SmtpTransport

STEPS = 5  # the example course: a welcome and four emails
_DELIVERY = re.compile(rb"^X-Drip-Delivery: (\d+)\r$", re.MULTILINE)
ENV = {"DRIP_SECRET_KEY": "kill-bench-" + "x" * 32}


@dataclass
class Workers:
    """The `drip run` processes alive now, named w1, w2… in the order they were started."""

    site: Site
    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    born: dict[str, float] = field(default_factory=dict)
    generation: int = 0

    def start(self) -> None:
        self.generation += 1
        name = f"w{self.generation}"
        self.running[name] = start_worker(self.site, name, self.logs, ENV)
        self.born[name] = time.monotonic()

    def warm(self, name: str, seconds: float) -> bool:
        """Past its start-up: alive ``seconds`` and done with a first batch (the course is rendered).

        On a loaded machine a new worker takes many seconds to render the course once;
        killing it then would measure start-ups, not sends.
        """
        if name not in self.running or time.monotonic() - self.born[name] < seconds:
            return False
        return f"dispatch {name}: claimed".encode() in (self.logs / f"{name}.log").read_bytes()

    def kill(self, name: str) -> None:
        self.running[name].send_signal(signal.SIGKILL)
        self.running.pop(name).wait(timeout=10)

    def stop(self) -> dict[str, int]:
        for proc in self.running.values():
            proc.send_signal(signal.SIGTERM)
        return {name: proc.wait(timeout=60) for name, proc in self.running.items()}


@dataclass(frozen=True)
class Figures:
    backend: str
    deliveries: int
    kills: int
    lost: int
    duplicates: int
    flagged: int
    false_flags: int
    unflagged_duplicates: int
    bound: int
    seconds: float
    exit_codes: tuple[int, ...]


def holders(engine: sa.Engine) -> set[str]:
    """Workers holding a live lease right now (the worker name starts the lease token)."""
    now = dt.datetime.now(dt.UTC)
    with engine.connect() as conn:
        tokens = conn.execute(sa.select(deliveries.c.lease_token).where(in_flight(now))).scalars()
        return {t.split(":", 1)[0] for t in tokens if t}


def kill_holders(workers: Workers, watcher: sa.Engine, kills: int, warm_up: float, rng: random.Random) -> int:
    """Kill a worker caught holding a batch, at a random moment of it; restart one each time.

    Only a worker past its start-up is killed: killing each new one while it renders the
    course for the first time would measure start-ups, not sends.
    """
    done = 0
    while done < kills and unfinished(watcher):
        caught = [name for name in holders(watcher) if workers.warm(name, warm_up)]
        if not caught:
            time.sleep(0.01)
            continue
        time.sleep(rng.uniform(0, 0.05))  # anywhere in the batch: before, during or after a hand-off
        workers.kill(rng.choice(caught))
        done += 1
        workers.start()
        time.sleep(rng.uniform(0.1, 0.6))
    return done


def site_for(root: Path, database: str, port: int, batch: int, lease: int) -> Site:
    transport = (
        "transport:\n  backend: smtp\n  smtp:\n"
        f"    host: 127.0.0.1\n    port: {port}\n    security: none\n    timeout: 10\n"
    )
    return real_site(
        root / "site", database=database, transport=transport, batch_size=batch, lease_seconds=lease
    )


def run(backend: str, database: str, root: Path, args: argparse.Namespace) -> Figures:
    rng = random.Random(args.seed)
    with smtp_server() as server:
        server.handler.data_delay = 0.001  # a provider taking a millisecond keeps batches in flight
        site = site_for(root, database, server.port, args.batch, args.lease)
        if backend == "postgresql":  # its schema only moves on `drip db upgrade`
            upgrade(connect(site.database_url))
        engine = open_store(site.database_url)
        # A plain engine (no BEGIN IMMEDIATE on SQLite) to watch the leases beside the workers.
        watcher = sa.create_engine(site.database_url)
        started_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
        total = enroll_many(engine, site, args.deliveries // STEPS, started=started_at)
        workers = Workers(site, root / "logs")
        for _ in range(2):
            workers.start()
        started = time.monotonic()
        try:
            kills = kill_holders(workers, watcher, args.kills, args.warm_up, rng)
            while unfinished(watcher) and time.monotonic() - started < args.timeout:
                time.sleep(0.2)
        finally:
            codes = workers.stop()
        seconds = time.monotonic() - started
        found = [_DELIVERY.search(m.data) for m in server.messages]
        received = Counter(int(m.group(1)) for m in found if m)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.possible_duplicate)
        ).all()
    engine.dispose()
    watcher.dispose()
    for name, code in codes.items():
        if code != 0:
            tail = (root / "logs" / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
            print(f"  {name} exited {code}; the end of its log:", *tail, sep="\n    ")
    sent = {r.id for r in rows if r.status == "sent"}
    flagged = {r.id for r in rows if r.possible_duplicate}
    duplicated = {i for i, n in received.items() if n > 1}
    return Figures(
        backend=backend,
        deliveries=total,
        kills=kills,
        lost=len({r.id for r in rows} - (sent & set(received))),
        duplicates=sum(received[i] - 1 for i in duplicated),
        flagged=len(flagged),
        false_flags=len({i for i in flagged if received[i] == 1}),
        unflagged_duplicates=len(duplicated - flagged),
        bound=kills * args.batch,
        seconds=seconds,
        exit_codes=tuple(codes.values()),
    )


def postgres_url() -> tuple[str, str, str] | None:
    """A fresh schema on the server named by DRIP_TEST_POSTGRES_URL: (its url, the base url, the schema)."""
    base = os.environ.get("DRIP_TEST_POSTGRES_URL")
    if not base:
        return None
    schema = f"bench_kill_{secrets.token_hex(4)}"
    admin = connect(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}", base, schema


def drop_schema(base: str, schema: str) -> None:
    admin = connect(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def report(f: Figures, handoff: int) -> None:
    ok = f.lost == 0 and f.unflagged_duplicates == 0 and f.duplicates <= f.bound and set(f.exit_codes) == {0}
    print(
        f"{f.backend:<10} {f.deliveries:>6} deliveries, {f.kills} SIGKILLs, {f.seconds:.0f}s: "
        f"lost {f.lost}, duplicates {f.duplicates} (bound kills × batch = {f.bound}), "
        f"flagged {f.flagged} (≤ kills × hand-off = {f.kills * handoff}), false flags {f.false_flags}, "
        f"unflagged duplicates {f.unflagged_duplicates}, exit codes {sorted(set(f.exit_codes))} "
        f"{'OK' if ok else 'FAILED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=30_000)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument(
        "--lease", type=int, default=5, help="lease_seconds (5 is the least drip.yaml allows)"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--warm-up", type=float, default=4.0, help="seconds a new worker lives before it may be killed"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    handoff = SmtpTransport.handoff_size
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="drip-kill-") as tmp:
            root = Path(tmp)
            report(run("sqlite", f"sqlite:///{root / 'drip.db'}", root, args), handoff)
    if args.backend in ("postgresql", "both"):
        pg = postgres_url()
        if pg is None:
            print("postgresql: DRIP_TEST_POSTGRES_URL is not set, skipped")
            return
        url, base, schema = pg
        try:
            with tempfile.TemporaryDirectory(prefix="drip-kill-") as tmp:
                report(run("postgresql", url, Path(tmp), args), handoff)
        finally:
            drop_schema(base, schema)


if __name__ == "__main__":
    main()
