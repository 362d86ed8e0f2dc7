"""Subscribers: validated on the way in, upserted by address, unsubscribed atomically.

Every function takes an open connection and runs inside the caller's
transaction, so a command either changes everything it meant to or nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

import sqlalchemy as sa

from drip.config import LOCALES, check_timezone
from drip.errors import InputError, NotFoundError, Problem, did_you_mean
from drip.inputs.address import normalise_address
from drip.store.lists import leave_all_lists
from drip.store.schema import (
    DeliveryStatus,
    EnrollmentState,
    SubscriberStatus,
    deliveries,
    enrollments,
    subscribers,
    suppressions,
)
from drip.store.suppressions import email_hash

NAME_MAX = 200
CHUNK = 500  # rows per statement in batch writes: well under SQLite's bound-parameter limit
NO_ZONE = "no time zone given: the course's zone applies"
UNSUBSCRIBED_NOTE = "unsubscribed"
ExportFormat = Literal["csv", "json"]
# A spreadsheet evaluates a cell starting with these: exports prefix them with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class FieldError(ValueError):
    """A field that cannot be stored, with the field's name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class SubscriberRow:
    """One subscriber as stored."""

    id: int
    email: str
    name: str
    locale: str | None  # None: the course's locale
    timezone: str | None  # None: the course's zone
    status: str
    attributes: Mapping[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None


@dataclass(frozen=True)
class Profile:
    """Validated, normalised subscriber fields, with what was dropped and why."""

    email: str
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()  # keyed by field, not located: the caller knows where


@dataclass(frozen=True)
class Upserted:
    """What :func:`upsert_subscriber` did."""

    subscriber: SubscriberRow
    created: bool
    changed: bool  # created, or an existing row got new values
    warnings: tuple[Problem, ...] = ()

    @property
    def id(self) -> int:
        return self.subscriber.id


@dataclass(frozen=True)
class Unsubscribed:
    """What :func:`unsubscribe` did."""

    subscriber_id: int
    course: str | None
    cancelled: int  # deliveries that will never leave now
    already: bool  # nothing was active any more


def _check_name(name: str) -> str:
    name = name.strip()
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ValueError("a name cannot contain control characters such as line breaks")
    if any(unicodedata.category(ch) == "Cs" for ch in name):
        raise ValueError("a name cannot contain invalid characters (a broken character encoding?)")
    if len(name) > NAME_MAX:
        raise ValueError(f"a name is at most {NAME_MAX} characters, this one has {len(name)}")
    return name


def normalise_locale(value: str) -> str | None:
    """``fr``, ``fr-CA``, ``FR_fr`` → ``fr``; None when not a supported locale."""
    primary = value.strip().replace("_", "-").split("-")[0].lower()
    return primary if primary in LOCALES else None


def make_profile(
    email: str,
    *,
    name: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Profile:
    """Validate raw fields; a bad email or name is a :class:`FieldError`.

    An unsupported locale or unknown zone is not an error: it is dropped (the
    course's applies) and a warning says so, never silently replaced by UTC.
    """
    try:
        normal = normalise_address(email)
    except ValueError as exc:
        raise FieldError("email", f"invalid address {email.strip()!r}: {exc}") from None
    clean_name: str | None = None
    if name is not None:
        try:
            clean_name = _check_name(name)
        except ValueError as exc:
            raise FieldError("name", str(exc)) from None
    warnings: list[Problem] = []
    clean_locale: str | None = None
    if locale is not None and locale.strip():
        clean_locale = normalise_locale(locale)
        if clean_locale is None:
            warnings.append(
                Problem(
                    f"unsupported locale {locale.strip()!r}, expected {' or '.join(LOCALES)}: "
                    "the course's locale applies",
                    key="locale",
                    hint=did_you_mean(locale.strip().lower(), LOCALES),
                )
            )
    clean_zone: str | None = None
    if timezone is not None and timezone.strip():
        try:
            clean_zone = check_timezone(timezone.strip())
        except ValueError as exc:
            warnings.append(Problem(f"{exc}: the course's zone applies", key="timezone"))
    return Profile(
        email=normal,
        name=clean_name,
        locale=clean_locale,
        timezone=clean_zone,
        attributes=dict(attributes or {}),
        warnings=tuple(warnings),
    )


def _row(row: sa.Row[Any]) -> SubscriberRow:
    m = row._mapping
    return SubscriberRow(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        locale=m["locale"],
        timezone=m["timezone"],
        status=m["status"],
        attributes=dict(m["attributes"] or {}),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        confirmed_at=m["confirmed_at"],
        unsubscribed_at=m["unsubscribed_at"],
    )


def get_subscriber(conn: sa.Connection, email: str) -> SubscriberRow | None:
    """The subscriber with this address (any spelling of it), or None."""
    try:
        key = normalise_address(email)
    except ValueError:
        return None
    row = conn.execute(sa.select(subscribers).where(subscribers.c.email == key)).first()
    return _row(row) if row is not None else None


def get_subscriber_by_id(conn: sa.Connection, subscriber_id: int) -> SubscriberRow | None:
    """The subscriber a signed link names, or None once they are erased."""
    row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    return _row(row) if row is not None else None


def _by_email(conn: sa.Connection, emails: Sequence[str]) -> dict[str, SubscriberRow]:
    rows = conn.execute(sa.select(subscribers).where(subscribers.c.email.in_(emails)))
    return {sub.email: sub for sub in map(_row, rows)}


def _changes(profile: Profile, existing: SubscriberRow) -> dict[str, Any]:
    """The columns ``profile`` would change: only fields it gives, attributes merged."""
    changes: dict[str, Any] = {}
    if profile.name is not None and profile.name != existing.name:
        changes["name"] = profile.name
    if profile.locale is not None and profile.locale != existing.locale:
        changes["locale"] = profile.locale
    if profile.timezone is not None and profile.timezone != existing.timezone:
        changes["timezone"] = profile.timezone
    merged = {**existing.attributes, **profile.attributes}
    if merged != dict(existing.attributes):
        changes["attributes"] = merged
    return changes


def store_profiles(
    conn: sa.Connection,
    profiles: Sequence[Profile],
    *,
    status: str = SubscriberStatus.ACTIVE,
    now: dt.datetime,
) -> list[Upserted]:
    """Insert or update by address, a chunk of rows per statement; results in the order given.

    Only the fields a profile gives change, and attributes merge. An existing
    subscriber's status is never changed here: re-importing a list must not bring
    back someone who unsubscribed. Each address may appear once.
    """
    if len({p.email for p in profiles}) != len(profiles):
        raise ValueError("store_profiles: an address appears twice")
    results: list[Upserted] = []
    for start in range(0, len(profiles), CHUNK):
        chunk = profiles[start : start + CHUNK]
        existing = _by_email(conn, [p.email for p in chunk])
        new = [p for p in chunk if p.email not in existing]
        if new:
            conn.execute(
                subscribers.insert(),
                [
                    {
                        "email": p.email,
                        "name": p.name or "",
                        "locale": p.locale,
                        "timezone": p.timezone,
                        "status": status,
                        "attributes": dict(p.attributes),
                        "created_at": now,
                        "updated_at": now,
                    }
                    for p in new
                ],
            )
        changed = {p.email for p in new}
        for p in chunk:
            if p.email in existing and (changes := _changes(p, existing[p.email])):
                conn.execute(
                    subscribers.update()
                    .where(subscribers.c.id == existing[p.email].id)
                    .values(**changes, updated_at=now)
                )
                changed.add(p.email)
        stored = {**existing, **(_by_email(conn, sorted(changed)) if changed else {})}
        for p in chunk:
            sub = stored[p.email]
            results.append(
                Upserted(
                    sub,
                    created=p.email not in existing,
                    changed=p.email in changed,
                    warnings=_warnings(p, sub),
                )
            )
    return results


def store_profile(
    conn: sa.Connection, profile: Profile, *, status: str = SubscriberStatus.ACTIVE, now: dt.datetime
) -> Upserted:
    """Insert or update one subscriber by address (see :func:`store_profiles`)."""
    return store_profiles(conn, [profile], status=status, now=now)[0]


def _warnings(profile: Profile, stored: SubscriberRow) -> tuple[Problem, ...]:
    """The profile's warnings, plus one when the stored subscriber has no zone at all."""
    if stored.timezone is not None or any(w.key == "timezone" for w in profile.warnings):
        return profile.warnings
    return (*profile.warnings, Problem(NO_ZONE, key="timezone"))


def upsert_subscriber(
    conn: sa.Connection,
    email: str,
    *,
    name: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    now: dt.datetime,
) -> Upserted:
    """Validate and store one subscriber; a bad address or name is an :class:`InputError`."""
    try:
        profile = make_profile(email, name=name, locale=locale, timezone=timezone, attributes=attributes)
    except FieldError as exc:
        raise InputError(Problem(str(exc), key=exc.key)) from None
    return store_profile(conn, profile, now=now)


def unknown_address(conn: sa.Connection, email: str) -> NotFoundError:
    """The error for an unknown address, suggesting a stored one with the same local part or domain."""
    local, _, domain = email.strip().lower().rpartition("@")
    near = conn.execute(
        sa.select(subscribers.c.email)
        .where(
            sa.or_(
                subscribers.c.email.endswith(f"@{domain}", autoescape=True),
                subscribers.c.email.startswith(f"{local}@", autoescape=True),
            )
        )
        .limit(1000)
    ).scalars()
    return NotFoundError(
        Problem(f"no subscriber with address {email.strip()!r}", key="email", hint=did_you_mean(email, near))
    )


def unsubscribe(
    conn: sa.Connection, email: str, *, course: str | None = None, now: dt.datetime
) -> Unsubscribed:
    """Stop all mail to ``email`` (or only ``course``'s) in the caller's transaction.

    The status (or the enrollment's state) and the cancellation of every pending
    delivery not yet handed to a transport, leased or not, change together. A
    delivery already handed off is left to its worker, which records what the
    transport did; after committing, wait for those with
    :func:`drip.store.deliveries.wait_for_hand_offs` before saying it is done.
    """
    subscriber = get_subscriber(conn, email)
    if subscriber is None:
        raise unknown_address(conn, email)
    pending = (
        deliveries.update()
        .where(
            deliveries.c.subscriber_id == subscriber.id,
            deliveries.c.status == DeliveryStatus.PENDING,
            deliveries.c.handed_off_at.is_(None),
        )
        .values(status=DeliveryStatus.CANCELLED, note=UNSUBSCRIBED_NOTE, updated_at=now)
    )
    active = enrollments.update().where(
        enrollments.c.subscriber_id == subscriber.id, enrollments.c.state == EnrollmentState.ACTIVE
    )
    if course is None:
        return _unsubscribe_everything(conn, subscriber, active, pending, now=now)
    state = conn.execute(
        sa.select(enrollments.c.state)
        .where(enrollments.c.subscriber_id == subscriber.id, enrollments.c.course == course)
        .order_by(enrollments.c.id.desc())  # the current one, when left ones are kept beside it
        .limit(1)
    ).scalar()
    if state is None:
        theirs = conn.execute(
            sa.select(enrollments.c.course).where(enrollments.c.subscriber_id == subscriber.id)
        ).scalars()
        raise NotFoundError(
            Problem(
                f"{subscriber.email} is not enrolled in course {course!r}",
                key="course",
                hint=did_you_mean(course, theirs),
            )
        )
    conn.execute(
        active.where(enrollments.c.course == course).values(state=EnrollmentState.LEFT, updated_at=now)
    )
    # A course's emails only: a newsletter list of the same name keeps its issues.
    cancelled = conn.execute(
        pending.where(deliveries.c.course == course, deliveries.c.enrollment_id.is_not(None))
    ).rowcount
    return Unsubscribed(
        subscriber.id, course, cancelled, already=state != EnrollmentState.ACTIVE and cancelled == 0
    )


def _unsubscribe_everything(
    conn: sa.Connection, subscriber: SubscriberRow, active: sa.Update, pending: sa.Update, *, now: dt.datetime
) -> Unsubscribed:
    """The subscriber's status, every active enrollment left, every pending delivery not handed off cancelled."""
    already = subscriber.status == SubscriberStatus.UNSUBSCRIBED
    if not already:
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id == subscriber.id)
            .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
        )
    conn.execute(active.values(state=EnrollmentState.LEFT, updated_at=now))
    cancelled = conn.execute(pending).rowcount
    leave_all_lists(conn, [subscriber.id], now=now)  # "everything" means the newsletters too
    return Unsubscribed(subscriber.id, None, cancelled, already=already and cancelled == 0)


