"""``drip newsletter``: the next issue as it would go out, who would get it, a test copy, past issues.

NAME is a digest or a broadcast. Preview and ``send --dry-run`` write nothing;
``send --test`` sends one copy through the site's transport and records nothing in
the ledger. Issues themselves are created and sent by ``drip run``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING

import click

from drip.cli import Context, cli, now_option, plural

if TYPE_CHECKING:
    import sqlalchemy as sa

    from drip.preview.next_issue import Newsletter, NextIssue

FORMATS = ("html", "text", "eml")
IN_COURSE = "in the middle of a course"
NOTHING_NEW = "nothing new for them"


@cli.group()
def newsletter() -> None:
    """Newsletters: preview the next issue, who would get it, send a test, list past issues."""


def _last_send(engine: sa.Engine, item: Newsletter) -> dt.datetime | None:
    """When the digest's last issue went: where the next one's posts start."""
    from drip.store.issues import list_issues

    with engine.connect() as conn:
        issues = [i for i in list_issues(conn, item.mlist.name) if i.key.startswith(f"{item.name}:")]
    return issues[-1].send_at if issues else None


def _reader_urls(
    conn: sa.Connection, subscriber_id: int, days: int, now: dt.datetime
) -> dict[str, dt.datetime]:
    """The reader's course articles sent in the last ``days`` days or still to come.

    :func:`course_urls` has applied the window already, so each is dated just after
    ``now``: :func:`for_reader` leaves every one of them out.
    """
    from drip.store.issues import course_urls

    found = course_urls(conn, [subscriber_id], since=now - dt.timedelta(days=days))
    later = now + dt.timedelta(microseconds=1)
    return {url: later for url in found.get(subscriber_id, set())}


def _reader_values(
    obj: Context, conn: sa.Connection, email: str, item: Newsletter, key: str, now: dt.datetime
) -> tuple[dict[str, str], dict[str, dt.datetime]]:
    from drip.dispatch.personalise import subscriber_values
    from drip.store.subscribers import get_subscriber, unknown_address

    reader = get_subscriber(conn, email)
    if reader is None:
        raise unknown_address(conn, email)
    values = subscriber_values(
        obj.site.config.site.base_url,
        obj.runtime.secret,
        subscriber_id=reader.id,
        name=reader.name or "",
        email=reader.email,
        attributes=reader.attributes,
        course=item.mlist.name,
        step=key,
        now=now,
    )
    return values, _reader_urls(conn, reader.id, item.mlist.no_repeat_days, now)


def _upcoming(
    obj: Context, engine: sa.Engine, item: Newsletter, moment: dt.datetime, email: str | None
) -> tuple[NextIssue, dict[str, str]]:
    """The next issue, for a sample reader or for the one named by ``email``."""
    from drip.preview.next_issue import next_issue, sample_values

    since = _last_send(engine, item) if item.digest is not None else None
    if email is None:
        return next_issue(obj.site, item, moment, since=since), sample_values(obj.site, item.mlist)
    first = next_issue(obj.site, item, moment, since=since)
    with engine.connect() as conn:
        values, urls = _reader_values(obj, conn, email, item, first.key, moment)
    return next_issue(obj.site, item, moment, since=since, course_urls=urls), values


@newsletter.command("preview")
@click.argument("name")
@now_option
@click.option(
    "--subscriber",
    "email",
    metavar="EMAIL",
    help="Show this reader's issue (their course taken into account).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.pass_obj
def preview(obj: Context, name: str, now: str | None, email: str | None, fmt: str) -> None:
    """Show the next issue of NAME as it would go out. Nothing is sent or stored."""
    from drip.preview.next_issue import find_newsletter, issue_bytes

    moment = obj.at(now)
    item = find_newsletter(obj.site, name)
    with obj.store() as engine:
        upcoming, values = _upcoming(obj, engine, item, moment, email)
    if upcoming.rendered is None:
        obj.runtime.err_console.print(
            f"no issue at {upcoming.send_at.isoformat()}: too few posts ({len(upcoming.posts)})"
        )
        raise SystemExit(1)
    data = issue_bytes(obj.site, item.mlist, upcoming.rendered, values, fmt, now=moment)
    click.echo(data, nl=not data.endswith(b"\n"))


def _audience(
    engine: sa.Engine, item: Newsletter, upcoming: NextIssue, now: dt.datetime
) -> tuple[Counter[str], Counter[str]]:
    """Recipients per time zone and members left out per reason, as the issue would be written."""
    from drip.course.selection import for_reader
    from drip.store.issues import course_urls, in_course
    from drip.store.lists import members

    zones: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    since = now - dt.timedelta(days=item.mlist.no_repeat_days)
    later = now + dt.timedelta(microseconds=1)
    for batch in members(engine, item.mlist.name):
        ids = [m.subscriber_id for m in batch]
        with engine.connect() as conn:
            busy = in_course(conn, ids) if item.mlist.hold_during_course else set()
            taken = course_urls(conn, ids, since=since) if item.digest is not None else {}
        for member in batch:
            urls = {url: later for url in taken.get(member.subscriber_id, set())}
            if member.subscriber_id in busy:
                reasons[IN_COURSE] += 1
            elif urls and not for_reader(upcoming.posts, urls, item.mlist.no_repeat_days, now):
                reasons[NOTHING_NEW] += 1
            else:
                zones[member.timezone or item.mlist.timezone] += 1
    return zones, reasons


def _print_audience(obj: Context, upcoming: NextIssue, zones: Counter[str], reasons: Counter[str]) -> None:
    from rich.table import Table

    out = obj.runtime.console
    out.print(
        f"{upcoming.key}: {plural(sum(zones.values()), 'recipient')}, sending {upcoming.send_at.isoformat()}"
    )
    table = Table("time zone", "recipients")
    for zone, count in sorted(zones.items()):
        table.add_row(zone, str(count))
    out.print(table)
    if reasons:
        left_out = Table("left out because", "members")
        for reason, count in sorted(reasons.items()):
            left_out.add_row(reason, str(count))
        out.print(left_out)


def _send_test(obj: Context, item: Newsletter, upcoming: NextIssue, to: str, now: dt.datetime) -> None:
    from drip.inputs.address import normalise_address
    from drip.preview.next_issue import as_test, issue_message, sample_values
    from drip.transports import get_transport

    assert upcoming.rendered is not None
    try:
        address = normalise_address(to)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--test'") from None
    values = {**sample_values(obj.site, item.mlist), "email": address}
    message = issue_message(obj.site, item.mlist, as_test(upcoming.rendered), values, address)
    with get_transport(obj.site) as transport:
        (result,) = transport.send_batch([message], now=now)
    if result.error is not None:
        raise result.error
    obj.runtime.console.print(f"test copy of {upcoming.key} sent to {address}", markup=False)


@newsletter.command("send")
@click.argument("name")
@now_option
@click.option(
    "--dry-run", is_flag=True, help="Say who would get the next issue and render it; write nothing."
)
@click.option(
    "--test", "test_to", metavar="EMAIL", help="Send one copy marked [TEST] to EMAIL; record nothing."
)
@click.pass_obj
def send(obj: Context, name: str, now: str | None, dry_run: bool, test_to: str | None) -> None:
    """Check the next issue of NAME before `drip run` sends it: --dry-run, or --test EMAIL."""
    from drip.preview.next_issue import find_newsletter, next_issue

    if not dry_run and test_to is None:
        raise click.UsageError("give --dry-run or --test EMAIL; issues are sent by `drip run`")
    moment = obj.at(now)
    item = find_newsletter(obj.site, name)
    with obj.store() as engine:
        since = _last_send(engine, item) if item.digest is not None else None
        upcoming = next_issue(obj.site, item, moment, since=since)
        if upcoming.rendered is None:
            obj.runtime.console.print(
                f"no issue at {upcoming.send_at.isoformat()}: too few posts ({len(upcoming.posts)})"
            )
            return
        if dry_run:
            zones, reasons = _audience(engine, item, upcoming, moment)
            _print_audience(obj, upcoming, zones, reasons)
            obj.runtime.console.print(
                f"subject: {upcoming.rendered.subject.fill({}, escape=False)}", markup=False
            )
    if test_to is not None:
        _send_test(obj, item, upcoming, test_to, moment)


@newsletter.command("issues")
@click.argument("name")
@click.pass_obj
def issues(obj: Context, name: str) -> None:
    """List the past issues of NAME (a digest, a broadcast or a list) with their counts."""
    from rich.table import Table

    from drip.preview.next_issue import find_newsletter
    from drip.store.issues import list_issues

    if name in _list_names(obj):
        list_name, prefix = name, ""
    else:
        item = find_newsletter(obj.site, name)
        list_name, prefix = item.mlist.name, (f"{name}:" if item.digest is not None else f"broadcast:{name}")
    with obj.store() as engine, engine.connect() as conn:
        found = [i for i in list_issues(conn, list_name) if i.key.startswith(prefix)]
    table = Table("issue", "send at", "subject", "recipients", "left out")
    for issue in found:
        counts = issue.counts or {}
        recipients = int(counts.get("created", 0)) + int(counts.get("existing", 0))
        left_out = sum(int(n) for n in dict(counts.get("excluded", {})).values())
        table.add_row(issue.key, issue.send_at.isoformat(), issue.subject, str(recipients), str(left_out))
    obj.runtime.console.print(table if found else f"no issues of {name} yet")


def _list_names(obj: Context) -> set[str]:
    from drip.course.newsletter import load_newsletters

    return set(load_newsletters(obj.site).lists)
