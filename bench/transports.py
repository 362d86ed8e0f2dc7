"""Transport throughput, end to end, against the plain stdlib pipeline measured in the same run.

    .venv/bin/python bench/transports.py [--n 5000] [--sendgrid-n 20000]

- outbox: drip's builder + atomic .eml writes, against EmailMessage + as_bytes(policy=SMTP) + write.
- smtp: drip's transport to a loopback aiosmtpd server (in another process, so client and
  server do not share one GIL), against EmailMessage + smtplib.sendmail on one connection.
- sendgrid: recipients/s with 1000 personalizations a request against one request per
  recipient, both through the official client to the loopback server (in another
  process too) with schema validation switched off (validating 1000 personalizations costs the server more than
  the client's whole send; the tests validate every body).
Both pipelines personalise each message from the same RenderedStep.
"""

from __future__ import annotations

import argparse
import email.policy
import multiprocessing
import os
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from outgoing import NOW, outgoing
from sendgrid_server import API_KEY, sendgrid_server
from smtp_server import smtp_server

from drip.config import SendgridSection, SmtpSection
from drip.transports.base import OutgoingMessage, SendResult
from drip.transports.outbox import OutboxTransport
from drip.transports.sendgrid import SendgridTransport
from drip.transports.smtp import SmtpTransport


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


def _serve(kind: str, urls: multiprocessing.Queue[str], stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """Run a loopback server in its own process, so that it does not share the client's GIL."""
    if kind == "smtp":
        with smtp_server() as smtp:
            urls.put(str(smtp.port))
            stop.wait()
    else:
        with sendgrid_server(validate=False) as sendgrid:
            urls.put(sendgrid.url)
            stop.wait()


@contextmanager
def served(kind: str) -> Iterator[str]:
    ctx = multiprocessing.get_context("spawn")
    urls: multiprocessing.Queue[str] = ctx.Queue()
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


def bench_sendgrid(n_batched: int, n_single: int) -> tuple[Rate, Rate, int, int]:
    with served("sendgrid") as url:
        settings = SendgridSection(host=url)
        batched = SendgridTransport(settings, environ={"SENDGRID_API_KEY": API_KEY})
        single = SendgridTransport(settings, environ={"SENDGRID_API_KEY": API_KEY}, max_per_request=1)
        many = [outgoing(i) for i in range(1, n_batched + 1)]
        batched.send_batch(many[:1000], now=NOW)  # warm up
        sent: list[SendResult] = []
        r_batched = timed(n_batched, lambda: sent.extend(batched.send_batch(many, now=NOW)))
        r_single = timed(n_single, lambda: sent.extend(single.send_batch(many[:n_single], now=NOW)))
        assert all(r.ok for r in sent)
        return r_batched, r_single, batched.requests_sent - 1, single.requests_sent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000, help="messages for outbox and SMTP")
    parser.add_argument("--sendgrid-n", type=int, default=20000, help="recipients for batched SendGrid")
    parser.add_argument("--sendgrid-single-n", type=int, default=500, help="recipients sent one per request")
    args = parser.parse_args()

    load = os.getloadavg()
    messages = [outgoing(i) for i in range(1, args.n + 1)]
    with tempfile.TemporaryDirectory() as tmp:
        outbox, outbox_std = bench_outbox(messages, Path(tmp))
    smtp, smtp_std = bench_smtp(messages)
    sg_batched, sg_single, batched_requests, single_requests = bench_sendgrid(
        args.sendgrid_n, args.sendgrid_single_n
    )

    print(f"load average before: {' '.join(f'{x:.2f}' for x in load)}")
    print()
    print(f"{'emails/s':<40}{'drip':>10}{'stdlib':>10}{'ratio':>7}   {'drip':>9}{'stdlib':>9}{'ratio':>7}")
    print(f"{'':<40}{'--- per wall second ---':>27}   {'--- per CPU second ---':>25}")
    for label, d, b in (
        (f"outbox, {args.n} .eml files", outbox, outbox_std),
        (f"SMTP to loopback aiosmtpd, {args.n}", smtp, smtp_std),
    ):
        print(
            f"{label:<40}{d.wall:>10,.0f}{b.wall:>10,.0f}{d.wall / b.wall:>6.1f}x"
            f"   {d.cpu:>9,.0f}{b.cpu:>9,.0f}{d.cpu / b.cpu:>6.1f}x"
        )
    print()
    print(f"{'SendGrid recipients/s (schema check off)':<40}{'wall':>10}{'CPU':>10}{'requests':>10}")
    for label, r, n in (
        (f"  1000 per request, {args.sendgrid_n}", sg_batched, batched_requests),
        (f"  1 per request, {args.sendgrid_single_n}", sg_single, single_requests),
    ):
        print(f"{label:<40}{r.wall:>10,.0f}{r.cpu:>10,.0f}{n:>10}")
    print(
        f"{'  batching speed-up':<40}{sg_batched.wall / sg_single.wall:>9.0f}x{sg_batched.cpu / sg_single.cpu:>9.0f}x"
    )


if __name__ == "__main__":
    main()