def unsubscribe_many(conn: sa.Connection, subscriber_ids: Sequence[int], *, now: dt.datetime) -> None:
    """:func:`unsubscribe` from everything for many subscribers, a few statements per chunk."""
    for start in range(0, len(subscriber_ids), CHUNK):
        chunk = list(subscriber_ids[start : start + CHUNK])
        conn.execute(
            deliveries.update()
            .where(deliveries.c.subscriber_id.in_(chunk), deliveries.c.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.CANCELLED, note=UNSUBSCRIBED_NOTE, updated_at=now)
        )
        conn.execute(
            enrollments.update()
            .where(enrollments.c.subscriber_id.in_(chunk), enrollments.c.state == EnrollmentState.ACTIVE)
            .values(state=EnrollmentState.LEFT, updated_at=now)
        )
        conn.execute(
            subscribers.update()
            .where(subscribers.c.id.in_(chunk), subscribers.c.status != SubscriberStatus.UNSUBSCRIBED)
            .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
        )
        leave_all_lists(conn, chunk, now=now)


def subscribers_by_email(conn: sa.Connection, emails: Sequence[str]) -> dict[str, SubscriberRow]:
    """The known subscribers among ``emails`` (any spelling), keyed by the spelling given."""
    keys: dict[str, str] = {}
    for email in emails:
        try:
            keys[email] = normalise_address(email)
        except ValueError:
            continue
    found: dict[str, SubscriberRow] = {}
    wanted = sorted(set(keys.values()))
    for start in range(0, len(wanted), CHUNK):
        found.update(_by_email(conn, wanted[start : start + CHUNK]))
    return {email: found[key] for email, key in keys.items() if key in found}


