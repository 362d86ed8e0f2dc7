"""`drip bounces --imap` against a real Dovecot on 127.0.0.1, plaintext (--imap-plain) and TLS.

The server runs in the foreground with its own configuration, state and a passwd-file
holding one user; the repository's DSN samples are appended to the user's INBOX over
IMAP. Skipped where Debian's ``dovecot-imapd`` is not installed.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from outgoing import closed_port
from smtp_server import certificate_files
from test_bounces import DSN, Site, site  # noqa: F401  (the site fixture)

from drip.store.bounces import soft_bounce_count
from drip.store.schema import bounce_reports
from drip.tokens import DEMO_SECRET

USER, PASSWORD = "bounces", "s3cret-imap"
SAMPLES = [
    "postfix-user-unknown.eml",  # hard: nobody@example.net
    "sendmail-gave-up-4xx.eml",  # soft: busy@example.edu
    "postfix-verp-forwarded.eml",  # hard, by VERP: alice@example.net
    "postfix-delayed.eml",  # a delay warning
    "out-of-office.eml",  # no bounce
]


@dataclass(frozen=True)
class Dovecot:
    plain_port: int
    tls_port: int
    cert: Path

    def imap(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.plain_port, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def flags(self, folder: str = "INBOX") -> list[bytes]:
        conn = self.imap()
        try:
            conn.select(f'"{folder}"', readonly=True)
            _, found = conn.uid("FETCH", "1:*", "(FLAGS)")
            return [line for line in found if isinstance(line, bytes)]
        finally:
            conn.logout()


def mail_owner() -> pwd.struct_passwd:
    """Dovecot never gives mail access to root: as root, the mail belongs to the package's dovecot user."""
    return pwd.getpwnam("dovecot") if os.getuid() == 0 else pwd.getpwuid(os.getuid())


