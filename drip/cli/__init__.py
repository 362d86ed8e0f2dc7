"""The `drip` command line. Each command group lives in its own module.

Input mistakes are :class:`~drip.errors.InputError`: printed as located problems,
exit status 1, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from rich.console import Console

from drip.config import Site, load_site
from drip.errors import DripError, InputError, Problem
from drip.store.db import open_store

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class Context:
    """What every command gets: the site folder, loaded on first use."""

    def __init__(self, site_dir: Path) -> None:
        self.site_dir = site_dir
        self._site: Site | None = None

    @property
    def site(self) -> Site:
        if self._site is None:
            self._site = load_site(self.site_dir)
        return self._site

    @contextmanager
    def store(self) -> Iterator[sa.Engine]:
        """The site's store, schema checked; its connections are closed when the command is done."""
        engine = open_store(self.site.database_url)
        try:
            yield engine
        finally:
            engine.dispose()


def parse_now(value: str | None, option: str = "--now") -> dt.datetime:
    """``--now`` (or another ``option``) as an aware UTC datetime; ISO 8601, naive values are UTC."""
    if value is None:
        return dt.datetime.now(dt.UTC)
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


def report_input_error(exc: InputError) -> None:
    count = len(exc.problems)
    err_console.print(f"[bold red]{count} error{'s' if count != 1 else ''}:[/]")
    for problem in exc.problems:
        err_console.print(f"  {shown(problem)}", markup=False)


class DripGroup(click.Group):
    """Turn drip's own errors into messages and exit statuses instead of tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InputError as exc:
            report_input_error(exc)
            sys.exit(1)
        except DripError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True)
            sys.exit(1)


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
