"""Newsletters share the ledger: lists, their members, issues, and deliveries that belong to an issue.

``lists`` and ``list_members`` hold who reads which newsletter (left memberships stay as
history, like enrollments); ``newsletter_issues`` has one row per issue key, so two
workers deciding to send the same issue write it once. A delivery now belongs to an
enrollment or to an issue (a CHECK says exactly one), and an issue has at most one
delivery per subscriber. SQLite changes a column's nullability only by rebuilding the
table (batch mode, foreign keys off around it: see db.migrate); the queue's partial
index is dropped before the rebuild and made again after, so its predicate is kept
as written rather than as reflected.

Revision ID: 0010_newsletters
Revises: 0009_handoff
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from drip.store.schema import UTCDateTime

revision: str = "0010_newsletters"
down_revision: str | None = "0009_handoff"
branch_labels: str | None = None
depends_on: str | None = None

QUEUE = "ix_deliveries_due_at_pending"
PENDING = sa.text("status = 'pending'")
CURRENT = sa.text("state != 'left'")
ONE_OWNER = "ck_deliveries_one_owner"
ISSUE_FK = "fk_deliveries_issue_id_newsletter_issues"
ISSUE_UNIQUE = "uq_deliveries_issue_id_subscriber_id"


def _lists() -> None:
    op.create_table(
        "lists",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_lists"),
    )
    op.create_table(
        "list_members",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("subscriber_id", sa.Integer, nullable=False),
        sa.Column("list", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="active"),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_list_members"),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_list_members_subscriber_id_subscribers",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["list"], ["lists.name"], name="fk_list_members_list_lists", ondelete="CASCADE"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_list_members_subscriber_id_list_current",
        "list_members",
        ["subscriber_id", "list"],
        unique=True,
        sqlite_where=CURRENT,
        postgresql_where=CURRENT,
    )
    op.create_index("ix_list_members_list_id", "list_members", ["list", "id"])


def _issues() -> None:
    op.create_table(
        "newsletter_issues",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("list", sa.String(200), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False, server_default=""),
        sa.Column("send_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("post_urls", sa.JSON, nullable=False),
        sa.Column("counts", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_newsletter_issues"),
        sa.ForeignKeyConstraint(
            ["list"], ["lists.name"], name="fk_newsletter_issues_list_lists", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("key", name="uq_newsletter_issues_key"),
        sqlite_autoincrement=True,
    )


def _queue_index() -> None:
    op.create_index(QUEUE, "deliveries", ["due_at"], sqlite_where=PENDING, postgresql_where=PENDING)


def upgrade() -> None:
    _lists()
    _issues()
    op.drop_index(QUEUE, table_name="deliveries")
    with op.batch_alter_table("deliveries", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.alter_column("enrollment_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("issue_id", sa.Integer, nullable=True))
        batch.create_foreign_key(ISSUE_FK, "newsletter_issues", ["issue_id"], ["id"], ondelete="CASCADE")
        batch.create_unique_constraint(ISSUE_UNIQUE, ["issue_id", "subscriber_id"])
        batch.create_check_constraint(op.f(ONE_OWNER), "(enrollment_id IS NULL) <> (issue_id IS NULL)")
    _queue_index()


def downgrade() -> None:
    """Back to course deliveries only: the issues' deliveries go with the issues."""
    op.execute("DELETE FROM deliveries WHERE issue_id IS NOT NULL")
    op.drop_index(QUEUE, table_name="deliveries")
    with op.batch_alter_table("deliveries", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint(op.f(ONE_OWNER), type_="check")
        batch.drop_constraint(ISSUE_UNIQUE, type_="unique")
        batch.drop_constraint(ISSUE_FK, type_="foreignkey")
        batch.drop_column("issue_id")
        batch.alter_column("enrollment_id", existing_type=sa.Integer, nullable=False)
    _queue_index()
    op.drop_table("newsletter_issues")
    op.drop_index("ix_list_members_list_id", table_name="list_members")
    op.drop_index("uq_list_members_subscriber_id_list_current", table_name="list_members")
    op.drop_table("list_members")
    op.drop_table("lists")
