"""Transport throughput, end to end, against the plain stdlib pipeline measured in the same run.

    .venv/bin/python bench/transports.py [--n 5000] [--sendgrid-n 20000]

- outbox: drip's builder + atomic .eml writes, against EmailMessage + as_bytes(policy=SMTP) + write.
- smtp: drip's transport to a loopback aiosmtpd server (in another process, so client and
  server do not share one GIL), against EmailMessage + smtplib.sendmail on one connection.
- sendgrid: recipients/s with 1000 personalizations a request against one request per
  recipient, both through the official client to the loopback server (in another
  process too) with schema validation switched off (validating 1000 personalizations costs the server more than
  the client's whole send; the tests validate every body). The server answers 202 as soon
  as it has read a body and parses it afterwards, so its JSON parsing is not on the client's
  path; after each run the bench asks it (GET /stats) whether every body parsed and held the
  expected personalizations, and how much CPU it spent. Median of several runs, after a warm-up,
  with where the client's CPU goes per recipient.
Both pipelines personalise each message from the same RenderedStep.
- dispatch: the whole of `drip run` on SQLite with the outbox transport — claim a batch,
  re-check each subscriber, render (once per step), personalise with signed links, write
  the .eml, record under the lease — for every delivery due among --n enrolled readers.
"""

from __future__ import annotations

import argparse
import email.policy
import json
import multiprocessing
import os
import smtplib
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from outgoing import NOW, outgoing
from sendgrid_server import API_KEY, sendgrid_server
from smtp_server import smtp_server

from drip.config import SendgridSection, SmtpSection
from drip.transports.base import OutgoingMessage, SendResult
from drip.transports.outbox import OutboxTransport
from drip.transports.sendgrid import (
    SendgridTransport,
    personalization,
    substitution_plan,
)
from drip.transports.smtp import SmtpTransport

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Event


def stdlib_message(msg: OutgoingMessage) -> bytes:
    """The straightforward way: EmailMessage with the same headers and parts, serialised with CRLF."""
    subject, html, text = msg.rendered.personalise(msg.values)
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = formataddr((msg.from_name, msg.from_email))
    m["To"] = formataddr((msg.to_name, msg.to_email))
    if msg.reply_to:
        m["Reply-To"] = msg.reply_to
    m["Subject"] = subject
    m["Date"] = format_datetime(NOW)
    m["Message-ID"] = make_msgid(str(msg.delivery_id), domain=msg.message_id_domain)
    m["List-Unsubscribe"] = f"<{msg.unsubscribe_url}>, <{msg.unsubscribe_mailto}>"
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    m.set_content(text)
    m.add_alternative(html, subtype="html")
    return m.as_bytes()


@dataclass(frozen=True)
class Rate:
    """Items per wall-clock second, and per CPU second of this (client) process.

    The machine is shared: wall-clock rates move with its load, CPU rates much less.
    Servers run in other processes, so the CPU rate is what drip itself costs.
    """

    wall: float
    cpu: float


def timed(n: int, fn: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Rate(n / wall if wall > 0 else float("inf"), n / cpu if cpu > 0 else float("inf"))


def bench_outbox(messages: Sequence[OutgoingMessage], tmp: Path) -> tuple[Rate, Rate]:
    drip_dir, std_dir = tmp / "drip", tmp / "stdlib"
    std_dir.mkdir()
    transport = OutboxTransport(drip_dir)

    def drip_run() -> None:
        results = transport.send_batch(messages, now=NOW)
        assert all(r.ok for r in results)

    def stdlib_run() -> None:
        for msg in messages:
            (std_dir / f"{msg.delivery_id:09d}.eml").write_bytes(stdlib_message(msg))

    transport.send_batch(messages[:50], now=NOW)  # warm caches and the directory
    return timed(len(messages), drip_run), timed(len(messages), stdlib_run)


def _serve(kind: str, urls: Queue[str], stop: Event) -> None:
    """Run a loopback server in its own process, so that it does not share the client's GIL."""
    if kind == "smtp":
        with smtp_server() as smtp:
            urls.put(str(smtp.port))
            stop.wait()
    else:
        with sendgrid_server(validate=False, answer_first=kind == "sendgrid") as sendgrid:
            urls.put(sendgrid.url)
            stop.wait()


@contextmanager
def served(kind: str) -> Iterator[str]:
    ctx = multiprocessing.get_context("spawn")
    urls: Queue[str] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, urls, stop), daemon=True)
    proc.start()
    try:
        yield urls.get(timeout=60)
    finally:
        stop.set()
        proc.join(timeout=10)


