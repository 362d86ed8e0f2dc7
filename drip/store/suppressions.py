"""The suppression list: keyed hashes of addresses that must never be mailed again.

An erased, bounced or complaining address leaves no readable trace: only an
HMAC-SHA256 of its normalised form, keyed with ``DRIP_SECRET_KEY``, so the list
can be checked without being a list of people. Confirming a fresh subscription
(double opt-in) is the one thing that lifts a suppression.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum

import sqlalchemy as sa

from drip.inputs.address import hashing_form
from drip.store.schema import suppressions


class SuppressionReason(StrEnum):
    """suppressions.reason: why an address is never mailed again."""

    ERASED = "erased"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


_CHUNK = 500  # hashes per statement: well under SQLite's bound-parameter limit


def email_hash(secret: str, email: str) -> str:
    """HMAC-SHA256 of the normalised address, hex: stable for one key, useless without it."""
    return hmac.new(secret.encode(), hashing_form(email).encode(), hashlib.sha256).hexdigest()


def suppress(conn: sa.Connection, secret: str, email: str, reason: str, *, now: dt.datetime) -> bool:
    """Put an address on the list; True when it was not there already (the first reason is kept)."""
    digest = email_hash(secret, email)
    exists = conn.execute(
        sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash == digest)
    ).first()
    if exists is not None:
        return False
    conn.execute(suppressions.insert().values(email_hash=digest, reason=reason, created_at=now))
    return True


def suppress_many(conn: sa.Connection, secret: str, reasons: Mapping[str, str], *, now: dt.datetime) -> None:
    """:func:`suppress` for many addresses (address → reason) in two statements a chunk."""
    digests: dict[str, str] = {}
    for email, reason in reasons.items():
        digests.setdefault(email_hash(secret, email), reason)
    wanted = list(digests)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        there = set(
            conn.execute(
                sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash.in_(chunk))
            ).scalars()
        )
        rows = [{"email_hash": d, "reason": digests[d], "created_at": now} for d in chunk if d not in there]
        if rows:
            conn.execute(suppressions.insert(), rows)


def is_suppressed(conn: sa.Connection, secret: str, email: str) -> bool:
    digest = email_hash(secret, email)
    row = conn.execute(
        sa.select(suppressions.c.email_hash).where(suppressions.c.email_hash == digest)
    ).first()
    return row is not None


def lift(conn: sa.Connection, secret: str, email: str) -> bool:
    """Remove an address from the list after it confirmed a new subscription."""
    digest = email_hash(secret, email)
    result = conn.execute(suppressions.delete().where(suppressions.c.email_hash == digest))
    return result.rowcount > 0
