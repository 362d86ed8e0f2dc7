"""Alembic environment, run programmatically by :func:`drip.store.db.upgrade`.

The caller hands over an open connection in ``config.attributes["connection"]``,
so SQLite pragmas and PostgreSQL connect options set by ``drip.store.db.connect``
apply to migrations too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from drip.store.schema import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, sa.Connection):
        raise RuntimeError("drip migrations run through drip.store.db.upgrade(), which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
