"""Web endpoints: confirmation cool-downs and applied webhook events.

Revision ID: 0002_web
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store.schema import UTCDateTime

revision: str = "0002_web"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "web_confirmations",
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("subscriber_id", name="pk_web_confirmations"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_webhook_events"),
    )


def downgrade() -> None:
    op.drop_table("webhook_events")
    op.drop_table("web_confirmations")
