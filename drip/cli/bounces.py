"""`drip bounces`: read delivery status notifications from a mailbox and stop mail to bounced addresses.

For SMTP senders, whose server mails the bounces back to the return path. The
mailbox is only read (nothing marked, moved or deleted), and reading it again
changes nothing: each report is recorded once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drip.cli import Context, cli, now_option, plural
from drip.errors import InputError, Problem

if TYPE_CHECKING:
    import datetime as dt

    import sqlalchemy as sa

IMAP_USER_ENV = "DRIP_IMAP_USERNAME"
IMAP_PASSWORD_ENV = "DRIP_IMAP_PASSWORD"


@dataclass
class Tally:
    """What one run found, for the summary line."""

    read: int = 0
    not_bounces: int = 0
    delayed: int = 0
    duplicates: int = 0
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # address, why
    counted: list[tuple[str, int]] = field(default_factory=list)


def imap_messages(
    host: str, port: int | None, folder: str, tls: bool, env: Mapping[str, str]
) -> Iterator[tuple[str, bytes]]:
    """The IMAP folder's messages, with the account from the environment (never the command line)."""
    from drip.inputs.bounces import ImapAccount, read_imap

    user, password = env.get(IMAP_USER_ENV, ""), env.get(IMAP_PASSWORD_ENV, "")
    missing = [name for name, value in ((IMAP_USER_ENV, user), (IMAP_PASSWORD_ENV, password)) if not value]
    if missing:
        raise InputError(
            Problem(f"--imap needs the environment variables {' and '.join(missing)} (the account to read)")
        )
    account = ImapAccount(host, port or (993 if tls else 143), user, password, folder, tls)
    return read_imap(account)


def _messages(
    maildir: Path | None,
    mbox: Path | None,
    imap: str | None,
    imap_options: tuple[int | None, str, bool],
    env: Mapping[str, str],
) -> Iterator[tuple[str, bytes]]:
    from drip.inputs.bounces import read_maildir, read_mbox

    chosen = [name for name, value in (("--maildir", maildir), ("--mbox", mbox), ("--imap", imap)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --maildir PATH, --mbox PATH or --imap HOST")
    if maildir is not None:
        return read_maildir(maildir)
    if mbox is not None:
        return read_mbox(mbox)
    assert imap is not None
    return imap_messages(imap, *imap_options, env)


@cli.command()
@click.option("--maildir", type=click.Path(path_type=Path), default=None, help="A Maildir folder to read.")
@click.option("--mbox", type=click.Path(path_type=Path), default=None, help="An mbox file to read.")
@click.option(
    "--imap",
    metavar="HOST",
    default=None,
    help=f"An IMAP server to read (TLS); the account from {IMAP_USER_ENV} and {IMAP_PASSWORD_ENV}.",
)
@click.option("--imap-port", type=int, default=None, help="Default: 993 (TLS), 143 with --imap-plain.")
@click.option("--imap-folder", default="INBOX", show_default=True)
@click.option("--imap-plain", is_flag=True, help="No TLS (a server on this machine only).")
@now_option
@click.pass_obj
def bounces(
    obj: Context,
    maildir: Path | None,
    mbox: Path | None,
    imap: str | None,
    imap_port: int | None,
    imap_folder: str,
    imap_plain: bool,
    now: str | None,
) -> None:
    """Suppress hard-bounced addresses; count soft bounces and suppress after bounces.soft_limit.

    Reads one mailbox where the SMTP server's bounces arrive (bounces.return_path
    in drip.yaml). Reports read before are skipped, so it can run from cron.
    """
    moment = obj.at(now)
    messages = _messages(maildir, mbox, imap, (imap_port, imap_folder, not imap_plain), obj.runtime.environ)
    settings = obj.site.config.bounces
    with obj.store() as engine:
        tally = apply_all(engine, obj.key(), messages, settings.return_path, settings.soft_limit, moment)
    show(obj, tally, settings.soft_limit)


def apply_all(
    engine: sa.Engine,
    secret: str,
    messages: Iterator[tuple[str, bytes]],
    return_path: str | None,
    soft_limit: int,
    now: dt.datetime,
) -> Tally:
    """Classify and record each message, one transaction each."""
    from drip.inputs.bounces import classify
    from drip.store.bounces import record_bounce

    tally = Tally()
    for where, data in messages:
        tally.read += 1
        found = classify(data, where=where, return_path=return_path)
        if not found.is_bounce:
            tally.not_bounces += 0 if found.delayed else 1
            tally.delayed += 1 if found.delayed else 0
            continue
        outcome = record_bounce(
            engine, secret, found.digest, hard=found.hard, soft=found.soft, soft_limit=soft_limit, now=now
        )
        if outcome.duplicate:
            tally.duplicates += 1
        tally.suppressed += [
            (a, "hard bounce" if a in found.hard else f"{soft_limit} soft bounces")
            for a in outcome.suppressed
        ]
        tally.counted += list(outcome.counted)
    return tally


def show(obj: Context, tally: Tally, soft_limit: int) -> None:
    out = obj.runtime.console
    for address, why in tally.suppressed:
        out.print(f"suppressed {address} ({why})", markup=False, highlight=False)
    for address, count in tally.counted:
        out.print(f"soft bounce {count}/{soft_limit} for {address}", markup=False, highlight=False)
    out.print(
        f"{plural(tally.read, 'message')} read: {len(tally.suppressed)} suppressed, "
        f"{plural(len(tally.counted), 'soft bounce')} counted, {tally.duplicates} already read, "
        f"{tally.delayed} delay warnings, {tally.not_bounces} not bounces",
        markup=False,
        highlight=False,
    )
