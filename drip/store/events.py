"""The events ledger: what happened to each delivery, from every source, and the funnel it adds up to.

Sources: drip's click redirect, open image and unsubscribe pages, and providers' webhooks
(every SendGrid event type). "Sent" is not an event row: it is the delivery's own status,
recorded by dispatch, and the funnel reads it there. Each event row says whether a machine
made it (a link scanner, a prefetching proxy) and whether it is the first of its kind for its
delivery; the funnel counts first rows only, so it needs no DISTINCT over the ledger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from drip.store.retry import write
from drip.store.schema import DeliveryStatus, EventKind, deliveries, events, subscribers

# Several links of one email clicked this close together: a scanner following every link.
BURST_WINDOW = dt.timedelta(seconds=10)
BURST_LINKS = 3
ALL_AT_ONCE = "every link at once"

_Work = Callable[[sa.Connection], bool]

# Every SQLite transaction of drip's takes the write lock (BEGIN IMMEDIATE), and a thread that
# finds it taken sleeps in SQLite's busy handler, up to 100 ms a turn. The web's threads take
# their turns here instead, woken as soon as the one before is done: clicks arriving together
# queue in this process rather than back off against each other.
_SQLITE_TURNS = threading.Lock()


@contextlib.contextmanager
def _turn(engine: sa.Engine) -> Iterator[None]:
    if engine.dialect.name != "sqlite":
        yield
        return
    with _SQLITE_TURNS:
        yield


@dataclass(frozen=True)
class Event:
    """One thing that happened to one delivery (or to no known delivery: ``delivery_id`` None)."""

    delivery_id: int | None
    kind: str
    source: str
    occurred_at: dt.datetime
    machine: bool = False
    link: int | None = None
    detail: str | None = None
    digest: str | None = None  # a provider event's identity across its retries


@dataclass(frozen=True)
class Tracked:
    """What /c/ and /o/ need about a delivery: where its links come from and when it arrived."""

    delivery_id: int
    course: str
    step_key: str
    locale: str | None
    arrived_at: dt.datetime | None  # the provider's "delivered", else drip's hand-off


def _tracked_stmt() -> sa.Select[str, str, str | None, dt.datetime | None, dt.datetime | None]:
    delivered = (
        sa.select(sa.func.min(events.c.occurred_at))
        .where(events.c.delivery_id == deliveries.c.id, events.c.kind == EventKind.DELIVERED)
        .scalar_subquery()
    )
    return (
        sa.select(
            deliveries.c.course, deliveries.c.step_key, subscribers.c.locale, deliveries.c.sent_at, delivered
        )
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(deliveries.c.id == sa.bindparam("delivery_id"), deliveries.c.status == DeliveryStatus.SENT)
    )


# Built once: a click runs these statements, and building them anew cost more than running them.
_TRACKED = _tracked_stmt()


def tracked_delivery(engine: sa.Engine, delivery_id: int) -> Tracked | None:
    """A sent delivery by id, or None (unknown, erased or never sent: nothing to track)."""
    with _turn(engine), engine.connect() as conn:
        row = conn.execute(_TRACKED, {"delivery_id": delivery_id}).first()
    if row is None:
        return None
    arrived = max((t for t in (row[3], row[4]) if t is not None), default=None)
    return Tracked(delivery_id, row[0], row[1], row[2], arrived)


def record_events(conn: sa.Connection, batch: Sequence[Event]) -> int:
    """Add events in one bulk insert, marking the first of each kind per delivery; an event whose
    digest is already in the ledger (or earlier in the batch) is skipped. Returns how many were added."""
    digests = {e.digest for e in batch if e.digest is not None}
    seen: set[str | None] = set()
    if digests:
        seen = set(conn.execute(sa.select(events.c.digest).where(events.c.digest.in_(digests))).scalars())
    ids = {e.delivery_id for e in batch if e.delivery_id is not None}
    firsts = _firsts(conn, ids)
    facts = _facts(conn, ids)
    rows: list[dict[str, object]] = []
    for event in batch:
        if event.digest is not None and event.digest in seen:
            continue
        if event.digest is not None:
            seen.add(event.digest)
        key = (event.delivery_id, event.kind, event.machine)
        first = event.delivery_id is not None and key not in firsts
        firsts.add(key)
        rows.append({**_row(event), **facts.get(event.delivery_id or 0, _NO_FACTS), "first": first})
    if rows:
        conn.execute(events.insert(), rows)
    return len(rows)


def _row(event: Event) -> dict[str, object]:
    return {
        "delivery_id": event.delivery_id,
        "kind": event.kind,
        "source": event.source,
        "machine": event.machine,
        "link": event.link,
        "detail": event.detail,
        "digest": event.digest,
        "occurred_at": event.occurred_at,
    }


_NO_FACTS: dict[str, object] = {"course": None, "step_key": None, "sent_at": None}


def _facts(conn: sa.Connection, delivery_ids: set[int]) -> dict[int, dict[str, object]]:
    """Course, step and hand-off of each delivery, copied onto its events for the funnel's index."""
    if not delivery_ids:
        return {}
    stmt = sa.select(deliveries.c.id, deliveries.c.course, deliveries.c.step_key, deliveries.c.sent_at).where(
        deliveries.c.id.in_(delivery_ids)
    )
    return {r[0]: {"course": r[1], "step_key": r[2], "sent_at": r[3]} for r in conn.execute(stmt)}


