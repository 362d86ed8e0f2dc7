"""Leases on due deliveries, on SQLite and PostgreSQL: order, exclusivity, expiry, stale tokens."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping, Sequence

import pytest
import sqlalchemy as sa
from dbfixtures import Store
from delivery_fixtures import T0, rows, seed

from drip.store.claims import Claimed, Outcome, claim, record, record_failure, record_sent
from drip.store.db import migrate, upgrade
from drip.store.deliveries import hand_off, recipients
from drip.store.schema import FILLFACTOR, deliveries

H = dt.timedelta(hours=1)


def test_claims_only_due_rows_oldest_first_up_to_the_limit(store: Store) -> None:
    seed(
        store.engine, subscribers_count=3, steps=[("welcome", T0), ("b", T0 + 2 * H), ("later", T0 + 48 * H)]
    )
    got = claim(store.engine, now=T0 + 3 * H, limit=4, lease_seconds=60, worker="w1")
    assert len(got) == 4
    assert [c.step_key for c in got] == ["welcome", "welcome", "welcome", "b"]
    assert all(c.attempts == 1 and not c.possible_duplicate for c in got)
    assert len({c.lease_token for c in got}) == 1 and got[0].lease_token.startswith("w1:")
    assert all(c.leased_until == T0 + 3 * H + dt.timedelta(seconds=60) for c in got)
    by_id = {r.id: r for r in rows(store.engine)}
    for c in got:
        # The lease alone marks the row: it stays pending, so no index entry changes.
        assert by_id[c.id].status == "pending"
        assert (by_id[c.id].lease_token, by_id[c.id].leased_until) == (c.lease_token, c.leased_until)
        assert by_id[c.id].attempts == 1
    # What is left due: two "b" rows; "later" is not due yet.
    rest = claim(store.engine, now=T0 + 3 * H, limit=10, lease_seconds=60, worker="w2")
    assert sorted(c.step_key for c in rest) == ["b", "b"]
    assert not {c.id for c in rest} & {c.id for c in got}
    assert claim(store.engine, now=T0 + 3 * H, limit=10, lease_seconds=60, worker="w3") == []


def test_times_read_in_bulk_are_aware_utc_on_every_backend(store: Store) -> None:
    """A claim's due times and a batch's subscriber creation times come back in UTC, whether
    UTCDateTime reads them (SQLite) or the driver's own are taken as they are (PostgreSQL)."""
    paris = dt.timezone(dt.timedelta(hours=1))
    seed(store.engine, subscribers_count=2, steps=[("welcome", (T0 - H).astimezone(paris))])
    got = claim(store.engine, now=T0, limit=5, lease_seconds=60, worker="w1")
    assert [c.due_at for c in got] == [T0 - H, T0 - H]
    assert all(c.due_at.utcoffset() == dt.timedelta(0) and c.due_at.tzinfo is dt.UTC for c in got)
    found = recipients(store.engine, [c.enrollment_id for c in got if c.enrollment_id is not None])
    assert sorted(found) == [1, 2]
    assert all(r.created_at is not None and r.created_at.tzinfo is dt.UTC for r in found.values())
    assert {r.created_at for r in found.values()} == {T0}


