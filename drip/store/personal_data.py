"""Everything drip knows about one person: export it, or erase it and remember only a keyed hash.

Erasure removes the subscriber row, enrollments, deliveries, the confirmation
cool-down and any outbox file addressed to them, and puts an HMAC of the address
on the suppression list, so the address is never mailed again unless its owner
subscribes afresh and confirms.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from drip.errors import NotFoundError, Problem
from drip.inputs.address import normalise_address
from drip.store.schema import deliveries, enrollments, subscribers, web_confirmations
from drip.store.subscribers import get_subscriber, unknown_address
from drip.store.suppressions import SuppressionReason, email_hash, is_suppressed, suppress


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rows(conn: sa.Connection, table: sa.Table, subscriber_id: int) -> list[dict[str, Any]]:
    query = sa.select(table).where(table.c.subscriber_id == subscriber_id).order_by(table.c.id)
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def export_person(conn: sa.Connection, secret: str, email: str) -> dict[str, Any]:
    """Subscriber row, enrollments and deliveries of one address, JSON-ready; NotFoundError if unknown."""
    subscriber = get_subscriber(conn, email)
    if subscriber is None:
        raise unknown_address(conn, email)
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber.id)).one()
    cooldown = conn.execute(
        sa.select(web_confirmations.c.sent_at).where(web_confirmations.c.subscriber_id == subscriber.id)
    ).scalar_one_or_none()
    return {
        "subscriber": {k: _plain(v) for k, v in row._mapping.items()},
        "enrollments": _rows(conn, enrollments, subscriber.id),
        "deliveries": _rows(conn, deliveries, subscriber.id),
        "last_confirmation_email_at": _plain(cooldown),
        "suppressed": is_suppressed(conn, secret, subscriber.email),
    }


@dataclass(frozen=True)
class Erased:
    email_hash: str
    subscriber: bool  # a subscriber row was removed
    enrollments: int
    deliveries: int
    outbox_files: tuple[Path, ...]


def outbox_files_for(outbox: Path, email: str) -> list[Path]:
    """The .eml files in ``outbox`` addressed to ``email`` (read from their To header)."""
    if not outbox.is_dir():
        return []
    wanted = normalise_address(email)
    parser = BytesHeaderParser()
    found: list[Path] = []
    for path in sorted(outbox.rglob("*.eml")):
        with path.open("rb") as handle:
            headers = parser.parse(handle)
        recipients = getaddresses(headers.get_all("To", []) + headers.get_all("Cc", []))
        if any(addr.strip().lower() == wanted for _name, addr in recipients):
            found.append(path)
    return found


def erase_person(conn: sa.Connection, secret: str, email: str, *, outbox: Path, now: dt.datetime) -> Erased:
    """Remove every personal record of ``email`` in the caller's transaction; files go after commit.

    Raises NotFoundError (nothing changed) when drip holds nothing about the address.
    """
    try:
        normal = normalise_address(email)
    except ValueError as exc:
        raise NotFoundError(Problem(f"invalid address {email.strip()!r}: {exc}", key="email")) from None
    files = outbox_files_for(outbox, normal)
    subscriber = get_subscriber(conn, normal)
    if subscriber is None and not files:
        raise unknown_address(conn, email)
    n_deliveries = n_enrollments = 0
    if conn.dialect.name == "sqlite":
        # Zero the freed bytes instead of leaving the rows readable in free pages.
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
    if subscriber is not None:
        n_deliveries = conn.execute(
            deliveries.delete().where(deliveries.c.subscriber_id == subscriber.id)
        ).rowcount
        n_enrollments = conn.execute(
            enrollments.delete().where(enrollments.c.subscriber_id == subscriber.id)
        ).rowcount
        conn.execute(web_confirmations.delete().where(web_confirmations.c.subscriber_id == subscriber.id))
        conn.execute(subscribers.delete().where(subscribers.c.id == subscriber.id))
    suppress(conn, secret, normal, SuppressionReason.ERASED, now=now)
    return Erased(
        email_hash=email_hash(secret, normal),
        subscriber=subscriber is not None,
        enrollments=n_enrollments,
        deliveries=n_deliveries,
        outbox_files=tuple(files),
    )


def flush_sqlite(engine: sa.Engine) -> None:
    """Checkpoint and truncate SQLite's write-ahead log, which still holds the erased rows' old pages.

    Best effort: a reader in another process can keep part of the log alive until it finishes.
    """
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()


def remove_files(paths: tuple[Path, ...]) -> int:
    """Delete the outbox files of an erased person (after the database change committed)."""
    removed = 0
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed
