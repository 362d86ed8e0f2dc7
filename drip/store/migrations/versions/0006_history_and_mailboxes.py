"""Re-joining a left course keeps its history; confirmation emails are counted per mailbox.

The unique (subscriber, course) constraint on enrollments becomes a unique index on
the current (not left) enrollment only, so a confirmed return starts a new
enrollment beside the old one and the deliveries already sent stay where they are.
``web_mailboxes`` holds the cool-down and daily count of confirmation emails per
keyed hash of the mailbox (the address without its +tag).

Revision ID: 0006_history_and_mailboxes
Revises: 0005_ids_never_reused
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store.schema import UTCDateTime

revision: str = "0006_history_and_mailboxes"
down_revision: str | None = "0005_ids_never_reused"
branch_labels: str | None = None
depends_on: str | None = None

OLD_UNIQUE = "uq_enrollments_subscriber_id_course"
NEW_UNIQUE = "uq_enrollments_subscriber_id_course_current"
CURRENT = sa.text("state != 'left'")


def upgrade() -> None:
    with op.batch_alter_table("enrollments", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(OLD_UNIQUE, type_="unique")
    op.create_index(
        NEW_UNIQUE,
        "enrollments",
        ["subscriber_id", "course"],
        unique=True,
        sqlite_where=CURRENT,
        postgresql_where=CURRENT,
    )
    op.create_table(
        "web_mailboxes",
        sa.Column("mailbox_hash", sa.String(64), nullable=False),
        sa.Column("last_sent_at", UTCDateTime(), nullable=True),
        sa.Column("day_started_at", UTCDateTime(), nullable=False),
        sa.Column("sent_that_day", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("mailbox_hash", name="pk_web_mailboxes"),
    )


def downgrade() -> None:
    """Back to one enrollment per course: only the newest of each subscriber and course is kept."""
    op.drop_table("web_mailboxes")
    op.drop_index(NEW_UNIQUE, table_name="enrollments")
    op.execute(
        "DELETE FROM enrollments WHERE id NOT IN "
        "(SELECT MAX(id) FROM enrollments GROUP BY subscriber_id, course)"
    )
    with op.batch_alter_table("enrollments", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.create_unique_constraint(OLD_UNIQUE, ["subscriber_id", "course"])
