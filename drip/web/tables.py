"""The web endpoints' own tables: confirmation cool-downs and webhook events already applied.

Kept apart from :mod:`drip.store.schema` because only the web side reads them;
migration ``0002_web`` creates them.
"""

from __future__ import annotations

import sqlalchemy as sa

from drip.store.schema import UTC

web_metadata = sa.MetaData()

# One row per subscriber: when the last confirmation email left, for the cool-down.
confirmations = sa.Table(
    "web_confirmations",
    web_metadata,
    sa.Column("subscriber_id", sa.Integer, primary_key=True),
    sa.Column("sent_at", UTC, nullable=False),
)

# SendGrid retries a batch with new sg_event_id values: the key is a digest of the content.
webhook_events = sa.Table(
    "webhook_events",
    web_metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("received_at", UTC, nullable=False),
)
