"""Load check of `drip serve`: subscribes, confirms and one-click unsubscribes racing `drip run`.

The server is a real uvicorn process (`drip serve`); this script is the client,
in another process, on loopback. Dispatch passes (`drip run --once`, real clock)
run in a loop in further processes while the unsubscribes fly. Afterwards it
checks that no subscriber was lost or duplicated and that no course email was
written for anyone after their unsubscribe answered, and prints requests/s and
latency percentiles.

    python bench/web_load.py [--site /tmp/site-copy] [--subscribes 2000 --unsubscribes 500]

Without --site it works on a fresh copy of the example site in a temporary folder
(it writes to the site's database and outbox); DRIP_SECRET_KEY defaults to a random key.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx2
import sqlalchemy as sa

from drip.config import load_site
from drip.store.db import open_store
from drip.store.schema import deliveries, enrollments, subscribers

COURSE = "le-role-du-cto"


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)  # seconds
    elapsed: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    busy: int = 0  # 503 answers (database busy past the web's retry deadline), each retried after Retry-After

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self, what: str) -> str:
        rate = len(self.latencies) / self.elapsed if self.elapsed else 0.0
        return (
            f"{what}: {len(self.latencies)} requests in {self.elapsed:.2f} s = {rate:.0f} req/s; "
            f"p50 {self.percentile(50) * 1000:.1f} ms, p99 {self.percentile(99) * 1000:.1f} ms; status {self.statuses}"
            f"; busy and retried {self.busy}"
        )


@dataclass
class LoadResult:
    addresses: list[str]  # unique addresses subscribed
    subscribe: Timings
    confirm: Timings
    unsubscribe: Timings
    unsubscribed_at_ns: dict[str, int]  # address -> wall time (ns) when its one-click answer arrived
    dispatch_passes: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drip_command(site: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "drip", "--site", str(site), *args]


def start_server(site: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    proc = subprocess.Popen(
        drip_command(site, "serve", "--port", str(port), "--rate-limit", "0"),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"drip serve exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("drip serve did not answer /healthz within 60 s")


def read_outbox(outbox: Path, pattern: str) -> list[EmailMessage]:
    found = []
    for path in sorted(outbox.glob(pattern)):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def _address(msg: EmailMessage) -> str:
    return str(msg["To"].addresses[0].addr_spec).lower()


def confirmation_links(outbox: Path) -> dict[str, tuple[str, str]]:
    """address -> (confirm link, one-click unsubscribe link) from the confirmation emails."""
    links: dict[str, tuple[str, str]] = {}
    for msg in read_outbox(outbox, "-*.eml"):
        text = msg.get_body(preferencelist=("plain",))
        assert text is not None
        confirm = re.search(r"https?://\S+/confirm/\S+", str(text.get_content()))
        unsub = re.search(r"<(https?://[^>]+/unsubscribe/[^>]+)>", str(msg["List-Unsubscribe"]))
        assert confirm and unsub
        links[_address(msg)] = (confirm.group(0), unsub.group(1))
    return links


async def _fire(
    requests: Sequence[tuple[str, str, dict[str, str] | None, str]],
    concurrency: int,
    timings: Timings,
    done_at: dict[str, int] | None = None,
) -> None:
    """Send (method, url, form, label) requests with at most ``concurrency`` in flight."""
    sem = asyncio.Semaphore(concurrency)
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as client:

        async def one(method: str, url: str, form: dict[str, str] | None, label: str) -> None:
            async with sem:
                start = time.perf_counter()
                response = await client.request(method, url, data=form)
                # A busy store answers 503 with Retry-After (never 500): a client waits and tries again.
                while response.status_code == 503 and response.headers.get("retry-after", "").isdigit():
                    timings.busy += 1
                    await asyncio.sleep(min(int(response.headers["retry-after"]), 2))
                    response = await client.request(method, url, data=form)
                timings.add(time.perf_counter() - start, response.status_code)
                if done_at is not None and response.status_code == 200:
                    done_at[label] = time.time_ns()

        start = time.perf_counter()
        await asyncio.gather(*(one(*r) for r in requests))
        timings.elapsed = time.perf_counter() - start


def dispatch_loop(site: Path, stop: threading.Event, passes: list[int], log: Path) -> None:
    """`drip run --once` again and again (real clock) until asked to stop, then once more."""
    with log.open("ab") as handle:
        while True:
            last = stop.is_set()
            subprocess.run(
                drip_command(site, "run", "--once"), stdout=handle, stderr=subprocess.STDOUT, check=True
            )
            passes[0] += 1
            if last:
                return


def run_load(
    site_dir: Path, *, subscribes: int, unsubscribes: int, concurrency: int = 16, seed: int = 8058
) -> LoadResult:
    rng = random.Random(seed)
    site = load_site(site_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(site_dir, port, site_dir / "serve.log")
    try:
        unique = subscribes - subscribes // 10
        addresses = [f"lecteur{i:05d}@example.org" for i in range(unique)]
        requests: list[tuple[str, str, dict[str, str] | None, str]] = [
            ("POST", f"{base}/subscribe", {"email": a, "course": COURSE, "name": f"Lecteur {i}"}, a)
            for i, a in enumerate(addresses)
        ]
        for _ in range(subscribes - unique):  # 10% repeats, landing anywhere in the stream
            again = rng.choice(addresses)
            requests.insert(
                rng.randrange(len(requests) + 1),
                ("POST", f"{base}/subscribe", {"email": again, "course": COURSE}, again),
            )
        sub_t = Timings()
        asyncio.run(_fire(requests, concurrency, sub_t))

        # Links carry the site's public base URL; this run reaches the same paths on loopback.
        # Confirming is the POST of the confirm page's button (the link alone changes nothing).
        public = site.config.site.base_url
        links = {
            a: (c.replace(public, base, 1), u.replace(public, base, 1))
            for a, (c, u) in confirmation_links(site.outbox_dir).items()
        }
        conf_t = Timings()
        asyncio.run(
            _fire([("POST", links[a][0], {}, a) for a in addresses if a in links], concurrency, conf_t)
        )

        leaving = rng.sample(sorted(links), min(unsubscribes, len(links)))
        stop = threading.Event()
        passes = [0]
        worker = threading.Thread(target=dispatch_loop, args=(site_dir, stop, passes, site_dir / "run.log"))
        worker.start()
        unsub_t = Timings()
        done_at: dict[str, int] = {}
        form = {"List-Unsubscribe": "One-Click"}
        try:
            asyncio.run(
                _fire([("POST", links[a][1], form, a) for a in leaving], concurrency, unsub_t, done_at)
            )
        finally:
            stop.set()
            worker.join()
        return LoadResult(addresses, sub_t, conf_t, unsub_t, done_at, passes[0])
    finally:
        server.terminate()
        server.wait(timeout=30)


def check(site_dir: Path, result: LoadResult) -> list[str]:
    """Every violation found: lost or duplicated subscribers, mail after an unsubscribe answered."""
    site = load_site(site_dir)
    problems: list[str] = []
    engine = open_store(site.database_url)
    try:
        with engine.connect() as conn:
            emails = list(conn.execute(sa.select(subscribers.c.email)).scalars())
            per_sub: dict[int, int] = dict(
                conn.execute(
                    sa.select(enrollments.c.subscriber_id, sa.func.count()).group_by(
                        enrollments.c.subscriber_id
                    )
                ).all()
            )
            status = dict(conn.execute(sa.select(subscribers.c.email, subscribers.c.status)).all())
            sent_after = conn.execute(
                sa.select(subscribers.c.email, deliveries.c.step_key)
                .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
                .where(deliveries.c.status == "pending", deliveries.c.leased_until.is_not(None))
            ).all()
    finally:
        engine.dispose()
    if len(emails) != len(set(emails)):
        problems.append(f"duplicated subscribers: {len(emails) - len(set(emails))}")
    missing = set(result.addresses) - set(emails)
    if missing:
        problems.append(f"lost subscribers: {len(missing)}, e.g. {sorted(missing)[:3]}")
    extra = set(emails) - set(result.addresses)
    if extra:
        problems.append(f"unexpected subscribers: {sorted(extra)[:3]}")
    if len(per_sub) != len(emails) or any(n != 1 for n in per_sub.values()):
        problems.append("every confirmed subscriber should have exactly one enrollment")
    for address in result.unsubscribed_at_ns:
        if status.get(address) != "unsubscribed":
            problems.append(f"{address} answered 200 to one-click but is {status.get(address)}")
    if sent_after:
        problems.append(f"deliveries leased and never recorded after the last pass: {len(sent_after)}")
    for path in sorted(site.outbox_dir.glob("[0-9]*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        address = _address(msg)
        done = result.unsubscribed_at_ns.get(address)
        if done is not None and path.stat().st_mtime_ns > done:
            problems.append(
                f"{path.name} to {address} written {(path.stat().st_mtime_ns - done) / 1e6:.1f} ms after unsubscribe"
            )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--site",
        type=Path,
        default=None,
        help="a throw-away copy of a drip site (default: a copy of the example)",
    )
    parser.add_argument("--subscribes", type=int, default=2000)
    parser.add_argument("--unsubscribes", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    # The server and the dispatch processes inherit the environment: a fresh key per run.
    os.environ.setdefault("DRIP_SECRET_KEY", secrets.token_urlsafe(32))
    if args.site is None:
        args.site = Path(tempfile.mkdtemp(prefix="drip-web-load-")) / "site"
        example = Path(__file__).resolve().parent.parent
        args.site.mkdir()
        shutil.copy(example / "drip.yaml", args.site / "drip.yaml")
        for folder in ("content", "schedules", "email_templates"):
            shutil.copytree(example / folder, args.site / folder)
        print(f"site: a copy of the example in {args.site}")
    result = run_load(
        args.site, subscribes=args.subscribes, unsubscribes=args.unsubscribes, concurrency=args.concurrency
    )
    print(result.subscribe.summary("subscribe"))
    print(result.confirm.summary("confirm"))
    print(result.unsubscribe.summary("one-click unsubscribe"))
    print(f"dispatch passes racing the unsubscribes: {result.dispatch_passes}")
    problems = check(args.site, result)
    print(json.dumps({"problems": problems}, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
