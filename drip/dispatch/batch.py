"""One dispatch pass: claim due deliveries → personalise → transport → record outcomes.

Whether a subscriber may receive mail is decided at send time, not at claim
time: the subscriber and enrollment are read after the claim and read again
right before the batch goes to the transport, so an unsubscribe that lands in
between stops the email. Outcomes are recorded under the batch's lease, in one
transaction, so a worker that lost its lease cannot overwrite anyone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from drip.config import Site
from drip.course.compile import load_courses
from drip.course.models import Course, Step
from drip.dispatch.personalise import subscriber_values
from drip.errors import DripError, TransientTransportError, TransportError
from drip.render.rendered import RenderedStep
from drip.render.steps import RenderCache
from drip.store.claims import Claimed, Outcome, claim, record
from drip.store.schema import (
    ACTIVE,
    COMPLETED,
    DUE,
    ENROLLED,
    deliveries,
    enrollments,
    subscribers,
)
from drip.tokens import SECRET_ENV, secret_from_env
from drip.transports.base import OutgoingMessage, SendResult, Transport

log = logging.getLogger(__name__)

STEP_REMOVED = "step removed"
COURSE_REMOVED = "course removed"

Renderer = Callable[[Course, Step, str], RenderedStep]


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


_render_cache: RenderCache | None = None


def default_renderer(site: Site) -> Renderer:
    """The site's templates, each (course, step, locale) rendered once per process."""
    global _render_cache
    if _render_cache is None:
        _render_cache = RenderCache()
    cache = _render_cache

    def render(course: Course, step: Step, locale: str) -> RenderedStep:
        return cache(site, course, step, locale=locale)

    return render


