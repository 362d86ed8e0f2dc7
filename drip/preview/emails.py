"""One email of a course in each format an author may want to look at: HTML, text, MJML, .eml."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from drip.config import Site
from drip.course.compile import compile_course
from drip.course.models import Course, Sender, Step
from drip.errors import InputError, NotFoundError, Problem
from drip.render.rendered import RenderedStep
from drip.render.steps import mjml_source, render_course
from drip.render.templates import check_templates, environment
from drip.transports.base import OutgoingMessage, unsubscribe_mailto

FORMATS = ("html", "text", "mjml", "eml")
PREVIEW_DELIVERY_ID = 0  # a preview is never a delivery


def file_stem(step: Step) -> str:
    """``NN-key`` with the key made safe for a file name: ``03-article-posts-premiers-jours``."""
    ascii_key = unicodedata.normalize("NFKD", step.key).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_key.lower()).strip("-") or "step"
    return f"{step.number:02d}-{slug}"


def sample_message(
    site: Site, course: Course, rendered: RenderedStep, values: Mapping[str, str]
) -> OutgoingMessage:
    """The message a sample subscriber would get, shaped like the dispatcher's (delivery id 0)."""
    domain = course.sender.email.rpartition("@")[2] or "localhost"
    return message_to(site, course.sender, rendered, values, values.get("email", f"preview@{domain}"))


def message_to(
    site: Site, sender: Sender, rendered: RenderedStep, values: Mapping[str, str], to_email: str
) -> OutgoingMessage:
    """``rendered`` personalised with ``values`` as a message to ``to_email`` that no ledger row stands behind."""
    domain = sender.email.rpartition("@")[2] or "localhost"
    unsubscribe_url = values.get("unsubscribe_url") or f"{site.config.site.base_url}/unsubscribe/preview"
    token = unsubscribe_url.rpartition("/")[2]
    return OutgoingMessage(
        delivery_id=PREVIEW_DELIVERY_ID,
        to_email=to_email,
        to_name=values.get("name", ""),
        from_email=sender.email,
        from_name=sender.name,
        reply_to=sender.reply_to,
        rendered=rendered,
        values=dict(values),
        unsubscribe_url=unsubscribe_url,
        unsubscribe_mailto=unsubscribe_mailto(sender.email, token),
        postal_address=site.config.postal_address,
        message_id_domain=domain,
    )


@dataclass(frozen=True)
class EmailPreview:
    """One step rendered and personalised with sample values."""

    step: Step
    rendered: RenderedStep
    subject: str
    html: str
    text: str


def compile_for_preview(site: Site, slug: str) -> Course:
    """The course ``slug``, its schedule and the site's templates checked together: one report for both."""
    problems: list[Problem] = []
    course: Course | None = None
    try:
        course = compile_course(site, slug)
    except NotFoundError:
        raise
    except InputError as exc:
        problems.extend(exc.problems)
    try:
        check_templates(environment(site.templates_dir))
    except InputError as exc:
        problems.extend(exc.problems)
    if problems or course is None:
        raise InputError(problems)
    return course


def preview_course(
    site: Site, course: Course, values: Mapping[str, str]
) -> tuple[dict[str, RenderedStep], list[EmailPreview]]:
    """Render every step once and personalise it with ``values``."""
    rendered = render_course(site, course)
    previews: list[EmailPreview] = []
    for step in course.steps:
        subject, html, text = rendered[step.key].personalise(values)
        previews.append(EmailPreview(step, rendered[step.key], subject, html, text))
    return rendered, previews


def email_bytes(
    site: Site,
    course: Course,
    preview: EmailPreview,
    fmt: str,
    values: Mapping[str, str],
    *,
    now: dt.datetime,
) -> bytes:
    """One email in ``fmt`` (html, text, mjml or eml) as the bytes to print or write."""
    if fmt == "html":
        return preview.html.encode("utf-8")
    if fmt == "text":
        return preview.text.encode("utf-8")
    if fmt == "mjml":
        return mjml_source(site, course, preview.step).encode("utf-8")
    if fmt == "eml":
        from drip.transports.message import build_message  # the MIME builder: only for .eml

        return build_message(sample_message(site, course, preview.rendered, values), now=now).data
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


OUT_FORMATS = (("html", "html"), ("text", "txt"), ("eml", "eml"))


def write_course(
    site: Site,
    course: Course,
    out_dir: Path,
    values: Mapping[str, str],
    *,
    now: dt.datetime,
) -> list[Path]:
    """Write NN-key.html, .txt and .eml for every email into ``out_dir/<course>/``.

    One folder per course, so previewing a second course never overwrites the first; files an
    earlier preview of the same course left there (a step since removed) are removed. Everything
    is rendered before anything is written.
    """
    _, previews = preview_course(site, course, values)
    folder = out_dir / course.slug
    files: dict[Path, bytes] = {}
    for preview in previews:
        stem = file_stem(preview.step)
        for fmt, ext in OUT_FORMATS:
            files[folder / f"{stem}.{ext}"] = email_bytes(site, course, preview, fmt, values, now=now)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in _earlier_previews(folder).difference(files):
            stale.unlink()
        for path, data in files.items():
            path.write_bytes(data)
    except OSError as exc:  # a file in the way, no permission, a full disk: the user's to fix
        where = Path(exc.filename) if exc.filename else out_dir
        raise InputError(Problem(f"cannot write: {exc.strerror}", file=where)) from None
    return list(files)


_PREVIEW_FILE = re.compile(r"[0-9]{2,}-[a-z0-9-]+\.(?:html|txt|eml)")


def _earlier_previews(folder: Path) -> set[Path]:
    """Files in ``folder`` named like the ones ``write_course`` writes."""
    return {p for p in folder.iterdir() if p.is_file() and _PREVIEW_FILE.fullmatch(p.name)}
