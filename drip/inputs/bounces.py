"""Delivery status notifications read from a mailbox and classified: hard, soft, or no bounce at all.

flufl.bounce (GNU Mailman's detectors) finds the failed recipients in RFC 3464
reports and in the formats MTAs invented before it (qmail, Yahoo, Exim's
X-Failed-Recipients, old Exchange…). On top of it one refinement: a report that
says "failed" with a 4.x.x status, or 5.2.2 (mailbox full), is soft: the mailbox
exists and may take mail again. A delay warning ("delayed": the MTA still tries)
is no bounce at all. With VERP the recipient written in the return
path is the one to blame, whatever address the report names (a forward, an alias).

Nothing here touches the store: a :class:`Bounce` is what the store records.
"""

from __future__ import annotations

import base64
import contextlib
import email
import hashlib
import imaplib
import mailbox
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses
from pathlib import Path

from flufl.bounce import all_failures

from drip.errors import DripError, InputError, Problem
from drip.inputs.verp import verp_recipient

SOFT_STATUSES = ("5.2.2",)  # mailbox full: reported as permanent, yet the mailbox exists
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


@dataclass(frozen=True)
class Bounce:
    """One mailbox message: its identity (read twice, recorded once) and the addresses that bounced."""

    digest: str
    where: str  # the mailbox and the message's key, for messages to the user
    hard: frozenset[str]  # permanent: suppressed at once
    soft: frozenset[str]  # given up on for now (4.x.x, mailbox full): counted, suppressed after N
    delayed: frozenset[str] = frozenset()  # a warning, the MTA still tries: not counted

    @property
    def is_bounce(self) -> bool:
        return bool(self.hard or self.soft)


def digest_of(msg: Message, data: bytes) -> str:
    """The report's Message-ID when it has one (a copy in another folder is the same report), else its bytes."""
    message_id = (msg.get("Message-ID") or "").strip()
    source = b"message-id:" + message_id.encode("utf-8", "replace") if message_id else data
    return hashlib.sha256(source).hexdigest()


def _addresses(found: frozenset[bytes]) -> set[str]:
    return {a.decode("ascii", "replace").strip().strip("<>").lower() for a in found if b"@" in a}


def soft_after_all(msg: Message) -> set[str]:
    """Recipients a DSN marks failed with a status that is not final: 4.x.x, or a full mailbox."""
    soft: set[str] = set()
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():
            if not isinstance(block, Message):
                continue
            status = (block.get("Status") or "").strip().split(" ")[0]
            action = (block.get("Action") or "").strip().lower()
            if action.startswith("fail") and (status.startswith("4.") or status in SOFT_STATUSES):
                recipient = block.get("Final-Recipient") or block.get("Original-Recipient") or ""
                soft.add(recipient.rpartition(";")[2].strip().strip("<>").lower())
    return soft


def verp_target(msg: Message, return_path: str) -> str | None:
    """The recipient named by the VERP address the report was sent to, if any."""
    for header in _RECIPIENT_HEADERS:
        for _, address in getaddresses(msg.get_all(header, [])):
            found = verp_recipient(address, return_path)
            if found is not None:
                return found
    return None


def classify(data: bytes, *, where: str, return_path: str | None = None) -> Bounce:
    """The bounce a message reports (none for an ordinary message or an auto-reply)."""
    msg = email.message_from_bytes(data)
    temporary, permanent = all_failures(msg)
    hard = _addresses(permanent)
    soft = soft_after_all(msg) & hard
    hard -= soft
    delayed = _addresses(temporary) - hard - soft
    if return_path and (hard or soft or delayed):
        target = verp_target(msg, return_path)
        if target is not None:
            named = {target}
            hard, soft, delayed = (
                (named, set(), set()) if hard else (set(), named, set()) if soft else (set(), set(), named)
            )
    return Bounce(digest_of(msg, data), where, frozenset(hard), frozenset(soft), frozenset(delayed))


def read_maildir(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every message of a Maildir (new and cur), in a stable order; the folder is left as it was."""
    if not (path / "cur").is_dir() or not (path / "new").is_dir():
        raise InputError(Problem("not a Maildir: expected the folders cur/ and new/ inside", file=path))
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.keys()):
        yield f"{path}:{key}", box.get_bytes(key)


def read_mbox(path: Path) -> Iterator[tuple[str, bytes]]:
    """Every message of an mbox file, numbered from 1."""
    if not path.is_file():
        raise InputError(Problem("no mbox file here", file=path))
    with path.open("rb") as f:
        if f.read(5) not in (b"From ", b""):
            raise InputError(
                Problem('not an mbox file: it must start with a "From " line', file=path, line=1)
            )
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for number, key in enumerate(box.keys(), start=1):
            yield f"{path}:{number}", box.get_bytes(key)
    finally:
        box.close()


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    user: str
    password: str
    folder: str = "INBOX"
    tls: bool = True


def _quoted(folder: str) -> str:
    """A folder name as IMAP sends it: modified UTF-7 (RFC 3501 5.1.3: "Rebonds été" is "Rebonds &AOk-t&AOk-"),
    quoted, since imaplib sends arguments as they are and "Bounces 2026" would be two."""
    out: list[str] = []
    wide: list[str] = []

    def shift() -> None:
        if wide:
            coded = base64.b64encode("".join(wide).encode("utf-16-be")).decode("ascii").rstrip("=")
            out.append("&" + coded.replace("/", ",") + "-")
            wide.clear()

    for ch in folder:
        if " " <= ch <= "~":
            shift()
            out.append("&-" if ch == "&" else ch)
        else:
            wide.append(ch)
    shift()
    return '"' + "".join(out).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _said(exc: imaplib.IMAP4.error) -> str:
    """What the server answered, as text (imaplib keeps it as bytes)."""
    said = exc.args[0] if exc.args else exc
    return said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)


def read_imap(account: ImapAccount) -> Iterator[tuple[str, bytes]]:
    """Every message of one IMAP folder, seen or not, opened read-only: nothing is marked, moved or deleted.

    TLS checks the server's certificate and name against the system's trusted authorities (imaplib alone
    would accept any certificate).
    """
    where = f"imap://{account.host}:{account.port}/{account.folder}"
    try:
        conn = (
            imaplib.IMAP4_SSL(
                account.host, account.port, ssl_context=ssl.create_default_context(), timeout=30
            )
            if account.tls
            else imaplib.IMAP4(account.host, account.port, timeout=30)
        )
    except (OSError, imaplib.IMAP4.error) as exc:
        raise DripError(f"cannot reach the IMAP server {account.host}:{account.port}: {exc}") from None
    try:
        conn.login(account.user, account.password)
        status, said = conn.select(_quoted(account.folder), readonly=True)
        if status != "OK":
            reason = bytes(said[0] or b"").decode("utf-8", "replace") if said else ""
            raise DripError(f"no IMAP folder {account.folder!r} on {account.host}: {reason}".rstrip(": "))
        _, found = conn.uid("SEARCH", "ALL")
        for uid in bytes(found[0] or b"").decode("ascii").split():
            _, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            data = next((p[1] for p in parts if isinstance(p, tuple)), None)
            if isinstance(data, bytes):
                yield f"{where};uid={uid}", data
    except imaplib.IMAP4.error as exc:
        raise DripError(f"IMAP server {account.host} refused: {_said(exc)}") from None
    except OSError as exc:
        raise DripError(f"lost the IMAP server {account.host}:{account.port}: {exc}") from None
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()
