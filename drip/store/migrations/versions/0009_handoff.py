"""Deliveries remember when they were handed to the transport (``handed_off_at``).

A worker marks a chunk of its leased rows in a short transaction right before
sending it, with no transaction open during the send, and clears the mark when it
records the outcome. A reclaimed row is flagged ``possible_duplicate`` only when
the mark is there (it may really have gone out), and an unsubscribe waits for the
marked rows of its subscriber instead of a lock. Nullable and unindexed: adding it
rewrites nothing, and on PostgreSQL setting it stays a HOT update.

Revision ID: 0009_handoff
Revises: 0008_bounces
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store.schema import UTCDateTime

revision: str = "0009_handoff"
down_revision: str | None = "0008_bounces"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("handed_off_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("handed_off_at")
