"""What becomes of each claimed delivery: pure decisions, no database and no transport.

A pass (:mod:`drip.dispatch.batch`) reads, then asks these functions, then writes:
after the claim, whether to build the email or cancel it (:func:`before_send`);
how the batch is cut into hand-off chunks (:func:`chunks`); what the hand-off
mark and re-check said of each (:func:`at_hand_off`, with :func:`refusal` the
rule it applied); after the transport, what its result means (:func:`after_send`). Each answer is a small typed
value; only :class:`Sent`, :class:`Retry`, :class:`Fail` and :class:`Cancel` are
recorded (:func:`outcome`), a :class:`LeaseLost` is dropped.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from drip.config import DispatchSection
from drip.course.edits import STEP_REMOVED
from drip.course.models import Course, Sender, Step
from drip.dispatch.personalise import is_tracked, plain_slots, subscriber_values, tracking_values
from drip.errors import DripError
from drip.render.rendered import RenderedStep
from drip.store.claims import Claimed, Outcome
from drip.store.deliveries import HandOff, Recipient
from drip.store.schema import EnrollmentState, SubscriberStatus
from drip.transports.base import OutgoingMessage, SendResult, unsubscribe_mailto

COURSE_REMOVED = "course removed"
SUBSCRIBER_DELETED = "subscriber deleted"

Renderer = Callable[[Course, Step, str], RenderedStep]
T = TypeVar("T")


# Made per email, so slotted and not frozen (see drip.transports.base.OutgoingMessage).
@dataclass(slots=True)
class Send:
    """Hand this message to the transport."""

    message: OutgoingMessage


@dataclass(slots=True)  # made per email, as Send
class Sent:
    provider_id: str | None


@dataclass(frozen=True)
class Cancel:
    """Not to be sent, ever: the note says why."""

    note: str


@dataclass(frozen=True)
class Retry:
    """Due again at ``at``, after a backoff."""

    error: str
    at: dt.datetime


@dataclass(frozen=True)
class Fail:
    """Failed for good: a permanent error, or attempts ran out."""

    error: str


@dataclass(frozen=True)
class LeaseLost:
    """Another worker took the row (or it was recorded meanwhile): nothing is recorded."""


Final = Sent | Cancel | Retry | Fail


@dataclass(frozen=True)
class Pass:
    """What every decision of one pass shares: where links point, the key, the moment, the retry policy."""

    base_url: str
    postal_address: str
    secret: str
    now: dt.datetime
    policy: DispatchSection
    rng: random.Random


def backoff_delay(
    attempts: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds before the next try: exponential with full jitter, never sooner than the provider asked."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def after_error(
    item: Claimed, text: str, ctx: Pass, *, permanent: bool, retry_after: float | None = None
) -> Retry | Fail:
    """Failed for good, or due again after a backoff; failed once attempts run out."""
    if permanent:
        return Fail(text)
    if item.attempts >= ctx.policy.max_attempts:
        return Fail(f"{text} (gave up after {item.attempts} attempts)")
    delay = backoff_delay(
        item.attempts,
        base=ctx.policy.backoff_base_seconds,
        cap=ctx.policy.backoff_max_seconds,
        retry_after=retry_after,
        rng=ctx.rng,
    )
    return Retry(text, ctx.now + dt.timedelta(seconds=delay))


def refusal(subscriber_status: str, enrollment_state: str) -> str | None:
    """None when mail may go to this subscriber in this enrollment, else why not."""
    if subscriber_status != SubscriberStatus.ACTIVE:
        return f"subscriber {subscriber_status}"
    if enrollment_state != EnrollmentState.ACTIVE:
        return f"enrollment {enrollment_state}"
    return None


def _why_not(
    recipient: Recipient | None, course: Course | None, step_key: str
) -> Cancel | tuple[Recipient, Course, Step]:
    """Why this delivery is cancelled, or who it goes to, from which course and step."""
    if recipient is None:
        return Cancel(SUBSCRIBER_DELETED)
    why = refusal(recipient.status, recipient.enrollment_state)
    if why is not None:
        return Cancel(why)
    if course is None:
        return Cancel(COURSE_REMOVED)
    step = next((s for s in course.steps if s.key == step_key), None)
    if step is None:
        return Cancel(STEP_REMOVED)
    return recipient, course, step


def before_send(
    item: Claimed, recipient: Recipient | None, course: Course | None, ctx: Pass, *, render: Renderer
) -> Send | Cancel | Retry | Fail:
    """After the claim: cancel with a reason, or build the email (a build error is retried)."""
    found = _why_not(recipient, course, item.step_key)
    if isinstance(found, Cancel):
        return found
    recipient, course, step = found
    try:
        rendered = render(course, step, recipient.locale or course.locale)
        return Send(message(item, recipient, rendered, course.sender, ctx, list_title=course.title))
    except DripError as exc:
        # A template or content error is the site's to fix, not the subscriber's:
        # retried with backoff so the email goes once the fix is deployed.
        return after_error(item, f"cannot build the email: {exc}", ctx, permanent=False)


def message(
    item: Claimed,
    recipient: Recipient,
    rendered: RenderedStep,
    sender: Sender,
    ctx: Pass,
    *,
    list_name: str = "",
    list_title: str = "",
) -> OutgoingMessage:
    """The email of one delivery: the rendered step or issue, this subscriber's values and the sender."""
    values = subscriber_values(
        ctx.base_url,
        ctx.secret,
        subscriber_id=recipient.subscriber_id,
        name=recipient.name,
        email=recipient.email,
        attributes=recipient.attributes,
        course=item.course,
        step=item.step_key,
        now=ctx.now,
        created_at=recipient.created_at,
    )
    if is_tracked(rendered):
        values.update(tracking_values(ctx.base_url, ctx.secret, item.id, rendered))
    unsubscribe_url = values["unsubscribe_url"]
    # Positional, in the fields' order: a call by keyword of its sixteen fields cost the email
    # a third of a microsecond more, on the path every email takes.
    return OutgoingMessage(
        item.id,  # delivery_id
        recipient.email,  # to_email
        recipient.name,  # to_name
        sender.email,  # from_email
        sender.name,  # from_name
        sender.reply_to,  # reply_to
        rendered,
        values,
        unsubscribe_url,
        unsubscribe_mailto(sender.email, unsubscribe_url.rpartition("/")[2]),
        ctx.postal_address,
        sender.email.rpartition("@")[2],  # message_id_domain
        _NO_HEADERS,  # headers
        list_title,
        list_name,
        plain_slots(ctx.base_url),  # plain
    )


