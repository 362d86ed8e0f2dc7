"""Commands that change who receives what: subscribe, import, unsubscribe, list, export, db upgrade.

Each command checks its input (the course compiles, every CSV row is valid)
before it opens a transaction, and writes everything in that one transaction.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

import click

from drip.cli import Context, cli, now_option, plural, shown
from drip.errors import DripError, InputError, NotFoundError, Problem, did_you_mean

if TYPE_CHECKING:
    import sqlalchemy as sa

    from drip.course.models import Course
    from drip.runtime import Runtime
    from drip.store.importer import ImportReport
    from drip.store.subscribers import ExportFormat, Upserted

# The subscriber statuses of drip.store.schema, spelt out so `drip --help` opens no database code
# (a test checks they match).
STATUSES = ("pending", "active", "paused", "unsubscribed", "bounced", "complained")


def _secret(obj: Context) -> Callable[[], str]:
    """The key the suppression list's hashes need, asked for only when the list has an entry."""
    return obj.key


def _warn(runtime: Runtime, problems: Iterable[Problem]) -> None:
    from rich.text import Text

    for problem in problems:
        runtime.err_console.print(Text("warning: ", style="yellow") + Text(shown(problem)))


@cli.command()
@click.argument("email")
@click.option("--course", "course_slug", default=None, help="The course to enroll in (a schedule's name).")
@click.option(
    "--list", "list_name", default=None, help="A newsletter list to join (a `kind: list` schedule)."
)
@click.option("--name", default=None, help="The subscriber's name, used in greetings.")
@click.option("--timezone", default=None, help="IANA time zone, e.g. Europe/Paris. Default: the course's.")
@click.option("--locale", default=None, help="fr or en. Default: the course's.")
@now_option
@click.pass_obj
def subscribe(
    obj: Context,
    email: str,
    course_slug: str | None,
    list_name: str | None,
    name: str | None,
    timezone: str | None,
    locale: str | None,
    now: str | None,
) -> None:
    """Add (or update) one subscriber and enroll them in a course, or add them to a newsletter list.

    Enrolling someone already in the course changes nothing. A missing or unknown
    time zone is a warning: the course's zone applies.
    """
    from rich.text import Text

    from drip.course.compile import compile_course
    from drip.store.enrollments import enroll, enrollment_id, first_due

    if course_slug is None and list_name is None:
        raise click.UsageError("give --course COURSE, --list LIST, or both")
    moment = obj.at(now)
    if list_name is not None:
        _known_list(obj, list_name)
    if course_slug is None:
        assert list_name is not None
        _join(obj, email, list_name, name, timezone, locale, moment)
        return
    course = compile_course(obj.site, course_slug)
    with obj.store() as engine, engine.begin() as conn:
        result = _stored(obj, conn, email, name, locale, timezone, moment)
        already = enrollment_id(conn, result.id, course.slug) is not None
        enrolled = enroll(conn, result.id, course, now=moment)
        first = first_due(conn, enrolled)
        joined = _join_in(conn, result.id, list_name, moment)
    _warn(obj.runtime, result.warnings)
    if joined:
        obj.runtime.console.print(Text(f"{result.subscriber.email} joined the list {list_name}."))
    out = obj.runtime.console
    who = result.subscriber.email
    if already:
        updated = " (details updated)" if result.changed else ""
        out.print(Text(f"{who} was already enrolled in {course.slug}{updated}."))
        return
    verb = "Subscribed" if result.created else "Enrolled"
    due = f", first due {first.isoformat()}" if first is not None else ""
    out.print(Text(f"{verb} {who} to {course.slug}: {plural(len(course.steps), 'email')}{due}."))


def _stored(
    obj: Context,
    conn: sa.Connection,
    email: str,
    name: str | None,
    locale: str | None,
    timezone: str | None,
    moment: dt.datetime,
) -> Upserted:
    """The subscriber stored; an address on the suppression list raises, which rolls the transaction back
    (an erased address is not stored again)."""
    from drip.store.subscribers import suppressed_addresses, upsert_subscriber

    result = upsert_subscriber(conn, email, name=name, locale=locale, timezone=timezone, now=moment)
    suppressed = suppressed_addresses(conn, [result.subscriber.email], _secret(obj))
    if suppressed:
        raise DripError(
            f"{result.subscriber.email} is on the suppression list ({suppressed[result.subscriber.email]}): "
            "only a subscription its owner confirms from the web form brings it back"
        )
    return result