def test_concurrent_claimers_never_share_a_row(store: Store) -> None:
    seed(store.engine, subscribers_count=300, steps=[("welcome", T0)])
    taken: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            while True:
                batch = claim(store.engine, now=T0, limit=7, lease_seconds=60, worker=f"w{i}")
                if not batch:
                    return
                taken[i].extend(c.id for c in batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = [i for part in taken for i in part]
    assert len(everything) == 300
    assert len(set(everything)) == 300


def mark(engine: sa.Engine, item: Claimed, at: dt.datetime) -> None:
    """Hand ``item`` to a (pretend) transport under its lease, as dispatch does right before sending."""
    done = hand_off(engine, [item.id], item.lease_token, now=at, refusal=lambda _s, _e: None)
    assert done.marked == {item.id}


def test_expired_lease_is_reclaimed_and_flagged_possible_duplicate_when_it_was_handed_off(
    store: Store,
) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0)])
    [first] = claim(store.engine, now=T0, limit=10, lease_seconds=30, worker="dies")
    mark(store.engine, first, T0 + dt.timedelta(seconds=1))
    # Still leased: nobody else gets it.
    assert (
        claim(store.engine, now=T0 + dt.timedelta(seconds=29), limit=10, lease_seconds=30, worker="x") == []
    )
    [again] = claim(store.engine, now=T0 + dt.timedelta(seconds=31), limit=10, lease_seconds=30, worker="new")
    assert again.id == first.id
    assert again.possible_duplicate is True
    assert again.attempts == 2
    assert again.lease_token != first.lease_token
    # The new lease has not handed it off yet.
    [row] = rows(store.engine)
    assert row.handed_off_at is None


def test_a_lease_that_expired_before_any_hand_off_is_reclaimed_without_a_flag(store: Store) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])
    first, second = claim(store.engine, now=T0, limit=10, lease_seconds=30, worker="dies")
    mark(store.engine, first, T0 + dt.timedelta(seconds=1))  # the worker died sending this one
    again = claim(store.engine, now=T0 + dt.timedelta(seconds=31), limit=10, lease_seconds=30, worker="new")
    # Only the row that may really have gone out is flagged: the other never left the worker.
    assert {c.id: c.possible_duplicate for c in again} == {first.id: True, second.id: False}


def test_recording_clears_the_hand_off_mark_and_a_mark_needs_a_live_lease(store: Store) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0)])
    [first] = claim(store.engine, now=T0, limit=1, lease_seconds=30, worker="w")
    late = hand_off(
        store.engine,
        [first.id],
        first.lease_token,
        now=T0 + dt.timedelta(seconds=31),
        refusal=lambda *_: None,
    )
    # An expired lease is not handed off: an unsubscribe would not wait for it.
    assert (late.marked, dict(late.cancelled)) == (frozenset(), {})
    mark(store.engine, first, T0 + dt.timedelta(seconds=2))
    retry = Outcome(first.id, first.lease_token, "retry", error="421", retry_at=T0 + H)
    assert record(store.engine, [retry], now=T0 + dt.timedelta(seconds=3))
    [row] = rows(store.engine)
    assert (row.handed_off_at, row.leased_until) == (None, None)
    # Recorded, then due again: not a possible duplicate.
    [second] = claim(store.engine, now=T0 + H, limit=1, lease_seconds=30, worker="w")
    assert second.possible_duplicate is False


def test_a_stale_lease_token_cannot_record(store: Store) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0)])
    [old] = claim(store.engine, now=T0, limit=1, lease_seconds=30, worker="slow")
    [new] = claim(store.engine, now=T0 + H, limit=1, lease_seconds=30, worker="fast")
    assert record_sent(store.engine, new.id, new.lease_token, provider_id="<new@x>", now=T0 + H)
    # The slow worker finishes late: neither its success nor its failure lands.
    assert not record_sent(store.engine, old.id, old.lease_token, provider_id="<old@x>", now=T0 + 2 * H)
    assert not record_failure(
        store.engine, old.id, old.lease_token, error="boom", permanent=True, retry_at=None, now=T0 + 2 * H
    )
    [row] = rows(store.engine)
    assert (row.status, row.provider_id, row.sent_at) == ("sent", "<new@x>", T0 + H)
    assert row.last_error is None
    # Recording twice with the right token is refused too: the row is no longer claimed.
    assert not record_sent(store.engine, new.id, new.lease_token, provider_id="<again@x>", now=T0 + 2 * H)


