"""What becomes of one claimed delivery, decided without a database or a transport."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from delivery_fixtures import T0, make_course, simple_render

from drip.config import DispatchSection
from drip.course.models import Course, Step
from drip.dispatch.decide import (
    Cancel,
    Fail,
    LeaseLost,
    Pass,
    Retry,
    Send,
    Sent,
    after_send,
    at_hand_off,
    backoff_delay,
    before_send,
    chunks,
    clock_at,
    outcome,
    refusal,
)
from drip.errors import PermanentTransportError, TemplateError, TransientTransportError
from drip.render.rendered import RenderedStep
from drip.store.claims import Claimed, Outcome
from drip.store.deliveries import HandOff, Recipient
from drip.tokens import read_token
from drip.transports.base import SendResult

SECRET = "k" * 32
TOKEN = "w:abc"
LEASE_END = T0 + dt.timedelta(minutes=5)
COURSE = make_course()


def claimed(*, step_key: str = "welcome", attempts: int = 1, course: str = "cours") -> Claimed:
    return Claimed(7, 3, 5, course, step_key, T0, attempts, TOKEN, LEASE_END, False)


def recipient(*, status: str = "active", state: str = "active", locale: str | None = None) -> Recipient:
    return Recipient(5, "zoe@example.org", "Zoé", locale, status, {"entreprise": "ACME"}, state)


def ctx(*, max_attempts: int = 3, seed: int = 1) -> Pass:
    policy = DispatchSection(max_attempts=max_attempts, backoff_base_seconds=60, backoff_max_seconds=3600)
    return Pass("https://cto.example.org", "12 rue des Lilas", SECRET, T0, policy, random.Random(seed))


def test_an_active_recipient_gets_the_email_personalised_with_signed_links() -> None:
    decision = before_send(claimed(), recipient(), COURSE, ctx(), render=simple_render)
    assert isinstance(decision, Send)
    m = decision.message
    assert (m.delivery_id, m.to_email, m.to_name, m.from_email) == (
        7,
        "zoe@example.org",
        "Zoé",
        COURSE.sender.email,
    )
    assert m.rendered.locale == "fr"  # the course's, as the subscriber has none
    assert m.values["attributes.entreprise"] == "ACME"
    token = read_token(SECRET, m.unsubscribe_url.rpartition("/")[2], "unsubscribe", now=T0)
    assert (token.subscriber_id, token.course) == (5, "cours")
    assert m.unsubscribe_mailto.startswith("mailto:lettre@cto.example.org?subject=unsubscribe%20")
    assert (m.message_id_domain, m.postal_address) == ("cto.example.org", "12 rue des Lilas")


def test_the_subscribers_locale_chooses_the_rendering() -> None:
    decision = before_send(claimed(), recipient(locale="en"), COURSE, ctx(), render=simple_render)
    assert isinstance(decision, Send) and decision.message.rendered.locale == "en"


@pytest.mark.parametrize(
    ("who", "course", "step_key", "note"),
    [
        (None, COURSE, "welcome", "subscriber deleted"),
        (recipient(status="paused"), COURSE, "welcome", "subscriber paused"),
        (recipient(state="left"), COURSE, "welcome", "enrollment left"),
        (recipient(), None, "welcome", "course removed"),
        (recipient(), COURSE, "article:/gone/", "step removed"),
        # The subscriber is checked first: a paused subscriber of a removed course is "paused".
        (recipient(status="paused"), None, "welcome", "subscriber paused"),
    ],
)
def test_what_may_not_be_sent_is_cancelled_with_a_reason(
    who: Recipient | None, course: Course | None, step_key: str, note: str
) -> None:
    decision = before_send(claimed(step_key=step_key), who, course, ctx(), render=simple_render)
    assert decision == Cancel(note)


def broken(course: Course, step: Step, locale: str) -> RenderedStep:
    raise TemplateError("welcome.mjml:3: unexpected end of template")


def test_a_template_error_is_retried_with_backoff_then_given_up() -> None:
    first = before_send(claimed(attempts=1), recipient(), COURSE, ctx(), render=broken)
    assert isinstance(first, Retry)
    assert first.error == "cannot build the email: welcome.mjml:3: unexpected end of template"
    assert T0 <= first.at <= T0 + dt.timedelta(seconds=60)
    last = before_send(claimed(attempts=3), recipient(), COURSE, ctx(), render=broken)
    assert last == Fail(
        "cannot build the email: welcome.mjml:3: unexpected end of template (gave up after 3 attempts)"
    )


def test_right_before_sending_it_goes_only_to_an_active_subscriber_in_the_course() -> None:
    assert refusal("active", "active") is None
    assert refusal("unsubscribed", "active") == "subscriber unsubscribed"
    assert refusal("paused", "active") == "subscriber paused"
    assert refusal("active", "left") == "enrollment left"


def test_the_hand_off_mark_says_what_goes_what_was_cancelled_and_what_is_not_ours() -> None:
    item = claimed()
    assert at_hand_off(item, HandOff(frozenset({7}), {})) is None
    # The mark's re-check saw the subscriber gone and recorded the cancel in its transaction.
    assert at_hand_off(item, HandOff(frozenset(), {7: "subscriber unsubscribed"})) == Cancel(
        "subscriber unsubscribed"
    )
    # Neither marked nor cancelled: another worker took it, it was recorded, or erased.
    assert at_hand_off(item, HandOff(frozenset({8}), {9: "enrollment left"})) == LeaseLost()


@pytest.mark.parametrize(
    ("count", "size", "lengths"),
    [
        (0, 4, []),
        (1, 4, [1]),
        (200, 4, [4] * 50),  # SMTP: an unsubscribe waits for four messages at most
        (10, 4, [4, 4, 2]),
        (200, 100, [100, 100]),  # outbox and memory
        (1000, 1000, [1000]),  # SendGrid: one request
        (3, 0, [1, 1, 1]),  # a nonsense size still hands over one at a time
    ],
)
def test_a_batch_is_handed_over_in_chunks_of_the_transports_size_in_order(
    count: int, size: int, lengths: list[int]
) -> None:
    items = list(range(count))
    got = chunks(items, size)
    assert [len(c) for c in got] == lengths
    assert [i for c in got for i in c] == items


def test_a_hand_off_is_checked_against_the_lease_at_the_real_moment_not_the_pass_start() -> None:
    assert clock_at(T0, 12.5) == T0 + dt.timedelta(seconds=12.5)
    assert clock_at(T0, -1.0) == T0  # a clock that went back never moves a hand-off earlier


def test_the_transports_answer_becomes_sent_retry_or_failed() -> None:
    item = claimed(attempts=1)
    assert after_send(item, SendResult(7, provider_id="<7@x>"), ctx()) == Sent("<7@x>")
    bounced = after_send(item, SendResult(7, error=PermanentTransportError("550 no such mailbox")), ctx())
    assert bounced == Fail("PermanentTransportError: 550 no such mailbox")
    slow = after_send(item, SendResult(7, error=TransientTransportError("429", retry_after=900)), ctx())
    assert isinstance(slow, Retry) and slow.error == "TransientTransportError: 429"
    assert slow.at >= T0 + dt.timedelta(seconds=900)
    out = after_send(claimed(attempts=3), SendResult(7, error=TransientTransportError("421")), ctx())
    assert out == Fail("TransientTransportError: 421 (gave up after 3 attempts)")


def test_the_same_seed_gives_the_same_retry_time() -> None:
    error = SendResult(7, error=TransientTransportError("421"))
    assert after_send(claimed(attempts=2), error, ctx(seed=4)) == after_send(
        claimed(attempts=2), error, ctx(seed=4)
    )


def test_backoff_grows_exponentially_is_capped_and_honours_retry_after() -> None:
    rng = random.Random(1)
    for attempts in range(1, 12):
        ceiling = min(3600.0, 60.0 * 2 ** (attempts - 1))
        delays = [backoff_delay(attempts, base=60, cap=3600, retry_after=None, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range
    assert backoff_delay(1, base=60, cap=3600, retry_after=7200, rng=rng) == 7200


def test_each_decision_is_recorded_under_the_lease() -> None:
    item = claimed()
    at = T0 + dt.timedelta(minutes=3)
    assert outcome(item, Sent("<p>")) == Outcome(7, TOKEN, "sent", provider_id="<p>")
    assert outcome(item, Retry("e", at)) == Outcome(7, TOKEN, "retry", error="e", retry_at=at)
    assert outcome(item, Fail("e")) == Outcome(7, TOKEN, "failed", error="e")
    assert outcome(item, Cancel("subscriber paused")) == Outcome(
        7, TOKEN, "cancelled", note="subscriber paused"
    )
