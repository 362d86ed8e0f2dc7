"""Ids are never handed out twice: SQLite tables with integer ids use AUTOINCREMENT.

Without AUTOINCREMENT, SQLite gives a new row the largest id in use plus one, so
the id of an erased subscriber (or a deleted delivery) came back with the next
insert, and every link signed for the old row named the new one. SQLite can only
add AUTOINCREMENT by rebuilding the table (batch mode copies it; db.upgrade turns
foreign keys off around the rebuild, as SQLite's documentation prescribes, so the
copy cascades nothing). An id freed before this migration ran cannot be known, so
the sequence starts from the largest id in use. PostgreSQL sequences never go
back: nothing to do there.

Revision ID: 0005_ids_never_reused
Revises: 0004_lease_without_status
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision: str = "0005_ids_never_reused"
down_revision: str | None = "0004_lease_without_status"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("subscribers", "enrollments", "deliveries")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