def test_sends_recorded_together_keep_each_its_own_message_id(store: Store) -> None:
    """An outbox's or SMTP's chunk: all sent under one lease, a Message-ID each; a row whose lease
    was lost meanwhile keeps what its new holder has."""
    seed(store.engine, subscribers_count=4, steps=[("welcome", T0)])
    batch = claim(store.engine, now=T0, limit=4, lease_seconds=60, worker="w")
    lost = batch[3]
    with store.engine.begin() as conn:  # its lease expired and another worker took it
        conn.execute(deliveries.update().where(deliveries.c.id == lost.id).values(lease_token="other:token"))
    outcomes = [Outcome(c.id, c.lease_token, "sent", provider_id=f"<{c.id}.mid@x>") for c in batch]
    assert record(store.engine, outcomes, now=T0 + dt.timedelta(seconds=5)) == {c.id for c in batch[:3]}
    by_id = {r.id: r for r in rows(store.engine)}
    assert [(by_id[c.id].status, by_id[c.id].provider_id) for c in batch] == [
        *(("sent", f"<{c.id}.mid@x>") for c in batch[:3]),
        ("pending", None),
    ]


def test_a_batch_records_every_outcome_in_one_go(store: Store) -> None:
    seed(store.engine, subscribers_count=5, steps=[("welcome", T0)])
    batch = claim(store.engine, now=T0, limit=5, lease_seconds=3 * 3600, worker="w")
    a, b, c, e, f = batch
    outcomes = [
        Outcome(a.id, a.lease_token, "sent", provider_id="<a@x>"),
        Outcome(b.id, b.lease_token, "failed", error="550 no such user"),
        Outcome(c.id, c.lease_token, "retry", error="421 try later", retry_at=T0 + H),
        Outcome(e.id, e.lease_token, "cancelled", note="subscriber unsubscribed"),
        Outcome(f.id, "someone-else:token", "sent", provider_id="<f@x>"),
    ]
    done = record(store.engine, outcomes, now=T0 + dt.timedelta(seconds=5))
    assert done == {a.id, b.id, c.id, e.id}
    by_id = {r.id: r for r in rows(store.engine)}
    assert (by_id[a.id].status, by_id[a.id].provider_id) == ("sent", "<a@x>")
    assert (by_id[b.id].status, by_id[b.id].last_error) == ("failed", "550 no such user")
    assert (by_id[c.id].status, by_id[c.id].due_at, by_id[c.id].last_error) == (
        "pending",
        T0 + H,
        "421 try later",
    )
    assert (by_id[e.id].status, by_id[e.id].note) == ("cancelled", "subscriber unsubscribed")
    assert (by_id[f.id].status, by_id[f.id].lease_token) == ("pending", f.lease_token)
    # The retried row comes back when due again, counting its attempts.
    assert (
        claim(store.engine, now=T0 + H - dt.timedelta(seconds=1), limit=5, lease_seconds=30, worker="w") == []
    )
    later = claim(store.engine, now=T0 + H, limit=5, lease_seconds=30, worker="w")
    assert [(x.id, x.attempts) for x in later] == [(c.id, 2)]


def _claim_statements(store: Store, now: dt.datetime) -> list[tuple[str, object]]:
    """The SQL a claim sends, with its parameters, as the driver receives them."""
    sent: list[tuple[str, object]] = []

    def capture(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            sent.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        claim(store.engine, now=now, limit=10, lease_seconds=60, worker="w")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    return sent


def test_the_claim_walks_the_pending_index_not_the_table(store: Store) -> None:
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0), ("later", T0 + 48 * H)])
    # Leave one lease in flight: the claim must step over it, still on the index.
    claim(store.engine, now=T0, limit=1, lease_seconds=7200, worker="w0")
    [(sql, params)] = _claim_statements(store, T0 + H)
    assert isinstance(params, Sequence | Mapping)  # a tuple or a dict, as the driver takes them
    with store.engine.begin() as conn:
        if store.kind == "postgresql":
            # A handful of rows: forbid the sequential scan that would win on them.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN "
        else:
            explain = "EXPLAIN QUERY PLAN "
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(explain + sql, params))
        conn.rollback()
    assert "ix_deliveries_due_at_pending" in plan
    # The predicate is literal, so a cached plan stays valid for every call; no status is written.
    assert "'pending'" in sql and "status" not in sql.split("WHERE", 1)[0]


