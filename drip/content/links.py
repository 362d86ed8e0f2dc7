"""Links as an email needs them: absolute, tagged for analytics, resolved to posts.

Site paths in content ("/posts/x/") are relative to the site's base URL, which may
itself carry a path ("https://example.com/blog").
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from drip.content.models import Article, ReadingItem
from drip.content.posts import ContentIndex


def absolute_url(url: str, base_url: str) -> str:
    """``url`` as a full URL: site paths are joined to ``base_url``, other URLs left alone."""
    parts = urlsplit(url)
    if parts.scheme:
        return url
    base = urlsplit(base_url)
    if parts.netloc:  # protocol-relative "//host/path"
        return urlunsplit((base.scheme, parts.netloc, parts.path, parts.query, parts.fragment))
    path = parts.path if parts.path.startswith("/") or not parts.path else "/" + parts.path
    prefix = base.path.rstrip("/")
    return urlunsplit((base.scheme, base.netloc, prefix + (path or "/"), parts.query, parts.fragment))


def add_utm(url: str, *, source: str, medium: str, campaign: str, content: str) -> str:
    """Tag ``url`` for analytics, leaving its query string and fragment as written.

    A ``utm_`` parameter already in the link is the author's own choice and is kept;
    only the missing ones are added, after the existing parameters. Only web links
    are tagged: a ``mailto:`` or ``tel:`` link is returned as written.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("", "http", "https"):
        return url
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    wanted = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign, "utm_content": content}
    added = urlencode([(key, value) for key, value in wanted.items() if key not in present])
    query = "&".join(part for part in (parts.query, added) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def resolve_article(item: ReadingItem, index: ContentIndex, base_url: str) -> Article:
    """A reading-path item with what content/ knows about its target.

    A post found under content/ gives the title, description, date and, when the
    pillar gives none, the reading time; the pillar's label and minutes are kept.
    Without a post, the link text is the title.
    """
    url = absolute_url(item.url, base_url)
    post = index.post_for(item.url, base_url)
    if post is None:
        return Article(
            url=url,
            title=item.title,
            description=None,
            label=item.label,
            minutes=item.minutes,
            date=None,
            notes=item.notes,
            found=False,
        )
    return Article(
        url=url,
        title=post.title,
        description=post.description or None,
        label=item.label,
        minutes=item.minutes if item.minutes is not None else post.minutes,
        date=post.date,
        notes=item.notes,
        found=True,
    )
