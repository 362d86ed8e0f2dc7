"""Bounce reports read from a mailbox, once each, and soft bounces counted per address.

``bounce_reports`` keys each delivery status notification by a digest (of its
Message-ID, else of its bytes), so reading a mailbox again changes nothing.
``soft_bounces`` counts soft bounces per keyed hash of the address, never the
address itself, until ``bounces.soft_limit`` puts it on the suppression list.

Revision ID: 0008_bounces
Revises: 0007_events
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store.schema import UTCDateTime

revision: str = "0008_bounces"
down_revision: str | None = "0007_events"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "bounce_reports",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("hard", sa.Integer, nullable=False),
        sa.Column("soft", sa.Integer, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_bounce_reports"),
    )
    op.create_table(
        "soft_bounces",
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name="pk_soft_bounces"),
    )


def downgrade() -> None:
    op.drop_table("soft_bounces")
    op.drop_table("bounce_reports")
