"""``drip simulate``: the exact timeline one reader receives, sending nothing and writing nothing to the store.

The due times come from the functions enrollment and dispatch use (:func:`drip.course.timing.course_schedule`
in the reader's zone, resolved as enrollment resolves it); for ``--subscriber`` they are the reader's own
deliveries as stored. A worker sends a delivery at its first tick at or after its due time, so with ticks
that fall on the send window (``drip run --until --step 15m``) the times are the ones emails carry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from drip.cli import Context, cli, parse_now, parse_zone

if TYPE_CHECKING:
    import sqlalchemy as sa
    from rich.table import Table

    from drip.config import Site
    from drip.course.models import Course, Step


@dataclass(frozen=True)
class Email:
    """One email of the timeline: when it leaves (UTC), what became of it, and its subject."""

    step: Step
    at: dt.datetime
    status: str  # "pending" (will be sent), "sent", or a stored "skipped" / "cancelled" / "failed"
    subject: str
    note: str | None = None


@dataclass(frozen=True)
class Reader:
    """Who the timeline is for: their zone, locale, slot values and when their course starts."""

    zone: ZoneInfo
    locale: str | None
    values: Mapping[str, str]
    start: dt.datetime


def fresh_timeline(course: Course, reader: Reader) -> list[tuple[Step, dt.datetime, str, str | None]]:
    """A reader subscribing at ``reader.start``: each step at the due time enrollment would store."""
    from drip.course.timing import course_schedule

    dues = course_schedule(reader.start, course.steps, course.window, reader.zone)
    return [(step, due, "pending", None) for step, due in zip(course.steps, dues, strict=True)]


def stored_timeline(
    course: Course, rows: Sequence[tuple[str, str, dt.datetime, dt.datetime | None, str | None]]
) -> list[tuple[Step, dt.datetime, str, str | None]]:
    """A reader's deliveries as stored: sent ones at their sending time, the others at their due time."""
    steps = {s.key: s for s in course.steps}
    out = []
    for key, status, due, sent, note in rows:
        if key in steps:  # a delivery of a step no longer in the course is not an email any more
            out.append((steps[key], sent if status == "sent" and sent else due, status, note))
    return sorted(out, key=lambda r: r[1])


def _emails(
    site: Site,
    course: Course,
    reader: Reader,
    rows: list[tuple[Step, dt.datetime, str, str | None]],
    days: int,
) -> list[Email]:
    """Rows within ``days`` of the start, each with its subject rendered as the reader gets it."""
    from drip.render.steps import RenderCache

    cache = RenderCache()
    end = reader.start + dt.timedelta(days=days)
    out = []
    for step, at, status, note in rows:
        if at >= end:
            continue
        subject = cache(site, course, step, locale=reader.locale).subject.fill(reader.values, escape=False)
        out.append(Email(step, at, status, subject, note))
    return out


def _table(course: Course, reader: Reader, emails: Sequence[Email]) -> Table:
    from rich.table import Table

    local = reader.start.astimezone(reader.zone)
    title = f"{course.slug} — {reader.values.get('email')} ({reader.zone.key}) from {local:%Y-%m-%d %H:%M %Z}"
    table = Table(title=title, title_justify="left")
    for name in ("#", "step", "local time", "UTC", "status", "subject"):
        table.add_column(name, overflow="fold" if name in ("step", "subject") else "ellipsis")
    for e in emails:
        table.add_row(
            str(e.step.number),
            e.step.key,
            e.at.astimezone(reader.zone).strftime("%a %Y-%m-%d %H:%M %Z"),
            e.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            e.status + (f" ({e.note})" if e.note else ""),
            e.subject,
        )
    return table


