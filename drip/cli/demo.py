"""``drip demo``: the whole flow on the example site, as time passes, in one command.

It subscribes three readers in three time zones, then steps a simulated clock
through the course so each email lands in outbox/ at the reader's local send
time. Every stage is a real command (check, subscribe, run --until); this module
only strings them together and prints what arrived.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

from drip.cli import Context, cli, now_option
from drip.cli.authoring import check
from drip.cli.delivery import run
from drip.cli.subscribers import subscribe
from drip.errors import InputError, Problem

READERS = (
    ("camille@example.org", "Camille", "Europe/Paris"),
    ("ana@example.org", "Ana", "America/New_York"),
    ("kenji@example.org", "Kenji", "Asia/Tokyo"),
)


@cli.command()
@click.option("--course", "course_slug", default=None, help="The course to simulate. Default: the first one.")
@now_option
@click.pass_context
def demo(ctx: click.Context, course_slug: str | None, now: str | None) -> None:
    """Check the site, subscribe three readers (Paris, New York, Tokyo) and simulate the course.

    Uses the site's own database and transport (by default SQLite and the outbox
    folder), so afterwards `drip status` and outbox/*.eml show what happened.
    Running it again changes nothing for readers already enrolled.
    """
    from drip.course.compile import compile_course, course_slugs

    obj: Context = ctx.obj
    start = obj.at(now)
    out = obj.runtime.console
    slugs = course_slugs(obj.site)
    if not slugs:
        raise InputError(Problem("no schedule in schedules/: write one first", file=obj.site.schedules_dir))
    slug = course_slug or slugs[0]
    if slug not in slugs:
        compile_course(obj.site, slug)  # raises the "no course" error: a typo fails before the long check
    heading(out, "1. drip check")
    ctx.invoke(check, strict=False)
    heading(out, f"2. drip subscribe (course {slug})")
    for address, name, zone in READERS:
        ctx.invoke(
            subscribe,
            email=address,
            course_slug=slug,
            name=name,
            timezone=zone,
            locale=None,
            now=start.isoformat(),
        )
    heading(out, "3. drip run --until (a simulated clock, 15 minutes a step)")
    until = start + dt.timedelta(days=21)
    ctx.invoke(run, once=False, now=start.isoformat(), until=until.isoformat(), step="15m", worker="demo")
    heading(out, "4. what arrived")
    _show_outbox(obj, {address: zone for address, _, zone in READERS})


def _show_outbox(obj: Context, zones: dict[str, str]) -> None:
    import email
    import email.policy
    from email.message import EmailMessage
    from zoneinfo import ZoneInfo

    from rich.table import Table

    out = obj.runtime.console
    folder = obj.site.outbox_dir
    table = Table("file", "to", "local time", "subject")
    for column in table.columns[:3]:
        column.no_wrap = True
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        to = str(msg["To"])
        address = to.rsplit("<", 1)[-1].rstrip(">")
        if address not in zones:
            continue
        sent = msg["Date"].datetime if msg["Date"] is not None else None
        local = sent.astimezone(ZoneInfo(zones[address])).strftime("%a %d %b %H:%M %Z") if sent else "?"
        table.add_row(path.name, address, local, str(msg["Subject"]))
    out.print(table)
    out.print(f"Messages are in {folder}/ — open any .eml in a mail client. `drip status` sums it up.")


def heading(out: Console, text: str) -> None:
    """A section rule on a terminal; when piped (where the console is as wide as a table row may be),
    one plain line instead of a thousand dashes."""
    if out.is_terminal:
        out.rule(text)
    else:
        out.print(f"── {text} ──", markup=False)
