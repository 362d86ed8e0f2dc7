"""Newsletter issues and their emails: ordinary delivery rows in the one ledger.

An issue is one row per key (the list and its period, or the broadcast file): when
several workers decide at the same moment that an issue is due, the insert itself
picks one winner, with no lock taken first. Its emails are delivery rows
(``course`` = the list's name, ``step_key`` = ``issue:<key>``, no enrollment), so
claims, leases, recording, status and the kill tests treat them like course emails.
They are written a batch of members at a time, each batch in its own short
transaction, and (issue, subscriber) is unique: running again after a crash in the
middle adds only the rows still missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from drip.store.db import among
from drip.store.lists import CHUNK, Member, count_members, ensure_list, members, on_conflict_do_nothing
from drip.store.schema import (
    DeliveryStatus,
    EnrollmentState,
    deliveries,
    enrollments,
    lists,
    newsletter_issues,
    subscribers,
)

ISSUE_PREFIX = "issue:"
ARTICLE_PREFIX = "article:"  # the step key of a course email that offers one post
d = deliveries
MAX_IDS = 30_000  # ids per INSERT … SELECT: under SQLite's bound-parameter limit (32,766)
# From this many new rows on, an issue's writing refreshes PostgreSQL's statistics of the deliveries
# table: planning with a table a fraction of its real size, the send's per-chunk reads by id
# became sequential scans (autovacuum's own ANALYZE comes a minute or more later).
ANALYZE_AFTER = 10_000

# Given a batch of members, the subscriber ids to leave out of the issue, each with why.
Exclude = Callable[[Sequence[Member]], Mapping[int, str]]
Due = Callable[[Member], dt.datetime]  # a member's own due time for the issue (UTC)


@dataclass(frozen=True)
class Issue:
    """One newsletter issue as stored."""

    id: int
    list: str
    key: str
    kind: str  # DIGEST or BROADCAST
    subject: str
    send_at: dt.datetime
    created_at: dt.datetime
    post_urls: tuple[str, ...]
    counts: Mapping[str, Any] | None  # what the last complete writing of its deliveries did
    public_copy: Mapping[str, str] | None = None  # subject, html, text as the archive shows it

    @property
    def step_key(self) -> str:
        """The step key its delivery rows carry."""
        return issue_step_key(self.key)


@dataclass(frozen=True)
class IssueCounts:
    """What :func:`create_issue_deliveries` did."""

    created: int  # delivery rows written by this call
    existing: int  # members whose row an earlier (interrupted) call had written
    excluded: Mapping[str, int] = field(default_factory=dict)  # reason → members left out

    @property
    def recipients(self) -> int:
        """Members the issue goes to, whichever call wrote their row."""
        return self.created + self.existing

    def as_json(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "excluded": dict(self.excluded)}


def issue_step_key(key: str) -> str:
    """``issue:<key>``: an issue's delivery rows are told from course steps by this prefix."""
    return f"{ISSUE_PREFIX}{key}"


def _issue(row: sa.Row[Any]) -> Issue:
    r = row._mapping
    copy = r.get("public_copy")
    return Issue(
        id=r["id"],
        list=r["list"],
        key=r["key"],
        kind=r["kind"],
        subject=r["subject"],
        send_at=r["send_at"],
        created_at=r["created_at"],
        post_urls=tuple(r["post_urls"] or ()),
        counts=r["counts"],
        public_copy=copy,
    )


def get_issue(conn: sa.Connection, key: str) -> Issue | None:
    """The issue with this key, or None."""
    row = conn.execute(sa.select(newsletter_issues).where(newsletter_issues.c.key == key)).first()
    return _issue(row) if row is not None else None


# An issue as a dispatch pass reads it: without its public copy (the whole email, for the archive),
# which a pass does not use and whose JSON cost more to read than the rest of a batch's issue rows.
_SENDING = [c for c in newsletter_issues.c if c.name != "public_copy"]


def issues_by_key(engine: sa.Engine, keys: Sequence[str]) -> dict[str, Issue]:
    """The issues with these keys (what a dispatch pass renders its issue emails from), without
    their public copy (``public_copy`` is None: :func:`get_issue` and :func:`list_issues` read it)."""
    found: dict[str, Issue] = {}
    with engine.connect() as conn:
        for at in range(0, len(keys), CHUNK):
            query = sa.select(*_SENDING).where(newsletter_issues.c.key.in_(keys[at : at + CHUNK]))
            found.update((issue.key, issue) for issue in map(_issue, conn.execute(query)))
    return found