def suppressed_addresses(
    conn: sa.Connection, emails: Sequence[str], secret: Callable[[], str]
) -> dict[str, str]:
    """Which of ``emails`` are on the suppression list, with the reason (erased, bounced, ...).

    The list holds keyed hashes, so checking needs the signing key: ``secret`` is
    asked for only once the list has an entry, so a new site needs no key to import.
    """
    if conn.execute(sa.select(suppressions.c.email_hash).limit(1)).first() is None:
        return {}
    key = secret()
    by_hash = {email_hash(key, email): email for email in emails}
    hashes = list(by_hash)
    found: dict[str, str] = {}
    for start in range(0, len(hashes), CHUNK):
        rows = conn.execute(
            sa.select(suppressions.c.email_hash, suppressions.c.reason).where(
                suppressions.c.email_hash.in_(hashes[start : start + CHUNK])
            )
        )
        found.update((by_hash[digest], reason) for digest, reason in rows)
    return found


def list_subscribers(
    conn: sa.Connection, *, status: str | None = None, course: str | None = None
) -> list[SubscriberRow]:
    """Subscribers by address, optionally only those with ``status`` or enrolled in ``course``."""
    query = sa.select(subscribers).order_by(subscribers.c.email)
    if status is not None:
        query = query.where(subscribers.c.status == status)
    if course is not None:
        enrolled = sa.select(enrollments.c.subscriber_id).where(enrollments.c.course == course)
        query = query.where(subscribers.c.id.in_(enrolled))
    return [_row(row) for row in conn.execute(query)]


