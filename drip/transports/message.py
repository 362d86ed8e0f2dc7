"""RFC 5322 messages: one delivery becomes the bytes an SMTP server or an .eml file receives.

Design decision 7: every message is multipart/alternative (text then HTML), has a
Message-ID on the sender's domain, a Date, List-Unsubscribe (https + mailto) with
RFC 8058 one-click, and no field can add a header. The stdlib pieces do the hard
parts (address quoting, RFC 2047 words, quoted-printable); the multipart is
assembled here with CRLF line endings because building an ``EmailMessage`` and
calling ``as_bytes()`` is the slowest step of a send (about 740 messages/s).
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.charset import Charset
from email.header import Header
from email.utils import format_datetime, formataddr
from functools import lru_cache

from drip.errors import PermanentTransportError, TransportError
from drip.inputs.address import sending_form
from drip.render.slots import Compiled
from drip.transports.base import OutgoingMessage, SendResult, send_time, unsubscribe_mailto

CRLF = "\r\n"
MAX_LINE = 78  # RFC 5322 2.1.1: SHOULD; 998 is the hard limit
MAX_NAME = 100  # a display name longer than this is cut, so its one encoded word stays far below 998
MAX_URL = 900

# Control characters, including the Unicode line and paragraph separators that
# ``str.splitlines`` (and so some parsers) treat as line breaks.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")
_ADDRESS = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9.\-\[\]:]+")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?")
_URL = re.compile(r"[!#-;=?-\[\]_a-z~]+")  # printable ASCII without space, quotes, < > \ ^ ` { | }
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_LIST_LABEL = re.compile(r"[^a-z0-9\-]+")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")
_UTF8 = Charset("utf-8")

# Headers this module writes itself: extra headers may not replace or repeat them.
_RESERVED = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-ID",
        "Feedback-ID",
        "DKIM-Signature",
        "Sender",
        "Return-Path",
        "X-Drip-Course",
        "X-Drip-Step",
        "X-Drip-Delivery",
    )
)


@dataclass(frozen=True)
class Built:
    """A serialised message and its Message-ID (with angle brackets), which becomes the provider id."""

    message_id: str
    data: bytes  # CRLF line endings, ready for smtplib.sendmail or an .eml file


def clean(value: str) -> str:
    """A single-line value: control characters (CR, LF, NUL, U+2028…) become one space.

    Applied to every name, subject and header value before encoding, so that
    nothing a subscriber types can end a header line and start another.
    """
    if _PRINTABLE_ASCII.fullmatch(value) is None:
        value = _CONTROL.sub(" ", value)
    if "  " in value:
        value = _SPACES.sub(" ", value)
    return value.strip()


def check_address(address: str, *, role: str) -> str:
    """The address as sent (its domain in IDNA), or a permanent error: it must be ASCII ``local@domain``."""
    address = sending_form(address)
    if _ADDRESS.fullmatch(address) is None:
        raise PermanentTransportError(f"invalid {role} address {address!r}")
    return address


def check_url(url: str, *, role: str) -> str:
    """An unsubscribe URL fit for ``<…>`` in a header: printable ASCII, no space or angle bracket."""
    if len(url) > MAX_URL or _URL.fullmatch(url) is None:
        raise PermanentTransportError(f"invalid {role} URL {url!r}")
    return url


@lru_cache(maxsize=4096)
def encode_header(name: str, value: str) -> str:
    """``Name: value`` folded to 78 columns, RFC 2047-encoded when not plain printable ASCII.

    ASCII text that looks like an encoded word (``=?``) is encoded too, so a
    reader never decodes something the sender did not mean.
    """
    value = clean(value)
    if _PRINTABLE_ASCII.fullmatch(value) and "=?" not in value:
        if len(name) + 2 + len(value) <= MAX_LINE:
            return f"{name}: {value}"
        return f"{name}: " + Header(value, header_name=name).encode(linesep=CRLF)
    return f"{name}: " + Header(value, "utf-8", header_name=name).encode(linesep=CRLF)


@lru_cache(maxsize=4096)
def encode_address(name: str, display: str, address: str) -> str:
    """``Name: Display <address>``; the display name quoted, or RFC 2047-encoded as one word.

    One word, not several folded ones: the stdlib's own parser (and others) keep
    the folding space between words of a display name, splitting "Éloïse" apart.
    """
    display = clean(display)[:MAX_NAME].strip()
    if not display:
        return f"{name}: {address}"
    if _PRINTABLE_ASCII.fullmatch(display) and "=?" not in display:
        return f"{name}: " + formataddr((display, address))
    return f"{name}: {_UTF8.header_encode(display)} <{address}>"


def _label(value: str, default: str) -> str:
    """A name reduced to a DNS-label-like token: lowercase letters, digits and hyphens."""
    return _LIST_LABEL.sub("-", value.lower()).strip("-")[:60] or default


def list_id(course: str, domain: str, title: str = "") -> str:
    """RFC 2919 List-Id: ``"Title" <course-label.domain>``, the course (or newsletter list) reduced
    to a safe label and its title, made one line, as a quoted string or one RFC 2047 word."""
    label = f"<{_label(course, 'course')}.{domain}>"
    title = clean(title)[:MAX_NAME].strip()
    if not title:
        return label
    if _PRINTABLE_ASCII.fullmatch(title) and "=?" not in title:
        phrase = '"' + title.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = _UTF8.header_encode(title)
    if len("List-ID: ") + len(phrase) + 1 + len(label) > MAX_LINE:
        return f"{phrase}{CRLF} {label}"
    return f"{phrase} {label}"


def feedback_id(course: str, step_key: str, domain: str) -> str:
    """Gmail's Feedback-ID, ``campaign:list:drip:sender``: the step, its course, and the sending
    domain, each reduced to a label so that no field holds the colon that separates them."""
    return f"{_short(step_key, 'step')}:{_short(course, 'course')}:drip:{domain.lower()}"


def list_headers(msg: OutgoingMessage, domain: str) -> list[str]:
    """List-ID (the course, or the newsletter list, is the list) and Feedback-ID (the step within it), for the receivers' reports."""
    return [
        "List-ID: " + list_id(msg.list_name or msg.course, domain, msg.list_title),
        "Feedback-ID: " + feedback_id(msg.course, msg.step_key, domain),
    ]


