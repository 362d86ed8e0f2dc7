"""Newsletters on the clock, on SQLite and PostgreSQL: issues created when their slot comes, sent by the
real dispatch through the outbox, per-reader digests, broadcasts, the grace period and a crash mid-creation."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from delivery_fixtures import T0, seed
from newsletter_support import DIGEST, make_site, write
from test_lists import readers

from drip.config import Site, load_site
from drip.dispatch.batch import DispatchReport
from drip.dispatch.decide import refusal
from drip.dispatch.newsletters import NOTHING_NEW, plan_newsletters
from drip.dispatch.worker import drain, run_forever
from drip.render.rendered import LruCache
from drip.runtime import ISSUE_RENDERS, Runtime, frozen_clock
from drip.store.claims import claim
from drip.store.deliveries import hand_off
from drip.store.issues import create_issue, create_issue_deliveries, list_issues
from drip.store.lists import LEFT_NOTE, Member, join_lists
from drip.store.schema import deliveries, list_members, subscribers
from drip.tokens import read_token
from drip.transports.memory import MemoryTransport
from drip.transports.outbox import OutboxTransport

PARIS = ZoneInfo("Europe/Paris")
MONDAY_9 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)
MINUTE = dt.timedelta(minutes=1)
SECRET = "k" * 40
OPEN_LIST = """\
kind: list
title: "La lettre du CTO"
hold_during_course: false
no_repeat_days: 30
"""
SINCE_DEC_1 = DIGEST + "since: 2026-12-01\n"  # Vision (Dec 2) and Recruter (Dec 3) are new on Monday
BROADCAST = """\
---
subject: "Une annonce"
preheader: "Pour tous"
list: lettre
send_at: 2026-12-08 10:00
---

