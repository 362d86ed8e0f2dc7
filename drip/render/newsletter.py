"""Render a digest issue or a broadcast: Jinja → MJML → HTML (+ text), once per issue and locale.

The result is the :class:`~drip.render.rendered.RenderedStep` courses produce
(``course`` is the digest or broadcast name, ``step_key`` the issue's period key),
so transports and dispatch send it unchanged. The frame is the courses' layout:
same footer, unsubscribe and preferences links, UTM tags on every content link
(campaign: the digest or broadcast; content: the issue's day, or "broadcast").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from drip.config import Site
from drip.content.broadcasts import Broadcast
from drip.content.links import absolute_url, add_utm
from drip.course.newsletter_models import Digest, MailingList
from drip.course.selection import DigestPost
from drip.errors import ContentError, Problem, TemplateError
from drip.render import mjml as mjml_compiler
from drip.render.i18n import messages, pick_locale
from drip.render.markdown_email import EmailBody, Palette, render_markdown
from drip.render.rendered import RenderedStep
from drip.render.slots import split
from drip.render.templates import (
    SlotRecorder,
    Subscriber,
    check_templates,
    environment,
    render,
    render_string,
)
from drip.render.text import tidy

UTM_SOURCE, UTM_MEDIUM = "drip", "email"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Tracker:
    """Absolute, UTM-tagged URLs for the links of one issue."""

    base_url: str
    campaign: str
    content: str

    def __call__(self, url: str) -> str:
        return add_utm(
            absolute_url(url, self.base_url),
            source=UTM_SOURCE,
            medium=UTM_MEDIUM,
            campaign=self.campaign,
            content=self.content,
        )


@dataclass(frozen=True)
class _Card:
    """A digest post as templates see it."""

    title: str
    description: str
    minutes: int
    url: str
    image: str | None
    image_alt: str


def _card(item: DigestPost, track: Tracker) -> _Card:
    post = item.post
    image = absolute_url(item.image, track.base_url) if item.image else None
    return _Card(
        post.title, post.description, post.minutes, track(post.url), image, item.image_alt or post.title
    )


def _frame(
    site: Site, mlist: MailingList, locale: str, track: Tracker, recorder: SlotRecorder
) -> dict[str, Any]:
    """What the shared layout needs: the list stands where a course stands, one email in all."""
    env = environment(site.templates_dir)
    subscriber = Subscriber(recorder)
    cfg = site.config
    return {
        "locale": locale,
        "t": messages(locale),
        "theme": env.get_template("theme.j2").module,
        "site": {"name": cfg.site.name, "base_url": cfg.site.base_url, "postal_address": cfg.postal_address},
        "course": {"slug": mlist.name, "title": mlist.title, "sender": mlist.sender.name},
        "step": {"key": track.content, "kind": "newsletter", "number": 1, "day": 0, "total": 1},
        "links": {"home": track(cfg.site.base_url + "/"), "pillar": track(cfg.site.base_url + "/")},
        "subscriber": subscriber,
        "name": subscriber("name"),
    }


def _line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _compile(
    kind: str, name: str, key: str, context: dict[str, Any], recorder: SlotRecorder, site: Site
) -> RenderedStep:
    """The named templates rendered with ``context`` (subject and preheader already in it)."""
    env = environment(site.templates_dir)
    source = render(env, f"{kind}.mjml", context, key=key)
    text = tidy(render(env, f"{kind}.txt", context, key=key))
    try:
        html = mjml_compiler.to_html(source)
    except ValueError as exc:
        problems = mjml_compiler.lint(source) or [Problem(str(exc))]
        raise TemplateError(
            [Problem(f"MJML does not compile: {p.message}", key=key, hint=p.hint) for p in problems]
        ) from None
    slots = recorder.slots
    return RenderedStep(
        course=name,
        step_key=key,
        locale=context["locale"],
        subject=split(context["subject"], slots),
        preheader=split(context["preheader"], slots).fill({}, escape=False),
        html=split(html, slots),
        text=split(text, slots),
    )


def _literal(text: str) -> str:
    return text.replace("{", "{{ '{' }}")


def render_digest(
    site: Site,
    digest: Digest,
    mlist: MailingList,
    posts: Sequence[DigestPost],
    key: str,
    *,
    locale: str | None = None,
) -> RenderedStep:
    """One digest issue (``key`` is its period key) for ``locale`` (default: the list's)."""
    env = environment(site.templates_dir)
    check_templates(env)
    loc = pick_locale(locale or digest.locale)
    track = Tracker(site.config.site.base_url, digest.slug, key.split(":", 1)[-1][:10])
    recorder = SlotRecorder()
    context = _frame(site, mlist, loc, track, recorder)
    context["course"]["title"] = digest.title
    context["posts"] = [_card(p, track) for p in posts]
    t = context["t"]
    count = len(posts)
    default = (
        t("digest_subject_1", title=digest.title)
        if count == 1
        else t("digest_subject_n", title=digest.title, count=count)
    )
    where = digest.path
    context["subject"] = _line(
        render_string(
            env, digest.subject or _literal(default), context, what="subject", file=where, key="subject"
        )
    )
    preheader = digest.preheader or _literal(" · ".join(p.post.title for p in posts))
    context["preheader"] = _line(
        render_string(env, preheader, context, what="preheader", file=where, key="preheader")
    )
    return _compile("digest", digest.slug, key, context, recorder, site)


@functools.lru_cache(maxsize=8)
def _palette(theme: Any) -> Palette:
    return Palette(
        text=theme.text,
        muted=theme.muted,
        accent=theme.accent,
        rule=theme.rule,
        highlight_bg=theme.highlight_bg,
    )


def broadcast_body(site: Site, broadcast: Broadcast, track: Tracker) -> EmailBody:
    """The broadcast's Markdown as email HTML and text; its image mistakes as problems."""
    theme = environment(site.templates_dir).get_template("theme.j2").module
    return render_markdown(
        broadcast.body,
        link=track,
        palette=_palette(theme),
        file=broadcast.path,
        line_offset=broadcast.body_line,
    )


def broadcast_key(broadcast: Broadcast) -> str:
    """The broadcast's period key: one email per file."""
    return f"broadcast:{broadcast.slug}"


def render_broadcast(
    site: Site, broadcast: Broadcast, mlist: MailingList, *, locale: str | None = None
) -> RenderedStep:
    """One broadcast; ContentError names every image that is not absolute, described and sized."""
    check_templates(environment(site.templates_dir))
    loc = pick_locale(locale or mlist.locale)
    track = Tracker(site.config.site.base_url, broadcast.slug, "broadcast")
    body = broadcast_body(site, broadcast, track)
    if body.problems:
        raise ContentError(body.problems)
    recorder = SlotRecorder()
    context = _frame(site, mlist, loc, track, recorder)
    context["body"] = {"html": Markup(body.html), "text": body.text}  # noqa: S704 - rendered from escaped tokens
    context["subject"] = _line(broadcast.subject)
    context["preheader"] = _line(broadcast.preheader)
    return _compile("broadcast", broadcast.slug, broadcast_key(broadcast), context, recorder, site)
