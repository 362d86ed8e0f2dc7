"""A newsletter's next issue as it would go out, and the messages previews and test copies send.

NAME on the command line is a digest or a broadcast; its list gives the sender,
the zone and the rules a reader's course imposes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from drip.config import Site
from drip.content import load_content
from drip.content.broadcasts import Broadcast
from drip.course.issues import next_issue_time, period_key
from drip.course.newsletter import load_newsletters
from drip.course.newsletter_models import Digest, MailingList
from drip.course.selection import DigestPost, for_reader, gather_posts
from drip.errors import NotFoundError, Problem, did_you_mean
from drip.preview.emails import message_to
from drip.render.archive import newsletters_of
from drip.render.newsletter import broadcast_key, render_broadcast, render_digest
from drip.render.rendered import RenderedStep
from drip.render.slots import Compiled
from drip.transports.base import OutgoingMessage
from drip.transports.message import build_message


@dataclass(frozen=True)
class Newsletter:
    """A digest or a broadcast, with the list it goes to."""

    name: str
    mlist: MailingList
    digest: Digest | None = None
    broadcast: Broadcast | None = None

    @property
    def kind(self) -> str:
        return "digest" if self.digest is not None else "broadcast"


@dataclass(frozen=True)
class NextIssue:
    """What the next issue would be: its key, send time and email (None: too few posts for one)."""

    newsletter: Newsletter
    key: str
    send_at: dt.datetime
    posts: tuple[DigestPost, ...]
    rendered: RenderedStep | None


def find_newsletter(site: Site, name: str) -> Newsletter:
    """The digest or broadcast ``name``; NotFoundError with the closest name otherwise."""
    found, broadcasts = newsletters_of(site)
    digest = found.digests.get(name)
    if digest is not None:
        return Newsletter(name, found.lists[digest.list], digest=digest)
    broadcast = broadcasts.get(name)
    if broadcast is not None and broadcast.list in found.lists:
        return Newsletter(name, found.lists[broadcast.list], broadcast=broadcast)
    known = [*found.digests, *broadcasts]
    raise NotFoundError(
        Problem(
            f"no digest or broadcast {name!r} (known: {', '.join(known) or 'none'})",
            hint=did_you_mean(name, known),
        )
    )


def find_list(site: Site, name: str) -> MailingList:
    """The list ``name``; NotFoundError with the closest name otherwise."""
    lists = load_newsletters(site).lists
    if name not in lists:
        raise NotFoundError(
            Problem(f"no list {name!r} (lists: {', '.join(lists) or 'none'})", hint=did_you_mean(name, lists))
        )
    return lists[name]


def _aware(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def next_issue(
    site: Site,
    item: Newsletter,
    now: dt.datetime,
    *,
    since: dt.datetime | None = None,
    course_urls: Mapping[str, dt.datetime] | None = None,
) -> NextIssue:
    """The next issue after ``now``: a digest's posts since ``since`` (its last issue), or the broadcast.

    ``course_urls`` (a reader's course articles and when they go) leaves out what their
    course sent lately or will send, as the issue they would get.
    """
    if item.broadcast is not None:
        rendered = render_broadcast(site, item.broadcast, item.mlist)
        at = _aware(item.broadcast.send_at, item.mlist.timezone)
        return NextIssue(item, broadcast_key(item.broadcast), at, (), rendered)
    digest = item.digest
    assert digest is not None
    send_at = next_issue_time(digest, now)
    start = since or digest.since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    index = load_content(site.content_dir, now=send_at, locale=site.config.site.locale)
    posts = gather_posts(digest, index, start, send_at, send_at) or ()
    if course_urls is not None:
        posts = for_reader(posts, course_urls, item.mlist.no_repeat_days, now)
    key = period_key(digest, send_at)
    enough = len(posts) >= digest.min_posts
    email = render_digest(site, digest, item.mlist, posts, key) if enough else None
    return NextIssue(item, key, send_at, tuple(posts), email)


TEST_MARK = "[TEST] "


def sample_values(site: Site, mlist: MailingList) -> dict[str, str]:
    """Sample personal values for a preview: the placeholder token previews use, no real reader."""
    base = site.config.site.base_url
    domain = mlist.sender.email.rpartition("@")[2] or "localhost"
    values = {
        f"{page}_url": f"{base}/{page}/preview-token" for page in ("unsubscribe", "preferences", "view")
    }
    return {"name": "", "email": f"preview@{domain}", **values}


def as_test(rendered: RenderedStep) -> RenderedStep:
    """The same email with "[TEST]" at the start of its subject."""
    subject = rendered.subject
    marked = Compiled((TEST_MARK + subject.parts[0], *subject.parts[1:]), subject.slots)
    return dataclasses.replace(rendered, subject=marked)


def issue_message(
    site: Site, mlist: MailingList, rendered: RenderedStep, values: Mapping[str, str], to_email: str
) -> OutgoingMessage:
    """One issue as a message to ``to_email``, from the list's sender (delivery id 0: no ledger row)."""
    return message_to(site, mlist.sender, rendered, values, to_email)


def issue_bytes(
    site: Site,
    mlist: MailingList,
    rendered: RenderedStep,
    values: Mapping[str, str],
    fmt: str,
    *,
    now: dt.datetime,
) -> bytes:
    """One issue in ``fmt`` (html, text or eml)."""
    _subject, html, text = rendered.personalise(values)
    if fmt == "html":
        return html.encode("utf-8")
    if fmt == "text":
        return text.encode("utf-8")
    message = issue_message(site, mlist, rendered, values, values.get("email", "preview@localhost"))
    return build_message(message, now=now).data
