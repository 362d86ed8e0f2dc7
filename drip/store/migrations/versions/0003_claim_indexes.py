"""Claims walk partial indexes; deliveries pages keep room for updates.

The claim used one index on (status, due_at) that held every delivery ever
written. It is replaced by two partial indexes holding only the rows a claim
looks for: pending rows by due time, and claimed rows by lease expiry. On
PostgreSQL the table's fillfactor drops to 70 so the new row versions a claim
and its outcome write fit on the same page. It applies to pages filled from
now on; existing pages are not rewritten (that would lock the table).

Revision ID: 0003_claim_indexes
Revises: 0002_web
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_claim_indexes"
down_revision: str | None = "0002_web"
branch_labels: str | None = None
depends_on: str | None = None

FILLFACTOR = 70


def _create_partial(name: str, column: str, status: str) -> None:
    where = sa.text(f"status = '{status}'")
    op.create_index(name, "deliveries", [column], sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _create_partial("ix_deliveries_due_at_pending", "due_at", "pending")
    _create_partial("ix_deliveries_leased_until_claimed", "leased_until", "claimed")
    op.drop_index("ix_deliveries_status_due_at", table_name="deliveries")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE deliveries SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
    op.create_index("ix_deliveries_status_due_at", "deliveries", ["status", "due_at"])
    op.drop_index("ix_deliveries_leased_until_claimed", table_name="deliveries")
    op.drop_index("ix_deliveries_due_at_pending", table_name="deliveries")
