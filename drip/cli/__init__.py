"""The `drip` command line. Each command group lives in its own module.

Input mistakes are :class:`~drip.errors.InputError`: printed as located problems,
exit status 1, never a traceback.

``drip --help`` must start fast: this module and the command modules import click
alone at the top; the database, templates and web server are imported by the
commands that use them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drip.errors import DripError, InputError, Problem
from drip.runtime import Runtime, demo_key_allowed, frozen_clock

if TYPE_CHECKING:
    import sqlalchemy as sa

    from drip.config import Site


class Context:
    """What every command gets: the site folder, loaded on first use, and this invocation's runtime."""

    def __init__(self, site_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.site_dir = site_dir
        self.runtime = Runtime(environ=os.environ if environ is None else environ)
        self._site: Site | None = None

    @property
    def site(self) -> Site:
        if self._site is None:
            from drip.config import load_site

            self._site = load_site(self.site_dir)
            # The outbox on a laptop may sign with the public demo key; `drip serve` decides for itself.
            self.runtime.demo_key = demo_key_allowed(self._site.config.transport.backend)
        return self._site

    def key(self) -> str:
        """The key of the suppression list's hashes, under this site's rule for the demo key."""
        self.site  # noqa: B018  (the site's transport says whether the demo key may stand in)
        return self.runtime.quiet_secret

    def at(self, value: str | None, option: str = "--now") -> dt.datetime:
        """``--now`` parsed; a moment given on the command line also stops this runtime's clock there."""
        moment = parse_now(value, option, clock=self.runtime.clock)
        if value is not None and option == "--now":
            self.runtime.clock = frozen_clock(moment)
        return moment

    @contextmanager
    def store(self) -> Iterator[sa.Engine]:
        """The site's store, schema checked; its connections are closed when the command is done."""
        import sqlalchemy as sa

        from drip.store.db import open_store, store_failure

        engine = open_store(self.site.database_url)
        try:
            yield engine
        except sa.exc.DBAPIError as exc:
            # SQLAlchemy's own message quotes the statement and its parameters: people's addresses.
            raise store_failure(engine.url, exc, "use") from None
        finally:
            engine.dispose()


def parse_now(
    value: str | None, option: str = "--now", *, clock: Callable[[], dt.datetime] | None = None
) -> dt.datetime:
    """``--now`` (or another ``option``) as an aware UTC datetime; ISO 8601, naive values are UTC."""
    if value is None:
        return clock() if clock is not None else dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date-time, e.g. 2026-12-01T08:00 or 2026-12-01T08:00+01:00",
            param_hint=f"'{option}'",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def parse_zone(value: str | None, option: str = "--timezone") -> str | None:
    """An IANA zone given on the command line, checked (None when not given)."""
    if value is None:
        return None
    from drip.config import check_timezone

    try:
        return check_timezone(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{option}'") from None


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


now_option = click.option(
    "--now",
    "now",
    metavar="DATETIME",
    help="Act as if it were this moment (ISO 8601; naive means UTC). Default: the real time.",
)


def shown(problem: Problem) -> str:
    """A problem as printed: its file relative to the working directory when it lies inside it."""
    if problem.file is not None and problem.file.is_absolute():
        with suppress(ValueError):  # outside the working directory: keep it absolute
            problem = dataclasses.replace(problem, file=problem.file.relative_to(Path.cwd()))
    return str(problem)


def report_input_error(runtime: Runtime, exc: InputError) -> None:
    count = len(exc.problems)
    runtime.err_console.print(f"[bold red]{count} error{'s' if count != 1 else ''}:[/]")
    for problem in exc.problems:
        runtime.err_console.print(f"  {shown(problem)}", markup=False)


class DripGroup(click.Group):
    """Turn drip's own errors into messages and exit statuses instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            report_input_error(_runtime(ctx), exc)
            sys.exit(1)
        except DripError as exc:
            from rich.markup import escape as escape_markup

            # The message may quote what a user or a server wrote: "[bounces]" is text, not a style.
            _runtime(ctx).err_console.print(f"[bold red]error:[/] {escape_markup(str(exc))}", markup=True)
            sys.exit(1)


def _runtime(ctx: click.Context) -> Runtime:
    """The invocation's runtime; a fresh one when the error came before the group made it."""
    return ctx.obj.runtime if isinstance(ctx.obj, Context) else Runtime()


@click.group(cls=DripGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--site",
    "site_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The site's root folder (the one holding drip.yaml).",
)
@click.version_option(package_name="drip")
@click.pass_context
def cli(ctx: click.Context, site_dir: Path) -> None:
    """drip: email courses compiled from your site's pillar pages."""
    ctx.obj = Context(site_dir)


def _register() -> None:
    """Import each command module so it attaches its commands to :data:`cli`."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def main() -> None:
    _register()
    cli(prog_name="drip")
