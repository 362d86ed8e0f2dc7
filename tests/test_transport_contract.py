"""What every transport promises, checked against each: outbox, SMTP, SendGrid and memory.

Each transport runs against the real thing on this machine: a temporary outbox
folder, an aiosmtpd server on 127.0.0.1, the official SendGrid client against the
loopback server that validates every body against SendGrid's OpenAPI description,
and the memory transport itself. A harness per transport reads back what
arrived, in one shape (:class:`Arrived`), and plays the server's failures; the
provider quirks (SMTP reconnects and TLS, SendGrid batching and rate limits, the
outbox's atomic overwrite) stay in each transport's own test file.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import pytest
from outgoing import NOW, outgoing, parse, rendered
from sendgrid_server import API_KEY, Reply, SendgridServer, deliver, sendgrid_server
from smtp_server import SmtpServer, smtp_server

from drip.config import SendgridSection, SmtpSection, load_site
from drip.errors import PermanentTransportError, TransientTransportError
from drip.transports import get_transport
from drip.transports.base import OutgoingMessage, Transport
from drip.transports.memory import MemoryTransport
from drip.transports.outbox import OutboxTransport
from drip.transports.sendgrid import SendgridTransport
from drip.transports.smtp import SmtpTransport

SITE_YAML = (
    "site: {name: CTO, base_url: 'https://cto.example.org'}\n"
    "sender: {name: CTO, email: lettre@cto.example.org}\n"
    "postal_address: '12 rue des Lilas, 69003 Lyon'\n"
)


@dataclass(frozen=True)
class Arrived:
    """One message as its recipient gets it, whichever transport carried it."""

    to_email: str
    to_name: str
    subject: str
    text: str
    html: str
    headers: dict[str, list[str]]  # lower-cased name → values, the headers the transport carries


def _content(part: EmailMessage) -> str:
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n").rstrip("\n")


def from_rfc5322(data: bytes) -> Arrived:
    msg = parse(data)
    text, html = msg.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    headers: dict[str, list[str]] = {}
    for name, value in msg.items():
        headers.setdefault(name.lower(), []).append(str(value))
    (to,) = msg["To"].addresses
    return Arrived(
        to.addr_spec, to.display_name, str(msg["Subject"]), _content(text), _content(html), headers
    )


def from_sendgrid(body: dict[str, Any], p: dict[str, Any]) -> Arrived:
    """A personalization as SendGrid delivers it: request headers, then the recipient's own."""
    subject, text, html = deliver(body, p)
    (to,) = p["to"]
    headers = {name.lower(): [value] for name, value in {**body["headers"], **p["headers"]}.items()}
    return Arrived(to["email"], to.get("name", ""), subject, text.rstrip("\n"), html.rstrip("\n"), headers)


class Harness(Protocol):
    refusal: str  # what the error of a refused recipient says
    yaml: str  # the transport section of a drip.yaml choosing this transport
    env: dict[str, str | None]  # the environment that drip.yaml needs (None: unset)

    @property
    def transport(self) -> Transport:
        """The one transport of the test, to the harness's server."""
        ...

    def arrived(self, transport: Transport) -> list[Arrived]:
        """Every message accepted so far, in the order it arrived."""
        ...

    def contacted(self) -> bool:
        """Whether anything at all reached the server."""
        ...

    def refuse(self, msg: OutgoingMessage) -> OutgoingMessage:
        """A delivery the server will refuse permanently, for the recipient of ``msg``."""
        ...

    def outage(self, addresses: Sequence[str]) -> None:
        """A failure worth retrying, until :meth:`recover` (``addresses``: where it must show)."""
        ...

    def recover(self) -> None: ...