def test_a_retried_row_comes_back_unflagged_and_an_expired_lease_flags_it_for_good(store: Store) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0)])
    [first] = claim(store.engine, now=T0, limit=1, lease_seconds=30, worker="w")
    retry = Outcome(first.id, first.lease_token, "retry", error="421", retry_at=T0 + H)
    assert record(store.engine, [retry], now=T0 + dt.timedelta(seconds=5))
    # Recorded, so its lease is gone: due again, it is not a possible duplicate.
    [second] = claim(store.engine, now=T0 + H, limit=1, lease_seconds=30, worker="w")
    assert (second.id, second.attempts, second.possible_duplicate) == (first.id, 2, False)
    # This lease expires unrecorded after the hand-off: the next claim may send it twice.
    mark(store.engine, second, T0 + H)
    [third] = claim(store.engine, now=T0 + 2 * H, limit=1, lease_seconds=30, worker="w")
    assert (third.attempts, third.possible_duplicate) == (3, True)
    # The late holder of the second lease cannot record any more.
    assert not record_sent(
        store.engine, second.id, second.lease_token, provider_id="<late@x>", now=T0 + 2 * H
    )
    retry = Outcome(third.id, third.lease_token, "retry", error="421", retry_at=T0 + 3 * H)
    assert record(store.engine, [retry], now=T0 + 2 * H)
    # Retried after that: still flagged, since the message may already be in the inbox.
    [fourth] = claim(store.engine, now=T0 + 3 * H, limit=1, lease_seconds=30, worker="w")
    assert (fourth.attempts, fourth.possible_duplicate) == (4, True)
    [row] = rows(store.engine)
    assert (row.status, row.possible_duplicate, row.leased_until) == ("pending", True, fourth.leased_until)


def _updates(engine: sa.Engine) -> tuple[int, int]:
    """(row updates, of which HOT) on deliveries, once this backend's statistics are flushed."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
        conn.commit()  # the backend flushes when it goes idle
        row = conn.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'deliveries'::regclass"
        ).one()
        return int(row[0]), int(row[1])


def test_on_postgresql_a_claim_is_a_hot_update(store: Store) -> None:
    if store.kind != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's")
    # One connection: the statistics read are those of the backend that claimed.
    engine = sa.create_engine(store.engine.url, poolclass=sa.pool.StaticPool)
    try:
        with engine.connect() as conn:
            options = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE oid = 'deliveries'::regclass"
            ).scalar_one()
        assert options == [f"fillfactor={FILLFACTOR}"]
        # Ten steps each, one due: the claimed rows are a tenth of every page, as in a real queue.
        later = [(f"s{k}", T0 + k * 48 * H) for k in range(1, 10)]
        seed(engine, subscribers_count=150, steps=[("welcome", T0), *later])
        before = _updates(engine)
        got = claim(engine, now=T0, limit=1000, lease_seconds=60, worker="w")
        updated, hot = (a - b for a, b in zip(_updates(engine), before, strict=True))
    finally:
        engine.dispose()
    assert len(got) == 150
    assert updated == 150
    assert hot == 150, f"only {hot} of {updated} claimed rows were HOT updates"


def test_on_postgresql_a_hand_off_mark_is_a_hot_update(store: Store) -> None:
    if store.kind != "postgresql":
        pytest.skip("HOT updates are PostgreSQL's")
    engine = sa.create_engine(store.engine.url, poolclass=sa.pool.StaticPool)
    try:
        later = [(f"s{k}", T0 + k * 48 * H) for k in range(1, 10)]
        seed(engine, subscribers_count=150, steps=[("welcome", T0), *later])
        got = claim(engine, now=T0, limit=1000, lease_seconds=60, worker="w")
        snapshot = _claimed_rows(engine, [c.id for c in got])
        before = _updates(engine)
        for i in range(0, len(got), 10):
            chunk = got[i : i + 10]
            hand_off(engine, [c.id for c in chunk], chunk[0].lease_token, now=T0, refusal=lambda *_: None)
        updated, hot = (a - b for a, b in zip(_updates(engine), before, strict=True))
        written = _changed_columns(snapshot, _claimed_rows(engine, [c.id for c in got]))
        indexed = _indexed_words(engine)
    finally:
        engine.dispose()
    assert updated == 150
    # What makes an update HOT-capable is that it writes no column an index (or an index's WHERE) names.
    # Whether PostgreSQL then keeps each new version on its page also depends on pruning, which any
    # other open transaction on the server can hold back: so the count is asserted loosely.
    assert written == {"handed_off_at"}
    assert not written & indexed, f"the hand-off writes indexed columns {written & indexed}"
    assert hot > 0, f"none of {updated} marked rows was a HOT update"


def _claimed_rows(engine: sa.Engine, ids: list[int]) -> dict[int, dict[str, object]]:
    with engine.connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM deliveries WHERE id = ANY(:ids)"), {"ids": ids})
        return {row["id"]: dict(row) for row in result.mappings()}


def _changed_columns(before: dict[int, dict[str, object]], after: dict[int, dict[str, object]]) -> set[str]:
    return {col for key, row in before.items() for col, value in row.items() if after[key][col] != value}


def _indexed_words(engine: sa.Engine) -> set[str]:
    """Every identifier in the definitions of the deliveries table's indexes, predicates included."""
    with engine.connect() as conn:
        defs = conn.exec_driver_sql(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'deliveries'::regclass"
        ).scalars()
        return {word for d in defs for word in re.findall(r"[a-z_]+", d)}