def config(root: Path, plain_port: int, tls_port: int, cert: Path, key: Path) -> str:
    # Nor does it run its login processes as root: as root they run as the package's dovenull (the
    # defaults); as anyone else, everything runs as the current user.
    me, mail_user = pwd.getpwuid(os.getuid()), mail_owner()
    users = (
        "" if me.pw_uid == 0 else f"default_internal_user = {me.pw_name}\ndefault_login_user = {me.pw_name}\n"
    )
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login
{users}mail_uid = {mail_user.pw_uid}
mail_gid = {mail_user.pw_gid}
first_valid_uid = {mail_user.pw_uid}
first_valid_gid = {mail_user.pw_gid}
mail_location = maildir:{root}/Maildir
passdb {{
  driver = passwd-file
  args = {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {plain_port}
  }}
  inet_listener imaps {{
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
  # mode 0: no penalty socket, so a wrong password does not slow every later login by seconds
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def wait_for(port: int, server: subprocess.Popen[bytes], root: Path) -> None:
    """Until the server greets on the port (a few hundredths of a second)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.poll() is not None:
            logs = [p.read_text() for p in (root / "stderr.log", root / "dovecot.log") if p.exists()]
            pytest.fail(f"dovecot stopped ({server.returncode}): {''.join(logs)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.02)
    pytest.fail("dovecot did not answer in 10 s")


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[Dovecot]:
    """One server for the module (stopping one takes Dovecot a second); each test empties it first."""
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if binary is None:
        pytest.skip("Dovecot is not installed (Debian package dovecot-imapd)")
    # Not under tmp_path: its parents are private to the user running the tests, and Dovecot's login
    # and mail processes, as root, run as other users that must reach their sockets and the Maildir.
    root = Path(tempfile.mkdtemp(prefix="drip-dovecot-"))
    root.chmod(0o755)
    try:
        (root / "Maildir").mkdir()
        os.chown(root / "Maildir", mail_owner().pw_uid, mail_owner().pw_gid)
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::{root}::\n", encoding="utf-8")
        cert, key = certificate_files(root)
        plain_port, tls_port = closed_port(), closed_port()
        (root / "dovecot.conf").write_text(config(root, plain_port, tls_port, cert, key), encoding="utf-8")
        with (root / "stderr.log").open("wb") as stderr:  # configuration errors, before log_path applies
            server = subprocess.Popen([binary, "-F", "-c", str(root / "dovecot.conf")], stderr=stderr)
        try:
            wait_for(plain_port, server, root)
            yield Dovecot(plain_port, tls_port, cert)
        finally:
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """The server, its mailbox empty: INBOX alone, no message in it."""
    conn = dovecot_server.imap()
    try:
        _, folders = conn.list()
        for line in folders:
            if not isinstance(line, bytes):
                continue
            name = line.rpartition(b' "." ')[2].decode("utf-8")
            if name.strip('"') != "INBOX":
                conn.delete(name)
        conn.select("INBOX")
        conn.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Deleted)")
        conn.expunge()
    finally:
        conn.logout()
    return dovecot_server


def append(server: Dovecot, names: list[str], folder: str = "INBOX") -> None:
    conn = server.imap()
    try:
        if folder != "INBOX":
            conn.create(f'"{folder}"')
        for name in names:
            status, said = conn.append(f'"{folder}"', None, None, (DSN / name).read_bytes())
            assert status == "OK", said
    finally:
        conn.logout()


def plain(server: Dovecot, *extra: str) -> list[str]:
    return ["bounces", "--imap", "127.0.0.1", "--imap-port", str(server.plain_port), "--imap-plain", *extra]


ACCOUNT: dict[str, str | None] = {"DRIP_IMAP_USERNAME": USER, "DRIP_IMAP_PASSWORD": PASSWORD}


def reports(of: Site) -> int:
    count: int = of.query(
        lambda c: c.execute(sa.select(sa.func.count()).select_from(bounce_reports)).scalar_one()
    )
    return count


def test_imap_bounces_are_recorded_once_and_the_mailbox_is_left_as_it_was(
    site: Site,  # noqa: F811
    dovecot: Dovecot,
) -> None:
    append(dovecot, SAMPLES)
    conn = dovecot.imap()  # a person already read one report: it counts all the same
    conn.select("INBOX")
    conn.uid("STORE", "1", "+FLAGS", r"(\Seen)")
    conn.logout()
    before = dovecot.flags()

    first = site.run(*plain(dovecot, "--now", "2026-03-08T10:00"), env=ACCOUNT)
    assert first.exit_code == 0, first.output
    assert "suppressed nobody@example.net (hard bounce)" in first.output
    assert "suppressed alice@example.net (hard bounce)" in first.output
    assert "soft bounce 1/2 for busy@example.edu" in first.output
    assert "5 messages read: 2 suppressed, 1 soft bounce counted, 0 already read" in first.output
    assert "1 delay warnings, 1 not bounces" in first.output
    assert site.status("nobody@example.net") == "bounced" and site.suppressed("nobody@example.net")
    assert site.status("alice@example.net") == "bounced"
    assert site.status("busy@example.edu") == "active" and not site.suppressed("busy@example.edu")
    assert site.status("zoe@example.com") == "active"
    recorded = reports(site)

    again = site.run(*plain(dovecot), env=ACCOUNT)
    assert again.exit_code == 0, again.output
    assert "5 messages read: 0 suppressed, 0 soft bounces counted, 3 already read" in again.output
    assert reports(site) == recorded
    assert site.query(lambda c: soft_bounce_count(c, DEMO_SECRET, "busy@example.edu")) == 1
    assert dovecot.flags() == before  # read-only: nothing marked seen, moved or deleted


def test_a_folder_whose_name_has_a_space(site: Site, dovecot: Dovecot) -> None:  # noqa: F811
    append(dovecot, ["gmail-no-such-user.eml"], folder="Bounces 2026")
    result = site.run(*plain(dovecot, "--imap-folder", "Bounces 2026"), env=ACCOUNT)
    assert result.exit_code == 0, result.output
    assert "suppressed nosuchuser9876@gmail.com (hard bounce)" in result.output

    missing = site.run(*plain(dovecot, "--imap-folder", "[nowhere]"), env=ACCOUNT)
    assert missing.exit_code == 1
    assert "no IMAP folder '[nowhere]' on 127.0.0.1" in missing.output and "Traceback" not in missing.output


def test_a_folder_whose_name_is_not_ascii(site: Site, dovecot: Dovecot) -> None:  # noqa: F811
    append(dovecot, ["gmail-no-such-user.eml"], folder="Rebonds &AOk-t&AOk-")  # "Rebonds été", RFC 3501 5.1.3
    result = site.run(*plain(dovecot, "--imap-folder", "Rebonds été"), env=ACCOUNT)
    assert result.exit_code == 0, result.output
    assert "suppressed nosuchuser9876@gmail.com (hard bounce)" in result.output


def test_a_wrong_password_is_a_clear_error_and_changes_nothing(site: Site, dovecot: Dovecot) -> None:  # noqa: F811
    append(dovecot, SAMPLES)
    result = site.run(*plain(dovecot), env={**ACCOUNT, "DRIP_IMAP_PASSWORD": "wrong"})
    assert result.exit_code == 1
    assert "IMAP server 127.0.0.1 refused: [AUTHENTICATIONFAILED] Authentication failed." in result.output
    assert "Traceback" not in result.output and "b'" not in result.output
    assert reports(site) == 0 and not site.suppressed("nobody@example.net")


def test_tls_checks_the_certificate(site: Site, dovecot: Dovecot) -> None:  # noqa: F811
    append(dovecot, ["postfix-user-unknown.eml"])
    tls = ["bounces", "--imap", "127.0.0.1", "--imap-port", str(dovecot.tls_port)]
    untrusted = site.run(*tls, env=ACCOUNT)
    assert untrusted.exit_code == 1
    assert "certificate verify failed" in untrusted.output and "Traceback" not in untrusted.output
    assert reports(site) == 0

    trusted = site.run(*tls, env={**ACCOUNT, "SSL_CERT_FILE": str(dovecot.cert)})
    assert trusted.exit_code == 0, trusted.output
    assert "suppressed nobody@example.net (hard bounce)" in trusted.output
