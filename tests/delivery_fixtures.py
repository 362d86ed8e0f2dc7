"""Stores for the delivery tests: a SQLite file, or a fresh PostgreSQL schema per test."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from drip.store.db import connect, upgrade
from drip.store.schema import deliveries, enrollments, subscribers

PG_URL_ENV = "DRIP_TEST_POSTGRES_URL"
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Store:
    url: str
    engine: sa.Engine

    @property
    def kind(self) -> str:
        return self.engine.dialect.name


def sqlite_store(tmp_path: Path) -> Store:
    url = f"sqlite:///{tmp_path / 'drip.db'}"
    engine = connect(url)
    upgrade(engine)
    return Store(url, engine)


@dataclass(frozen=True)
class PgSchema:
    url: str  # points at the schema through search_path
    admin_url: str
    schema: str


def pg_schema() -> Iterator[PgSchema]:
    """A schema of its own on the test server, dropped afterwards; skip when none is named."""
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"{PG_URL_ENV} is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    schema = f"t_{secrets.token_hex(6)}"
    admin = connect(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        yield PgSchema(url, base, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(name="store", params=["sqlite", "postgresql"])
def store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        st = sqlite_store(tmp_path)
        yield st
        st.engine.dispose()
        return
    gen = pg_schema()
    pg = next(gen)
    engine = connect(pg.url)
    upgrade(engine)
    try:
        yield Store(pg.url, engine)
    finally:
        engine.dispose()
        gen.close()


def seed(
    engine: sa.Engine,
    *,
    subscribers_count: int,
    steps: list[tuple[str, dt.datetime]],
    course: str = "cours",
    now: dt.datetime = T0,
    domain: str = "example.org",
    started_at: dt.datetime | None = None,
) -> None:
    """Active subscribers enrolled in ``course``, one pending delivery per (step key, due time)."""
    started = started_at or now
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert(),
            [
                {
                    "id": i,
                    "email": f"lecteur{i}@{domain}",
                    "name": f"Lecteur {i}",
                    "status": "active",
                    "attributes": {"entreprise": f"Société {i}"},
                    "created_at": now,
                    "updated_at": now,
                    "confirmed_at": now,
                }
                for i in range(1, subscribers_count + 1)
            ],
        )
        conn.execute(
            enrollments.insert(),
            [
                {
                    "id": i,
                    "subscriber_id": i,
                    "course": course,
                    "state": "active",
                    "started_at": started,
                    "updated_at": now,
                }
                for i in range(1, subscribers_count + 1)
            ],
        )
        conn.execute(
            deliveries.insert(),
            [
                {
                    "enrollment_id": i,
                    "subscriber_id": i,
                    "course": course,
                    "step_key": key,
                    "due_at": due,
                    "status": "pending",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, subscribers_count + 1)
                for key, due in steps
            ],
        )
    if engine.dialect.name == "postgresql":
        # Explicit ids above: move the sequences past them.
        with engine.begin() as conn:
            for table in ("subscribers", "enrollments"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )


def rows(engine: sa.Engine) -> list[sa.Row[tuple[object, ...]]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(deliveries).order_by(deliveries.c.id)))