def bench_smtp(messages: Sequence[OutgoingMessage]) -> tuple[Rate, Rate]:
    with served("smtp") as port_text:
        port = int(port_text)
        settings = SmtpSection(host="127.0.0.1", port=port, security="none", timeout=30)

        def drip_run() -> None:
            with SmtpTransport(settings, environ={}) as transport:
                results = transport.send_batch(messages, now=NOW)
            assert all(r.ok for r in results) and transport.connections_opened == 1

        def stdlib_run() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as conn:
                for msg in messages:
                    conn.sendmail(msg.from_email, [msg.to_email], stdlib_message(msg))

        with SmtpTransport(settings, environ={}) as warm:
            warm.send_batch(messages[:50], now=NOW)
        return timed(len(messages), drip_run), timed(len(messages), stdlib_run)


@dataclass(frozen=True)
class SendgridRun:
    """One timed send_batch to the loopback server, and what the server says it received."""

    rate: Rate
    requests: int
    server_cpu: float  # seconds the server process spent, parsing included


def server_stats(url: str, *, requests: int | None = None) -> dict[str, Any]:
    """The server's counters; with ``requests``, once it has recorded that many (it parses after answering)."""
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
            stats: dict[str, Any] = json.loads(response.read())
        if requests is None or stats["requests"] >= requests or time.monotonic() > deadline:
            return stats
        time.sleep(0.005)  # the last body is still being parsed in the other process


def sendgrid_run(url: str, transport: SendgridTransport, messages: Sequence[OutgoingMessage]) -> SendgridRun:
    """Time one batch, then check from the server's side that every body arrived whole, as JSON."""
    before, sent_before = server_stats(url), transport.requests_sent
    results: list[SendResult] = []
    rate = timed(len(messages), lambda: results.extend(transport.send_batch(messages, now=NOW)))
    requests = transport.requests_sent - sent_before
    after = server_stats(url, requests=before["requests"] + requests)
    assert all(r.ok for r in results)
    assert after["requests"] - before["requests"] == requests
    assert after["statuses"].get("202", 0) - before["statuses"].get("202", 0) == requests, after
    assert after["personalizations"] - before["personalizations"] == len(messages)
    return SendgridRun(rate, requests, after["cpu_seconds"] - before["cpu_seconds"])


@dataclass(frozen=True)
class PerRecipient:
    """Where the client's CPU goes, in microseconds per recipient of a batched send."""

    total: float
    personalization: float  # checks and JSON text of one recipient
    rest: float  # request assembly, python_http_client, urllib, socket, results


