"""Writes that meet a busy database wait and try again, within a deadline of a few seconds.

SQLite answers "database is locked" once its busy timeout is spent; PostgreSQL
raises a serialization failure, a deadlock or a lock timeout. Each attempt runs the
whole transaction again with the time left as its lock timeout, so a reader's
unsubscribe waits out a long write instead of failing, and past the deadline the
caller gets :class:`StoreBusy` (the web answers 503 with Retry-After), never a crash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from drip.errors import DripError
from drip.store.db import SQLITE_BUSY_TIMEOUT_MS

T = TypeVar("T")

BUSY_DEADLINE_S = 5.0
_PAUSE_S = 0.05
# serialization_failure, deadlock_detected, lock_not_available
_PG_BUSY = frozenset({"40001", "40P01", "55P03"})


class StoreBusy(DripError):
    """The database stayed locked by other writers for the whole deadline."""

    retry_after = 5  # seconds a client may wait before trying again


def is_busy(exc: sa.exc.DBAPIError) -> bool:
    """Whether the error only says another transaction holds the lock (worth trying again)."""
    if "database is locked" in str(exc.orig):
        return True
    return getattr(exc.orig, "sqlstate", None) in _PG_BUSY


def _limit_wait(conn: sa.Connection, seconds: float) -> None:
    """Make this connection's lock waits end with the deadline (SQLite busy timeout, PostgreSQL lock_timeout)."""
    ms = max(1, int(seconds * 1000))
    if conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute(f"PRAGMA busy_timeout={ms}")
    else:
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {ms}")


def write(engine: sa.Engine, work: Callable[[sa.Connection], T], *, deadline: float | None = None) -> T:
    """Run ``work`` in one transaction, again while the database is busy, until ``deadline`` seconds pass."""
    limit = BUSY_DEADLINE_S if deadline is None else deadline
    ends = time.monotonic() + limit
    while True:
        left = ends - time.monotonic()
        if left <= 0:
            raise StoreBusy(f"the database stayed busy for {limit:g} s")
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    _limit_wait(conn, left)
                try:
                    with conn.begin():
                        if conn.dialect.name != "sqlite":
                            _limit_wait(conn, left)
                        return work(conn)
                finally:
                    if conn.dialect.name == "sqlite":
                        _restore_sqlite_timeout(conn)
        except sa.exc.OperationalError as exc:
            if not is_busy(exc):
                raise
        time.sleep(min(_PAUSE_S, max(0.0, ends - time.monotonic())))


def _restore_sqlite_timeout(conn: sa.Connection) -> None:
    raw = conn.connection.dbapi_connection
    if raw is not None:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
