"""A lease no longer changes a delivery's status: claims become HOT updates on PostgreSQL.

A claim used to set ``status = 'claimed'``, a column in the partial indexes'
predicates, so PostgreSQL wrote every leased row anew with an entry in each
index. A lease is now carried by ``lease_token`` and ``leased_until`` alone, on
rows that stay ``pending``; the lease index goes, leases in flight become
pending rows with their lease kept, and the table keeps a fifth of each page
free so the new version of a leased row fits beside the old one.

Revision ID: 0004_lease_without_status
Revises: 0003_claim_indexes
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_lease_without_status"
down_revision: str | None = "0003_claim_indexes"
branch_labels: str | None = None
depends_on: str | None = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.execute("UPDATE deliveries SET status = 'pending' WHERE status = 'claimed'")
    op.drop_index("ix_deliveries_leased_until_claimed", table_name="deliveries")
    if _postgresql():
        # Pages filled from now on keep the room; full ones get it as vacuum frees old versions.
        op.execute("ALTER TABLE deliveries SET (fillfactor = 80)")


def downgrade() -> None:
    if _postgresql():
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    where = sa.text("status = 'claimed'")
    op.create_index(
        "ix_deliveries_leased_until_claimed",
        "deliveries",
        ["leased_until"],
        sqlite_where=where,
        postgresql_where=where,
    )
    # Leased and not recorded: what 0003's code calls claimed.
    op.execute(
        "UPDATE deliveries SET status = 'claimed' WHERE status = 'pending' AND leased_until IS NOT NULL"
    )
