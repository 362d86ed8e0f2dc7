"""The funnel counts sent emails per step from an index: sent deliveries by course, step and time.

Revision ID: 0011_stats
Revises: 0010_newsletters
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011_stats"
down_revision: str | None = "0010_newsletters"
branch_labels: str | None = None
depends_on: str | None = None

SENT = sa.text("status = 'sent'")


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_sent",
        "deliveries",
        ["course", "step_key", "sent_at"],
        sqlite_where=SENT,
        postgresql_where=SENT,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_sent", table_name="deliveries")
