"""A throw-away copy of the example site for the web tests, with its own store and outbox.

``open_web`` (import ``open_web_fixture`` into a test module) builds the app on the
``db_url`` store, so every test that takes it runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from drip.config import Site, load_site
from drip.runtime import Runtime
from drip.web.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER

if TYPE_CHECKING:
    from httpx2 import Response
    from starlette.testclient import TestClient

REPO_ROOT = Path(__file__).resolve().parent.parent
COURSE = "le-role-du-cto"
SECRET = "test-secret-key-0123456789abcdef"
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def copy_site(dest: Path, *, base_url: str | None = None, database: str | None = None) -> Site:
    """The repository's example site under ``dest`` (content, schedules, templates, drip.yaml)."""
    for folder in ("content", "schedules", "email_templates"):
        if (REPO_ROOT / folder).is_dir():
            shutil.copytree(REPO_ROOT / folder, dest / folder)
    config = yaml.safe_load((REPO_ROOT / "drip.yaml").read_text(encoding="utf-8"))
    if base_url is not None:
        config["site"]["base_url"] = base_url
    config["database"] = database or "sqlite:///drip.db"
    (dest / "drip.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return load_site(dest)


@dataclass
class Clock:
    """A clock the tests move by hand: the app reads it through its runtime."""

    now: dt.datetime = field(default=T0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


def outbox_messages(site: Site) -> list[tuple[Path, EmailMessage]]:
    """Every .eml in the site's outbox, parsed, in file-name order."""
    found = []
    if site.outbox_dir.is_dir():
        for path in sorted(site.outbox_dir.glob("*.eml")):
            msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            found.append((path, msg))
    return found


def messages_to(site: Site, address: str) -> list[EmailMessage]:
    return [m for _p, m in outbox_messages(site) if address.lower() in str(m["To"]).lower()]


def body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def body_html(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(msg: EmailMessage, kind: str) -> str:
    """The first link of ``kind`` (confirm, unsubscribe, view…) in the text part."""
    match = re.search(rf"https?://\S+/{kind}/[A-Za-z0-9_.\-]+", body_text(msg))
    assert match is not None, f"no /{kind}/ link in:\n{body_text(msg)}"
    return match.group(0)


@dataclass
class Harness:
    """The app on a copied site, with a hand-moved clock, driven in-process."""

    site: Site
    clock: Clock
    client: TestClient
    engine: sa.Engine

    def url_path(self, url: str) -> str:
        base = self.site.config.site.base_url
        assert url.startswith(base), url
        return url[len(base) :]

    def subscribe(self, email: str, *, name: str = "", course: str = COURSE, **extra: str) -> Response:
        response: Response = self.client.post(
            "/subscribe", data={"email": email, "name": name, "course": course, **extra}
        )
        return response

    def confirm_link(self, address: str) -> str:
        mails = messages_to(self.site, address)
        assert mails, f"no email to {address}"
        return self.url_path(link_in(mails[-1], "confirm"))

    def confirm(self, address: str) -> Response:
        """Open the last confirmation link to ``address`` and press its button, as a reader does."""
        link = self.confirm_link(address)
        page = self.client.get(link)
        assert page.status_code == 200 and 'method="post"' in page.text, page.text
        answer: Response = self.client.post(link)
        return answer

    @property
    def kind(self) -> str:
        """The store's dialect: sqlite or postgresql."""
        return self.engine.dialect.name

    def lose_database(self) -> None:
        """Make the store stop answering: the SQLite file is no longer a database, PostgreSQL is out of reach."""
        self.engine.dispose()
        if self.kind == "sqlite":
            db = self.site.root / "drip.db"
            db.unlink()
            db.mkdir()
            return
        app = self.client.app
        unreachable = sa.create_engine("postgresql+psycopg://drip@127.0.0.1:1/none")
        app.state.web = replace(app.state.web, engine=unreachable)  # type: ignore[attr-defined]

    def subscriber(self, address: str) -> dict[str, object] | None:
        from drip.store.schema import subscribers

        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == address.lower())).first()
        return dict(row._mapping) if row is not None else None


def make_harness(tmp_path: Path, *, database: str | None = None, **app_options: object) -> Harness:
    """The app on a copy of the example site; ``database`` names another store (e.g. a PostgreSQL schema)."""
    from starlette.testclient import TestClient

    from drip.store.db import connect, open_store, upgrade
    from drip.web.app import create_app

    site = copy_site(tmp_path, database=database)
    clock = Clock()
    if database is not None and not database.startswith("sqlite"):
        engine = connect(database)
        upgrade(engine)
    else:
        engine = open_store(site.database_url)
    runtime = Runtime.for_tests(SECRET, clock=clock)
    app = create_app(site, runtime=runtime, engine=engine, **app_options)  # type: ignore[arg-type]
    return Harness(site, clock, TestClient(app, raise_server_exceptions=True), engine)


OpenWeb = Callable[..., Harness]


@pytest.fixture(name="open_web")
def open_web_fixture(tmp_path: Path, db_url: str) -> Iterator[OpenWeb]:
    """``open_web(**app_options)``: the app on a copied site whose store is ``db_url`` (each kind in turn)."""
    opened: list[Harness] = []

    def open_web(**app_options: object) -> Harness:
        harness = make_harness(tmp_path, database=db_url, **app_options)
        opened.append(harness)
        return harness

    yield open_web
    for harness in opened:
        harness.engine.dispose()


class Signer:
    """SendGrid's side of the Event Webhook: an EC P-256 key signing timestamp + body."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        signature = self.key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: str(timestamp),
            "Content-Type": "application/json",
        }