Bonjour, voici **une annonce**.
"""


def _site(tmp_path: Path, *, digest: str = SINCE_DEC_1) -> Site:
    return make_site(tmp_path / "site", digest=digest, lists=OPEN_LIST)


def _members(engine: sa.Engine, ids: Sequence[int]) -> None:
    with engine.begin() as conn:
        join_lists(conn, ids, ["lettre"], now=T0)


def _run(
    site: Site, engine: sa.Engine, outbox: Path, now: dt.datetime, runtime: Runtime | None = None
) -> DispatchReport:
    """What ``drip run --once`` does at ``now``: plan the newsletters, then drain through the outbox."""
    runtime = runtime or Runtime.for_tests(SECRET, clock=frozen_clock(now.astimezone(dt.UTC)))
    return drain(site, engine, OutboxTransport(outbox), runtime=runtime, worker="test", courses={})


def _email(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _emails(outbox: Path) -> list[EmailMessage]:
    return [_email(path) for path in sorted(outbox.glob("*.eml"))]


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _by_reader(outbox: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for msg in _emails(outbox):
        found.setdefault(str(msg["To"]).split("<")[-1].rstrip(">"), []).append(_text(msg))
    return found


def test_a_digest_with_two_new_posts_goes_once_to_every_member(tmp_path: Path, engine: sa.Engine) -> None:
    site = _site(tmp_path)
    readers(engine, 3)
    _members(engine, [1, 2, 3])
    outbox = tmp_path / "outbox"
    assert _run(site, engine, outbox, MONDAY_9 - MINUTE).claimed == 0
    report = _run(site, engine, outbox, MONDAY_9 + MINUTE)
    assert report.sent == 3
    _run(site, engine, outbox, MONDAY_9 + 5 * MINUTE)  # the next tick: nothing new
    got = _by_reader(outbox)
    assert sorted(got) == [f"lecteur{i}@example.org" for i in (1, 2, 3)]
    for texts in got.values():
        assert len(texts) == 1
        assert "Vision" in texts[0] and "Recruter" in texts[0]
        assert "Premiers jours" not in texts[0]  # published before the digest's start
    with engine.connect() as conn:
        issues = list_issues(conn, "lettre")
    assert [i.key for i in issues] == ["hebdo:2026-12-07T09:00+01:00"]


def test_no_new_post_means_no_issue(tmp_path: Path, engine: sa.Engine) -> None:
    site = _site(tmp_path, digest=DIGEST + "since: 2026-12-04\n")
    readers(engine, 2)
    _members(engine, [1, 2])
    outbox = tmp_path / "outbox"
    assert _run(site, engine, outbox, MONDAY_9 + MINUTE).claimed == 0
    with engine.connect() as conn:
        assert list_issues(conn, "lettre") == []
    assert _emails(outbox) == [] if outbox.exists() else True


def test_a_reader_mid_course_does_not_get_the_post_their_course_sends_thursday(
    tmp_path: Path, engine: sa.Engine
) -> None:
    site = _site(tmp_path)
    thursday = dt.datetime(2026, 12, 10, 8, tzinfo=dt.UTC)
    seed(engine, subscribers_count=3, steps=[("article:/posts/vision/", thursday)], course="cours")
    with engine.begin() as conn:  # only reader 1 is still in the course
        conn.execute(sa.update(deliveries).where(deliveries.c.subscriber_id != 1).values(status="cancelled"))
    _members(engine, [1, 2, 3])
    outbox = tmp_path / "outbox"
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock((MONDAY_9 + MINUTE).astimezone(dt.UTC)))
    _run(site, engine, outbox, MONDAY_9 + MINUTE, runtime)
    assert len(runtime.issue_renders) == 2  # rendered once for readers 2 and 3, once for reader 1's subset
    got = _by_reader(outbox)
    assert len(got["lecteur1@example.org"]) == 1
    assert "Recruter" in got["lecteur1@example.org"][0]
    assert "Vision" not in got["lecteur1@example.org"][0]
    for other in ("lecteur2@example.org", "lecteur3@example.org"):
        assert "Vision" in got[other][0] and "Recruter" in got[other][0]


def test_a_reader_whose_course_sends_every_post_gets_no_issue(tmp_path: Path, engine: sa.Engine) -> None:
    site = _site(tmp_path)
    thursday = dt.datetime(2026, 12, 10, 8, tzinfo=dt.UTC)
    steps = [("article:/posts/vision/", thursday), ("article:/equipe/recrutement/", thursday)]
    seed(engine, subscribers_count=2, steps=steps, course="cours")
    with engine.begin() as conn:
        conn.execute(sa.update(deliveries).where(deliveries.c.subscriber_id != 1).values(status="cancelled"))
    _members(engine, [1, 2])
    outbox = tmp_path / "outbox"
    _run(site, engine, outbox, MONDAY_9 + MINUTE)
    assert sorted(_by_reader(outbox)) == ["lecteur2@example.org"]
    with engine.connect() as conn:
        (issue,) = list_issues(conn, "lettre")
    assert issue.counts is not None and issue.counts["excluded"] == {NOTHING_NEW: 1}


def test_a_broadcast_goes_out_at_its_send_at(tmp_path: Path, engine: sa.Engine) -> None:
    site = _site(tmp_path, digest=DIGEST + "since: 2026-12-04\n")
    write(site.root, "content/newsletters/annonce.md", BROADCAST)
    readers(engine, 2)
    _members(engine, [1, 2])
    outbox = tmp_path / "outbox"
    send_at = dt.datetime(2026, 12, 8, 10, tzinfo=PARIS)
    assert _run(site, engine, outbox, send_at - MINUTE).claimed == 0
    assert _run(site, engine, outbox, send_at + MINUTE).sent == 2
    _run(site, engine, outbox, send_at + 10 * MINUTE)
    emails = _emails(outbox)
    assert len(emails) == 2
    assert {str(m["Subject"]) for m in emails} == {"Une annonce"}
    assert "une annonce" in _text(emails[0])
    # RFC 2919: the list the email came from, its title quoted, its name as the label.
    assert {str(m["List-ID"]) for m in emails} == {'"La lettre du CTO" <lettre.cto.example.org>'}
    # Its one-click unsubscribe token names the list, signed, so it leaves that list only.
    link = str(emails[0]["List-Unsubscribe"]).split(">", 1)[0].lstrip("<")
    token = read_token(SECRET, link.rpartition("/")[2], "unsubscribe", now=send_at.astimezone(dt.UTC))
    assert token.course == "lettre"


@pytest.mark.parametrize(("late", "sent"), [(dt.timedelta(hours=5), 2), (dt.timedelta(hours=7), 0)])
def test_a_worker_down_during_the_slot_sends_it_once_within_the_grace_period(
    tmp_path: Path, engine: sa.Engine, late: dt.timedelta, sent: int
) -> None:
    site = _site(tmp_path)
    readers(engine, 2)
    _members(engine, [1, 2])
    outbox = tmp_path / "outbox"
    assert _run(site, engine, outbox, MONDAY_9 + late).sent == sent
    assert _run(site, engine, outbox, MONDAY_9 + late + MINUTE).sent == 0
    assert len(_emails(outbox) if outbox.exists() else []) == sent


@pytest.mark.parametrize(
    ("grace", "late", "sent"),
    [
        ("", dt.timedelta(hours=5), 1),
        ("", dt.timedelta(hours=7), 0),
        ("grace: 2d\n", dt.timedelta(days=1), 1),
        ("grace: 30m\n", dt.timedelta(hours=1), 0),
    ],
)
def test_a_broadcast_is_sent_late_only_within_its_grace_period(
    tmp_path: Path, engine: sa.Engine, grace: str, late: dt.timedelta, sent: int
) -> None:
    site = _site(tmp_path, digest=DIGEST + "since: 2026-12-04\n")
    write(site.root, "content/newsletters/annonce.md", BROADCAST.replace("send_at:", grace + "send_at:"))
    readers(engine, 1)
    _members(engine, [1])
    outbox = tmp_path / "outbox"
    send_at = dt.datetime(2026, 12, 8, 10, tzinfo=PARIS)
    assert _run(site, engine, outbox, send_at + late).sent == sent
    with engine.connect() as conn:
        assert len(list_issues(conn, "lettre")) == sent


def test_a_crash_while_writing_an_issue_then_resume_sends_nobody_twice(
    tmp_path: Path, engine: sa.Engine
) -> None:
    site = _site(tmp_path)
    readers(engine, 7)
    _members(engine, range(1, 8))
    slot = MONDAY_9.astimezone(dt.UTC)
    issue = create_issue(
        engine,
        list="lettre",
        key="hebdo:2026-12-07T09:00+01:00",
        kind="digest",
        send_at=slot,
        post_urls=["/posts/vision/", "/equipe/recrutement/"],
        now=slot,
    )
    assert issue is not None
    batches = 0

    def crash_on_the_third_batch(batch: Sequence[Member]) -> dict[int, str]:
        nonlocal batches
        batches += 1
        if batches == 3:
            raise RuntimeError("killed")
        return {}

    with pytest.raises(RuntimeError):
        create_issue_deliveries(engine, issue, batch_size=2, exclude=crash_on_the_third_batch, now=slot)
    outbox = tmp_path / "outbox"
    _run(site, engine, outbox, MONDAY_9 + MINUTE)
    _run(site, engine, outbox, MONDAY_9 + 2 * MINUTE)
    got = _by_reader(outbox)
    assert sorted(got) == sorted(f"lecteur{i}@example.org" for i in range(1, 8))
    assert all(len(texts) == 1 for texts in got.values())
    with engine.connect() as conn:
        assert len(list_issues(conn, "lettre")) == 1


def test_the_hand_off_cancels_an_issue_email_whose_reader_left_the_list_after_the_claim(
    tmp_path: Path, engine: sa.Engine
) -> None:
    site = _site(tmp_path)
    readers(engine, 2)
    _members(engine, [1, 2])
    now = (MONDAY_9 + MINUTE).astimezone(dt.UTC)
    assert plan_newsletters(site, engine, now=now)
    batch = claim(engine, now=now, limit=10, lease_seconds=60, worker="t")
    assert {c.enrollment_id for c in batch} == {None}
    with engine.begin() as conn:  # the membership ends, the claimed row is left as it is
        conn.execute(
            sa.update(list_members).where(list_members.c.subscriber_id == 2).values(state="left", left_at=now)
        )
    done = hand_off(engine, [c.id for c in batch], batch[0].lease_token, now=now, refusal=refusal)
    by_subscriber = {c.subscriber_id: c.id for c in batch}
    assert done.marked == {by_subscriber[1]}
    assert done.cancelled == {by_subscriber[2]: LEFT_NOTE}


def test_a_digest_sets_its_own_grace_period(tmp_path: Path, engine: sa.Engine) -> None:
    site = _site(tmp_path, digest=SINCE_DEC_1 + "grace: 2h\n")
    readers(engine, 1)
    _members(engine, [1])
    outbox = tmp_path / "outbox"
    assert _run(site, engine, outbox, MONDAY_9 + dt.timedelta(hours=3)).sent == 0
    with engine.connect() as conn:
        assert list_issues(conn, "lettre") == []


def test_a_send_window_digest_is_due_at_the_window_in_each_readers_zone(
    tmp_path: Path, engine: sa.Engine
) -> None:
    window = 'kind: digest\nlist: lettre\nsend_window: {time: "09:00", days: [mon]}\nposts: all\n'
    site = _site(tmp_path, digest=window + "since: 2026-12-01\n")
    readers(engine, 2)
    with engine.begin() as conn:
        conn.execute(sa.update(subscribers).where(subscribers.c.id == 2).values(timezone="America/New_York"))
    _members(engine, [1, 2])
    outbox = tmp_path / "outbox"
    assert _run(site, engine, outbox, MONDAY_9 + MINUTE).sent == 1  # Paris now; New York at its own 09:00
    with engine.connect() as conn:
        due = dict(conn.execute(sa.select(deliveries.c.subscriber_id, deliveries.c.due_at)).all())
    assert due[1] == MONDAY_9.astimezone(dt.UTC)
    assert due[2] == dt.datetime(2026, 12, 7, 14, 0, tzinfo=dt.UTC)
    assert _run(site, engine, outbox, dt.datetime(2026, 12, 7, 14, 1, tzinfo=dt.UTC)).sent == 1
    assert len(_emails(outbox)) == 2


def test_the_worker_loop_plans_newsletters_in_its_own_job_and_sends_them(
    tmp_path: Path, engine: sa.Engine
) -> None:
    site = _site(tmp_path)
    with (site.root / "drip.yaml").open("a", encoding="utf-8") as f:
        f.write("dispatch:\n  tick_seconds: 0.2\n")
    site = load_site(site.root)
    readers(engine, 2)
    _members(engine, [1, 2])
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock((MONDAY_9 + MINUTE).astimezone(dt.UTC)))
    transport = MemoryTransport()
    stop = threading.Event()
    worker = threading.Thread(
        target=run_forever,
        kwargs={
            "site": site,
            "runtime": runtime,
            "stop_event": stop,
            "engine": engine,
            "transport": transport,
        },
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(transport.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert sorted(s.message.to_email for s in transport.sent) == [
        "lecteur1@example.org",
        "lecteur2@example.org",
    ]


def test_planning_starts_a_progress_bar_per_issue_whose_emails_it_writes(
    tmp_path: Path, engine: sa.Engine
) -> None:
    site = _site(tmp_path)
    readers(engine, 3)
    _members(engine, [1, 2, 3])
    bars: dict[str, list[tuple[int, int]]] = {}

    def start(description: str) -> Callable[[int, int], None]:
        calls = bars.setdefault(description, [])
        return lambda done, total: calls.append((done, total))

    now = (MONDAY_9 + MINUTE).astimezone(dt.UTC)
    assert plan_newsletters(site, engine, now=now, progress=start)
    ((description, calls),) = bars.items()
    assert description.startswith("lettre: issue ") and calls == [(3, 3)]


def test_the_issue_render_cache_keeps_the_most_recent_few() -> None:
    cache: LruCache[str, int] = LruCache(2)
    made: list[str] = []

    def make(key: str) -> int:
        def render() -> int:
            made.append(key)
            return len(made)

        return cache.get_or_make(key, render)

    assert (make("a"), make("b"), make("a")) == (1, 2, 1)  # "a" is now the most recent
    assert make("c") == 3  # full: "b", the least recently used, goes
    assert "b" not in cache and "a" in cache and len(cache) == 2
    assert make("b") == 4 and made == ["a", "b", "c", "b"]
    assert "a" not in cache and "c" in cache  # "a" was used before "c", so it went first
    runtime = Runtime.for_tests(SECRET)
    assert runtime.issue_renders.max_size == ISSUE_RENDERS <= 100


def test_a_run_renders_each_new_issue_once_for_its_archive_copy_and_all_its_emails(
    tmp_path: Path, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning renders the issue for its public copy; the sends of the same run reuse that render."""
    import drip.dispatch.newsletters as newsletters

    site = make_site(tmp_path / "site", digest=SINCE_DEC_1, lists=OPEN_LIST + "archive: true\n")
    write(
        site.root, "content/newsletters/annonce.md", BROADCAST.replace("2026-12-08 10:00", "2026-12-07 09:00")
    )
    readers(engine, 3)
    _members(engine, [1, 2, 3])
    calls: list[str] = []
    for name in ("render_digest", "render_broadcast"):
        real = getattr(newsletters, name)

        def counted(
            *args: object, _real: Callable[..., object] = real, _name: str = name, **kw: object
        ) -> object:
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(newsletters, name, counted)
    now = (MONDAY_9 + MINUTE).astimezone(dt.UTC)
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock(now))
    report = _run(site, engine, tmp_path / "outbox", now, runtime)
    assert report.sent == 6  # the digest and the broadcast, to three readers each
    assert sorted(calls) == ["render_broadcast", "render_digest"]
    with engine.connect() as conn:
        issues = list_issues(conn, "lettre")
    assert len(issues) == 2 and all(issue.public_copy for issue in issues)