def write_emails(site: Site, course: Course, reader: Reader, emails: Sequence[Email], out_dir: Path) -> int:
    """Each email the reader gets as NN-key.eml/.html/.txt in ``out_dir/COURSE``, dated when it leaves."""
    from drip.errors import InputError, Problem
    from drip.preview.emails import OUT_FORMATS, EmailPreview, email_bytes, file_stem
    from drip.render.steps import RenderCache

    cache = RenderCache()
    files: dict[Path, bytes] = {}
    folder = out_dir / course.slug
    for e in emails:
        if e.status not in ("pending", "sent"):
            continue
        rendered = cache(site, course, e.step, locale=reader.locale)
        subject, html, text = rendered.personalise(reader.values)
        preview = EmailPreview(e.step, rendered, subject, html, text)
        for fmt, ext in OUT_FORMATS:
            files[folder / f"{file_stem(e.step)}.{ext}"] = email_bytes(
                site, course, preview, fmt, reader.values, now=e.at
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            path.write_bytes(data)
    except OSError as exc:
        raise InputError(
            Problem(f"cannot write: {exc.strerror}", file=Path(exc.filename or folder))
        ) from None
    return len(files)


def _stored_reader(
    site: Site, engine: sa.Engine, course: Course, email: str
) -> tuple[Reader, list[tuple[Step, dt.datetime, str, str | None]]]:
    """The reader's real enrollment, read only; a located error when there is none."""
    from drip.course.timing import resolve_timezone
    from drip.errors import NotFoundError, Problem
    from drip.render.steps import sample_values
    from drip.store.reader_timeline import ReaderEnrollment, reader_enrollment

    found = reader_enrollment(engine, email, course.slug)
    if found is None:
        raise NotFoundError(Problem(f"no subscriber {email!r}", hint="drip subscribers lists them"))
    if not isinstance(found, ReaderEnrollment):
        raise NotFoundError(Problem(f"{email} is not enrolled in {course.slug!r}"))
    sub = found.subscriber
    values = sample_values(site, course, name=sub.name, email=sub.email)
    values.update({f"attributes.{k}": "" if v is None else str(v) for k, v in sub.attributes.items()})
    zone = resolve_timezone(sub.timezone, course.timezone)[0]
    reader = Reader(zone, sub.locale, values, found.started_at)
    rows = [(d.step_key, d.status, d.due_at, d.sent_at, d.note) for d in found.deliveries]
    return reader, stored_timeline(course, rows)


@cli.command()
@click.argument("course_slug", metavar="COURSE")
@click.option("--subscriber", "email", metavar="EMAIL", help="This reader's real enrollment (read only).")
@click.option("--timezone", "tz_name", metavar="ZONE", help="A fresh reader in this IANA zone.")
@click.option(
    "--start", metavar="DATETIME", help="When the fresh reader subscribes (ISO 8601; naive is UTC)."
)
@click.option("--days", type=click.IntRange(1, 3650), required=True, help="How many days to show.")
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write each email to DIR/COURSE as NN-key.eml, .html and .txt.",
)
@click.pass_obj
def simulate(
    obj: Context,
    course_slug: str,
    email: str | None,
    tz_name: str | None,
    start: str | None,
    days: int,
    out_dir: Path | None,
) -> None:
    """The exact timeline one reader receives (local time and UTC, subjects), sending nothing.

    With --subscriber, that reader's enrollment and deliveries as stored; otherwise a
    fresh reader in --timezone (default: the course's) subscribing at --start (default: now).
    """
    from drip.course.compile import compile_course
    from drip.render.steps import sample_values

    if email is not None and (tz_name is not None or start is not None):
        raise click.UsageError(
            "--subscriber reads the reader's own zone and start: drop --timezone and --start"
        )
    site = obj.site
    course = compile_course(site, course_slug)
    if email is not None:
        with obj.store() as engine:
            reader, rows = _stored_reader(site, engine, course, email)
    else:
        zone = ZoneInfo(parse_zone(tz_name) or course.timezone)
        moment = parse_now(start, "--start", clock=obj.runtime.clock)
        reader = Reader(zone, None, sample_values(site, course), moment)
        rows = fresh_timeline(course, reader)
    emails = _emails(site, course, reader, rows, days)
    obj.runtime.console.print(_table(course, reader, emails))
    if out_dir is not None:
        count = write_emails(site, course, reader, emails, out_dir)
        click.echo(f"{count} files written to {out_dir / course.slug}")
