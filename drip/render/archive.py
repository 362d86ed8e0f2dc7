"""A list's public archive: past issues rendered again without any reader's personal links, and Atom.

A public copy is the issue rendered with neutral personal values: no reader's name,
address or token, so nobody's unsubscribe link ends up on the web. Its footer says
how to subscribe. ``drip serve`` and ``drip archive`` build the same pages from here,
so the site and a static copy agree. Issues come in as anything shaped like the
store's (key, subject, send time, post URLs): render does not read the store.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import jinja2
from feedgen.feed import FeedGenerator
from markupsafe import escape

from drip.config import Site
from drip.content import ContentIndex, load_content
from drip.content.broadcasts import Broadcast, read_broadcasts
from drip.course.newsletter import Newsletters, load_newsletters
from drip.course.newsletter_models import Digest, MailingList
from drip.course.selection import DigestPost, page_of, post_extras, published_at
from drip.render.i18n import messages
from drip.render.newsletter import render_broadcast, render_digest
from drip.render.rendered import RenderedStep

BROADCAST_PREFIX = "broadcast:"
_UNSAFE = re.compile(r"[^a-z0-9]+")


class StoredIssue(Protocol):
    """What the archive reads of an issue (drip.store.issues.Issue has it)."""

    @property
    def key(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def send_at(self) -> dt.datetime: ...
    @property
    def post_urls(self) -> tuple[str, ...]: ...
    @property
    def public_copy(self) -> Mapping[str, str] | None: ...


@dataclass(frozen=True)
class PublicIssue:
    """One past issue as the archive shows it."""

    issue: StoredIssue
    slug: str
    title: str
    html: str
    text: str


def newsletters_of(site: Site) -> tuple[Newsletters, dict[str, Broadcast]]:
    """Every list, digest and broadcast of the site (broadcasts that do not read are left out)."""
    found = load_newsletters(site)
    broadcasts, _problems = read_broadcasts(site.content_dir)  # drip check reports those
    return found, {b.slug: b for b in broadcasts}


def archive_url(site: Site, list_name: str, slug: str = "") -> str:
    """Where a list's archive (or one of its issues) is published."""
    tail = f"{quote(slug)}/" if slug else ""
    return f"{site.config.site.base_url}/archive/{quote(list_name)}/{tail}"


def subscribe_url(site: Site, list_name: str) -> str:
    return f"{site.config.site.base_url}/subscribe?list={quote(list_name)}"


def neutral_values(site: Site, list_name: str) -> dict[str, str]:
    """Personal slots for a public copy: no name, no address, no token."""
    archive = archive_url(site, list_name)
    return {
        "name": "",
        "email": "",
        "unsubscribe_url": subscribe_url(site, list_name),
        "preferences_url": subscribe_url(site, list_name),
        "view_url": archive,
    }


def issue_slug(key: str) -> str:
    """A URL-safe name for an issue: ``hebdo-2026-12-07t09-00-01-00``."""
    return _UNSAFE.sub("-", key.lower()).strip("-") or "issue"


def _digest_posts(digest: Digest, urls: Sequence[str], index: ContentIndex) -> tuple[DigestPost, ...]:
    """The posts an issue offered, found again by URL (posts since removed are left out)."""
    by_page = {page_of(p.url): p for p in index.posts.values()}
    found: list[DigestPost] = []
    for url in urls:
        post = by_page.get(page_of(url))
        when = published_at(post, digest.timezone) if post is not None else None
        if post is None or when is None:
            continue
        tags, image, alt = post_extras(post)
        found.append(DigestPost(post, when, tags, image, alt))
    return tuple(found)


def _rendered(
    site: Site,
    found: Newsletters,
    broadcasts: Mapping[str, Broadcast],
    mlist: MailingList,
    issue: StoredIssue,
    index: ContentIndex,
) -> tuple[RenderedStep, str] | None:
    """An issue rendered again from its source, with its title; None when the source is gone."""
    if issue.key.startswith(BROADCAST_PREFIX):
        broadcast = broadcasts.get(issue.key[len(BROADCAST_PREFIX) :])
        if broadcast is None:
            return None
        return render_broadcast(site, broadcast, mlist), broadcast.title
    digest = found.digests.get(issue.key.split(":", 1)[0])
    if digest is None:
        return None
    posts = _digest_posts(digest, issue.post_urls, index)
    return render_digest(site, digest, mlist, posts, issue.key), digest.title


def public_copy(site: Site, mlist: MailingList, rendered: RenderedStep) -> dict[str, str]:
    """The issue as its archive page shows it, kept when the issue is created: later edits to its
    posts or broadcast file do not change what the archive says was sent. No reader's values."""
    subject, html, text = rendered.personalise(neutral_values(site, mlist.name))
    return {"subject": subject, "html": html, "text": text}


def _stored(issue: StoredIssue) -> tuple[str, str, str] | None:
    """The copy kept with the issue, when it has a well-formed one (issues before 0012 have none)."""
    kept = issue.public_copy
    if not kept or not all(isinstance(kept.get(k), str) for k in ("subject", "html", "text")):
        return None
    return kept["subject"], kept["html"], kept["text"]


