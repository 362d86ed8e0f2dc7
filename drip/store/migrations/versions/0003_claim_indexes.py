"""Claims walk partial indexes: pending rows by due time, claimed rows by lease expiry.

The claim used one index on (status, due_at) that held every delivery ever
written, and each claimed row added a second entry to it. The two partial
indexes hold only the rows a claim looks for; a claimed row leaves the large
one and enters only the small one, and finished rows are in neither.

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


def _create_partial(name: str, column: str, status: str) -> None:
    where = sa.text(f"status = '{status}'")
    op.create_index(name, "deliveries", [column], sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    _create_partial("ix_deliveries_due_at_pending", "due_at", "pending")
    _create_partial("ix_deliveries_leased_until_claimed", "leased_until", "claimed")
    op.drop_index("ix_deliveries_status_due_at", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_status_due_at", "deliveries", ["status", "due_at"])
    op.drop_index("ix_deliveries_leased_until_claimed", table_name="deliveries")
    op.drop_index("ix_deliveries_due_at_pending", table_name="deliveries")
