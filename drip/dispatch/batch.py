"""One dispatch pass: claim due deliveries → personalise → transport → record outcomes.

Whether a subscriber may receive mail is decided at send time, not at claim
time: the subscriber and enrollment are read after the claim and read again
right before each hand-off chunk goes to the transport, in the short
transaction that marks the chunk handed off, so an unsubscribe that lands in
between stops the email. No transaction is open while the transport talks to
its server (design decision 11). Each chunk's outcomes are recorded under the
batch's lease right after it is sent, so a worker that lost its lease cannot
overwrite anyone, and a worker that dies loses (and flags) one chunk at most.

This module does the reading, sending and writing; what each delivery becomes is
decided by the pure functions of :mod:`drip.dispatch.decide`.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from drip.config import Site
from drip.course.compile import load_courses
from drip.course.models import Course, Step
from drip.dispatch.decide import (
    Cancel,
    Fail,
    Final,
    LeaseLost,
    Pass,
    Renderer,
    Retry,
    Send,
    Sent,
    after_send,
    at_hand_off,
    before_send,
    chunks,
    clock_at,
    outcome,
    refusal,
)
from drip.dispatch.newsletters import Decision, decide_issues
from drip.errors import TransientTransportError, TransportError
from drip.render.rendered import RenderedStep
from drip.runtime import Runtime
from drip.store.claims import Claimed, claim, record
from drip.store.deliveries import HandOff, hand_off, recipients
from drip.store.enrollments import complete_enrollments
from drip.transports.base import OutgoingMessage, SendResult, Transport

log = logging.getLogger(__name__)

Decided = tuple[Claimed, Final]
IssueDecider = Callable[[Sequence[Claimed], Pass], list[tuple[Claimed, Decision]]]


@dataclass(frozen=True)
class DispatchReport:
    """What one pass (or several, added together) did."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    lost_lease: int = 0  # outcomes dropped because the lease expired and the row moved on
    possible_duplicates: int = 0  # an earlier lease on it expired unrecorded
    completed: int = 0  # enrollments whose last delivery was done
    batch_size: int = 0
    notes: tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        """A full batch means more may be due right now."""
        return self.batch_size > 0 and self.claimed >= self.batch_size

    def __add__(self, other: DispatchReport) -> DispatchReport:
        return DispatchReport(
            claimed=self.claimed + other.claimed,
            sent=self.sent + other.sent,
            failed=self.failed + other.failed,
            retried=self.retried + other.retried,
            cancelled=self.cancelled + other.cancelled,
            lost_lease=self.lost_lease + other.lost_lease,
            possible_duplicates=self.possible_duplicates + other.possible_duplicates,
            completed=self.completed + other.completed,
            batch_size=other.batch_size or self.batch_size,
            notes=self.notes + tuple(n for n in other.notes if n not in self.notes),
        )


def renderer_for(site: Site, runtime: Runtime) -> Renderer:
    """The site's templates, each (course, step, locale) rendered once for the life of ``runtime``."""
    cache = runtime.renders

    def render(course: Course, step: Step, locale: str) -> RenderedStep:
        return cache(site, course, step, locale=locale)

    return render


def _prepare(
    engine: sa.Engine,
    batch: Sequence[Claimed],
    courses: Mapping[str, Course],
    ctx: Pass,
    render: Renderer,
    issues: IssueDecider,
) -> tuple[list[Decided], list[tuple[Claimed, OutgoingMessage]]]:
    """Read who each claimed delivery goes to; cancel or build each: (decided, to hand over)."""
    course_items = [c for c in batch if c.enrollment_id is not None]
    found = recipients(engine, (c.enrollment_id for c in course_items if c.enrollment_id is not None))
    decisions = [
        (
            item,
            before_send(
                item, found.get(item.enrollment_id or 0), courses.get(item.course), ctx, render=render
            ),
        )
        for item in course_items
    ]
    decisions += issues([c for c in batch if c.enrollment_id is None], ctx)
    decided: list[Decided] = []
    candidates: list[tuple[Claimed, OutgoingMessage]] = []
    for item, decision in decisions:
        if isinstance(decision, Send):
            candidates.append((item, decision.message))
        else:
            decided.append((item, decision))
    return decided, candidates


def _hand_over(
    engine: sa.Engine,
    transport: Transport,
    candidates: Sequence[tuple[Claimed, OutgoingMessage]],
    ctx: Pass,
    started: float,
) -> list[Decided]:
    """Send the batch chunk by chunk; what was recorded for each delivery (the lost are left out)."""
    kept: list[Decided] = []
    for chunk in chunks(candidates, transport.handoff_size):
        kept += _hand_over_chunk(engine, transport, chunk, ctx, time.monotonic() - started)
    return kept


def _hand_over_chunk(
    engine: sa.Engine,
    transport: Transport,
    chunk: Sequence[tuple[Claimed, OutgoingMessage]],
    ctx: Pass,
    elapsed: float,
) -> list[Decided]:
    """Mark and re-check (one short transaction), send with none open, record (another).

    What the transport accepted is recorded sent whatever the subscriber did
    meanwhile: an unsubscribe leaves handed-off rows to their worker and waits
    for this record, so the ledger says what really went out.
    """
    token = chunk[0][0].lease_token  # one lease token for the whole batch
    ids = [item.id for item, _ in chunk]
    done = hand_off(engine, ids, token, now=clock_at(ctx.now, elapsed), refusal=refusal)
    kept: list[Decided] = []
    to_send = _going_now(chunk, done, kept)
    results = _send(transport, [m for _, m in to_send], now=ctx.now)
    decided = [(item, after_send(item, results[m.delivery_id], ctx)) for item, m in to_send]
    return kept + _record(engine, decided, ctx.now)