def _known_list(obj: Context, list_name: str) -> None:
    """The list must exist in schedules/: NotFoundError with the closest name otherwise."""
    from drip.preview.next_issue import find_list

    find_list(obj.site, list_name)


def _join_in(conn: sa.Connection, subscriber_id: int, list_name: str | None, moment: dt.datetime) -> bool:
    from drip.store.lists import join_list

    return list_name is not None and join_list(conn, subscriber_id, list_name, now=moment)


def _join(
    obj: Context,
    email: str,
    list_name: str,
    name: str | None,
    timezone: str | None,
    locale: str | None,
    moment: dt.datetime,
) -> None:
    """``drip subscribe EMAIL --list NAME``: the subscriber stored and made a member of the list."""
    from rich.text import Text

    with obj.store() as engine, engine.begin() as conn:
        result = _stored(obj, conn, email, name, locale, timezone, moment)
        joined = _join_in(conn, result.id, list_name, moment)
    _warn(obj.runtime, result.warnings)
    who = result.subscriber.email
    text = f"{who} joined the list {list_name}." if joined else f"{who} was already on the list {list_name}."
    obj.runtime.console.print(Text(text))


def _import_summary(file: Path, report: ImportReport, course: Course | None, list_name: str | None) -> str:
    """The one line an import ends with: rows stored, enrolled, joined, suppressed, skipped."""
    enrolled = (
        f"; {report.enrolled} enrolled in {course.slug}, {report.already_enrolled} already there"
        if course is not None
        else ""
    )
    joined = f"; {report.joined} joined {list_name}" if list_name is not None else ""
    return (
        f"{file.name}: {report.created} new, {report.updated} updated, {report.unchanged} unchanged"
        + enrolled
        + joined
        + (f"; {report.suppressed} suppressed" if report.suppressed else "")
        + (f"; {plural(len(report.skipped), 'row')} skipped" if report.skipped else "")
        + "."
    )


@cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--course", "course_slug", default=None, help="The course every row is enrolled in.")
@click.option("--list", "list_name", default=None, help="A newsletter list every row joins.")
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and report the others.")
@now_option
@click.pass_obj
def import_(
    obj: Context,
    file: Path,
    course_slug: str | None,
    list_name: str | None,
    skip_invalid: bool,
    now: str | None,
) -> None:
    """Import subscribers from a CSV file and enroll them in a course.

    \b
    The first line names the columns: email (required), name, locale, timezone;
    any other column is kept as an attribute. Comma, semicolon or tab separated,
    UTF-8. Every bad row is reported with its line number, and nothing is written
    unless every row is valid (or --skip-invalid is given). Importing the same
    file again changes nothing.
    """
    from rich.text import Text

    from drip.cli.progress import progress
    from drip.course.compile import compile_course
    from drip.store.importer import import_csv

    if course_slug is None and list_name is None:
        raise click.UsageError("give --course COURSE, --list LIST, or both")
    moment = obj.at(now)
    if list_name is not None:
        _known_list(obj, list_name)
    course = compile_course(obj.site, course_slug) if course_slug is not None else None
    with obj.store() as engine, engine.begin() as conn, progress(obj.runtime, "importing") as advance:
        report = import_csv(
            conn,
            file,
            course,
            skip_invalid=skip_invalid,
            now=moment,
            secret=_secret(obj),
            progress=advance,
            list_name=list_name,
        )
    out, err = obj.runtime.console, obj.runtime.err_console
    for problem in report.skipped:
        err.print(Text("skipped: ", style="red") + Text(str(problem)))
    _warn(obj.runtime, report.warnings)
    if report.no_zone and course is not None:
        err.print(
            Text(
                f"warning: {plural(report.no_zone, 'subscriber')} without a time zone: "
                f"the course's ({course.timezone}) applies",
                style="yellow",
            )
        )
    out.print(Text(_import_summary(file, report, course, list_name)))