def _firsts(conn: sa.Connection, delivery_ids: set[int]) -> set[tuple[int | None, str, bool]]:
    if not delivery_ids:
        return set()
    stmt = sa.select(events.c.delivery_id, events.c.kind, events.c.machine).where(
        events.c.delivery_id.in_(delivery_ids), events.c.first == sa.true()
    )
    return {(r[0], r[1], bool(r[2])) for r in conn.execute(stmt)}


@dataclass(frozen=True)
class Click:
    """A click on link ``link`` of an email of ``links`` links; ``machine`` names why it is a machine's."""

    delivery_id: int
    link: int
    now: dt.datetime
    links: int
    machine: str | None = None


def record_click(
    engine: sa.Engine,
    delivery_id: int,
    link: int,
    *,
    now: dt.datetime,
    links: int,
    machine: str | None = None,
) -> bool:
    """Record a click on link ``link`` of an email of ``links`` links; True when it counts as a
    reader's (``machine`` names why not).

    A click that makes :data:`BURST_LINKS` different links (every link, in a shorter email) of
    one email clicked within :data:`BURST_WINDOW` is a scanner's, and so are the other clicks of
    that burst, after the fact.

    Clicks arriving together from several threads are written together: each caller waits for
    the one transaction that holds its click (see :class:`_GroupedClicks`), so none is answered
    before its click is committed.
    """
    return _grouped(engine).record(Click(delivery_id, link, now, links, machine))


def _click_work(click: Click) -> _Work:
    needed = min(BURST_LINKS, click.links)

    def work(conn: sa.Connection) -> bool:
        reason = click.machine
        if reason is None and needed >= 2 and _burst(conn, click.delivery_id, click.link, click.now, needed):
            _demote_burst(conn, click.delivery_id, click.now)
            reason = ALL_AT_ONCE
        values = {
            "delivery_id": click.delivery_id,
            "machine": reason is not None,
            "link": click.link,
            "detail": reason,
            "occurred_at": click.now,
        }
        conn.execute(_CLICK_INSERT, values)
        return reason is None

    return _retry_once(work)


class _Slot:
    def __init__(self, click: Click) -> None:
        self.click = click
        self.done = False
        self.counted = False
        self.error: BaseException | None = None


class _GroupedClicks:
    """Group commit: the first caller to find no write under way writes every click queued by
    then in one transaction (one commit, one fsync), in order, so each sees the clicks before it
    (a burst across a batch is still one burst); the others wait and are woken when theirs is in."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._writing = False

    def record(self, click: Click) -> bool:
        slot = _Slot(click)
        with self._cond:
            self._queue.append(slot)
            while self._writing and not slot.done:
                self._cond.wait()
            if not slot.done:
                self._writing = True
                batch, self._queue = self._queue, []
        if not slot.done:
            self._write(batch)
        if slot.error is not None:
            raise slot.error
        return slot.counted

    def _write(self, batch: list[_Slot]) -> None:
        works = [_click_work(s.click) for s in batch]
        try:
            with _turn(self._engine):
                counted = write(self._engine, lambda conn: [w(conn) for w in works])
            for s, c in zip(batch, counted, strict=True):
                s.counted = c
        except BaseException as exc:  # every caller of the batch hears why its click was not kept
            for s in batch:
                s.error = exc
        with self._cond:
            for s in batch:
                s.done = True
            self._writing = False
            self._cond.notify_all()


_GROUPS: weakref.WeakKeyDictionary[sa.Engine, _GroupedClicks] = weakref.WeakKeyDictionary()
_GROUPS_LOCK = threading.Lock()


def _grouped(engine: sa.Engine) -> _GroupedClicks:
    with _GROUPS_LOCK:
        found = _GROUPS.get(engine)
        if found is None:
            found = _GROUPS[engine] = _GroupedClicks(engine)
        return found


def _retry_once(work: _Work) -> _Work:
    """Two first clicks at once break the partial unique index: the second is read again, not first."""

    def run(conn: sa.Connection) -> bool:
        try:
            with conn.begin_nested():
                return work(conn)
        except sa.exc.IntegrityError:
            return work(conn)

    return run


def _click_insert() -> sa.Insert:
    """One click in one statement, as :func:`record_events` writes it: first of its kind (human or
    machine) for its delivery unless one is there, with the delivery's course, step and hand-off."""
    machine = sa.bindparam("machine", type_=sa.Boolean)
    earlier = (
        sa.select(events.c.id)
        .where(
            events.c.delivery_id == deliveries.c.id,
            events.c.kind == EventKind.CLICKED,
            events.c.machine == machine,
            events.c.first == sa.true(),
        )
        .exists()
    )
    source = sa.select(
        deliveries.c.id,
        sa.literal(EventKind.CLICKED.value),
        sa.literal("drip"),
        machine,
        ~earlier,
        sa.bindparam("link", type_=sa.Integer),
        sa.bindparam("detail", type_=sa.String),
        sa.bindparam("occurred_at", type_=events.c.occurred_at.type),
        deliveries.c.course,
        deliveries.c.step_key,
        deliveries.c.sent_at,
    ).where(deliveries.c.id == sa.bindparam("delivery_id"))
    columns = ("delivery_id", "kind", "source", "machine", "first", "link", "detail", "occurred_at")
    return events.insert().from_select([*columns, "course", "step_key", "sent_at"], source)


