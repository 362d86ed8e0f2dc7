"""Leases on due deliveries, on SQLite and PostgreSQL: order, exclusivity, expiry, stale tokens."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from delivery_fixtures import T0, Store, rows, seed, store_fixture  # noqa: F401  (fixture)

from drip.store.claims import Outcome, claim, record, record_failure, record_sent
from drip.store.db import MIGRATIONS_DIR, upgrade

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
        assert by_id[c.id].status == "claimed"
        assert by_id[c.id].attempts == 1
    # What is left due: two "b" rows; "later" is not due yet.
    rest = claim(store.engine, now=T0 + 3 * H, limit=10, lease_seconds=60, worker="w2")
    assert sorted(c.step_key for c in rest) == ["b", "b"]
    assert not {c.id for c in rest} & {c.id for c in got}
    assert claim(store.engine, now=T0 + 3 * H, limit=10, lease_seconds=60, worker="w3") == []


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


def test_expired_lease_is_reclaimed_and_flagged_possible_duplicate(store: Store) -> None:
    seed(store.engine, subscribers_count=1, steps=[("welcome", T0)])
    [first] = claim(store.engine, now=T0, limit=10, lease_seconds=30, worker="dies")
    # Still leased: nobody else gets it.
    assert (
        claim(store.engine, now=T0 + dt.timedelta(seconds=29), limit=10, lease_seconds=30, worker="x") == []
    )
    [again] = claim(store.engine, now=T0 + dt.timedelta(seconds=31), limit=10, lease_seconds=30, worker="new")
    assert again.id == first.id
    assert again.possible_duplicate is True
    assert again.attempts == 2
    assert again.lease_token != first.lease_token


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
    assert by_id[f.id].status == "claimed"
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


def test_each_claim_walks_its_partial_index_not_the_table(store: Store) -> None:
    seed(store.engine, subscribers_count=3, steps=[("welcome", T0), ("later", T0 + 48 * H)])
    # Leave one lease in flight so the lease index is not empty.
    claim(store.engine, now=T0, limit=1, lease_seconds=60, worker="w0")
    expired, due = _claim_statements(store, T0 + H)
    with store.engine.begin() as conn:
        if store.kind == "postgresql":
            # A handful of rows: forbid the sequential scan that would win on them.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN "
        else:
            explain = "EXPLAIN QUERY PLAN "
        plans = [
            " ".join(str(r[-1]) for r in conn.exec_driver_sql(explain + sql, params))  # type: ignore[arg-type]
            for sql, params in (expired, due)
        ]
        conn.rollback()
    assert "ix_deliveries_leased_until_claimed" in plans[0]
    assert "ix_deliveries_due_at_pending" in plans[1]
    # Both predicates are literal, so a cached plan stays valid for every call.
    assert "'claimed'" in expired[0] and "'pending'" in due[0]


def _index_names(engine: sa.Engine) -> set[str]:
    return {ix["name"] for ix in sa.inspect(engine).get_indexes("deliveries") if ix["name"]}


def test_the_claim_index_migration_goes_down_and_up_keeping_the_queue(store: Store) -> None:
    seed(store.engine, subscribers_count=2, steps=[("welcome", T0)])
    [held] = claim(store.engine, now=T0, limit=1, lease_seconds=60, worker="w")
    names = _index_names(store.engine)
    assert {"ix_deliveries_due_at_pending", "ix_deliveries_leased_until_claimed"} <= names
    assert "ix_deliveries_status_due_at" not in names

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002_web")
    names = _index_names(store.engine)
    assert "ix_deliveries_status_due_at" in names
    assert not names & {"ix_deliveries_due_at_pending", "ix_deliveries_leased_until_claimed"}

    upgrade(store.engine)
    assert _index_names(store.engine) >= {
        "ix_deliveries_due_at_pending",
        "ix_deliveries_leased_until_claimed",
    }
    # The lease taken before survives both ways; the other row is still in the queue.
    [other] = claim(store.engine, now=T0, limit=5, lease_seconds=3600, worker="w2")
    assert other.id != held.id
    [again] = claim(store.engine, now=T0 + H, limit=5, lease_seconds=60, worker="w3")
    assert (again.id, again.possible_duplicate) == (held.id, True)