@dataclass
class OutboxHarness:
    """The outbox's server is the folder: it refuses what cannot be written, and fails when it is missing."""

    transport: OutboxTransport
    refusal: str = "invalid recipient address"
    yaml: str = ""  # the default, in the site's outbox/ folder
    env: dict[str, str | None] = field(default_factory=dict)

    def arrived(self, transport: Transport) -> list[Arrived]:
        folder = self.transport.directory
        return [from_rfc5322(p.read_bytes()) for p in sorted(folder.glob("*.eml"))] if folder.is_dir() else []

    def contacted(self) -> bool:
        return bool(self.arrived(self.transport))

    def refuse(self, msg: OutgoingMessage) -> OutgoingMessage:
        return replace(msg, to_email=msg.to_email.replace("@", " @"))

    def outage(self, addresses: Sequence[str]) -> None:
        folder = self.transport.directory
        if folder.exists():
            folder.rename(folder.with_suffix(".away"))
        folder.write_text("a file where the folder should be")

    def recover(self) -> None:
        folder = self.transport.directory
        folder.unlink()
        if folder.with_suffix(".away").exists():
            folder.with_suffix(".away").rename(folder)


@dataclass
class SmtpHarness:
    server: SmtpServer
    transport: SmtpTransport
    refusal: str = "no such user"
    yaml: str = ""
    env: dict[str, str | None] = field(
        default_factory=lambda: {"DRIP_SMTP_USERNAME": None, "DRIP_SMTP_PASSWORD": None}
    )

    def __post_init__(self) -> None:
        self.yaml = f"transport: {{backend: smtp, smtp: {{host: 127.0.0.1, port: {self.server.port}, security: none}}}}\n"

    def arrived(self, transport: Transport) -> list[Arrived]:
        return [from_rfc5322(m.data) for m in self.server.messages]

    def contacted(self) -> bool:
        return self.server.handler.connections > 0

    def refuse(self, msg: OutgoingMessage) -> OutgoingMessage:
        self.server.handler.reject[msg.to_email] = f"550 5.1.1 <{msg.to_email}>: no such user"
        return msg

    def outage(self, addresses: Sequence[str]) -> None:
        self.server.handler.refuse_mail = "451 4.3.0 mail server temporarily unavailable"

    def recover(self) -> None:
        self.server.handler.refuse_mail = None


@dataclass
class SendgridHarness:
    server: SendgridServer
    transport: SendgridTransport
    refusal: str = "Does not contain a valid address."
    yaml: str = ""
    env: dict[str, str | None] = field(default_factory=lambda: {"SENDGRID_API_KEY": API_KEY})

    def __post_init__(self) -> None:
        self.yaml = f"transport: {{backend: sendgrid, sendgrid: {{host: '{self.server.url}'}}}}\n"

    def arrived(self, transport: Transport) -> list[Arrived]:
        assert self.server.schema_errors == []
        return [from_sendgrid(r.body, p) for r in self.server.accepted for p in r.body["personalizations"]]

    def contacted(self) -> bool:
        return bool(self.server.requests)

    def refuse(self, msg: OutgoingMessage) -> OutgoingMessage:
        self.server.refuse.add(msg.to_email)
        return msg

    def outage(self, addresses: Sequence[str]) -> None:
        self.server.down = Reply(503, body={"errors": [{"message": "service unavailable"}]})

    def recover(self) -> None:
        self.server.down = None


@dataclass
class MemoryHarness:
    transport: MemoryTransport
    refusal: str = "refused"
    yaml: str = "transport: {backend: memory}\n"
    env: dict[str, str | None] = field(default_factory=dict)

    def arrived(self, transport: Transport) -> list[Arrived]:
        assert isinstance(transport, MemoryTransport)
        return [from_rfc5322(s.built.data) for s in transport.sent]

    def contacted(self) -> bool:
        return bool(self.transport.sent)

    def refuse(self, msg: OutgoingMessage) -> OutgoingMessage:
        self.transport.fail(msg.to_email)
        return msg

    def outage(self, addresses: Sequence[str]) -> None:
        self.transport.fail(*addresses, transient=True)

    def recover(self) -> None:
        self.transport.succeed()


