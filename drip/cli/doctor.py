"""`drip doctor`: is the sending domain set up for the bulk-sender rules? SPF, DKIM and DMARC, looked up."""

from __future__ import annotations

import sys

import click

from drip.cli import Context, cli

STYLE = {"ok": "green", "warning": "yellow", "error": "bold red"}


@cli.command()
@click.option(
    "--nameserver",
    metavar="IP[:PORT]",
    default=None,
    help="Ask this DNS server instead of the system's resolver.",
)
@click.pass_obj
def doctor(obj: Context, nameserver: str | None) -> None:
    """Check the sending domain's SPF, DKIM and DMARC records and say what to publish.

    Exit status 1 when a check is an error.
    """
    from rich.text import Text

    from drip.inputs.dns import resolver, txt_records
    from drip.preview.doctor import run_checks

    ask = resolver(nameserver)
    checks = run_checks(obj.site, lambda name: txt_records(ask, name), obj.runtime.environ)
    out = obj.runtime.console
    for check in checks:
        out.print(
            Text(f"{check.level:<8}", style=STYLE[check.level]) + Text(f"{check.name:<6} {check.message}"),
            soft_wrap=True,
        )
        if check.publish:
            out.print(
                Text("         publish: ") + Text(check.publish.replace("\n", "\n                  ")),
                soft_wrap=True,
            )
    if any(check.level == "error" for check in checks):
        sys.exit(1)
