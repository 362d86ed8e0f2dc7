"""One dispatch pass: send-time checks, personalisation, retries with backoff, permanent failures."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbfixtures import Store
from delivery_fixtures import (
    T0,
    RecordingTransport,
    make_course,
    make_site,
    rows,
    seed,
    simple_render,
)

from drip.config import Site, load_site
from drip.course.models import Course, Step
from drip.dispatch.batch import DispatchReport, dispatch_once
from drip.dispatch.worker import run_forever
from drip.errors import PermanentTransportError, TemplateError, TransientTransportError
from drip.render.rendered import RenderedStep
from drip.runtime import Runtime, demo_key_allowed, frozen_clock
from drip.store.schema import enrollments, subscribers
from drip.store.subscribers import unsubscribe
from drip.store.subscriptions import leave
from drip.tokens import DEMO_SECRET, MissingSecret, read_token
from drip.transports.base import OutgoingMessage, SendResult

SECRET = "k" * 32
H = dt.timedelta(hours=1)


def runtime(clock: dt.datetime = T0) -> Runtime:
    return Runtime.for_tests(SECRET, clock=frozen_clock(clock))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path / "site", batch_size=50, max_attempts=3)


def run(
    site: Site, store: Store, transport: RecordingTransport, now: dt.datetime, course: Course | None = None
) -> DispatchReport:
    course = course or make_course()
    return dispatch_once(
        site,
        store.engine,
        transport,
        runtime=runtime(),
        now=now,
        worker="t",
        courses={course.slug: course},
        renderer=simple_render,
        rng=random.Random(7),
    )


def test_due_deliveries_are_personalised_sent_and_recorded(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0), ("article:/a/", T0 + 48 * H)])
    with store.engine.begin() as conn:
        conn.execute(subscribers.update().where(subscribers.c.id == 2).values(name='<b>"Zoé"</b>'))
    transport = RecordingTransport()
    report = run(site, store, transport, T0)
    assert (report.claimed, report.sent, report.failed, report.cancelled) == (3, 3, 0, 0)
    assert sorted(m.to_email for m in transport.sent) == [f"lecteur{i}@example.org" for i in (1, 2, 3)]
    zoe = next(m for m in transport.sent if m.to_email == "lecteur2@example.org")
    subject, html, text = zoe.rendered.personalise(zoe.values)
    assert subject == 'Étape 1 pour <b>"Zoé"</b>'
    assert "Bonjour &lt;b&gt;&quot;Zoé&quot;&lt;/b&gt; de Société 2" in html
    assert 'Bonjour <b>"Zoé"</b>' in text
    # The links carry tokens scoped to their action, for this subscriber and course.
    assert zoe.unsubscribe_url.startswith("https://cto.example.org/unsubscribe/")
    token = read_token(SECRET, zoe.unsubscribe_url.rpartition("/")[2], "unsubscribe", now=T0)
    assert (token.subscriber_id, token.course) == (2, "cours")
    assert zoe.list_title == "Le rôle du CTO"  # List-ID's display name: the course's title
    view = read_token(SECRET, zoe.values["view_url"].rpartition("/")[2], "view", now=T0)
    assert view.step == "welcome"
    assert zoe.values["preferences_url"].startswith("https://cto.example.org/preferences/")
    assert zoe.message_id_domain == "cto.example.org"
    assert zoe.unsubscribe_mailto.startswith("mailto:lettre@cto.example.org?")
    by_key = {(r.subscriber_id, r.step_key): r for r in rows(store.engine)}
    assert by_key[(2, "welcome")].status == "sent"
    assert by_key[(2, "welcome")].provider_id == f"<{by_key[(2, 'welcome')].id}@recording>"
    assert by_key[(2, "article:/a/")].status == "pending"
    # Nothing more is due; two days later the last step goes and the enrollments complete.
    assert run(site, store, transport, T0 + H).claimed == 0
    later = run(site, store, transport, T0 + 48 * H)
    assert (later.sent, later.completed) == (3, 3)
    with store.engine.connect() as conn:
        assert set(conn.execute(sa.select(enrollments.c.state)).scalars()) == {"completed"}


def test_a_subscriber_who_left_before_the_pass_is_cancelled_with_a_reason(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])
    with store.engine.begin() as conn:
        conn.execute(subscribers.update().where(subscribers.c.id == 1).values(status="paused"))
    transport = RecordingTransport()
    report = run(site, store, transport, T0)
    assert [m.to_email for m in transport.sent] == ["lecteur2@example.org"]
    assert report.cancelled == 1
    notes = {r.subscriber_id: (r.status, r.note) for r in rows(store.engine)}
    assert notes[1] == ("cancelled", "subscriber paused")


def test_unsubscribe_between_claim_and_send_sends_nothing(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0)])

    def render_while_they_leave(course: Course, step: Step, locale: str) -> RenderedStep:
        # The batch is claimed; while it is being rendered, subscriber 2 unsubscribes.
        with store.engine.begin() as conn:
            unsubscribe(conn, "lecteur2@example.org", now=T0)
        return simple_render(course, step, locale)

    transport = RecordingTransport()
    course = make_course()
    report = dispatch_once(
        site,
        store.engine,
        transport,
        runtime=runtime(),
        worker="t",
        courses={course.slug: course},
        renderer=render_while_they_leave,
    )
    assert sorted(m.to_email for m in transport.sent) == ["lecteur1@example.org", "lecteur3@example.org"]
    assert report.sent == 2
    statuses = {r.subscriber_id: r.status for r in rows(store.engine)}
    assert statuses == {1: "sent", 2: "cancelled", 3: "sent"}


def test_one_bad_recipient_fails_alone_and_transient_errors_back_off(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=4, steps=[("welcome", T0)])
    transport = RecordingTransport(
        failures={
            "lecteur1@example.org": PermanentTransportError("550 5.1.1 no such mailbox"),
            "lecteur2@example.org": TransientTransportError("421 try again later"),
            "lecteur3@example.org": TransientTransportError("429 slow down", retry_after=900),
        }
    )
    report = run(site, store, transport, T0)
    assert (report.sent, report.failed, report.retried) == (1, 1, 2)
    by_sub = {r.subscriber_id: r for r in rows(store.engine)}
    assert (by_sub[1].status, by_sub[1].last_error) == (
        "failed",
        "PermanentTransportError: 550 5.1.1 no such mailbox",
    )
    assert by_sub[2].status == "pending"
    # Full jitter on the first retry: somewhere in [0, base].
    assert T0 <= by_sub[2].due_at <= T0 + dt.timedelta(seconds=60)
    # The provider asked for 15 minutes: never sooner.
    assert by_sub[3].status == "pending" and by_sub[3].due_at >= T0 + dt.timedelta(seconds=900)
    assert by_sub[4].status == "sent"
    # The good recipient is not sent again when the others are retried.
    later = T0 + 2 * H
    run(site, store, transport, later)
    assert [m.to_email for m in transport.sent] == ["lecteur4@example.org"]
    # Third attempt is the last (max_attempts = 3): failed with the last error.
    run(site, store, transport, later + 2 * H)
    by_sub = {r.subscriber_id: r for r in rows(store.engine)}
    assert by_sub[2].attempts == 3 and by_sub[2].status == "failed"
    assert by_sub[2].last_error == "TransientTransportError: 421 try again later (gave up after 3 attempts)"
    assert [m.to_email for m in transport.sent] == ["lecteur4@example.org"]


def test_a_message_the_transport_accepted_while_its_reader_unsubscribed_is_recorded_sent(
    site: Site, store: Store
) -> None:
    """The ledger says what went out, and the unsubscribe answers once that is recorded, not before."""
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0)])
    landed = threading.Event()
    answered: list[float] = []

    def leave_now() -> None:
        assert leave(store.engine, 2, None, now=T0) is not None
        answered.append(time.monotonic())

    def status_of_2() -> str:
        with store.engine.connect() as conn:
            return str(
                conn.execute(sa.select(subscribers.c.status).where(subscribers.c.id == 2)).scalar_one()
            )

    class Accepting(RecordingTransport):
        recorded_at = 0.0

        def send_batch(self, messages, *, now=None):  # type: ignore[no-untyped-def]
            if any(m.to_email == "lecteur2@example.org" for m in messages):
                # Mid hand-off: the reader unsubscribes, and it commits while this send runs
                # (no lock of dispatch is in its way); the provider then accepts the message.
                threading.Thread(target=leave_now).start()
                deadline = time.monotonic() + 5
                while status_of_2() != "unsubscribed" and time.monotonic() < deadline:
                    time.sleep(0.01)
                if status_of_2() == "unsubscribed":
                    landed.set()
                time.sleep(0.2)  # the unsubscribe is waiting for this send's outcome now
                self.recorded_at = time.monotonic()
            return super().send_batch(messages, now=now)

    transport = Accepting(handoff_size=1)
    report = run(site, store, transport, T0)
    deadline = time.monotonic() + 10
    while not answered and time.monotonic() < deadline:
        time.sleep(0.01)
    assert landed.is_set(), "the unsubscribe waited for the send instead of committing beside it"
    assert report.sent == 3
    # Recorded sent, not cancelled: the provider had it, whatever the reader did meanwhile.
    statuses = {r.subscriber_id: (r.status, r.handed_off_at) for r in rows(store.engine)}
    assert statuses == {1: ("sent", None), 2: ("sent", None), 3: ("sent", None)}
    # The unsubscribe answered only after the send it raced was over.
    assert answered and answered[0] > transport.recorded_at


def test_with_no_batch_size_set_a_pass_leases_as_many_as_its_transport_takes(
    tmp_path: Path, store: Store
) -> None:
    root = make_site(tmp_path / "site").root
    config = root / "drip.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("  batch_size: 50\n", ""), encoding="utf-8")
    site = load_site(root)
    assert site.config.dispatch.batch_size is None
    seed(store.engine, subscribers_count=9, steps=[("welcome", T0)])

    class ThreeAtATime(RecordingTransport):
        batch_size = 3

    transport = ThreeAtATime()
    report = run(site, store, transport, T0)
    assert (report.claimed, report.full) == (3, True)
    config.write_text(config.read_text(encoding="utf-8") + "  batch_size: 4\n", encoding="utf-8")
    report = run(load_site(root), store, transport, T0)  # drip.yaml's wins
    assert (report.claimed, report.full) == (4, True)
    report = run(site, store, transport, T0)
    assert (report.claimed, report.full) == (2, False)


def test_a_pass_turns_the_garbage_collector_back_on_even_when_it_fails(site: Site, store: Store) -> None:
    """The collector pauses during a pass only: on after it, raised or not; off stays off."""
    import gc

    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])

    class Exploding(RecordingTransport):
        def send_batch(
            self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
        ) -> list[SendResult]:
            assert not gc.isenabled()
            raise KeyboardInterrupt  # not a transport error: it goes through the pass

    assert gc.isenabled()
    with pytest.raises(KeyboardInterrupt):
        run(site, store, Exploding(), T0)
    assert gc.isenabled()
    gc.disable()
    try:
        run(site, store, RecordingTransport(), T0 + 10 * H)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_transport_failing_the_whole_batch_retries_every_message(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])

    class Down(RecordingTransport):
        def send_batch(
            self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
        ) -> list[SendResult]:
            raise TransientTransportError("connection refused")

    report = run(site, store, Down(), T0)
    assert (report.retried, report.sent) == (2, 0)
    assert {r.status for r in rows(store.engine)} == {"pending"}
    assert {r.last_error for r in rows(store.engine)} == {"TransientTransportError: connection refused"}


def test_a_transport_bug_is_retried_with_backoff_not_left_claimed(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])

    class Broken(RecordingTransport):
        def send_batch(
            self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
        ) -> list[SendResult]:
            raise KeyError("personalizations")

    report = run(site, store, Broken(), T0)
    assert (report.retried, report.sent) == (2, 0)
    assert {r.status for r in rows(store.engine)} == {"pending"}
    assert {r.last_error for r in rows(store.engine)} == {
        "TransientTransportError: unexpected KeyError in the recording transport: 'personalizations'"
    }


def test_a_message_the_transport_gives_no_result_for_is_retried_and_the_rest_recorded(
    site: Site, store: Store
) -> None:
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0)])

    class Forgetful(RecordingTransport):
        def send_batch(
            self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
        ) -> list[SendResult]:
            return super().send_batch(messages, now=now)[1:]  # the first message's result is lost

    report = run(site, store, Forgetful(), T0)
    assert (report.sent, report.retried) == (2, 1)
    retried = [r for r in rows(store.engine) if r.status == "pending"]
    assert [r.last_error for r in retried] == [
        "TransientTransportError: the transport returned no result for this message"
    ]


def test_a_step_no_longer_in_the_course_is_cancelled(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0), ("article:/gone/", T0)])
    transport = RecordingTransport()
    report = run(site, store, transport, T0)
    assert (report.sent, report.cancelled, report.completed) == (1, 1, 1)
    notes = {r.step_key: (r.status, r.note) for r in rows(store.engine)}
    assert notes["article:/gone/"] == ("cancelled", "step removed")


def test_the_clock_drains_full_batches_and_a_stop_lets_the_batch_in_flight_finish(
    tmp_path: Path, store: Store
) -> None:
    site = make_site(tmp_path / "clock", batch_size=50, tick_seconds=3600)
    seed(store.engine, subscribers_count=170, steps=[("welcome", T0)])
    course = make_course()
    stop = threading.Event()

    class StopAfter(RecordingTransport):
        """Stop is requested (as SIGTERM does) while the second batch is in flight."""

        def send_batch(
            self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
        ) -> list[SendResult]:
            results = super().send_batch(messages, now=now)
            if self.batches == 2:
                stop.set()
            return results

    transport = StopAfter()
    report = run_forever(
        site,
        runtime=runtime(T0),
        stop_event=stop,
        worker="clock",
        engine=store.engine,
        transport=transport,
        courses={course.slug: course},
        renderer=simple_render,
    )
    # The batch in flight when the stop came was finished and recorded; no third batch
    # was claimed, though the second was full and more was due.
    assert transport.batches == 2
    assert (report.claimed, report.sent) == (100, 100)
    welcomes = [r for r in rows(store.engine) if r.step_key == "welcome"]
    assert Counter(r.status for r in welcomes) == {"sent": 100, "pending": 70}


def test_the_clock_keeps_draining_while_batches_are_full(tmp_path: Path, store: Store) -> None:
    site = make_site(tmp_path / "clock", batch_size=50, tick_seconds=3600)
    seed(store.engine, subscribers_count=170, steps=[("welcome", T0)])
    course = make_course()
    stop = threading.Event()

    class StopWhenIdle(RecordingTransport):
        def send_batch(
            self, messages: Sequence[OutgoingMessage], *, now: dt.datetime | None = None
        ) -> list[SendResult]:
            results = super().send_batch(messages, now=now)
            if len(messages) < 50:
                stop.set()  # the last, partial batch: everything due is sent
            return results

    transport = StopWhenIdle()
    report = run_forever(
        site,
        runtime=runtime(T0),
        stop_event=stop,
        worker="clock",
        engine=store.engine,
        transport=transport,
        courses={course.slug: course},
        renderer=simple_render,
    )
    # A single tick (the next one is an hour away) went on while batches came back full.
    assert transport.batches == 4
    assert (report.claimed, report.sent) == (170, 170)
    assert {r.status for r in rows(store.engine) if r.step_key == "welcome"} == {"sent"}


def test_a_template_error_is_retried_not_failed_so_a_fix_lets_the_email_go(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])
    course = make_course()

    def broken(course: Course, step: Step, locale: str) -> RenderedStep:
        raise TemplateError("email_templates/welcome.mjml:3: unexpected end of template")

    transport = RecordingTransport()
    report = dispatch_once(
        site,
        store.engine,
        transport,
        runtime=runtime(),
        worker="t",
        courses={course.slug: course},
        renderer=broken,
    )
    assert (report.retried, report.failed, transport.sent) == (2, 0, [])
    retry_at = max(r.due_at for r in rows(store.engine))
    assert {r.status for r in rows(store.engine)} == {"pending"}
    assert all("cannot build the email" in (r.last_error or "") for r in rows(store.engine))
    fixed = run(site, store, transport, retry_at)
    assert fixed.sent == 2


def test_without_a_signing_key_nothing_is_claimed(site: Site, store: Store) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0)])
    course = make_course()
    transport = RecordingTransport()
    no_key = Runtime(environ={}, demo_key=demo_key_allowed(transport.name))
    with pytest.raises(MissingSecret):
        dispatch_once(
            site, store.engine, transport, runtime=no_key, worker="t", courses={course.slug: course}
        )
    assert [r.status for r in rows(store.engine)] == ["pending"]


def test_the_outbox_alone_may_sign_with_the_demo_key(
    site: Site, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])
    course = make_course()
    outbox = RecordingTransport(name="outbox")
    demo = Runtime(environ={}, clock=frozen_clock(T0), demo_key=demo_key_allowed(outbox.name))
    for _ in range(2):
        dispatch_once(
            site,
            store.engine,
            outbox,
            runtime=demo,
            worker="t",
            courses={course.slug: course},
            renderer=simple_render,
        )
    assert len(outbox.sent) == 2
    token = outbox.sent[0].unsubscribe_url.rpartition("/")[2]
    assert read_token(DEMO_SECRET, token, "unsubscribe", now=T0).course == "cours"
    assert sum("public demo key" in r.getMessage() for r in caplog.records) == 1
