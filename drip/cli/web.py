"""`drip serve` (the subscriber web endpoints), `drip embed` (a subscribe form to paste)
and the personal-data commands `drip subscribers export EMAIL` / `drip subscribers erase EMAIL`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

import click

from drip.cli import Context, cli, now_option
from drip.cli import subscribers as subscribers_cli
from drip.errors import NotFoundError, Problem, did_you_mean
from drip.tokens import SECRET_ENV, MissingSecret


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option(
    "--demo",
    is_flag=True,
    help="Allow the public demo signing key when DRIP_SECRET_KEY is unset. Never in production.",
)
@click.option(
    "--rate-limit",
    "per_minute",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Subscribe requests a minute per client address (0: no limit).",
)
@click.option(
    "--burst", default=5, show_default=True, type=click.IntRange(min=1), help="Requests allowed at once."
)
@click.pass_obj
def serve(obj: Context, host: str, port: int, demo: bool, per_minute: float, burst: int) -> None:
    """Serve subscribe, confirm, unsubscribe, preferences, view and the SendGrid webhook."""
    import uvicorn
    from rich.text import Text

    from drip.web.app import RedactTokens, create_app, server_options
    from drip.web.ratelimit import RateLimit

    secret = _serve_secret(obj, demo=demo)
    err = obj.runtime.err_console
    with obj.store() as engine:
        limit = RateLimit(per_minute=per_minute, burst=burst)
        app = create_app(obj.site, secret=secret, engine=engine, rate_limit=limit)
        logging.getLogger("uvicorn.access").addFilter(RedactTokens())
        sock = listen(host, port)
        err.print(
            Text(
                f"Serving {obj.site.config.site.name} on http://{host}:{port} (public URL "
                f"{obj.site.config.site.base_url})"
            )
        )
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", **server_options(obj.site)))  # type: ignore[arg-type]
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()


def _serve_secret(obj: Context, *, demo: bool) -> str:
    """The signing key for ``drip serve``: the public demo key only with ``--demo``, whatever the transport."""
    obj.site  # noqa: B018  (loading the site sets the outbox's rule, which --demo replaces here)
    obj.runtime.demo_key = demo
    try:
        secret = obj.runtime.quiet_secret  # the DEMO MODE line below is its warning
    except MissingSecret as exc:
        if obj.runtime.environ.get(SECRET_ENV):
            raise
        raise MissingSecret(f"{exc}; to try drip serve on this machine only, add --demo") from None
    if obj.runtime.uses_demo_key:
        obj.runtime.err_console.print(
            "[bold red]DEMO MODE:[/] links are signed with the public demo key; anyone can forge them. "
            "Set DRIP_SECRET_KEY before serving real subscribers."
        )
    return secret


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before anything says it is serving.

    A port in use or a host that does not resolve is then a one-line error,
    rather than a "Serving on" line followed by the server's own log and exit 3.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:  # its message repeats the address: keep the reason alone
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from None


def embed_form(obj: Context, course: str, locale: str | None) -> str:
    """The HTML form for ``course``, posting to the site's public /subscribe."""
    from drip.course.compile import compile_course, course_slugs
    from drip.web.i18n import strings
    from drip.web.pages import env

    slugs = course_slugs(obj.site)
    if course not in slugs:
        raise NotFoundError(
            Problem(
                f"no course {course!r} (courses: {', '.join(slugs) or 'none'})",
                hint=did_you_mean(course, slugs),
            )
        )
    compiled = compile_course(obj.site, course)
    loc = locale or compiled.locale
    return env.get_template("embed.html").render(
        locale=loc,
        t=strings(loc),
        site_name=obj.site.config.site.name,
        course_title=compiled.title,
        course_slug=course,
        field="course",
        action=obj.site.config.site.base_url + "/subscribe",
    )