def _short(value: str, default: str, width: int = 20) -> str:
    """A label of at most ``width`` characters, a long one cut and told apart by a digest of it:
    the whole Feedback-ID fits one folded line, for it has no space to fold at."""
    label = _label(value, default)
    if len(label) <= width:
        return label
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:4]
    return f"{label[: width - 5].rstrip('-')}-{digest}"


def message_id(delivery_id: int, domain: str) -> str:
    """``<delivery.random@domain>``: traceable to the delivery, unique across retries."""
    return f"<{delivery_id}.{secrets.token_hex(8)}@{domain}>"


def qp_body(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line endings, whatever line endings the text had."""
    if not text.endswith(("\n", "\r")):
        text += "\n"
    return _qp(text)


def _qp(text: str) -> bytes:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    # b2a_qp keeps the input's LF (soft breaks included); no bare CR is left to confuse this.
    return encoded.replace(b"\n", b"\r\n")


def _qp_piece(text: str) -> bytes:
    """A piece of a body, encoded to end with a soft line break so the next piece starts a line.

    Quoted-printable counts line lengths, so pieces encoded apart join safely only at
    line ends; a soft break (``=`` CRLF) is one that decodes to nothing.
    """
    return _qp(text) + b"=\r\n" if text else b""


@lru_cache(maxsize=256)
def _qp_parts(compiled: Compiled) -> tuple[bytes, ...]:
    """The literal parts of a compiled body, encoded once per step rather than once per reader."""
    *pieces, last = compiled.parts
    return (*(_qp_piece(p) for p in pieces), qp_body(last))


def qp_compiled(compiled: Compiled, values: Mapping[str, str], *, escape: bool) -> bytes:
    """``qp_body(compiled.fill(values, escape=escape))``, decoding to the same text, at the cost
    of encoding the subscriber's few values: the long literal parts come encoded from a cache."""
    parts = _qp_parts(compiled)
    out = [parts[0]]
    for i, value in enumerate(compiled.slot_values(values, escape=escape)):
        out.append(_qp_piece(value))
        out.append(parts[i + 1])
    return b"".join(out)


def check_domain(domain: str) -> str:
    if _DOMAIN.fullmatch(domain) is None:
        raise PermanentTransportError(f"invalid Message-ID domain {domain!r}")
    return domain


@lru_cache(maxsize=256)
def _checked_mailto_head(address: str) -> str | None:
    """:func:`unsubscribe_mailto` of ``address`` before its token, when it passes :func:`check_url`."""
    head = unsubscribe_mailto(address, "")
    return head if _URL.fullmatch(head) is not None and len(head) <= MAX_URL else None


def unsubscribe_targets(msg: OutgoingMessage) -> tuple[str, str]:
    """The https one-click URL and the ``mailto:`` URI of RFC 2369 List-Unsubscribe, both checked."""
    url = msg.unsubscribe_url
    # The link drip signed (plain, see OutgoingMessage.plain) needs no second reading.
    plain = "unsubscribe_url" in msg.plain and url is msg.values.get("unsubscribe_url")
    if len(url) > MAX_URL or not plain:
        check_url(url, role="unsubscribe")
    if not url.startswith(("https://", "http://")):
        raise PermanentTransportError(f"invalid unsubscribe URL {url!r}: expected https://")
    mailto = msg.unsubscribe_mailto
    if plain and len(mailto) <= MAX_URL:
        # The sender's checked head and a piece of the plain link (any piece of it is URL-safe):
        # what check_url would accept, without reading the token a second time.
        head = _checked_mailto_head(msg.from_email)
        if head is not None and mailto.startswith(head) and url.endswith(mailto[len(head) :]):
            return url, mailto
    if not mailto.lower().startswith("mailto:"):
        mailto = "mailto:" + check_address(mailto, role="unsubscribe mailto")
    return url, check_url(mailto, role="unsubscribe mailto")


def extra_headers(msg: OutgoingMessage) -> list[tuple[str, str]]:
    """The delivery's extra headers, each name checked and each value made single-line.

    A name that is malformed or one this module writes itself (From, Bcc, List-Unsubscribe…)
    fails the message: extra headers add information, they never redirect a message.
    """
    checked: list[tuple[str, str]] = []
    for name, value in msg.headers.items():
        if _HEADER_NAME.fullmatch(name) is None or name.lower() in _RESERVED:
            raise PermanentTransportError(f"refusing extra header {name!r}")
        checked.append((name, clean(value)))
    return checked


def build_message(msg: OutgoingMessage, *, now: datetime) -> Built:
    """The RFC 5322 bytes of one delivery (CRLF), with its fresh Message-ID.

    Raises :class:`PermanentTransportError` when an address or URL of the
    delivery cannot be written safely: retrying would not help.
    """
    date = format_datetime(send_time(now))
    domain = check_domain(msg.message_id_domain)
    to_email = check_address(msg.to_email, role="recipient")
    from_email = check_address(msg.from_email, role="sender")
    https, mailto = unsubscribe_targets(msg)
    mid = message_id(msg.delivery_id, domain)
    step = msg.rendered
    subject = step.subject.fill(msg.values, escape=False)
    boundary = "=_drip_" + secrets.token_hex(12)  # "=_" never occurs in quoted-printable output

    lines = [
        encode_address("From", msg.from_name, from_email),
        encode_address("To", msg.to_name, to_email),
    ]
    if msg.reply_to:
        lines.append("Reply-To: " + check_address(msg.reply_to, role="reply-to"))
    lines += [
        encode_header("Subject", subject),
        "Date: " + date,
        "Message-ID: " + mid,
        "MIME-Version: 1.0",
        f"List-Unsubscribe: <{https}>,{CRLF} <{mailto}>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        *list_headers(msg, domain),
        encode_header("X-Drip-Course", msg.course),
        encode_header("X-Drip-Step", msg.step_key),
        f"X-Drip-Delivery: {msg.delivery_id}",
    ]
    lines += [encode_header(name, value) for name, value in extra_headers(msg)]
    lines += [
        f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "",
    ]
    head = CRLF.join(lines).encode("ascii")
    middle = CRLF.join(
        [
            "",  # the CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1)
            f"--{boundary}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "",
        ]
    ).encode("ascii")
    tail = f"{CRLF}--{boundary}--{CRLF}".encode("ascii")
    text_body = qp_compiled(step.text, msg.values, escape=False)
    html_body = qp_compiled(step.html, msg.values, escape=True)
    data = b"".join((head, text_body, middle, html_body, tail))
    return Built(message_id=mid, data=data)


def send_each(
    messages: Sequence[OutgoingMessage],
    now: datetime | None,
    send: Callable[[OutgoingMessage, Built], SendResult],
    sign: Callable[[bytes], bytes] | None = None,
) -> list[SendResult]:
    """One result per message, in order: each built (and signed, with ``sign``) and handed to ``send``.

    What the transports that carry RFC 5322 bytes share: a delivery that cannot be
    written or signed safely fails alone, and never reaches ``send``.
    """
    date = send_time(now)
    results: list[SendResult] = []
    for msg in messages:
        try:
            built = build_message(msg, now=date)
            if sign is not None:
                built = Built(message_id=built.message_id, data=sign(built.data))
        except TransportError as exc:
            results.append(SendResult(msg.delivery_id, error=exc))
        else:
            results.append(send(msg, built))
    return results