def last_issue(engine: sa.Engine, list_name: str, key_prefix: str) -> Issue | None:
    """The list's latest issue whose key starts with ``key_prefix`` (a digest's), or None."""
    i = newsletter_issues
    query = (
        sa.select(i)
        .where(i.c.list == list_name, i.c.key.startswith(key_prefix, autoescape=True))
        .order_by(i.c.send_at.desc(), i.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return _issue(row) if row is not None else None


def open_issue(engine: sa.Engine, key: str) -> Issue | None:
    """The issue ``key`` when its deliveries are not all written yet (a crash, or another worker on it)."""
    with engine.connect() as conn:
        issue = get_issue(conn, key)
    return issue if issue is not None and issue.counts is None else None


def list_created_at(engine: sa.Engine, list_name: str) -> dt.datetime | None:
    """When the list was created (where its first digest starts); None when it does not exist yet."""
    with engine.connect() as conn:
        found: dt.datetime | None = conn.execute(
            sa.select(lists.c.created_at).where(lists.c.name == list_name)
        ).scalar_one_or_none()
    return found


def list_issues(conn: sa.Connection, list_name: str) -> list[Issue]:
    """A list's issues, oldest send time first (what a digest's period starts after)."""
    i = newsletter_issues
    query = sa.select(i).where(i.c.list == list_name).order_by(i.c.send_at, i.c.id)
    return [_issue(row) for row in conn.execute(query)]


def insert_issue(
    conn: sa.Connection,
    *,
    list: str,  # named like the column
    key: str,
    kind: str,
    send_at: dt.datetime,
    post_urls: Sequence[str],
    now: dt.datetime,
    subject: str = "",
    public_copy: Mapping[str, str] | None = None,
) -> Issue | None:
    """:func:`create_issue` in the caller's transaction."""
    ensure_list(conn, list, now=now)
    values = {
        "list": list,
        "key": key,
        "kind": kind,
        "subject": subject,
        "send_at": send_at,
        "created_at": now,
        "post_urls": [str(url) for url in post_urls],
        "public_copy": dict(public_copy) if public_copy is not None else None,
    }
    done = conn.execute(
        on_conflict_do_nothing(conn, newsletter_issues).values(values).returning(newsletter_issues.c.id)
    ).first()
    if done is None:
        return None
    return get_issue(conn, key)


def create_issue(
    engine: sa.Engine,
    *,
    list: str,  # named like the column
    key: str,
    kind: str,
    send_at: dt.datetime,
    post_urls: Sequence[str],
    now: dt.datetime,
    subject: str = "",
    public_copy: Mapping[str, str] | None = None,
) -> Issue | None:
    """Create the issue ``key`` of ``list``; None when it exists already (someone else made it).

    ``INSERT … ON CONFLICT DO NOTHING`` on the unique key: of several workers calling this
    at the same moment, exactly one gets the Issue, and the others wait for its commit
    and get None, whatever the dialect. The list is created if it did not exist.
    """
    with engine.begin() as conn:
        return insert_issue(
            conn,
            list=list,
            key=key,
            kind=kind,
            send_at=send_at,
            post_urls=post_urls,
            now=now,
            subject=subject,
            public_copy=public_copy,
        )


def _write_batch(
    conn: sa.Connection, issue: Issue, todo: Sequence[Member], now: dt.datetime, due_at: dt.datetime
) -> int:
    """Insert the batch's delivery rows, skipping those already there; returns how many were new.

    One ``INSERT … SELECT`` whose only per-row value is the subscriber id (one array on
    PostgreSQL): a multi-row VALUES list of 5,000 rows cost more to build and parse than to write.
    """
    ids = [member.subscriber_id for member in todo]
    chosen = among(conn, subscribers.c.id, ids)
    values: dict[str, sa.ColumnElement[Any]] = {
        "issue_id": sa.literal(issue.id, sa.Integer()),
        "subscriber_id": subscribers.c.id,
        "course": sa.literal(issue.list, d.c.course.type),
        "step_key": sa.literal(issue.step_key, d.c.step_key.type),
        "due_at": sa.literal(due_at, d.c.due_at.type),
        "status": sa.literal(DeliveryStatus.PENDING, d.c.status.type),
        "created_at": sa.literal(now, d.c.created_at.type),
        "updated_at": sa.literal(now, d.c.updated_at.type),
    }
    source = sa.select(*(value.label(name) for name, value in values.items())).where(chosen)
    stmt = on_conflict_do_nothing(conn, d).from_select(list(values), source).returning(d.c.id)
    return len(conn.execute(stmt).all())


def _by_due(
    todo: Sequence[Member], issue: Issue, due: Due | None
) -> Iterator[tuple[dt.datetime, Sequence[Member]]]:
    """The batch in parts of one due time each, none over :data:`MAX_IDS` members."""
    groups: dict[dt.datetime, list[Member]] = {}
    for member in todo:
        groups.setdefault(issue.send_at if due is None else due(member), []).append(member)
    for when, group in groups.items():
        for at in range(0, len(group), MAX_IDS):
            yield when, group[at : at + MAX_IDS]


def create_issue_deliveries(
    engine: sa.Engine,
    issue: Issue,
    *,
    batch_size: int = 5000,
    exclude: Exclude | None = None,
    due: Due | None = None,
    now: dt.datetime,
    progress: Callable[[int, int], None] | None = None,
) -> IssueCounts:
    """Write one pending delivery per member of the issue's list who may be mailed, due at its send time.

    Members are streamed a batch at a time (:func:`drip.store.lists.members`), so memory
    holds one batch whatever the list's size; each batch is written in bulk in its own
    transaction, so no write lock is held across the whole list (decision 11) and a
    crash loses at most the batch in hand. ``exclude`` (the list's rules: a reader in
    the middle of a course, a digest with nothing new for them) names the members to
    leave out and why; they get no row, so a later call may still add them. ``due``
    gives a member's own due time (a send window in their zone); else the issue's send
    time. The counts are kept on the issue row too. ``progress`` is told each batch's
    size and the list's, so a bar can move on a large list.
    """
    created = existing = 0
    excluded: dict[str, int] = {}
    total = count_members(engine, issue.list) if progress is not None else 0
    for batch in members(engine, issue.list, batch_size=batch_size):
        skip = exclude(batch) if exclude is not None else {}
        for reason in skip.values():
            excluded[reason] = excluded.get(reason, 0) + 1
        todo = [member for member in batch if member.subscriber_id not in skip]
        if todo:
            with engine.begin() as conn:
                new = sum(
                    _write_batch(conn, issue, part, now, when) for when, part in _by_due(todo, issue, due)
                )
            created += new
            existing += len(todo) - new
        if progress is not None:
            progress(len(batch), max(total, len(batch)))
    counts = IssueCounts(created, existing, excluded)
    with engine.begin() as conn:
        conn.execute(
            newsletter_issues.update()
            .where(newsletter_issues.c.id == issue.id)
            .values(counts=counts.as_json())
        )
    if created >= ANALYZE_AFTER and engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {d.name}")
    return counts


def in_course(conn: sa.Connection, subscriber_ids: Sequence[int]) -> set[int]:
    """Those of ``subscriber_ids`` in the middle of a course: an active enrollment with emails still due.

    A list with ``hold_during_course`` keeps them out of its issues until they finish, so
    a reader does not get a newsletter on top of a course's daily emails. An enrollment
    whose last email is sent counts as finished even before it is marked completed.
    """
    e = enrollments
    still_due = sa.exists().where(d.c.enrollment_id == e.c.id, d.c.status == DeliveryStatus.PENDING)
    found: set[int] = set()
    for start in range(0, len(subscriber_ids), CHUNK):
        chunk = list(subscriber_ids[start : start + CHUNK])
        query = sa.select(e.c.subscriber_id).where(
            e.c.subscriber_id.in_(chunk), e.c.state == EnrollmentState.ACTIVE, still_due
        )
        found.update(conn.execute(query).scalars().all())
    return found


def course_urls(
    conn: sa.Connection, subscriber_ids: Sequence[int], *, since: dt.datetime
) -> dict[int, set[str]]:
    """Per subscriber, the posts their courses sent them since ``since`` or will send them later.

    A digest is gathered per reader: a post their course offered them lately, or is
    going to offer them, is left out of their digest, so nobody reads the same
    invitation twice. Read from the course emails' step keys (``article:<url>``);
    subscribers with none are missing from the answer.
    """
    is_article = d.c.step_key.startswith(ARTICLE_PREFIX, autoescape=True)
    recent = sa.or_(
        d.c.status == DeliveryStatus.PENDING, sa.and_(d.c.status == DeliveryStatus.SENT, d.c.sent_at >= since)
    )
    found: dict[int, set[str]] = {}
    for start in range(0, len(subscriber_ids), CHUNK):
        chunk = list(subscriber_ids[start : start + CHUNK])
        query = sa.select(d.c.subscriber_id, d.c.step_key).where(
            among(conn, d.c.subscriber_id, chunk), d.c.enrollment_id.is_not(None), is_article, recent
        )
        for sid, key in conn.execute(query).all():
            found.setdefault(sid, set()).add(key[len(ARTICLE_PREFIX) :])
    return found