def _burst_stmt() -> sa.Select[int]:
    return sa.select(sa.func.count(sa.distinct(events.c.link))).where(
        events.c.delivery_id == sa.bindparam("delivery_id"),
        events.c.kind == EventKind.CLICKED,
        events.c.occurred_at > sa.bindparam("since", type_=events.c.occurred_at.type),
        events.c.link != sa.bindparam("link"),
    )


_CLICK_INSERT = _click_insert()
_BURST = _burst_stmt()


def _burst(conn: sa.Connection, delivery_id: int, link: int, now: dt.datetime, needed: int) -> bool:
    found = conn.execute(_BURST, {"delivery_id": delivery_id, "since": now - BURST_WINDOW, "link": link})
    return int(found.scalar_one()) + 1 >= needed


def _demote_burst(conn: sa.Connection, delivery_id: int, now: dt.datetime) -> None:
    """The burst's earlier clicks become machine clicks; none of them stays a reader's first."""
    conn.execute(
        events.update()
        .where(
            events.c.delivery_id == delivery_id,
            events.c.kind == EventKind.CLICKED,
            events.c.machine == sa.false(),
            events.c.occurred_at > now - BURST_WINDOW,
        )
        .values(machine=True, first=False, detail=ALL_AT_ONCE)
    )


def record_open(engine: sa.Engine, delivery_id: int, *, now: dt.datetime, machine: str | None = None) -> None:
    """Record the open image being fetched; ``machine`` names a proxy or prefetcher that fetched it."""
    event = Event(delivery_id, EventKind.OPENED, "drip", now, machine=machine is not None, detail=machine)
    with _turn(engine):
        write(engine, _retry_once(lambda conn: bool(record_events(conn, [event]))))


def record_unsubscribe(
    conn: sa.Connection, subscriber_id: int, course: str | None, *, now: dt.datetime
) -> None:
    """An unsubscribe through drip's own pages, charged to the last email sent before it."""
    stmt = (
        sa.select(deliveries.c.id)
        .where(deliveries.c.subscriber_id == subscriber_id, deliveries.c.status == DeliveryStatus.SENT)
        .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
        .limit(1)
    )
    if course is not None:
        stmt = stmt.where(deliveries.c.course == course)
    delivery_id = conn.execute(stmt).scalar()
    if delivery_id is not None:
        record_events(conn, [Event(delivery_id, EventKind.UNSUBSCRIBED, "drip", now)])


def known_deliveries(conn: sa.Connection, delivery_ids: Iterable[int]) -> set[int]:
    """Which of these delivery ids exist (a provider may report on an erased reader's email)."""
    ids = set(delivery_ids)
    if not ids:
        return set()
    return set(conn.execute(sa.select(deliveries.c.id).where(deliveries.c.id.in_(ids))).scalars())


@dataclass(frozen=True)
class StepFigures:
    """One step's (or issue's) figures; each count is of deliveries, not of events."""

    key: str
    sent: int
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    clicked: int = 0  # readers: first human click
    machine_clicked: int = 0
    unsubscribed: int = 0
    opened: int = 0
    machine_opened: int = 0
    first_sent: dt.datetime | None = None  # its first email's hand-off (a list's issues are in this order)