def _with_footer(html: str, site: Site, mlist: MailingList) -> str:
    """The public copy's footer: how to subscribe, in the list's language, just before the end of the body."""
    t = messages(mlist.locale)
    link = (
        f'<a href="{escape(subscribe_url(site, mlist.name))}">'
        f"{escape(t('archive_subscribe_to', list=mlist.title))}</a>"
    )
    note = (
        '<p style="text-align:center;font-size:14px;margin:24px 0">'
        + str(escape(t("archive_note", link="\x00"))).replace("\x00", link)  # the link is built escaped
        + "</p>"
    )
    head, found, tail = html.rpartition("</body>")
    return f"{head}{note}{found}{tail}" if found else html + note


def public_issues(
    site: Site, list_name: str, issues: Iterable[StoredIssue], *, now: dt.datetime
) -> list[PublicIssue]:
    """The public copies of a list's issues sent by ``now``, newest first."""
    found, broadcasts = newsletters_of(site)
    mlist = found.lists.get(list_name)
    if mlist is None or not mlist.archive:
        return []
    index = load_content(site.content_dir, now=now, locale=site.config.site.locale)
    values = neutral_values(site, list_name)
    copies: list[PublicIssue] = []
    for issue in sorted(issues, key=lambda i: i.send_at, reverse=True):
        if issue.send_at > now:
            continue
        kept = _stored(issue)
        if kept is None:  # written before copies were kept: rendered again from its source
            made = _rendered(site, found, broadcasts, mlist, issue, index)
            if made is None:
                continue
            kept = made[0].personalise(values)
        subject, html, text = kept
        html = _with_footer(html, site, mlist)
        copies.append(PublicIssue(issue, issue_slug(issue.key), issue.subject or subject, html, text))
    return copies


def atom_feed(site: Site, mlist: MailingList, copies: Sequence[PublicIssue], *, now: dt.datetime) -> bytes:
    """The list's Atom feed: one entry per public issue, newest first."""
    feed = FeedGenerator()
    home = archive_url(site, mlist.name)
    feed.id(home)
    feed.title(mlist.title)
    feed.subtitle(mlist.description or mlist.title)
    feed.author({"name": mlist.sender.name})
    feed.link(href=home, rel="alternate")
    feed.link(href=f"{home}feed.xml", rel="self")
    feed.language(mlist.locale)
    feed.updated(copies[0].issue.send_at if copies else now)
    for copy in reversed(copies):  # feedgen puts the last added first
        entry = feed.add_entry()
        url = archive_url(site, mlist.name, copy.slug)
        entry.id(url)
        entry.title(copy.title)
        entry.link(href=url, rel="alternate")
        entry.updated(copy.issue.send_at)
        entry.published(copy.issue.send_at)
        entry.summary(copy.text[:500])
    data: bytes = feed.atom_str(pretty=True)
    return data


_INDEX = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="{{ mlist.locale }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ mlist.title }}</title>
<link rel="alternate" type="application/atom+xml" title="{{ mlist.title }}" href="{{ home }}feed.xml">
</head><body style="font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em">
<h1>{{ mlist.title }}</h1>
{% if mlist.description %}<p>{{ mlist.description }}</p>{% endif %}
<p><a href="{{ subscribe }}">{{ t("archive_subscribe") }}</a> · <a href="{{ home }}feed.xml">{{ t("archive_feed") }}</a></p>
{% if copies %}<ul>
{% for c in copies %}<li><a href="{{ home }}{{ c.slug }}/">{{ c.title }}</a>
 <time datetime="{{ c.issue.send_at.isoformat() }}">{{ c.issue.send_at.date().isoformat() }}</time></li>
{% endfor %}</ul>{% else %}<p>{{ t("archive_none") }}</p>{% endif %}
</body></html>
"""
)


def archive_index(site: Site, mlist: MailingList, copies: Sequence[PublicIssue]) -> str:
    """The list's archive page: its past issues, newest first, and how to subscribe."""
    home = archive_url(site, mlist.name)
    return _INDEX.render(
        mlist=mlist,
        copies=copies,
        home=home,
        subscribe=subscribe_url(site, mlist.name),
        t=messages(mlist.locale),
    )


def archive_files(
    site: Site, mlist: MailingList, issues: Iterable[StoredIssue], *, now: dt.datetime
) -> dict[str, bytes]:
    """A list's archive as files: ``<list>/index.html``, ``<list>/feed.xml``, ``<list>/<issue>/index.html``."""
    copies = public_issues(site, mlist.name, issues, now=now)
    files = {
        f"{mlist.name}/index.html": archive_index(site, mlist, copies).encode("utf-8"),
        f"{mlist.name}/feed.xml": atom_feed(site, mlist, copies, now=now),
    }
    for copy in copies:
        files[f"{mlist.name}/{copy.slug}/index.html"] = copy.html.encode("utf-8")
    return files