def backoff_delay(
    attempts: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds before the next try: exponential with full jitter, never sooner than the provider asked."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


@dataclass(frozen=True)
class _Recipient:
    subscriber_id: int
    email: str
    name: str
    locale: str | None
    status: str
    attributes: Mapping[str, Any]
    enrollment_state: str


def _recipients(conn: sa.Connection, batch: Sequence[Claimed]) -> dict[int, _Recipient]:
    """Subscriber and enrollment of every claimed delivery, by enrollment id."""
    ids = sorted({c.enrollment_id for c in batch})
    query = (
        sa.select(
            enrollments.c.id,
            enrollments.c.state,
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            subscribers.c.locale,
            subscribers.c.status,
            subscribers.c.attributes,
        )
        .join(subscribers, subscribers.c.id == enrollments.c.subscriber_id)
        .where(enrollments.c.id.in_(ids))
    )
    out: dict[int, _Recipient] = {}
    for eid, state, sid, email, name, locale, status, attributes in conn.execute(query):
        out[eid] = _Recipient(sid, email, name or "", locale, status, attributes or {}, state)
    return out


def _why_not(recipient: _Recipient | None) -> str | None:
    """None when mail may go to this recipient, else the note recorded on the delivery."""
    if recipient is None:
        return "subscriber deleted"
    if recipient.status != ACTIVE:
        return f"subscriber {recipient.status}"
    if recipient.enrollment_state != ENROLLED:
        return f"enrollment {recipient.enrollment_state}"
    return None


def _message(
    site: Site,
    secret: str,
    item: Claimed,
    recipient: _Recipient,
    rendered: RenderedStep,
    course: Course,
    *,
    now: dt.datetime,
) -> OutgoingMessage:
    values = subscriber_values(
        site.config.site.base_url,
        secret,
        subscriber_id=recipient.subscriber_id,
        name=recipient.name,
        email=recipient.email,
        attributes=recipient.attributes,
        course=item.course,
        step=item.step_key,
        now=now,
    )
    sender = course.sender
    domain = sender.email.rpartition("@")[2]
    unsubscribe_token = values["unsubscribe_url"].rpartition("/")[2]
    return OutgoingMessage(
        delivery_id=item.id,
        to_email=recipient.email,
        to_name=recipient.name,
        from_email=sender.email,
        from_name=sender.name,
        reply_to=sender.reply_to,
        rendered=rendered,
        values=values,
        unsubscribe_url=values["unsubscribe_url"],
        unsubscribe_mailto=f"mailto:{sender.email}?subject=unsubscribe%20{unsubscribe_token}",
        postal_address=site.config.postal_address,
        message_id_domain=domain,
    )


def _still_sendable(conn: sa.Connection, batch: Sequence[Claimed]) -> dict[int, str | None]:
    """Right before sending: per delivery id, None if it may go, else why not."""
    if not batch:
        return {}
    query = (
        sa.select(
            deliveries.c.id,
            deliveries.c.status,
            deliveries.c.lease_token,
            deliveries.c.leased_until,
            subscribers.c.status,
            enrollments.c.state,
        )
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .join(enrollments, enrollments.c.id == deliveries.c.enrollment_id)
        .where(deliveries.c.id.in_([c.id for c in batch]))
        .with_for_update(read=True, of=[subscribers, enrollments])
    )
    tokens = {c.id: c.lease_token for c in batch}
    out: dict[int, str | None] = {c.id: "subscriber deleted" for c in batch}
    for did, status, token, until, sub_status, state in conn.execute(query):
        # Still pending under our token and not recorded: nobody reclaimed or cancelled it.
        if status != DUE or until is None or token != tokens[did]:
            out[did] = "lease lost"
        elif sub_status != ACTIVE:
            out[did] = f"subscriber {sub_status}"
        elif state != ENROLLED:
            out[did] = f"enrollment {state}"
        else:
            out[did] = None
    return out


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
    missing = TransientTransportError("the transport returned no result for this message")
    return {
        m.delivery_id: by_id.get(m.delivery_id, SendResult(m.delivery_id, error=missing)) for m in messages
    }


def _complete_enrollments(engine: sa.Engine, enrollment_ids: Iterable[int], *, now: dt.datetime) -> int:
    """Mark completed the active enrollments that have nothing left to send."""
    ids = sorted(set(enrollment_ids))
    if not ids:
        return 0
    left = sa.exists().where(deliveries.c.enrollment_id == enrollments.c.id, deliveries.c.status == DUE)
    with engine.begin() as conn:
        done = conn.execute(
            enrollments.update()
            .where(enrollments.c.id.in_(ids), enrollments.c.state == ENROLLED, ~left)
            .values(state=COMPLETED, updated_at=now)
        )
        return int(done.rowcount or 0)


_demo_warned = False


def signing_secret(transport: Transport) -> str:
    """DRIP_SECRET_KEY; the public demo key only for the outbox transport, with a warning."""
    global _demo_warned
    if os.environ.get(SECRET_ENV) or transport.name != "outbox":
        return secret_from_env()
    if not _demo_warned:
        _demo_warned = True
        log.warning("%s is not set: links in the outbox are signed with the public demo key", SECRET_ENV)
    return secret_from_env(demo=True)


def dispatch_once(
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    *,
    now: dt.datetime,
    worker: str,
    courses: Mapping[str, Course] | None = None,
    renderer: Renderer | None = None,
    rng: random.Random | None = None,
) -> DispatchReport:
    """Claim one batch of due deliveries, send what may still be sent, and record every outcome."""
    cfg = site.config.dispatch
    secret = signing_secret(transport)  # before claiming: a missing key must not strand a batch
    batch = claim(engine, now=now, limit=cfg.batch_size, lease_seconds=cfg.lease_seconds, worker=worker)
    if not batch:
        return DispatchReport(batch_size=cfg.batch_size)
    courses = load_courses(site) if courses is None else courses
    render = renderer or default_renderer(site)
    rng = rng or random.Random()

    def after_error(item: Claimed, text: str, *, permanent: bool, retry_after: float | None) -> Outcome:
        """Failed for good, or due again after a backoff; failed once attempts run out."""
        if permanent:
            return Outcome(item.id, item.lease_token, "failed", error=text)
        if item.attempts >= cfg.max_attempts:
            return Outcome(
                item.id, item.lease_token, "failed", error=f"{text} (gave up after {item.attempts} attempts)"
            )
        delay = backoff_delay(
            item.attempts,
            base=cfg.backoff_base_seconds,
            cap=cfg.backoff_max_seconds,
            retry_after=retry_after,
            rng=rng,
        )
        return Outcome(
            item.id, item.lease_token, "retry", error=text, retry_at=now + dt.timedelta(seconds=delay)
        )

    outcomes: list[Outcome] = []
    candidates: list[tuple[Claimed, OutgoingMessage]] = []
    with engine.connect() as conn:
        recipients = _recipients(conn, batch)
    for item in batch:
        recipient = recipients.get(item.enrollment_id)
        reason = _why_not(recipient)
        course = courses.get(item.course)
        if reason is None and course is None:
            reason = COURSE_REMOVED
        step = None
        if reason is None and course is not None:
            step = next((s for s in course.steps if s.key == item.step_key), None)
            if step is None:
                reason = STEP_REMOVED
        if reason is not None or recipient is None or course is None or step is None:
            outcomes.append(Outcome(item.id, item.lease_token, "cancelled", note=reason))
            continue
        try:
            rendered = render(course, step, recipient.locale or course.locale)
            candidates.append((item, _message(site, secret, item, recipient, rendered, course, now=now)))
        except DripError as exc:
            # A template or content error is the site's to fix, not the subscriber's:
            # retried with backoff so the email goes once the fix is deployed.
            outcomes.append(
                after_error(item, f"cannot build the email: {exc}", permanent=False, retry_after=None)
            )

    # Read again right before the transport: an unsubscribe may have landed since the claim.
    # The read's transaction stays open until the batch is handed over, so an unsubscribe
    # arriving meanwhile waits for the send instead of answering before it (SQLite: the
    # BEGIN IMMEDIATE write lock; PostgreSQL: FOR SHARE on the subscriber and enrollment rows).
    with engine.connect() as conn:
        verdict = _still_sendable(conn, [item for item, _ in candidates])
        to_send: list[tuple[Claimed, OutgoingMessage]] = []
        for item, message in candidates:
            why = verdict.get(item.id)
            if why is None:
                to_send.append((item, message))
            elif why != "lease lost":
                outcomes.append(Outcome(item.id, item.lease_token, "cancelled", note=why))
        results = _send(transport, [m for _, m in to_send], now=now)

    for item, message in to_send:
        result = results[message.delivery_id]
        if result.error is None:
            outcomes.append(Outcome(item.id, item.lease_token, "sent", provider_id=result.provider_id))
            continue
        error = result.error
        text = f"{type(error).__name__}: {error}"
        outcomes.append(after_error(item, text, permanent=error.permanent, retry_after=error.retry_after))

    recorded = record(engine, outcomes, now=now)
    kept = [o for o in outcomes if o.delivery_id in recorded]
    enrollment_of = {c.id: c.enrollment_id for c in batch}
    completed = _complete_enrollments(engine, (enrollment_of[o.delivery_id] for o in kept), now=now)
    report = DispatchReport(
        claimed=len(batch),
        sent=sum(o.status == "sent" for o in kept),
        failed=sum(o.status == "failed" for o in kept),
        retried=sum(o.status == "retry" for o in kept),
        cancelled=sum(o.status == "cancelled" for o in kept),
        lost_lease=len(batch) - len(kept),
        possible_duplicates=sum(c.possible_duplicate for c in batch),
        completed=completed,
        batch_size=cfg.batch_size,
    )
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
