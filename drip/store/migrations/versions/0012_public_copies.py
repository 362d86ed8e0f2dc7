"""An issue keeps its public copy as it went out: the archive shows what was sent, not today's posts.

Revision ID: 0012_public_copies
Revises: 0011_stats
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012_public_copies"
down_revision: str | None = "0011_stats"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nullable: issues written before this revision have none and are rendered again from their source.
    with op.batch_alter_table("newsletter_issues") as batch:
        batch.add_column(sa.Column("public_copy", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("newsletter_issues") as batch:
        batch.drop_column("public_copy")
