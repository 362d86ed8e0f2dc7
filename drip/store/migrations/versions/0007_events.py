"""The events ledger: what happened to each delivery, from drip itself and from providers.

Revision ID: 0007_events
Revises: 0006_history_and_mailboxes
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store.schema import UTCDateTime

revision: str = "0007_events"
down_revision: str | None = "0006_history_and_mailboxes"
branch_labels: str | None = None
depends_on: str | None = None

# Written as each backend renders ``events.c.first == sa.true()``: SQLite uses a partial index
# only for a query whose WHERE holds the index's own term, and it renders true as 1.
FIRST_SQLITE = sa.text("first = 1")
FIRST_PG = sa.text("first = true")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("deliveries.id", ondelete="CASCADE", name="fk_events_delivery_id_deliveries"),
            nullable=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("first", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("link", sa.Integer, nullable=True),
        sa.Column("detail", sa.String(64), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("course", sa.String(200), nullable=True),
        sa.Column("step_key", sa.String(500), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("digest", name="uq_events_digest"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_events_first",
        "events",
        ["delivery_id", "kind", "machine"],
        unique=True,
        sqlite_where=FIRST_SQLITE,
        postgresql_where=FIRST_PG,
    )
    op.create_index("ix_events_delivery_id_occurred_at", "events", ["delivery_id", "occurred_at"])
    op.create_index(
        "ix_events_funnel",
        "events",
        ["course", "step_key", "kind", "machine", "sent_at"],
        sqlite_where=FIRST_SQLITE,
        postgresql_where=FIRST_PG,
    )


def downgrade() -> None:
    op.drop_index("ix_events_funnel", table_name="events")
    op.drop_index("ix_events_delivery_id_occurred_at", table_name="events")
    op.drop_index("uq_events_first", table_name="events")
    op.drop_table("events")
