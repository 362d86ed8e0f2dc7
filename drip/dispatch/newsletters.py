"""Newsletters on the clock: create each issue when its time comes, and build its emails at send time.

An issue is created once whoever fires its slot (the unique key picks one winner,
design decision 10); its delivery rows are written in streamed batches, and an issue
whose rows are not all written yet (a crash, another worker on it) is finished by
the next planner, the unique (issue, subscriber) keeping anyone from getting two.
At send time an issue email is rendered once per issue, locale and post list and
kept on the runtime; a digest leaves out, per reader, the posts their course sent
lately or will send.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from drip.config import Site
from drip.content import ContentIndex
from drip.content.broadcasts import Broadcast, read_broadcasts
from drip.content.posts import BROADCASTS_DIR, load_content
from drip.course.issues import next_issue_time, period_key
from drip.course.newsletter import Newsletters, load_newsletters
from drip.course.newsletter_models import Digest, MailingList
from drip.course.selection import DigestPost, candidates, for_reader, gather_posts
from drip.course.timing import due_at, resolve_timezone
from drip.dispatch.decide import SUBSCRIBER_DELETED, Cancel, Fail, Pass, Retry, Send, after_error, message
from drip.errors import DripError
from drip.inputs.stamps import stamp
from drip.render.archive import public_copy
from drip.render.newsletter import broadcast_key, render_broadcast, render_digest
from drip.render.rendered import LruCache, RenderedStep
from drip.runtime import Runtime
from drip.store.claims import Claimed
from drip.store.deliveries import Recipient, member_recipients
from drip.store.issues import (
    ISSUE_PREFIX,
    Due,
    Exclude,
    Issue,
    course_urls,
    create_issue,
    create_issue_deliveries,
    in_course,
    issues_by_key,
    last_issue,
    list_created_at,
    open_issue,
)
from drip.store.lists import LEFT_NOTE, Member
from drip.store.schema import BROADCAST, DIGEST, EnrollmentState, SubscriberStatus

log = logging.getLogger(__name__)

NOTHING_NEW = "nothing new for them"
IN_COURSE_WAIT = "in a course: a later issue"
IN_COURSE_SKIP = "in a course"
ISSUE_REMOVED = "issue removed"
LIST_REMOVED = "list removed"
DEFINITION_SUFFIXES = (".yaml", ".yml", ".md")  # schedules (lists, digests) and broadcast files
_LATER = dt.timedelta(microseconds=1)
# Starts a progress bar for one issue's emails, by description; it is told (done, total).
Progress = Callable[[str], Callable[[int, int], None]]

Decision = Send | Cancel | Retry | Fail


@dataclass(frozen=True)
class Sources:
    """What issue emails are rendered from: the lists and digests, the broadcast files, the posts."""

    newsletters: Newsletters
    broadcasts: Mapping[str, Broadcast]
    read_index: Callable[[], ContentIndex]  # read once, when a digest needs it

    @property
    def index(self) -> ContentIndex:
        return self.read_index()


def _definitions(site: Site) -> tuple[Newsletters, Mapping[str, Broadcast]]:
    found, _problems = read_broadcasts(site.content_dir)  # drip check reports broken files
    return load_newsletters(site), {b.slug: b for b in found}


def definitions(site: Site, runtime: Runtime | None) -> tuple[Newsletters, Mapping[str, Broadcast]]:
    """The site's lists and digests, and its broadcasts by slug.

    Kept on ``runtime`` and read again only when a file of schedules/ or content/newsletters/
    changed (its stamp: path, size, modification time): a site keeps every broadcast it ever
    sent, and reading them all was the largest cost of a dispatch pass and of a planning tick.
    Without a runtime (a one-off command), read now.
    """
    if runtime is None:
        return _definitions(site)
    files = stamp([site.schedules_dir, site.content_dir / BROADCASTS_DIR], DEFINITION_SUFFIXES)
    return runtime.newsletter_definitions.get_or_make((str(site.root), files), lambda: _definitions(site))


def load_sources(site: Site, now: dt.datetime, runtime: Runtime) -> Sources:
    """The pass's lists and broadcasts (kept on ``runtime``: :func:`definitions`); the posts only if a
    digest is rendered (a broadcast needs none, and reading a real site's posts costs more than a
    whole batch of emails)."""
    newsletters, broadcasts = definitions(site, runtime)
    return Sources(
        newsletters,
        broadcasts,
        functools.cache(lambda: load_content(site.content_dir, now=now, locale=site.config.site.locale)),
    )


def taken_posts(urls: set[str] | None, now: dt.datetime) -> dict[str, dt.datetime]:
    """A reader's course posts (sent within the list's window, or still due) as ``for_reader`` reads them."""
    return {url: now + _LATER for url in urls or ()}


def _digest_posts(
    digest: Digest, index: ContentIndex, urls: Sequence[str], now: dt.datetime
) -> list[DigestPost]:
    """The issue's posts, in the issue's order, as the content has them now."""
    found = {p.post.url: p for p in candidates(digest, index, now)}
    return [found[url] for url in urls if url in found]


# --- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuePass:
    """One dispatch pass's view of the issues it sends."""

    site: Site
    runtime: Runtime
    sources: Sources
    issues: Mapping[str, Issue]
    taken: Mapping[int, set[str]]  # subscriber → their courses' recent and coming posts
    ctx: Pass
    # What this pass rendered or found rendered, by the runtime cache's key: most of a batch's
    # readers share one render, found here without the cache's lock.
    seen: dict[tuple[int, str, tuple[str, ...]], RenderedStep] = field(default_factory=dict)