_COUNTED: tuple[tuple[str, str, bool], ...] = (
    ("delivered", EventKind.DELIVERED, False),
    ("bounced", EventKind.BOUNCED, False),
    ("complained", EventKind.COMPLAINED, False),
    ("clicked", EventKind.CLICKED, False),
    ("machine_clicked", EventKind.CLICKED, True),
    ("unsubscribed", EventKind.UNSUBSCRIBED, False),
    ("opened", EventKind.OPENED, False),
    ("machine_opened", EventKind.OPENED, True),
)


def funnel(
    engine: sa.Engine, course: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> dict[str, StepFigures]:
    """Figures per step key of the emails of ``course`` sent in [since, until): one query, the
    deliveries sent and the first events of each kind (from the partial index ``ix_events_funnel``).

    Newsletter lists will share this: their issues are delivery rows too, keyed by the issue
    instead of the step, so a list's report is this query on its deliveries.
    """
    d, e = deliveries, events
    sent = sa.select(
        d.c.step_key, sa.literal("sent"), sa.literal(False), sa.func.count(), sa.func.min(d.c.sent_at)
    ).where(d.c.course == course, d.c.status == DeliveryStatus.SENT, *_between(d.c.sent_at, since, until))
    counted = sa.select(e.c.step_key, e.c.kind, e.c.machine, sa.func.count(), sa.null()).where(
        e.c.course == course, e.c.first == sa.true(), *_between(e.c.sent_at, since, until)
    )
    stmt = sa.union_all(sent.group_by(d.c.step_key), counted.group_by(e.c.step_key, e.c.kind, e.c.machine))
    with engine.connect() as conn:
        found = conn.execute(stmt).all()
    names = {(kind, machine): name for name, kind, machine in _COUNTED}
    values: dict[str, dict[str, int]] = {}
    first_sent: dict[str, dt.datetime] = {}
    for key, kind, machine, count, first in found:
        name = "sent" if kind == "sent" else names.get((kind, bool(machine)))
        if name is not None and key is not None:
            values.setdefault(key, {})[name] = int(count)
        if first is not None and key is not None:
            first_sent[key] = first
    return {
        key: StepFigures(key, **{"sent": 0, **v}, first_sent=first_sent.get(key)) for key, v in values.items()
    }


def _between(
    column: sa.ColumnElement[dt.datetime], since: dt.datetime | None, until: dt.datetime | None
) -> list[sa.ColumnElement[bool]]:
    return [
        *([column >= since] if since is not None else []),
        *([column < until] if until is not None else []),
    ]


def rate(part: int, whole: int) -> float | None:
    """``part`` as a share of ``whole``; None when there is nothing to divide by."""
    return part / whole if whole else None


def report_rows(
    figures: dict[str, StepFigures], keys: Sequence[str], *, label: str = "step", prefix: str = ""
) -> list[dict[str, object]]:
    """The funnel in the course's order (steps no longer in it last): counts, rates over sent, and
    the drop-off in emails sent from the step before. ``label`` names the first column ("issue"
    for a list), whose values are the keys without ``prefix``."""
    ordered = [figures.get(k, StepFigures(k, 0)) for k in keys]
    ordered += [f for k, f in figures.items() if k not in set(keys)]
    rows: list[dict[str, object]] = []
    before: int | None = None
    for f in ordered:
        rows.append(
            {
                label: f.key.removeprefix(prefix),
                "sent": f.sent,
                "delivered": f.delivered,
                "bounced": f.bounced,
                "complained": f.complained,
                "clicked": f.clicked,
                "machine_clicked": f.machine_clicked,
                "unsubscribed": f.unsubscribed,
                "opened": f.opened,
                "machine_opened": f.machine_opened,
                "delivered_rate": rate(f.delivered, f.sent),
                "bounce_rate": rate(f.bounced, f.sent),
                "click_rate": rate(f.clicked, f.sent),
                "unsubscribe_rate": rate(f.unsubscribed, f.sent),
                "drop_off": None if before is None else rate(before - f.sent, before),
            }
        )
        before = f.sent
    return rows


def issue_rows(figures: Mapping[str, StepFigures], prefix: str) -> list[dict[str, object]]:
    """A list's report: its issues (keys starting with ``prefix``) in the order they went out,
    each row labelled ``issue`` (a course of the same name has no such rows)."""
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    issues = sorted(
        (f for f in figures.values() if f.key.startswith(prefix)),
        key=lambda f: (f.first_sent or never, f.key),
    )
    keys = [f.key for f in issues]
    return report_rows({k: figures[k] for k in keys}, keys, label="issue", prefix=prefix)