def enrolled_courses(conn: sa.Connection) -> dict[int, list[str]]:
    """Each subscriber's courses, for listings."""
    result: dict[int, list[str]] = {}
    rows = conn.execute(
        sa.select(enrollments.c.subscriber_id, enrollments.c.course).order_by(enrollments.c.course)
    )
    for subscriber_id, course in rows:
        result.setdefault(subscriber_id, []).append(course)
    return result


EXPORT_COLUMNS = ("email", "name", "locale", "timezone", "status", "created_at", "unsubscribed_at")


def neutralise_formula(value: str) -> str:
    """Prefix a cell a spreadsheet would evaluate with a quote, so it stays text."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def _record(sub: SubscriberRow) -> dict[str, Any]:
    return {
        "email": sub.email,
        "name": sub.name,
        "locale": sub.locale,
        "timezone": sub.timezone,
        "status": sub.status,
        "created_at": sub.created_at.isoformat(),
        "unsubscribed_at": sub.unsubscribed_at.isoformat() if sub.unsubscribed_at else None,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return neutralise_formula(text)


def write_export(rows: Sequence[SubscriberRow], out: TextIO, fmt: ExportFormat) -> int:
    """Write subscribers as CSV (attributes as extra columns, formulas neutralised) or JSON."""
    if fmt == "json":
        json.dump(
            [{**_record(sub), "attributes": dict(sub.attributes)} for sub in rows],
            out,
            ensure_ascii=False,
            indent=2,
        )
        out.write("\n")
        return len(rows)
    extra = sorted({key for sub in rows for key in sub.attributes} - set(EXPORT_COLUMNS))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*EXPORT_COLUMNS, *extra])
    for sub in rows:
        record = _record(sub)
        writer.writerow(
            [_cell(record[col]) for col in EXPORT_COLUMNS] + [_cell(sub.attributes.get(key)) for key in extra]
        )
    return len(rows)


def export_subscribers(
    conn: sa.Connection, out: TextIO, *, fmt: ExportFormat = "csv", status: str | None = None
) -> int:
    """Export every subscriber (or those with ``status``); returns how many were written."""
    return write_export(list_subscribers(conn, status=status), out, fmt)