def _render(ip: IssuePass, issue: Issue, mlist: MailingList, locale: str, sid: int) -> RenderedStep | Cancel:
    """The issue for this reader, rendered once per (issue, locale, posts) for the runtime's life."""
    cache = ip.runtime.issue_renders
    now = ip.ctx.now
    if issue.kind == BROADCAST:
        key: tuple[int, str, tuple[str, ...]] = (issue.id, locale, ())
        found = ip.seen.get(key)
        if found is not None:
            return found
        broadcast = ip.sources.broadcasts.get(issue.key.removeprefix("broadcast:"))
        if broadcast is None:
            return Cancel(ISSUE_REMOVED)
        found = ip.seen[key] = cache.get_or_make(
            key, lambda: render_broadcast(ip.site, broadcast, mlist, locale=locale)
        )
        return found
    digest = ip.sources.newsletters.digests.get(issue.key.split(":", 1)[0])
    if digest is None:
        return Cancel(ISSUE_REMOVED)
    posts = _digest_posts(digest, ip.sources.index, issue.post_urls, now)
    mine = for_reader(posts, taken_posts(ip.taken.get(sid), now), mlist.no_repeat_days, now)
    if not mine:
        return Cancel(NOTHING_NEW)
    key = (issue.id, locale, tuple(p.post.url for p in mine))
    found = ip.seen.get(key)
    if found is None:
        found = ip.seen[key] = cache.get_or_make(
            key, lambda: render_digest(ip.site, digest, mlist, mine, issue.key, locale=locale)
        )
    return found


# Read once: looking up an Enum member on its class costs four times reading a global, and every
# issue email asks both.
_ACTIVE_READER, _MEMBER = SubscriberStatus.ACTIVE, EnrollmentState.ACTIVE


def _one(ip: IssuePass, item: Claimed, recipient: Recipient | None) -> Decision:
    """Cancel with a reason, or build the issue email for this reader (a build error is retried)."""
    if recipient is None:
        return Cancel(SUBSCRIBER_DELETED)
    if recipient.status != _ACTIVE_READER:
        return Cancel(f"subscriber {recipient.status}")
    if recipient.enrollment_state != _MEMBER:
        return Cancel(LEFT_NOTE)
    issue = ip.issues.get(item.step_key.removeprefix(ISSUE_PREFIX))
    mlist = ip.sources.newsletters.lists.get(item.course)
    if issue is None or mlist is None:
        return Cancel(ISSUE_REMOVED if issue is None else LIST_REMOVED)
    try:
        rendered = _render(ip, issue, mlist, recipient.locale or mlist.locale, recipient.subscriber_id)
    except DripError as exc:
        return after_error(item, f"cannot build the email: {exc}", ip.ctx, permanent=False)
    if isinstance(rendered, Cancel):
        return rendered
    return Send(
        message(item, recipient, rendered, mlist.sender, ip.ctx, list_name=mlist.name, list_title=mlist.title)
    )