def _index_names(engine: sa.Engine) -> set[str]:
    return {ix["name"] for ix in sa.inspect(engine).get_indexes("deliveries") if ix["name"]}


def _statuses(engine: sa.Engine) -> list[sa.Row[tuple[int, str]]]:
    """Id and status of each row, on any revision of the schema."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id, status FROM deliveries ORDER BY id")))


def _migrate(engine: sa.Engine, revision: str) -> None:
    migrate(engine, revision)


def test_the_lease_migration_goes_down_and_up_keeping_leases_and_the_queue(store: Store) -> None:
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0)])
    [held] = claim(store.engine, now=T0, limit=1, lease_seconds=60, worker="w")
    [retried] = claim(store.engine, now=T0, limit=1, lease_seconds=60, worker="w")
    assert record(store.engine, [Outcome(retried.id, retried.lease_token, "retry", retry_at=T0)], now=T0)
    names = _index_names(store.engine)
    assert "ix_deliveries_due_at_pending" in names
    assert not names & {"ix_deliveries_status_due_at", "ix_deliveries_leased_until_claimed"}

    _migrate(store.engine, "0003_claim_indexes")
    # Back to a status per lease: only the unrecorded lease is claimed again.
    assert {r.id: r.status for r in _statuses(store.engine)} == {
        held.id: "claimed",
        retried.id: "pending",
        3: "pending",
    }
    assert "ix_deliveries_leased_until_claimed" in _index_names(store.engine)
    _migrate(store.engine, "0002_web")
    assert "ix_deliveries_status_due_at" in _index_names(store.engine)

    upgrade(store.engine)
    names = _index_names(store.engine)
    assert "ix_deliveries_due_at_pending" in names
    assert not names & {"ix_deliveries_status_due_at", "ix_deliveries_leased_until_claimed"}
    assert {r.status for r in _statuses(store.engine)} == {"pending"}
    # The lease taken before survives both ways; the other rows are still in the queue.
    other = claim(store.engine, now=T0, limit=5, lease_seconds=3600, worker="w2")
    assert sorted(c.id for c in other) == sorted({retried.id, 3})
    assert not any(c.possible_duplicate for c in other)
    [again] = claim(store.engine, now=T0 + H, limit=5, lease_seconds=60, worker="w3")
    # Never marked handed off (the mark did not exist before 0006): sent again, unflagged.
    assert (again.id, again.possible_duplicate) == (held.id, False)