# No extra headers: shared by every email (nothing changes a message's headers once it is built).
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """The messages of a batch in hand-off chunks of ``size`` (at least one each), in order.

    Each chunk is marked, sent with no transaction open, and recorded before the
    next: the smaller the chunk, the less an unsubscribe may have to wait for.
    """
    step = max(1, size)
    return [items[i : i + step] for i in range(0, len(items), step)]


def at_hand_off(item: Claimed, done: HandOff) -> Cancel | LeaseLost | None:
    """After the hand-off mark: None when it goes now; the recorded cancel; or lost."""
    if item.id in done.marked:
        return None
    note = done.cancelled.get(item.id)
    # Not marked and not cancelled: reclaimed, recorded or erased meanwhile, not ours.
    return LeaseLost() if note is None else Cancel(note)


def clock_at(start: dt.datetime, elapsed: float) -> dt.datetime:
    """The pass's moment moved on by the real seconds spent in it: a hand-off needs a lease live now."""
    return start + dt.timedelta(seconds=max(0.0, elapsed))


def after_send(item: Claimed, result: SendResult, ctx: Pass) -> Sent | Retry | Fail:
    """What the transport's answer means for this delivery."""
    error = result.error
    if error is None:
        return Sent(result.provider_id)
    text = f"{type(error).__name__}: {error}"
    return after_error(item, text, ctx, permanent=error.permanent, retry_after=error.retry_after)


def outcome(item: Claimed, decision: Final) -> Outcome:
    """The decision as the store records it, under the delivery's lease."""
    if isinstance(decision, Sent):
        return Outcome(item.id, item.lease_token, "sent", provider_id=decision.provider_id)
    if isinstance(decision, Retry):
        return Outcome(item.id, item.lease_token, "retry", error=decision.error, retry_at=decision.at)
    if isinstance(decision, Fail):
        return Outcome(item.id, item.lease_token, "failed", error=decision.error)
    return Outcome(item.id, item.lease_token, "cancelled", note=decision.note)
