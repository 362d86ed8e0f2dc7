"""A newsletter site with a store: readers on the list ``lettre``, issues created through the store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner, Result
from newsletter_support import make_site

from drip.cli import _register, cli
from drip.config import Site
from drip.store.db import open_store
from drip.store.issues import create_issue
from drip.store.lists import join_list
from drip.store.schema import subscribers

T0 = dt.datetime(2026, 11, 20, 8, tzinfo=dt.UTC)
NOW = "2026-12-04T10:00+01:00"

_register()  # every command module attaches its commands, as `drip` does


class NewsSite:
    """The newsletter site, its SQLite store, and the CLI run against both."""

    def __init__(self, root: Path, *, lists: str | None = None) -> None:
        self.site: Site = make_site(root) if lists is None else make_site(root, lists=lists)
        self.root = root
        self.db_url = f"sqlite:///{root / 'drip.db'}"
        self.engine = open_store(self.db_url)

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["--site", str(self.root), *args],
            env={"DRIP_DATABASE_URL": self.db_url, "DRIP_SECRET_KEY": None},
            catch_exceptions=False,
        )

    def reader(self, email: str, *, timezone: str | None = None, name: str = "") -> int:
        with self.engine.begin() as conn:
            sid = conn.execute(
                subscribers.insert()
                .values(
                    email=email, name=name, timezone=timezone, attributes={}, created_at=T0, updated_at=T0
                )
                .returning(subscribers.c.id)
            ).scalar_one()
            join_list(conn, int(sid), "lettre", now=T0)
        return int(sid)

    def issue(self, key: str, send_at: dt.datetime, urls: list[str], subject: str = "La lettre") -> None:
        issue = create_issue(
            self.engine,
            list="lettre",
            key=key,
            kind="digest",
            send_at=send_at,
            post_urls=urls,
            now=send_at,
            subject=subject,
        )
        assert issue is not None

    def table(self, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(table)))