def decide_issues(
    site: Site, engine: sa.Engine, runtime: Runtime, items: Sequence[Claimed], ctx: Pass
) -> list[tuple[Claimed, Decision]]:
    """What becomes of each claimed issue email: read its issue and reader, then cancel or build it."""
    if not items:
        return []
    try:
        sources = load_sources(site, ctx.now, runtime)
    except DripError as exc:
        return [(i, after_error(i, f"cannot build the email: {exc}", ctx, permanent=False)) for i in items]
    keys = sorted({item.step_key.removeprefix(ISSUE_PREFIX) for item in items})
    ip = IssuePass(site, runtime, sources, issues_by_key(engine, keys), {}, ctx)
    out: list[tuple[Claimed, Decision]] = []
    for list_name in sorted({item.course for item in items}):
        group = [item for item in items if item.course == list_name]
        sids = sorted({item.subscriber_id for item in group})
        mlist = sources.newsletters.lists.get(list_name)
        days = mlist.no_repeat_days if mlist is not None else 0
        # The batch's issues are read by key, a few for thousands of emails: ask them, not each email.
        digests = any(issue.list == list_name and issue.kind != BROADCAST for issue in ip.issues.values())
        taken: Mapping[int, set[str]] = {}
        if digests:  # a broadcast offers no posts: only a digest leaves out what a course sent
            with engine.connect() as conn:  # the list's own window of course posts not to offer again
                taken = course_urls(conn, sids, since=ctx.now - dt.timedelta(days=days))
        found = member_recipients(engine, list_name, sids)
        per_list = replace(ip, taken=taken)
        out += [(item, _one(per_list, item, found.get(item.subscriber_id))) for item in group]
    return out


# --- planning ---------------------------------------------------------------------------------


def exclusions(
    engine: sa.Engine, mlist: MailingList, posts: Sequence[DigestPost] | None, now: dt.datetime
) -> Exclude:
    """The list's rules as an ``exclude`` for :func:`create_issue_deliveries`."""
    since = now - dt.timedelta(days=mlist.no_repeat_days)

    def exclude(batch: Sequence[Member]) -> dict[int, str]:
        ids = [member.subscriber_id for member in batch]
        with engine.connect() as conn:
            busy = in_course(conn, ids) if mlist.hold_during_course else set()
            taken = course_urls(conn, ids, since=since) if posts is not None else {}
        out: dict[int, str] = {}
        for sid in ids:
            if sid in busy:
                out[sid] = IN_COURSE_WAIT if mlist.hold_during_course == "wait" else IN_COURSE_SKIP
            elif posts is not None and not for_reader(
                posts, taken_posts(taken.get(sid), now), mlist.no_repeat_days, now
            ):
                out[sid] = NOTHING_NEW
        return out

    return exclude


def _due_slot(digest: Digest, since: dt.datetime, now: dt.datetime) -> dt.datetime | None:
    """The latest slot after ``since`` whose time has come, unless it is older than the grace period."""
    cursor = max(since, now - digest.grace - _LATER)
    found = None
    while True:
        slot = next_issue_time(digest, cursor)
        if slot > now:
            return found
        found = cursor = slot


def reader_due(digest: Digest | None, issue: Issue) -> Due | None:
    """For a ``send_window`` digest, each reader's next window in their own zone; else None (the slot)."""
    if digest is None or digest.window is None:
        return None
    window = digest.window
    fallback = digest.timezone

    def due(member: Member) -> dt.datetime:
        zone, _warning = resolve_timezone(member.timezone, fallback)
        return due_at(issue.send_at, 0, window, zone)

    return due


def _write(
    engine: sa.Engine,
    issue: Issue,
    mlist: MailingList,
    posts: Sequence[DigestPost] | None,
    now: dt.datetime,
    digest: Digest | None = None,
    progress: Progress | None = None,
) -> str:
    exclude = exclusions(engine, mlist, posts, now)
    advance = progress(f"{issue.list}: issue {issue.key}") if progress is not None else None
    counts = create_issue_deliveries(
        engine, issue, exclude=exclude, due=reader_due(digest, issue), now=now, progress=advance
    )
    line = (
        f"{issue.list}: issue {issue.key}: {counts.recipients} recipients, excluded {dict(counts.excluded)}"
    )
    log.info("newsletter %s", line)
    return line


IssueRenders = LruCache[tuple[int, str, tuple[str, ...]], RenderedStep]


def _rendered(mlist: MailingList, render: Callable[[], RenderedStep]) -> RenderedStep | None:
    """The new issue rendered once at planning, or None when it does not render (the send says why)."""
    try:
        return render()
    except DripError as exc:  # the send reports it per email; planning goes on
        log.warning("an issue of %s does not render: %s", mlist.name, exc)
        return None


def _copy(site: Site, mlist: MailingList, rendered: RenderedStep | None) -> dict[str, str] | None:
    """The issue's public copy for the archive; None (the archive renders it again) if it did not render."""
    if not mlist.archive or rendered is None:
        return None
    try:
        return public_copy(site, mlist, rendered)
    except DripError as exc:
        log.warning("no public copy of an issue of %s: %s", mlist.name, exc)
        return None


def _keep(
    renders: IssueRenders | None,
    issue: Issue | None,
    locale: str,
    urls: Sequence[str],
    step: RenderedStep | None,
) -> None:
    """Hand the planning's render to the sends of the same runtime, under the key :func:`_render` looks up."""
    if renders is not None and issue is not None and step is not None:
        renders.get_or_make((issue.id, locale, tuple(urls)), lambda: step)