def _going_now(
    chunk: Sequence[tuple[Claimed, OutgoingMessage]], done: HandOff, kept: list[Decided]
) -> Sequence[tuple[Claimed, OutgoingMessage]]:
    """The chunk's messages to send now; the hand-off's cancels are added to ``kept``."""
    if len(done.marked) == len(chunk):  # all marked (the mark touches only the chunk's rows): all go
        return chunk
    to_send: list[tuple[Claimed, OutgoingMessage]] = []
    for item, message in chunk:
        match at_hand_off(item, done):
            case None:
                to_send.append((item, message))
            case Cancel() as cancel:
                kept.append((item, cancel))  # recorded by the hand-off itself
            case LeaseLost():
                pass  # another worker holds it now: not ours to record
    return to_send


def _record(engine: sa.Engine, decided: Sequence[Decided], now: dt.datetime) -> list[Decided]:
    """Record under the lease; the decisions that were (a lost lease drops the others)."""
    recorded = record(engine, [outcome(item, d) for item, d in decided], now=now)
    return [(item, d) for item, d in decided if item.id in recorded]


def _send(
    transport: Transport, messages: Sequence[OutgoingMessage], *, now: dt.datetime
) -> dict[int, SendResult]:
    """One result per message; a transport that fails the whole batch fails each message with it."""
    if not messages:
        return {}
    try:
        results = transport.send_batch(messages, now=now)
    except TransportError as exc:
        return {m.delivery_id: SendResult(m.delivery_id, error=exc) for m in messages}
    except Exception as exc:  # a transport bug must not strand the batch until its lease expires
        log.exception("transport %s failed unexpectedly; the batch is retried with backoff", transport.name)
        error = TransientTransportError(
            f"unexpected {type(exc).__name__} in the {transport.name} transport: {exc}"
        )
        return {m.delivery_id: SendResult(m.delivery_id, error=error) for m in messages}
    by_id = {r.delivery_id: r for r in results}
    lacking = [m.delivery_id for m in messages if m.delivery_id not in by_id]
    if lacking:  # a result made only for a message without one (not one per message, as a default)
        missing = TransientTransportError("the transport returned no result for this message")
        by_id.update((i, SendResult(i, error=missing)) for i in lacking)
    return by_id


def _report(
    batch: Sequence[Claimed], kept: Sequence[Decided], completed: int, batch_size: int
) -> DispatchReport:
    # One pass over the decisions, counted by class (none of the four is subclassed).
    count = Counter(type(d) for _, d in kept)
    return DispatchReport(
        claimed=len(batch),
        sent=count[Sent],
        failed=count[Fail],
        retried=count[Retry],
        cancelled=count[Cancel],
        lost_lease=len(batch) - len(kept),
        possible_duplicates=sum(1 for c in batch if c.possible_duplicate),
        completed=completed,
        batch_size=batch_size,
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during one pass; on again after it.

    A pass of a thousand emails makes tens of thousands of small records, freed by their
    reference counts as it goes: with the collector on, hundreds of collections walked the
    batch in hand and found nothing to free, a tenth of the pass's CPU. A pass is bounded
    (``dispatch.batch_size``), so what it leaves for the collector is too. Left alone when
    something else turned the collector off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def dispatch_once(
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    *,
    runtime: Runtime,
    worker: str,
    now: dt.datetime | None = None,
    courses: Mapping[str, Course] | None = None,
    renderer: Renderer | None = None,
    rng: random.Random | None = None,
) -> DispatchReport:
    """Claim one batch of due deliveries, send what may still be sent, and record every outcome."""
    with _collector_paused():
        return _dispatch(site, engine, transport, runtime, worker, now, courses, renderer, rng)


def _dispatch(
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    runtime: Runtime,
    worker: str,
    now: dt.datetime | None,
    courses: Mapping[str, Course] | None,
    renderer: Renderer | None,
    rng: random.Random | None,
) -> DispatchReport:
    cfg = site.config.dispatch
    secret = runtime.secret  # before claiming: a missing key must not strand a batch
    now = runtime.now() if now is None else now
    started = time.monotonic()
    size = cfg.batch_size or transport.batch_size
    batch = claim(engine, now=now, limit=size, lease_seconds=cfg.lease_seconds, worker=worker)
    if not batch:
        return DispatchReport(batch_size=size)
    courses = load_courses(site) if courses is None else courses
    ctx = Pass(
        site.config.site.base_url, site.config.postal_address, secret, now, cfg, rng or random.Random()
    )

    def issues(items: Sequence[Claimed], ctx: Pass) -> list[tuple[Claimed, Decision]]:
        return decide_issues(site, engine, runtime, items, ctx)

    decided, candidates = _prepare(
        engine, batch, courses, ctx, renderer or renderer_for(site, runtime), issues
    )
    kept = _record(engine, decided, now) + _hand_over(engine, transport, candidates, ctx, started)
    completed = complete_enrollments(
        engine, (item.enrollment_id for item, _ in kept if item.enrollment_id is not None), now=now
    )
    report = _report(batch, kept, completed, size)
    log.info(
        "dispatch %s: claimed %d, sent %d, retry %d, failed %d, cancelled %d, lease lost %d",
        worker,
        report.claimed,
        report.sent,
        report.retried,
        report.failed,
        report.cancelled,
        report.lost_lease,
    )
    return report