@pytest.fixture(params=["outbox", "smtp", "sendgrid", "memory"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with ExitStack() as stack:
        if request.param == "outbox":
            yield OutboxHarness(OutboxTransport(tmp_path / "outbox"))
        elif request.param == "smtp":
            smtp = stack.enter_context(smtp_server())
            settings = SmtpSection(host=smtp.host, port=smtp.port, security="none", timeout=5)
            yield SmtpHarness(smtp, SmtpTransport(settings, environ={}))
        elif request.param == "sendgrid":
            sg = stack.enter_context(sendgrid_server())
            settings_sg = SendgridSection(host=sg.url)
            yield SendgridHarness(
                sg, SendgridTransport(settings_sg, environ={"SENDGRID_API_KEY": API_KEY}, timeout=5)
            )
        else:
            yield MemoryHarness(MemoryTransport())


def recipients(harness: Harness, transport: Transport | None = None) -> list[str]:
    return sorted(a.to_email for a in harness.arrived(transport or harness.transport))


def test_one_result_per_message_in_order(harness: Harness) -> None:
    other = rendered(step_key="/le-role-du-cto/recruter/")
    messages = [outgoing(1), outgoing(2, step=other), outgoing(3), outgoing(4, step=other), outgoing(5)]
    with harness.transport as transport:
        results = transport.send_batch(messages, now=NOW)
    assert [r.delivery_id for r in results] == [1, 2, 3, 4, 5]
    assert all(r.ok and r.provider_id for r in results)


def test_each_message_arrives_once_as_written_for_its_reader(harness: Harness) -> None:
    messages = [outgoing(1), outgoing(2, to_name="Éloïse Brûlé-Œuvre"), outgoing(3, to_name="Sam", values={})]
    with harness.transport as transport:
        assert all(r.ok for r in transport.send_batch(messages, now=NOW))
    arrived = sorted(harness.arrived(harness.transport), key=lambda a: a.to_email)
    assert len(arrived) == len(messages)
    for msg, got in zip(messages, arrived, strict=True):
        subject, html, text = msg.rendered.personalise(msg.values)
        assert (got.to_email, got.to_name) == (msg.to_email, msg.to_name)
        assert (got.subject, got.text, got.html) == (subject, text.rstrip("\n"), html)
        assert got.headers["list-unsubscribe"] == [f"<{msg.unsubscribe_url}>, <{msg.unsubscribe_mailto}>"]
        assert got.headers["list-unsubscribe-post"] == ["List-Unsubscribe=One-Click"]
        # The receivers' reports (RFC 2919, Gmail's feedback loop) name the same list on every transport.
        assert [" ".join(v.split()) for v in got.headers["list-id"]] == ["<le-role-du-cto.cto.example.org>"]
        assert got.headers["feedback-id"] == ["welcome:le-role-du-cto:drip:cto.example.org"]
    assert arrived[2].subject == "Bienvenue à vous : le rôle du CTO"  # an empty value takes the default


def test_a_recipient_the_server_refuses_fails_alone(harness: Harness) -> None:
    messages = [outgoing(i) for i in range(1, 6)]
    messages[2] = harness.refuse(messages[2])
    with harness.transport as transport:
        results = transport.send_batch(messages, now=NOW)
    assert [r.ok for r in results] == [True, True, False, True, True]
    error = results[2].error
    assert isinstance(error, PermanentTransportError) and error.permanent
    assert harness.refusal in str(error)
    assert recipients(harness) == [f"lecteur{i}@example.org" for i in (1, 2, 4, 5)]


def test_an_address_that_could_inject_fails_alone_before_any_server(harness: Harness) -> None:
    messages = [
        outgoing(1, to_email="x@y.org\r\nRCPT TO:<a@b.org>"),
        outgoing(2, to_email="a@b.org\nBcc: x@evil"),
    ]
    messages.append(outgoing(3))
    with harness.transport as transport:
        results = transport.send_batch(messages, now=NOW)
    assert all(isinstance(r.error, PermanentTransportError) for r in results[:2])
    assert results[2].ok
    assert recipients(harness) == ["lecteur3@example.org"]


def test_a_transient_failure_is_reported_retryable_and_a_retry_then_arrives(harness: Harness) -> None:
    messages = [outgoing(1), outgoing(2)]
    with harness.transport as transport:
        harness.outage([m.to_email for m in messages])  # once open: a folder that goes, a server that falls
        failed = transport.send_batch(messages, now=NOW)
        assert all(isinstance(r.error, TransientTransportError) and not r.error.permanent for r in failed)
        assert harness.arrived(transport) == []
        harness.recover()
        assert all(r.ok for r in transport.send_batch(messages, now=NOW))
    assert recipients(harness) == ["lecteur1@example.org", "lecteur2@example.org"]


def test_open_close_and_reuse_as_a_context_manager(harness: Harness) -> None:
    transport = harness.transport
    transport.open()
    assert transport.send_batch([outgoing(1)], now=NOW)[0].ok
    transport.close()
    with transport as entered:
        assert entered is transport
        assert entered.send_batch([outgoing(2)], now=NOW)[0].ok
    with transport:
        assert transport.send_batch([outgoing(3)], now=NOW)[0].ok
    transport.close()  # closing twice is harmless
    assert recipients(harness) == [f"lecteur{i}@example.org" for i in (1, 2, 3)]


def test_an_empty_batch_sends_nothing(harness: Harness) -> None:
    with harness.transport as transport:
        assert transport.send_batch([], now=NOW) == []
    assert not harness.contacted()
    assert harness.arrived(harness.transport) == []


def test_line_breaks_in_a_name_subject_or_header_never_add_a_header(harness: Harness) -> None:
    plain = outgoing(1, to_name="Zoé", headers={"X-Campaign": "printemps"})
    evil = outgoing(
        2,
        to_name="Zoé\r\nBcc: x@evil.org\u2028Cc: y@evil.org",
        headers={"X-Campaign": "printemps\r\nBcc: x@evil.org\nSubject: gagné"},
    )
    with harness.transport as transport:
        assert all(r.ok for r in transport.send_batch([plain, evil], now=NOW))
    clean, dirty = sorted(harness.arrived(harness.transport), key=lambda a: a.to_email)
    assert sorted(dirty.headers) == sorted(clean.headers)
    assert all(len(values) == 1 for values in dirty.headers.values())
    assert not {"bcc", "cc"} & set(dirty.headers)
    for text in (dirty.to_name, dirty.subject, *(v for vs in dirty.headers.values() for v in vs)):
        assert not {"\r", "\n", "\u2028"} & set(text), text
    assert dirty.subject == "Bienvenue Zoé Bcc: x@evil.org Cc: y@evil.org : le rôle du CTO"
    assert dirty.headers["x-campaign"] == ["printemps Bcc: x@evil.org Subject: gagné"]


def test_drip_yaml_chooses_it(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "drip.yaml").write_text(SITE_YAML + harness.yaml, encoding="utf-8")
    for name, value in harness.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with get_transport(load_site(tmp_path)) as transport:
        assert type(transport) is type(harness.transport)
        assert transport.send_batch([outgoing(1)], now=NOW)[0].ok
    assert recipients(harness, transport) == ["lecteur1@example.org"]


def test_an_internationalised_domain_goes_out_in_idna(harness: Harness) -> None:
    """The store keeps ``bücher.de`` as the reader wrote it; every transport sends ``xn--bcher-kva.de``."""
    with harness.transport as transport:
        [result] = transport.send_batch([outgoing(1, to_email="zoe@bücher.de")], now=NOW)
    assert result.ok, result.error
    [got] = harness.arrived(harness.transport)
    assert got.to_email == "zoe@xn--bcher-kva.de"
