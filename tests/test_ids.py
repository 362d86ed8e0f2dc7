"""Ids are never handed out twice, on SQLite as on PostgreSQL.

A link signed for an erased reader must not name the next reader who signs up, and a
delivery's outbox file must not be overwritten by another delivery's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from drip.store.db import connect, migrate, upgrade
from drip.store.personal_data import erase_person
from drip.store.schema import deliveries, enrollments, subscribers
from drip.store.subscribers import upsert_subscriber

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
SECRET = "a-test-key-long-enough-to-sign"


def _add(engine: sa.Engine, email: str) -> int:
    with engine.begin() as conn:
        return upsert_subscriber(conn, email, now=NOW).id


def test_an_erased_readers_id_is_never_given_to_the_next_one(engine: sa.Engine, tmp_path: Path) -> None:
    first = _add(engine, "ana@example.org")
    second = _add(engine, "bob@example.org")
    with engine.begin() as conn:
        erase_person(conn, SECRET, "bob@example.org", outbox=tmp_path, now=NOW)
        erase_person(conn, SECRET, "ana@example.org", outbox=tmp_path, now=NOW)
    third = _add(engine, "carla@example.org")
    assert third not in (first, second)
    assert third > second


def test_the_migration_keeps_rows_and_indexes_and_ids_go_on_from_the_largest(tmp_path: Path) -> None:
    """A store made before ids were never reused: its rows survive the rebuild, nothing cascades."""
    engine = connect(f"sqlite:///{tmp_path / 'old.db'}")
    migrate(engine, "0004_lease_without_status")
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "id": i,
                    "email": f"r{i}@example.org",
                    "attributes": {},
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in (1, 2, 3)
            ],
        )
        conn.execute(
            enrollments.insert(),
            [{"id": 1, "subscriber_id": 3, "course": "c", "started_at": NOW, "updated_at": NOW}],
        )
        conn.execute(
            deliveries.insert(),
            [
                {
                    "id": 7,
                    "enrollment_id": 1,
                    "subscriber_id": 3,
                    "course": "c",
                    "step_key": "welcome",
                    "due_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(enrollments)).scalar() == 1
        indexes = {
            row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert {"ix_deliveries_due_at_pending", "ix_deliveries_subscriber_id"} <= indexes
        partial = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_deliveries_due_at_pending'"
        ).scalar()
        assert "WHERE status = 'pending'" in str(partial)
        conn.execute(subscribers.delete().where(subscribers.c.id == 2))
        conn.execute(deliveries.delete())
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert _add(engine, "new@example.org") == 4
    with engine.begin() as conn:
        new = conn.execute(
            deliveries.insert().returning(deliveries.c.id),
            {
                "enrollment_id": 1,
                "subscriber_id": 3,
                "course": "c",
                "step_key": "deeper",
                "due_at": NOW,
                "created_at": NOW,
                "updated_at": NOW,
            },
        ).scalar()
    assert new == 8
    engine.dispose()