def embed_list_form(obj: Context, list_name: str, locale: str | None) -> str:
    """The HTML form for a newsletter list, posting to the site's public /subscribe with ``list``."""
    from drip.preview.next_issue import find_list
    from drip.web.i18n import strings
    from drip.web.pages import env

    found = find_list(obj.site, list_name)
    loc = locale or found.locale
    return env.get_template("embed.html").render(
        locale=loc,
        t=strings(loc),
        site_name=obj.site.config.site.name,
        course_title=found.title,
        course_slug=list_name,
        field="list",
        action=obj.site.config.site.base_url + "/subscribe",
    )


@cli.command()
@click.argument("course", required=False)
@click.option("--list", "list_name", default=None, help="A newsletter list instead of a course.")
@click.option("--locale", type=click.Choice(["fr", "en"]), default=None, help="Default: the course's.")
@click.pass_obj
def embed(obj: Context, course: str | None, list_name: str | None, locale: str | None) -> None:
    """Print an HTML subscribe form for COURSE (or --list NAME) to paste into a page (no JavaScript needed)."""
    if (course is None) == (list_name is None):
        raise click.UsageError("give a COURSE or --list NAME (one of them)")
    if list_name is not None:
        click.echo(embed_list_form(obj, list_name, locale), nl=False)
        return
    assert course is not None
    click.echo(embed_form(obj, course, locale), nl=False)


# The `subscribers` group lives beside `list`; importing it first keeps one group whatever the order.
_group: click.Group = subscribers_cli.subscribers


def _export_person(obj: Context, email: str) -> None:
    from drip.store.personal_data import export_person

    with obj.store() as engine, engine.connect() as conn:
        data = export_person(conn, obj.key(), email)
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _install_export() -> None:
    """`subscribers export EMAIL` for one person; without EMAIL, the list export defined beside `list`."""
    bulk = _group.commands.get("export")

    @click.pass_context
    def export(ctx: click.Context, /, email: str | None, **options: Any) -> None:
        if email is None:
            if bulk is None:
                raise click.UsageError("give the EMAIL of the person whose data to export")
            ctx.invoke(bulk, **options)
            return
        # One person's record is always JSON; --status filters a list, so it has no meaning here.
        if options.get("status") is not None:
            raise click.UsageError("--status applies to the whole list, not to one EMAIL")
        if options.get("output") is not None:
            raise click.UsageError("--output applies to the whole list; redirect standard output instead")
        _export_person(ctx.find_object(Context) or ctx.obj, email)

    params: list[click.Parameter] = [click.Argument(["email"], required=False)]
    params += list(bulk.params) if bulk is not None else []
    help_text = (
        "With EMAIL: everything known about that person as JSON (subscriber, enrollments, deliveries). "
        + (f"Without EMAIL: {bulk.help}" if bulk is not None and bulk.help else "")
    )
    _group.add_command(click.Command("export", callback=export, params=params, help=help_text))


_install_export()


@_group.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@now_option
@click.pass_obj
def erase(obj: Context, email: str, yes: bool, now: str | None) -> None:
    """Erase EMAIL everywhere (row, enrollments, deliveries, outbox files); keep only a keyed hash
    on the suppression list so the address is never mailed again unless it subscribes and confirms."""
    from rich.text import Text

    from drip.store.personal_data import erase_person, flush_sqlite, remove_files

    secret = obj.key()
    when = obj.at(now)
    if not yes:
        click.confirm(f"Erase every record of {email.strip()}?", abort=True, err=True)
    with obj.store() as engine:
        with engine.begin() as conn:
            result = erase_person(conn, secret, email, outbox=obj.site.outbox_dir, now=when)
        flush_sqlite(engine)
    files = remove_files(result.outbox_files)
    obj.runtime.console.print(
        Text(
            f"Erased {email.strip()}: subscriber {'removed' if result.subscriber else 'not found'}, "
            f"{result.enrollments} enrollment(s), {result.deliveries} delivery record(s), {files} outbox file(s); "
            "the address stays on the suppression list as a keyed hash."
        )
    )
