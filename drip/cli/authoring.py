"""Commands for authors: ``drip check`` before shipping, ``drip preview`` to look at a course."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import click

from drip.cli import Context, cli, now_option, parse_zone, shown

if TYPE_CHECKING:
    from rich.table import Table

    from drip.preview.timeline import TimelineRow

DEFAULT_PORT = 8001
# drip.preview.emails.FORMATS, spelt out so `drip --help` renders nothing (a test checks they match).
FORMATS = ("html", "text", "mjml", "eml")


@cli.command()
@click.option(
    "--strict",
    is_flag=True,
    help="Treat warnings (links to site paths no content file provides) as errors.",
)
@now_option
@click.pass_obj
def check(obj: Context, strict: bool, now: str | None) -> None:
    """Validate the whole site before anything is sent.

    Reads drip.yaml, every content file and every schedule, compiles every course,
    renders every email, and checks every link in the rendered HTML.

    \b
    Links:
      ok       an absolute http(s) URL on another site, a mailto: address, a path
               of this site that a file under content/ provides (compared without
               the base URL, query string and fragment), or drip's own
               unsubscribe / preferences / view links;
      warning  a path of this site that no content file provides (the page may
               live elsewhere on the site); an error with --strict;
      error    an empty link, a malformed URL, a scheme other than http, https or
               mailto, a relative link in an email (emails need absolute links),
               or a pillar link written relative to its page ("posts/x").

    Each problem names the file, line and column where it is written (the pillar
    for links) and suggests the closest known name. Exit status 1 with every error
    at once; 0 with a one-line summary when there is none.
    """
    from rich.text import Text

    from drip.cli.progress import progress
    from drip.errors import InputError
    from drip.preview.checks import check_site

    with progress(obj.runtime, "reading content") as advance:
        report = check_site(obj.site, strict=strict, now=obj.at(now), progress=advance)
    console = obj.runtime.console
    for warning in report.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), shown(warning)), soft_wrap=True)
    if not report.ok:
        raise InputError(list(report.errors))
    console.print(report.summary(), markup=False, soft_wrap=True)


def _timeline_table(title: str, rows: list[TimelineRow]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("Step", overflow="fold")
    table.add_column("Day", justify="right")
    table.add_column("Sends (local time)", no_wrap=True)
    table.add_column("Subject")
    table.add_column("Article")
    for row in rows:
        table.add_row(
            str(row.number),
            row.key,
            str(row.day),
            row.send_at.strftime("%a %Y-%m-%d %H:%M %Z"),
            row.subject,
            row.article_title or "—",
        )
    return table


@cli.command()
@click.argument("course_slug", metavar="[COURSE]", required=False)
@now_option
@click.option(
    "--timezone",
    "tz_name",
    metavar="ZONE",
    help="Show send times in this IANA time zone (e.g. America/Montreal). Default: the course's zone.",
)
@click.option(
    "--step",
    "step_ref",
    metavar="KEY_OR_NUMBER",
    help="Print one email to stdout, chosen by its key (e.g. welcome) or its number (1 = first).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="With --step: html (default), text, mjml (the source before compiling) or eml (the full message).",
)
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every email of the course to DIR/COURSE/ as NN-key.html, NN-key.txt and NN-key.eml.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Serve a preview page on 127.0.0.1: every course, each email at 600 px and 375 px, its text version.",
)
@click.option(
    "--port",
    metavar="N",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port of the preview page (with --serve; 0 picks a free one).",
)
@click.pass_obj
def preview(
    obj: Context,
    course_slug: str | None,
    now: str | None,
    tz_name: str | None,
    step_ref: str | None,
    fmt: str | None,
    out_dir: Path | None,
    serve: bool,
    port: int,
) -> None:
    """Show what subscribers of COURSE would receive, and when.

    Without options: a timeline of every email (number, step key, day, send date
    and local time for someone subscribing now or at --now, subject rendered with
    sample values, article). With --step: one email on stdout in --format. With
    --out: every email written to a folder of its own under DIR. With --serve: a local web page (COURSE
    is optional there). Nothing is sent and nothing is stored.
    """
    site = obj.site
    start = obj.at(now)
    zone_name = parse_zone(tz_name)
    if fmt is not None and step_ref is None:
        raise click.UsageError("--format needs --step (or use --out to write every email)")
    if serve:
        _serve(obj, course_slug, start if now else None, zone_name, port)
        return
    if course_slug is None:
        raise click.UsageError("missing COURSE (e.g. drip preview le-role-du-cto)")
    from drip.preview.emails import compile_for_preview, email_bytes, preview_course, write_course
    from drip.render.steps import sample_values

    course = compile_for_preview(site, course_slug)
    values = sample_values(site, course)
    if step_ref is not None:
        step = course.step(step_ref)
        _, previews = preview_course(site, course, values)
        data = email_bytes(site, course, previews[step.number - 1], fmt or "html", values, now=start)
        click.echo(data, nl=not data.endswith(b"\n"))
        return
    if out_dir is not None:
        written = write_course(site, course, out_dir, values, now=start)
        click.echo(f"{len(written)} files written to {out_dir / course.slug}")
        return
    from drip.preview.timeline import course_timeline, course_zone

    rendered, _ = preview_course(site, course, values)
    zone = course_zone(course, zone_name)
    rows = course_timeline(course, rendered, values, now=start, tz=zone)
    local = start.astimezone(zone)
    title = f"{course.title} — subscribing {local:%a %Y-%m-%d %H:%M} ({zone})"
    obj.runtime.console.print(_timeline_table(title, rows))


def _serve(
    obj: Context, course_slug: str | None, now: dt.datetime | None, zone_name: str | None, port: int
) -> None:
    """Run the preview page until Ctrl-C; a named course is checked first so a typo fails fast.

    The socket is bound before the URL is printed, so ``--port 0`` prints the port
    actually chosen and a client may connect as soon as the line appears.
    """
    import uvicorn

    from drip.cli.web import listen
    from drip.course.compile import compile_course
    from drip.preview.server import create_app

    site = obj.site
    path = "/"
    if course_slug is not None:
        compile_course(site, course_slug)
        path = f"/courses/{quote(course_slug)}/"
    app = create_app(site, now=now, timezone=zone_name)
    sock = listen("127.0.0.1", port)
    bound = sock.getsockname()[1]
    click.echo(f"Preview on http://127.0.0.1:{bound}{path} (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
