"""Bounces: real-world DSN samples classified by flufl.bounce, and `drip bounces` on real mailboxes.

The samples (tests/fixtures/dsn/) cover Postfix, Exim, Sendmail, Microsoft 365, Gmail,
qmail and Yahoo. The command runs on a Maildir and an mbox written with the stdlib's
``mailbox``, against SQLite and PostgreSQL.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from dbfixtures import COURSE, course_site

import drip.cli.bounces  # registers the command on the group
import drip.cli.subscribers  # noqa: F401
from drip.cli import cli
from drip.inputs.bounces import classify
from drip.inputs.verp import verp_address, verp_recipient
from drip.store.bounces import soft_bounce_count
from drip.store.db import connect
from drip.store.schema import bounce_reports, subscribers
from drip.store.suppressions import is_suppressed
from drip.tokens import DEMO_SECRET

DSN = Path(__file__).parent / "fixtures" / "dsn"
RETURN_PATH = "bounces@cto.example.org"

# sample -> (hard, soft, delayed)
EXPECTED: dict[str, tuple[set[str], set[str], set[str]]] = {
    "postfix-user-unknown.eml": ({"nobody@example.net"}, set(), set()),
    "postfix-delayed.eml": (set(), set(), {"slow@example.com"}),
    "postfix-verp-forwarded.eml": ({"alice@example.net"}, set(), set()),
    "exim-x-failed-recipients.eml": ({"gone@example.org"}, set(), set()),
    "exim-dsn-mailbox-full.eml": (set(), {"full@example.org"}, set()),
    "sendmail-user-unknown.eml": ({"student@example.edu"}, set(), set()),
    "sendmail-gave-up-4xx.eml": (set(), {"busy@example.edu"}, set()),
    "office365-ndr.eml": ({"j.doe@contoso.com"}, set(), set()),
    "gmail-no-such-user.eml": ({"nosuchuser9876@gmail.com"}, set(), set()),
    "gmail-over-quota.eml": (set(), {"fullbox@gmail.com"}, set()),
    "qmail-no-mailbox.eml": ({"olduser@example.info"}, set(), set()),
    "yahoo-unable-to-deliver.eml": ({"closed.account@yahoo.com"}, set(), set()),
    "out-of-office.eml": (set(), set(), set()),
}


def test_every_sample_has_an_expectation() -> None:
    assert {p.name for p in DSN.glob("*.eml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_is_classified(name: str) -> None:
    found = classify((DSN / name).read_bytes(), where=name, return_path=RETURN_PATH)
    assert (set(found.hard), set(found.soft), set(found.delayed)) == EXPECTED[name]


def test_without_verp_the_report_names_the_forwarded_address() -> None:
    found = classify((DSN / "postfix-verp-forwarded.eml").read_bytes(), where="x")
    assert found.hard == {"alice.old@isp.example"}


def test_verp_round_trip() -> None:
    address = verp_address(RETURN_PATH, "zoe.martin+news@example.net")
    assert address == "bounces+zoe.martin+news=example.net@cto.example.org"
    assert verp_recipient(address, RETURN_PATH) == "zoe.martin+news@example.net"
    assert verp_recipient("bounces@cto.example.org", RETURN_PATH) is None
    assert verp_recipient("other+a=b.c@cto.example.org", RETURN_PATH) is None


def test_a_report_copied_into_another_folder_is_the_same_report() -> None:
    data = (DSN / "gmail-no-such-user.eml").read_bytes()
    assert classify(data, where="a").digest == classify(b"X-Copied: yes\r\n" + data, where="b").digest


T = TypeVar("T")


class Site:
    def __init__(self, root: Path, db_url: str) -> None:
        self.root, self.db_url = root, db_url

    def run(self, *args: str, env: dict[str, str | None] | None = None) -> Result:
        return CliRunner().invoke(
            cli,
            ["--site", str(self.root), *args],
            env={"DRIP_DATABASE_URL": self.db_url, "DRIP_SECRET_KEY": None, **(env or {})},
            catch_exceptions=False,
        )

    def query(self, work: Callable[[sa.Connection], T]) -> T:
        engine = connect(self.db_url)
        try:
            with engine.connect() as conn:
                return work(conn)
        finally:
            engine.dispose()

    def status(self, email: str) -> str:
        return str(
            self.query(
                lambda c: c.execute(
                    sa.select(subscribers.c.status).where(subscribers.c.email == email)
                ).scalar_one()
            )
        )

    def suppressed(self, email: str) -> bool:
        return self.query(lambda c: is_suppressed(c, DEMO_SECRET, email))


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Site:
    s = Site(course_site(tmp_path), db_url)
    with (s.root / "drip.yaml").open("a", encoding="utf-8") as f:
        f.write(f"bounces:\n  soft_limit: 2\n  return_path: {RETURN_PATH}\n  verp: true\n")
    assert s.run("db", "upgrade").exit_code == 0
    for email in ("nobody@example.net", "busy@example.edu", "alice@example.net", "zoe@example.com"):
        assert s.run("subscribe", email, "--course", COURSE).exit_code == 0, email
    return s


def maildir(root: Path, names: list[str]) -> Path:
    box = mailbox.Maildir(root / "Maildir", create=True)
    for name in names:
        box.add((DSN / name).read_bytes())
    return root / "Maildir"


def test_drip_bounces_suppresses_hard_bounces_and_is_idempotent(site: Site, tmp_path: Path) -> None:
    path = maildir(tmp_path, sorted(EXPECTED))
    first = site.run("bounces", "--maildir", str(path), "--now", "2026-03-08T10:00")
    assert first.exit_code == 0, first.output
    assert "suppressed nobody@example.net (hard bounce)" in first.output
    assert "suppressed alice@example.net (hard bounce)" in first.output
    assert "13 messages read" in first.output and "1 delay warnings, 1 not bounces" in first.output
    assert site.status("nobody@example.net") == "bounced" and site.suppressed("nobody@example.net")
    assert site.suppressed("closed.account@yahoo.com")  # unknown to the store, suppressed all the same
    assert site.status("busy@example.edu") == "active"  # one soft bounce of two
    assert site.status("zoe@example.com") == "active"  # her out-of-office reply is no bounce
    reports = site.query(lambda c: c.execute(sa.select(sa.func.count()).select_from(bounce_reports)).scalar())
    again = site.run("bounces", "--maildir", str(path))
    assert "0 suppressed, 0 soft bounces counted, 11 already read" in again.output
    assert (
        site.query(lambda c: c.execute(sa.select(sa.func.count()).select_from(bounce_reports)).scalar())
        == reports
    )
    assert site.query(lambda c: soft_bounce_count(c, DEMO_SECRET, "busy@example.edu")) == 1


def test_soft_bounces_suppress_at_the_limit(site: Site, tmp_path: Path) -> None:
    sample = (DSN / "sendmail-gave-up-4xx.eml").read_bytes()
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    box.add(sample)
    box.add(sample.replace(b"098765@mail", b"098766@mail"))  # a second report, later
    box.close()
    result = site.run("bounces", "--mbox", str(tmp_path / "bounces.mbox"))
    assert result.exit_code == 0, result.output
    assert "suppressed busy@example.edu (2 soft bounces)" in result.output
    assert site.status("busy@example.edu") == "bounced" and site.suppressed("busy@example.edu")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--maildir", "nowhere"], "not a Maildir"),
        (["--mbox", "nowhere.mbox"], "no mbox file here"),
        (["--mbox", "drip.yaml"], "not an mbox file"),
        (["--imap", "127.0.0.1"], "DRIP_IMAP_USERNAME and DRIP_IMAP_PASSWORD"),
        ([], "exactly one of"),
        (["--maildir", "a", "--mbox", "b"], "exactly one of"),
    ],
)
def test_mailbox_mistakes_are_located_errors(site: Site, args: list[str], message: str) -> None:
    args = [str(site.root / a) if a.startswith(("nowhere", "drip.yaml")) else a for a in args]
    result = site.run("bounces", *args, env={"DRIP_IMAP_USERNAME": None, "DRIP_IMAP_PASSWORD": None})
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_imap_server_is_an_error_not_a_traceback(site: Site) -> None:
    from outgoing import closed_port

    result = site.run(
        "bounces",
        "--imap",
        "127.0.0.1",
        "--imap-port",
        str(closed_port()),
        "--imap-plain",
        env={"DRIP_IMAP_USERNAME": "u", "DRIP_IMAP_PASSWORD": "p"},
    )
    assert result.exit_code == 1
    assert "cannot reach the IMAP server" in result.output


def test_a_bad_bounces_section_is_located(site: Site) -> None:
    text = (site.root / "drip.yaml").read_text(encoding="utf-8").replace(RETURN_PATH, "not-an-address")
    (site.root / "drip.yaml").write_text(text, encoding="utf-8")
    result = site.run("bounces", "--maildir", "x")
    assert result.exit_code == 1 and "drip.yaml:" in result.output and "not an email address" in result.output


def test_verp_needs_a_return_path(tmp_path: Path) -> None:
    from drip.config import load_site
    from drip.errors import ConfigError

    root = course_site(tmp_path)
    with (root / "drip.yaml").open("a", encoding="utf-8") as f:
        f.write("bounces:\n  verp: true\n")
    with pytest.raises(ConfigError, match="verp needs a return_path"):
        load_site(root)