def test_a_broken_post_does_not_hold_up_a_broadcast(tmp_path: Path, engine: sa.Engine) -> None:
    """A broadcast is rendered from its own file: a post that does not parse stops the digest only,
    at planning (the digest due at the same moment is not created) and at sending."""
    site = _site(tmp_path)
    send_at = MONDAY_9.strftime("%Y-%m-%d %H:%M")
    write(site.root, "content/newsletters/annonce.md", BROADCAST.replace("2026-12-08 10:00", send_at))
    readers(engine, 2)
    _members(engine, [1, 2])
    write(site.root, "content/posts/casse.md", "---\ntitle: [pas fermé\n---\n\nTexte.\n")
    outbox = tmp_path / "outbox"
    assert _run(site, engine, outbox, MONDAY_9 + MINUTE).sent == 2
    assert {str(m["Subject"]) for m in _emails(outbox)} == {"Une annonce"}
    with engine.connect() as conn:
        assert [i.kind for i in list_issues(conn, "lettre")] == ["broadcast"]


def test_a_worker_sees_a_list_changed_between_two_passes(tmp_path: Path, engine: sa.Engine) -> None:
    """Lists and broadcasts are kept between passes, and read again once a file of theirs changes."""
    from drip.dispatch.batch import dispatch_once

    site = _site(tmp_path, digest=DIGEST + "since: 2026-12-04\n")
    write(site.root, "content/newsletters/annonce.md", BROADCAST)
    write(
        site.root,
        "drip.yaml",
        (site.root / "drip.yaml").read_text(encoding="utf-8") + "dispatch:\n  batch_size: 2\n",
    )
    site = load_site(site.root)
    readers(engine, 4)
    _members(engine, [1, 2, 3, 4])
    now = dt.datetime(2026, 12, 8, 10, 1, tzinfo=PARIS).astimezone(dt.UTC)
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock(now))
    outbox = OutboxTransport(tmp_path / "outbox")
    assert plan_newsletters(site, engine, now=now, runtime=runtime)

    def one_pass() -> set[str]:
        before = set(outbox.directory.glob("*.eml")) if outbox.directory.exists() else set()
        assert dispatch_once(site, engine, outbox, runtime=runtime, worker="t", now=now).sent == 2
        return {str(_email(path)["List-ID"]) for path in set(outbox.directory.glob("*.eml")) - before}

    assert one_pass() == {'"La lettre du CTO" <lettre.cto.example.org>'}
    write(
        site.root,
        "schedules/lettre.yaml",
        OPEN_LIST.replace("La lettre du CTO", "La lettre, nouvelle formule"),
    )
    assert one_pass() == {'"La lettre, nouvelle formule" <lettre.cto.example.org>'}