def _median_cpu(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median CPU seconds of ``fn``: a single pass on a shared machine can be far off."""
    times: list[float] = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def breakdown(messages: Sequence[OutgoingMessage], cpu_rate: float) -> PerRecipient:
    plan = substitution_plan(messages[0].rendered)
    build = _median_cpu(lambda: [personalization(m, plan) for m in messages]) / len(messages)
    total = 1 / cpu_rate
    return PerRecipient(total * 1e6, build * 1e6, (total - build) * 1e6)


def bench_sendgrid(
    n_batched: int, n_single: int, runs: int
) -> tuple[list[SendgridRun], SendgridRun, PerRecipient]:
    with served("sendgrid") as url:
        settings = SendgridSection(host=url)
        batched = SendgridTransport(settings, environ={"SENDGRID_API_KEY": API_KEY})
        single = SendgridTransport(settings, environ={"SENDGRID_API_KEY": API_KEY}, max_per_request=1)
        many = [outgoing(i) for i in range(1, n_batched + 1)]
        sendgrid_run(url, batched, many[:2000])  # warm up
        batched_runs = [sendgrid_run(url, batched, many) for _ in range(runs)]
        single_run = sendgrid_run(url, single, many[:n_single])
    cpu_rate = statistics.median(r.rate.cpu for r in batched_runs)
    return batched_runs, single_run, breakdown(many, cpu_rate)


def bench_dispatch(n: int, tmp: Path) -> Rate:
    """Every delivery due now, sent by drain() exactly as `drip run --once` does."""
    import datetime as dt

    from delivery_fixtures import enroll_many, real_site

    from drip.course.compile import load_courses
    from drip.dispatch.worker import drain
    from drip.runtime import Runtime, demo_key_allowed, frozen_clock
    from drip.store.db import open_store
    from drip.transports import get_transport

    os.environ.setdefault("DRIP_SECRET_KEY", "bench-" + "k" * 32)
    site = real_site(
        tmp / "site",
        database=f"sqlite:///{tmp / 'drip.db'}",
        transport="transport:\n  backend: outbox\n",
        batch_size=200,
    )
    engine = open_store(site.database_url)
    now = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
    # One welcome email each is due at once: the rest of the course lies in the future.
    enroll_many(engine, site, n, started=now)
    transport = get_transport(site)
    courses = load_courses(site)
    runtime = Runtime(demo_key=demo_key_allowed(transport.name), clock=frozen_clock(now))
    with transport:
        report: Any = None

        def run() -> None:
            nonlocal report
            report = drain(site, engine, transport, runtime=runtime, worker="bench", courses=courses)

        rate = timed(n, run)
    engine.dispose()
    assert report is not None and report.sent == n, report
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="messages for outbox and SMTP")
    parser.add_argument("--sendgrid-n", type=int, default=20000, help="recipients for batched SendGrid")
    parser.add_argument("--sendgrid-single-n", type=int, default=500, help="recipients sent one per request")
    parser.add_argument("--sendgrid-runs", type=int, default=5, help="timed batched runs (median reported)")
    args = parser.parse_args()

    load = os.getloadavg()
    messages = [outgoing(i) for i in range(1, args.n + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        outbox, outbox_std = bench_outbox(messages, Path(tmp))
    smtp, smtp_std = bench_smtp(messages)
    with tempfile.TemporaryDirectory() as tmp:
        dispatch = bench_dispatch(args.n, Path(tmp))
    sg_runs, sg_single, sg_cost = bench_sendgrid(args.sendgrid_n, args.sendgrid_single_n, args.sendgrid_runs)

    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)}")
    print()
    print(f"{'emails/s':<40}{'drip':>10}{'stdlib':>10}{'ratio':>7}   {'drip':>9}{'stdlib':>9}{'ratio':>7}")
    print(f"{'':<40}{'--- per wall second ---':>27}   {'--- per CPU second ---':>25}")
    for label, d, b in (
        (f"outbox, {args.n} .eml files", outbox, outbox_std),
        (f"SMTP to loopback aiosmtpd, {args.n}", smtp, smtp_std),
        (f"drip run --once (SQLite, outbox), {args.n}", dispatch, outbox_std),
    ):
        print(
            f"{label:<40}{d.wall:>10,.0f}{b.wall:>10,.0f}{d.wall / b.wall:>6.1f}x"
            f"   {d.cpu:>9,.0f}{b.cpu:>9,.0f}{d.cpu / b.cpu:>6.1f}x"
        )
    print()
    sg_wall = statistics.median(r.rate.wall for r in sg_runs)
    sg_cpu = statistics.median(r.rate.cpu for r in sg_runs)
    sg_server = statistics.median(r.server_cpu for r in sg_runs)
    print(f"{'SendGrid recipients/s (schema check off)':<40}{'wall':>10}{'CPU':>10}{'requests':>10}")
    print(
        f"{f'  1000 per request, {args.sendgrid_n}':<40}{sg_wall:>10,.0f}{sg_cpu:>10,.0f}{sg_runs[0].requests:>10}"
        f"   median of {len(sg_runs)} runs; wall {min(r.rate.wall for r in sg_runs):,.0f}"
        f"–{max(r.rate.wall for r in sg_runs):,.0f}"
    )
    print(
        f"{f'  1 per request, {args.sendgrid_single_n}':<40}{sg_single.rate.wall:>10,.0f}"
        f"{sg_single.rate.cpu:>10,.0f}{sg_single.requests:>10}"
    )
    print(
        f"{'  batching speed-up':<40}{sg_wall / sg_single.rate.wall:>9.0f}x{sg_cpu / sg_single.rate.cpu:>9.0f}x"
    )
    print(
        f"  client CPU per recipient: {sg_cost.total:.1f} µs = personalization {sg_cost.personalization:.1f}"
        f" + request, python_http_client, urllib, results {sg_cost.rest:.1f}"
    )
    print(
        f"  loopback server (own process, answers 202 before parsing): {sg_server * 1e6 / args.sendgrid_n:.1f} µs CPU"
        f" per recipient, {sg_server / (args.sendgrid_n / sg_wall):.0%} of the client's wall time"
    )
    print(
        f"  target >= 50,000 recipients/s: CPU {'OK' if sg_cpu >= 50_000 else 'MISSED'}, wall {'OK' if sg_wall >= 50_000 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