def plan_digest(
    site: Site,
    engine: sa.Engine,
    digest: Digest,
    mlist: MailingList,
    index: Callable[[], ContentIndex],
    *,
    now: dt.datetime,
    progress: Progress | None = None,
    renders: IssueRenders | None = None,
) -> list[str]:
    """Create the digest's due issue (if it has posts) and its emails; finish one left half-written.

    ``index`` reads the content only when a slot is due: most ticks have none. The new issue
    is rendered once, for its public copy and, kept in ``renders``, for the sends that follow.
    """
    last = last_issue(engine, digest.list, f"{digest.slug}:")
    if last is not None and last.counts is None:
        kept = _digest_posts(digest, index(), last.post_urls, now)
        return [_write(engine, last, mlist, kept, now, digest, progress)]
    since = last.send_at if last is not None else digest.since or list_created_at(engine, digest.list)
    if since is None:  # no list in the store yet: nobody to send it to
        return []
    slot = _due_slot(digest, since, now)
    if slot is None:
        return []
    posts = gather_posts(digest, index(), since, slot, now)
    if posts is None:
        return []
    key = period_key(digest, slot)
    send_at = slot.astimezone(dt.UTC)
    urls = [p.post.url for p in posts]
    rendered = _rendered(mlist, lambda: render_digest(site, digest, mlist, posts, key))
    issue = create_issue(
        engine,
        list=digest.list,
        key=key,
        kind=DIGEST,
        send_at=send_at,
        post_urls=urls,
        now=now,
        public_copy=_copy(site, mlist, rendered),
    )
    _keep(renders, issue, digest.locale, urls, rendered)
    issue = issue or open_issue(engine, key)
    return [] if issue is None else [_write(engine, issue, mlist, posts, now, digest, progress)]


def plan_broadcast(
    site: Site,
    engine: sa.Engine,
    broadcast: Broadcast,
    mlist: MailingList,
    *,
    now: dt.datetime,
    progress: Progress | None = None,
    renders: IssueRenders | None = None,
) -> list[str]:
    """Create the broadcast's issue once its send_at has come (within the grace period), and its emails."""
    send_at = broadcast.send_at
    if send_at.tzinfo is None:
        send_at = send_at.replace(tzinfo=ZoneInfo(mlist.timezone))
    if send_at > now or now - send_at > broadcast.grace:
        return []
    key = broadcast_key(broadcast)
    known = issues_by_key(engine, [key]).get(key)
    if known is not None:  # every tick of the grace period comes here: only finish a half-written one
        issue = known if known.counts is None else None
    else:
        rendered = _rendered(mlist, lambda: render_broadcast(site, broadcast, mlist))
        issue = create_issue(
            engine,
            list=broadcast.list,
            key=key,
            kind=BROADCAST,
            send_at=send_at.astimezone(dt.UTC),
            post_urls=(),
            now=now,
            subject=broadcast.subject,
            public_copy=_copy(site, mlist, rendered),
        )
        _keep(renders, issue, mlist.locale, (), rendered)
        issue = issue or open_issue(engine, key)
    return [] if issue is None else [_write(engine, issue, mlist, None, now, progress=progress)]


def plan_newsletters(
    site: Site,
    engine: sa.Engine,
    *,
    now: dt.datetime,
    progress: Progress | None = None,
    runtime: Runtime | None = None,
) -> list[str]:
    """Every digest and broadcast whose time has come: its issue and emails, once whoever runs this.

    ``progress`` starts a bar for each issue whose emails are written (the CLI's, on a terminal).
    ``runtime`` (a worker's) keeps the definitions between ticks (:func:`definitions`), and its
    ``issue_renders`` keep each new issue as rendered for the sends.
    """
    found, by_slug = definitions(site, runtime)
    if not found.lists:
        return []
    renders = runtime.issue_renders if runtime is not None else None
    broadcasts = by_slug.values()
    lines: list[str] = []
    if found.digests:
        index = functools.cache(
            lambda: load_content(site.content_dir, now=now, locale=site.config.site.locale)
        )
        for digest in found.digests.values():
            try:
                lines += plan_digest(
                    site,
                    engine,
                    digest,
                    found.lists[digest.list],
                    index,
                    now=now,
                    progress=progress,
                    renders=renders,
                )
            except DripError as exc:  # a broken post stops this digest, not the broadcasts
                log.warning("digest %s not planned: %s", digest.slug, exc)
    for broadcast in broadcasts:
        mlist = found.lists.get(broadcast.list)
        if mlist is not None:
            lines += plan_broadcast(
                site, engine, broadcast, mlist, now=now, progress=progress, renders=renders
            )
    return lines