@cli.command()
@click.argument("email")
@click.option("--course", "course_slug", default=None, help="Leave only this course; default: all mail.")
@now_option
@click.pass_obj
def unsubscribe(obj: Context, email: str, course_slug: str | None, now: str | None) -> None:
    """Stop mail to a subscriber (or one course's), cancelling every email not sent yet."""
    from rich.text import Text

    from drip.store.deliveries import wait_for_hand_offs
    from drip.store.subscribers import unsubscribe as unsubscribe_subscriber

    moment = obj.at(now)
    with obj.store() as engine:
        with engine.begin() as conn:
            result = unsubscribe_subscriber(conn, email, course=course_slug, now=moment)
        # Done only once no email to them is in a transport's hands.
        wait_for_hand_offs(engine, result.subscriber_id, course=result.course, now=moment)
    out = obj.runtime.console
    scope = f"from {result.course}" if result.course else "from all mail"
    if result.already:
        out.print(Text(f"{email.strip()} was already unsubscribed {scope}: nothing changed."))
        return
    out.print(
        Text(f"Unsubscribed {email.strip()} {scope}; {plural(result.cancelled, 'pending email')} cancelled.")
    )


@cli.group()
def subscribers() -> None:
    """List, export and erase subscribers."""


@subscribers.command("list")
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only subscribers with this status."
)
@click.option("--course", "course_slug", default=None, help="Only subscribers enrolled in this course.")
@click.pass_obj
def list_(obj: Context, status: str | None, course_slug: str | None) -> None:
    """Subscribers as a table: address, name, locale, zone, status, courses."""
    from rich.table import Table
    from rich.text import Text

    from drip.course.compile import course_slugs
    from drip.store.subscribers import enrolled_courses, list_subscribers

    with obj.store() as engine, engine.connect() as conn:
        rows = list_subscribers(conn, status=status, course=course_slug)
        courses = enrolled_courses(conn)
    if course_slug is not None and not rows:
        # A course is known by its schedule, or by enrollments left from a removed one.
        known = sorted(set(course_slugs(obj.site)).union(*courses.values()))
        if course_slug not in known:
            raise NotFoundError(
                Problem(
                    f"no course {course_slug!r} (courses: {', '.join(known) or 'none'})",
                    key="course",
                    hint=did_you_mean(course_slug, known),
                )
            )
    table = Table(title=plural(len(rows), "subscriber"), title_justify="left")
    for column in ("Email", "Name", "Locale", "Time zone", "Status", "Courses", "Since (UTC)"):
        table.add_column(column)
    for sub in rows:
        # Text cells: a name like "[bold]" is shown as typed, never read as markup.
        table.add_row(
            Text(sub.email),
            Text(sub.name),
            Text(sub.locale or "-"),
            Text(sub.timezone or "-"),
            Text(sub.status),
            Text(", ".join(courses.get(sub.id, []))),
            Text(sub.created_at.strftime("%Y-%m-%d %H:%M")),
        )
    obj.runtime.console.print(table)


@subscribers.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="Format of the list; one person's data (EMAIL) is always JSON.",
)
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only subscribers with this status."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.pass_obj
def export(obj: Context, fmt: str, status: str | None, output: Path | None) -> None:
    """every subscriber as CSV (cells a spreadsheet would evaluate are quoted) or JSON."""
    from rich.text import Text

    from drip.store.subscribers import export_subscribers

    with obj.store() as engine, engine.connect() as conn:
        if output is None:
            count = export_subscribers(conn, sys.stdout, fmt=cast("ExportFormat", fmt), status=status)
        else:
            try:
                handle = output.open("w", encoding="utf-8", newline="")
            except OSError as exc:
                raise InputError(
                    Problem(f"cannot write: {exc.strerror}", file=output, key="--output")
                ) from None
            with handle:
                count = export_subscribers(
                    conn, cast(TextIO, handle), fmt=cast("ExportFormat", fmt), status=status
                )
            obj.runtime.err_console.print(Text(f"{plural(count, 'subscriber')} written to {output}"))


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Apply pending schema migrations (needed after upgrading drip on PostgreSQL)."""
    from rich.text import Text

    from drip.store.db import upgrade_store

    before, after = upgrade_store(obj.site.database_url)
    out = obj.runtime.console
    now_at = ", ".join(sorted(after))
    if before == after:
        out.print(Text(f"The database is up to date (revision {now_at})."))
    else:
        out.print(Text(f"Database upgraded from {', '.join(sorted(before)) or 'nothing'} to {now_at}."))
