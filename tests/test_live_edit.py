"""Editing a live course: added (ahead or behind), removed, reordered steps; plan writes nothing."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dbfixtures import Store, sqlite_store
from delivery_fixtures import (
    RecordingTransport,
    make_course,
    make_site,
    rows,
    simple_render,
)

from drip.config import Site
from drip.course.edits import ADDED_BEHIND, MOVED_BEHIND, cadence
from drip.course.models import Course
from drip.dispatch.batch import dispatch_once
from drip.runtime import Runtime
from drip.store.claims import claim, record_sent
from drip.store.course_edits import apply, plan
from drip.store.enrollments import enroll
from drip.store.schema import course_versions, deliveries, subscribers

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)  # 09:00 in Paris
DAY = dt.timedelta(days=1)
V1 = [("welcome", 0), ("article:/a/", 2), ("article:/b/", 4), ("article:/c/", 6)]


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIP_SECRET_KEY", "s" * 32)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path / "site")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return sqlite_store(tmp_path)


def subscribe(store: Store, course: Course, ident: int, *, at: dt.datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            subscribers.insert().values(
                id=ident,
                email=f"lecteur{ident}@example.org",
                name=f"Lecteur {ident}",
                timezone="Europe/Paris",
                status="active",
                attributes={},
                created_at=at,
                updated_at=at,
            )
        )
        enroll(conn, ident, course, now=at)


def advance(site: Site, store: Store, course: Course, until: dt.datetime) -> RecordingTransport:
    """Run the dispatcher at each due time up to ``until``, as a worker would."""
    transport = RecordingTransport()
    runtime = Runtime.for_tests("s" * 32)
    while True:
        with store.engine.connect() as conn:
            nxt = conn.execute(
                sa.select(sa.func.min(deliveries.c.due_at)).where(deliveries.c.status == "pending")
            ).scalar()
        if nxt is None:
            return transport
        nxt = nxt.replace(tzinfo=dt.UTC) if nxt.tzinfo is None else nxt
        if nxt > until:
            return transport
        dispatch_once(
            site,
            store.engine,
            transport,
            runtime=runtime,
            now=nxt,
            worker="t",
            courses={course.slug: course},
            renderer=simple_render,
        )


def by_key(store: Store, subscriber: int) -> dict[str, sa.Row[tuple[object, ...]]]:
    return {r.step_key: r for r in rows(store.engine) if r.subscriber_id == subscriber}


def emails_of(store: Store, subscriber: int) -> list[dt.datetime]:
    """Every email this subscriber got or will get, in time order."""
    return sorted(
        (r.sent_at if r.status == "sent" else r.due_at)
        for r in rows(store.engine)
        if r.subscriber_id == subscriber and r.status in ("sent", "pending")
    )


def started(site: Site, store: Store, course: Course) -> None:
    """Two subscribers at different positions: 1 has had the welcome; 2 has had welcome, a and b."""
    subscribe(store, course, 2, at=T0 - 5 * DAY)
    subscribe(store, course, 1, at=T0)
    apply(site, store.engine, course, now=T0 - 5 * DAY)
    advance(site, store, course, T0 + dt.timedelta(hours=1))
    assert {k: r.status for k, r in by_key(store, 1).items()} == {
        "welcome": "sent",
        "article:/a/": "pending",
        "article:/b/": "pending",
        "article:/c/": "pending",
    }
    assert [k for k, r in by_key(store, 2).items() if r.status == "sent"] == [
        "welcome",
        "article:/a/",
        "article:/b/",
    ]


def test_plan_writes_nothing_and_apply_records_the_version(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    v2 = make_course(steps=[*V1[:2], ("article:/x/", 3), *V1[2:]])
    before = rows(store.engine)
    p = plan(site, store.engine, v2, now=T0 + DAY)
    assert rows(store.engine) == before
    assert p.pending_version and p.has_work
    [change] = p.changes
    assert (change.kind, change.key, change.scheduled, change.skipped) == ("added", "article:/x/", 1, 1)
    done = apply(site, store.engine, v2, now=T0 + DAY)
    assert done.changes == p.changes
    with store.engine.connect() as conn:
        version = conn.execute(sa.select(course_versions)).one()
    assert version.fingerprint == p.fingerprint
    assert [s["key"] for s in version.steps] == [k for k, _ in [*V1[:2], ("article:/x/", 3), *V1[2:]]]
    again = plan(site, store.engine, v2, now=T0 + DAY)
    assert not again.pending_version and not again.has_work and again.changes == ()


def test_added_ahead_is_scheduled_at_its_own_time_and_behind_is_skipped(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    v2 = make_course(steps=[*V1[:2], ("article:/x/", 3), *V1[2:]])
    now = T0 + dt.timedelta(hours=2)
    apply(site, store.engine, v2, now=now)
    ahead = by_key(store, 1)["article:/x/"]
    # Day 3 at 08:30 Paris, from an enrollment on 1 December.
    assert (ahead.status, ahead.due_at) == ("pending", dt.datetime(2026, 12, 4, 7, 30, tzinfo=dt.UTC))
    behind = by_key(store, 2)["article:/x/"]
    assert (behind.status, behind.note) == ("skipped", ADDED_BEHIND)
    # Nobody is sent a burst: every email is at least the cadence after the one before.
    for subscriber in (1, 2):
        times = emails_of(store, subscriber)
        assert all(b - a >= dt.timedelta(hours=23) for a, b in itertools.pairwise(times))
    # The skipped step stays skipped when the course runs to its end.
    sent = advance(site, store, v2, T0 + 30 * DAY)
    assert ("lecteur2@example.org", "article:/x/") not in {(m.to_email, m.step_key) for m in sent.sent}
    assert ("lecteur1@example.org", "article:/x/") in {(m.to_email, m.step_key) for m in sent.sent}


def test_backfill_appends_a_step_added_behind_without_a_burst(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    v2 = make_course(steps=[V1[0], ("article:/early/", 1), *V1[1:]])
    now = T0 + dt.timedelta(hours=2)
    apply(site, store.engine, v2, now=now, backfill=True)
    row = by_key(store, 2)["article:/early/"]
    got_b = by_key(store, 2)["article:/b/"].sent_at
    assert row.status == "pending"
    assert row.due_at >= now
    assert row.due_at >= got_b + cadence(v2)
    # Backfill means `append`: the step comes after c, still pending for subscriber 2, at the cadence;
    # c keeps its time.
    c = by_key(store, 2)["article:/c/"]
    assert c.updated_at == c.created_at
    assert row.due_at >= c.due_at + cadence(v2)


def test_an_added_step_never_lands_in_the_past_nor_too_close(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    # Same day as b, placed right after it: its own schedule is already past for subscriber 2
    # (who got b this morning) and would be the same morning as b for subscriber 1.
    v2 = make_course(steps=[*V1[:3], ("article:/z/", 4), V1[3]])
    assert cadence(v2) == 2 * DAY
    now = T0 + dt.timedelta(hours=2)
    p = apply(site, store.engine, v2, now=now)
    for subscriber in (1, 2):
        z = by_key(store, subscriber)["article:/z/"]
        assert z.status == "pending" and z.due_at >= now
        times = emails_of(store, subscriber)
        assert all(b - a >= cadence(v2) - dt.timedelta(hours=1) for a, b in itertools.pairwise(times))
    # c was pushed back to keep the gap, for both subscribers.
    assert p.shifted == 2
    utc = dt.UTC
    assert by_key(store, 1)["article:/z/"].due_at == dt.datetime(2026, 12, 7, 7, 30, tzinfo=utc)
    assert by_key(store, 1)["article:/c/"].due_at == dt.datetime(2026, 12, 9, 7, 30, tzinfo=utc)
    # Subscriber 2 got b on 30 November: z two days later, not today.
    assert by_key(store, 2)["article:/z/"].due_at == dt.datetime(2026, 12, 2, 7, 30, tzinfo=utc)
    assert by_key(store, 2)["article:/c/"].due_at == dt.datetime(2026, 12, 4, 7, 30, tzinfo=utc)


def test_a_removed_step_cancels_pending_deliveries_only(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    v2 = make_course(steps=[V1[0], V1[1], V1[3]])
    p = plan(site, store.engine, v2, now=T0 + DAY)
    [change] = p.changes
    assert (change.kind, change.key, change.cancelled) == ("removed", "article:/b/", 1)
    apply(site, store.engine, v2, now=T0 + DAY)
    assert (by_key(store, 1)["article:/b/"].status, by_key(store, 1)["article:/b/"].note) == (
        "cancelled",
        "step removed",
    )
    assert by_key(store, 2)["article:/b/"].status == "sent"


def test_reordered_steps_are_rescheduled_from_the_enrollment_start(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    v2 = make_course(steps=[V1[0], V1[1], ("article:/c/", 4), ("article:/b/", 6)])
    p = plan(site, store.engine, v2, now=T0 + dt.timedelta(hours=2))
    kinds = {c.key: (c.kind, c.detail, c.scheduled) for c in p.changes}
    assert kinds["article:/c/"] == ("moved", "position 4 → 3, day 6 → 4", 1)
    assert kinds["article:/b/"][:2] == ("moved", "position 3 → 4, day 4 → 6")
    apply(site, store.engine, v2, now=T0 + dt.timedelta(hours=2))
    one = by_key(store, 1)
    assert one["article:/c/"].due_at == dt.datetime(2026, 12, 5, 7, 30, tzinfo=dt.UTC)
    assert one["article:/b/"].due_at == dt.datetime(2026, 12, 7, 7, 30, tzinfo=dt.UTC)


def test_plan_counts_the_emails_of_the_next_24_hours(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    # Subscriber 2's c is due on 2 December; subscriber 1 has nothing before the 3rd.
    now = T0 + dt.timedelta(hours=2)
    same = plan(site, store.engine, v1, now=now)
    assert (same.due_next_24h_before, same.due_next_24h_after) == (1, 1)
    v2 = make_course(steps=[V1[0], V1[1], V1[2]])
    gone = plan(site, store.engine, v2, now=now)
    assert (gone.due_next_24h_before, gone.due_next_24h_after) == (1, 0)


def test_cli_plan_then_run_applies_the_edit_and_status_tells(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from delivery_fixtures import real_site

    from drip.cli import _register, cli

    _register()
    root = real_site(
        tmp_path / "site", database="sqlite:///drip.db", transport="transport:\n  backend: outbox\n"
    ).root
    runner = CliRunner()

    def drip(*args: str, code: int = 0) -> str:
        result = runner.invoke(
            cli, ["--site", str(root), *args], catch_exceptions=False, env={"COLUMNS": "250"}
        )
        assert result.exit_code == code, result.output
        return result.output

    for i in (1, 2):
        drip(
            "subscribe",
            f"lecteur{i}@example.org",
            "--course",
            "le-role-du-cto",
            "--timezone",
            "Europe/Paris",
            "--now",
            "2026-12-01T08:00",
        )
    out = drip("run", "--now", "2026-12-01T08:00", "--until", "2026-12-04T08:00", "--step", "1h")
    assert "until 2026-12-04T08:00+00:00: sent 4" in out
    assert len(list((root / "outbox").glob("*.eml"))) == 4
    assert "up to date" in drip("plan", "le-role-du-cto", "--now", "2026-12-04T08:00")

    # The third article leaves the pillar's reading path.
    pillar = root / "content" / "le-role-du-cto.md"
    text = pillar.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("3. **[Vision technique"))
    pillar.write_text(text.replace(line + "\n", ""), encoding="utf-8")
    removed = "article:/posts/vision-technique-roadmap-cto-strategy/"

    planned = drip("plan", "le-role-du-cto", "--now", "2026-12-04T08:00", code=2)  # 2: changes
    assert "changes not applied yet" in planned and "removed" in planned and removed in planned
    assert "not applied" in drip("status", "--now", "2026-12-04T08:00")
    ran = drip("run", "--once", "--now", "2026-12-04T08:00")
    assert f"applied: le-role-du-cto: removed {removed}" in ran
    assert "0 scheduled, 0 skipped, 2 cancelled" in ran
    status = drip("status", "--now", "2026-12-04T08:00")
    assert "applied" in status and "step removed" in status
    assert "not applied" not in status


def test_an_email_in_flight_is_neither_cancelled_nor_moved_until_its_lease_expires(
    site: Site, store: Store
) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    # A worker holds subscriber 2's c (due on 2 December) when c is removed from the course.
    now = dt.datetime(2026, 12, 2, 7, 30, tzinfo=dt.UTC)
    [held] = claim(store.engine, now=now, limit=10, lease_seconds=300, worker="w")
    assert (held.subscriber_id, held.step_key) == (2, "article:/c/")
    v2 = make_course(steps=V1[:3])
    p = apply(site, store.engine, v2, now=now + dt.timedelta(minutes=1))
    [change] = p.changes
    assert (change.kind, change.key, change.cancelled) == ("removed", "article:/c/", 1)  # subscriber 1's
    assert by_key(store, 1)["article:/c/"].status == "cancelled"
    assert by_key(store, 2)["article:/c/"].status == "pending"
    # Its lease expired unrecorded: the worker is gone, and the removed step is cancelled now.
    later = apply(site, store.engine, v2, now=now + dt.timedelta(minutes=6))
    assert later.cancel == (held.id,)
    assert (by_key(store, 2)["article:/c/"].status, by_key(store, 2)["article:/c/"].note) == (
        "cancelled",
        "step removed",
    )
    late = now + dt.timedelta(minutes=7)
    assert not record_sent(store.engine, held.id, held.lease_token, provider_id="<late@x>", now=late)


def test_an_email_in_flight_counts_as_received_for_the_position(site: Site, store: Store) -> None:
    v1 = make_course(steps=V1)
    started(site, store, v1)
    # Subscriber 1's a (due on 3 December) is being sent when x is inserted before it.
    now = dt.datetime(2026, 12, 3, 7, 30, tzinfo=dt.UTC)
    held = claim(store.engine, now=now, limit=10, lease_seconds=300, worker="w")
    assert {(c.subscriber_id, c.step_key) for c in held} >= {(1, "article:/a/")}
    before = {k: r.due_at for k, r in by_key(store, 1).items()}
    v2 = make_course(steps=[V1[0], ("article:/x/", 1), *V1[1:]])
    apply(site, store.engine, v2, now=now + dt.timedelta(minutes=1))
    one = by_key(store, 1)
    assert (one["article:/x/"].status, one["article:/x/"].note) == ("skipped", ADDED_BEHIND)
    # Nothing moves: the email in flight and those after it keep their times.
    assert one["article:/a/"].status == "pending"
    assert {k: r.due_at for k, r in one.items() if k != "article:/x/"} == before


def test_when_added_policies_are_applied_through_the_store(site: Site, store: Store) -> None:
    import dataclasses

    v1 = make_course(steps=V1)
    started(site, store, v1)
    v2 = make_course(steps=[V1[0], ("article:/early/", 1), *V1[1:]])
    v2 = dataclasses.replace(
        v2,
        steps=tuple(
            dataclasses.replace(s, when_added="catch_up") if s.key == "article:/early/" else s
            for s in v2.steps
        ),
    )
    now = T0 + dt.timedelta(hours=2)
    p = apply(site, store.engine, v2, now=now)
    assert [(c.kind, c.key, c.scheduled, c.skipped, c.policy) for c in p.changes] == [
        ("added", "article:/early/", 2, 0, "catch_up")
    ]
    early = by_key(store, 2)["article:/early/"]
    assert early.status == "pending" and early.due_at >= now
    assert early.due_at.astimezone(ZoneInfo("Europe/Paris")).time() == dt.time(8, 30)  # a send slot
    assert by_key(store, 2)["article:/c/"].due_at >= early.due_at + cadence(v2)
    # Moved behind subscriber 2 with `skip`: the pending c is recorded as skipped.
    v3 = make_course(steps=[V1[0], ("article:/c/", 1), *V1[1:3]])
    v3 = dataclasses.replace(
        v3,
        steps=tuple(
            dataclasses.replace(s, when_added="skip") if s.key == "article:/c/" else s for s in v3.steps
        ),
    )
    apply(site, store.engine, v3, now=now)
    c = by_key(store, 2)["article:/c/"]
    assert (c.status, c.note) == ("skipped", MOVED_BEHIND)