def test_a_worker_plans_a_broadcast_added_after_its_last_planning_tick(
    tmp_path: Path, engine: sa.Engine
) -> None:
    """Planning keeps the definitions on the worker's runtime between ticks, and reads them again
    once a file of theirs changes: a broadcast written after a tick is planned at the next one."""
    site = _site(tmp_path, digest=DIGEST + "since: 2026-12-04\n")
    write(site.root, "content/newsletters/annonce.md", BROADCAST)
    readers(engine, 2)
    _members(engine, [1, 2])
    now = dt.datetime(2026, 12, 8, 10, 1, tzinfo=PARIS).astimezone(dt.UTC)
    runtime = Runtime.for_tests(SECRET, clock=frozen_clock(now))
    assert len(plan_newsletters(site, engine, now=now, runtime=runtime)) == 1
    assert plan_newsletters(site, engine, now=now, runtime=runtime) == []  # unchanged: nothing new
    write(site.root, "content/newsletters/rappel.md", BROADCAST.replace("Une annonce", "Un rappel"))
    assert len(plan_newsletters(site, engine, now=now, runtime=runtime)) == 1
    with engine.connect() as conn:
        assert sorted(i.subject for i in list_issues(conn, "lettre")) == ["Un rappel", "Une annonce"]
    # The worker's own renders were given the new issues, for the sends that follow.
    assert len(runtime.issue_renders) == 2
