"""Open the store and keep its schema current (SQLAlchemy Core engine + Alembic).

SQLite is the embedded default and upgrades itself; PostgreSQL is shared by
several workers, so its schema only moves when someone runs ``drip db upgrade``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects.postgresql import ARRAY

from drip.errors import DripError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 15_000


class SchemaBehindError(DripError):
    """The database schema is not the one this version of drip expects."""


def normalise_url(url: str) -> sa.URL:
    """Parse a database URL; plain ``postgresql://`` (and ``postgres://``) mean psycopg 3."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise DripError(
            f"{url!r} is not a database URL, e.g. sqlite:///drip.db or postgresql://host/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise DripError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed


def store_failure(url: sa.URL | str, exc: sa.exc.DBAPIError, doing: str = "open") -> DripError:
    """What went wrong with the store at ``url``, without the statement or its parameters (they hold
    subscribers' addresses and names): the driver's own first lines, and what to do when we know."""
    shown = url.render_as_string() if isinstance(url, sa.URL) else normalise_url(url).render_as_string()
    reason = str(exc.orig).strip() if exc.orig is not None else type(exc).__name__
    if isinstance(exc.orig, sqlite3.Error) and _read_only(exc.orig):
        return DripError(
            f"the database is read-only: {shown} ({reason}); drip writes to the file and to its folder "
            "(its journal sits beside it): check their permissions and the disk"
        )
    if not isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        reason = type(exc.orig or exc).__name__  # constraint details may quote a row: not shown
    return DripError(f"cannot {doing} the database {shown}: {reason}")


def _read_only(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == sqlite3.SQLITE_READONLY) or "readonly" in str(error)


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook emit BEGIN itself (pysqlite's own is lazy and skips SELECTs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two processes that read then
    # write wait for each other (busy_timeout) instead of failing with SQLITE_BUSY.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def connect(url: str) -> sa.Engine:
    """An engine for ``url``: SQLite in WAL mode with foreign keys, or PostgreSQL via psycopg 3."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    engine = sa.create_engine(parsed, pool_pre_ping=True)
    sa.event.listen(engine, "connect", _postgresql_on_connect)
    return engine


def _postgresql_on_connect(dbapi_conn: Any, _record: Any) -> None:
    """Sessions in UTC, whatever the server's TimeZone: psycopg then gives timestamps with the
    standard library's UTC, which :class:`drip.store.schema.UTCDateTime` keeps as they are instead
    of converting each one (a claim reads a thousand)."""
    dbapi_conn.execute("SET TIME ZONE 'UTC'")
    dbapi_conn.commit()


def among(conn: sa.Connection, column: sa.ColumnElement[int], ids: Sequence[int]) -> sa.ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(array)``, one parameter however many ids.

    An IN list of a few hundred ids is as many bound parameters, each rendered by SQLAlchemy and
    parsed by psycopg into a statement text of its own length: per chunk of a send, that cost the
    client more than the rows it read or wrote.
    """
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.cast(sa.literal(int_array(ids), sa.Text()), ARRAY(sa.Integer())))
    return column.in_(list(ids))


def int_array(ids: Sequence[int]) -> str:
    """PostgreSQL's text form of an integer array, ``{1,2,3}``, for one parameter cast to ``integer[]``.

    psycopg dumps a list parameter element by element in Python (a regular expression each):
    for the thousand ids of a claimed batch, read and written four times a batch, that was more
    than writing the text here, every element an int by construction.
    """
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def _alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> set[str]:
    """The revisions this version of drip expects."""
    return set(ScriptDirectory.from_config(_alembic_config()).get_heads())


def current_revisions(engine: sa.Engine) -> set[str]:
    """The revisions the database is at (empty for a database never migrated)."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def upgrade(engine: sa.Engine) -> None:
    """Apply every pending migration (Alembic ``upgrade head``) in one transaction."""
    migrate(engine, "head")


def migrate(engine: sa.Engine, revision: str) -> None:
    """Move the schema up or down to ``revision`` in one transaction.

    On SQLite, foreign keys are off while migrations run (a pragma that only takes effect outside a
    transaction): a migration that rebuilds a table drops the old copy, and with foreign keys on that
    would cascade to every row referring to it. The keys are checked before the transaction commits.
    """
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = conn.connection.dbapi_connection
        if sqlite and raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                config = _alembic_config(conn)
                current = MigrationContext.configure(conn).get_current_heads()
                script = ScriptDirectory.from_config(config)
                if revision == "head" or not current or _is_ahead(script, revision, current):
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise DripError(f"migration left {len(broken)} rows pointing at missing rows")
        finally:
            if sqlite and raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def _is_ahead(script: ScriptDirectory, revision: str, current: tuple[str, ...]) -> bool:
    """Whether ``revision`` comes after the database's current revision."""
    return any(rev.revision in current for rev in script.iterate_revisions(revision, "base"))


def upgrade_store(url: str) -> tuple[set[str], set[str]]:
    """Apply pending migrations to the store at ``url`` (``drip db upgrade``): its revisions before and after."""
    engine = connect(url)
    try:
        before = current_revisions(engine)
        upgrade(engine)
        return before, current_revisions(engine)
    except sa.exc.DBAPIError as exc:
        raise store_failure(engine.url, exc, "upgrade") from None
    finally:
        engine.dispose()


def open_store(url: str) -> sa.Engine:
    """An engine on a store whose schema is current.

    A SQLite file is created and migrated on first use (it belongs to one site).
    A PostgreSQL database is shared: a schema behind the code is an error that
    says to run ``drip db upgrade``, never a migration started by a worker.
    """
    engine = connect(url)
    try:
        current = current_revisions(engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        raise store_failure(engine.url, exc) from None
    heads = head_revisions()
    if current == heads:
        return engine
    unknown = current - _known_revisions()
    if unknown:
        engine.dispose()
        raise SchemaBehindError(
            f"the database is at revision {', '.join(sorted(unknown))}, which this version of drip "
            "does not know: upgrade drip"
        )
    if engine.dialect.name == "sqlite":
        try:
            upgrade(engine)
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise store_failure(engine.url, exc, "upgrade") from None
        return engine
    engine.dispose()
    at = f"revision {', '.join(sorted(current))}" if current else "no drip schema yet"
    raise SchemaBehindError(
        f"the database has {at}, this version of drip needs {', '.join(sorted(heads))}: run `drip db upgrade`"
    )


def _known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


def ping(engine: sa.Engine) -> None:
    """One round trip to the database; raises SQLAlchemyError when it does not answer."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
