"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests and benchmarks.

It records every accepted message with the number of the connection that
carried it, can refuse chosen recipients or every sender with any reply (550,
451…), and can hang up on a client, as servers do with idle connections.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    connection: int  # 1 for the first connection that sent EHLO/HELO, 2 for the next…
    at: float = 0.0  # time.monotonic() when the server accepted it (after any data_delay)


class Handler:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.connections = 0
        self.reject: dict[str, str] = {}  # recipient → full reply, e.g. "550 5.1.1 no such user"
        self.hang_up_on_mail = 0  # hang up (no reply) on this many next MAIL commands
        self.refuse_mail: str | None = None  # a reply to every MAIL command, e.g. "451 4.3.0 try later"
        self.data_delay = 0.0  # seconds before answering DATA, like a provider under load
        self.live: list[SMTP] = []
        self.numbers: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()  # per connection
        self.lock = threading.Lock()

    def _number(self, server: SMTP, session: Session) -> int:
        number = self.numbers.get(session)
        if number is None:
            with self.lock:
                self.connections += 1
                number = self.connections
            self.numbers[session] = number
            self.live.append(server)
        return number

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self._number(server, session)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self._number(server, session)
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.hang_up_on_mail > 0:
            self.hang_up_on_mail -= 1
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "421 4.4.2 closing"  # never reaches the client: the socket is gone
        if self.refuse_mail is not None:
            return self.refuse_mail
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.reject.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content
        assert isinstance(data, bytes) and envelope.mail_from is not None
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        received = Received(
            envelope.mail_from,
            tuple(envelope.rcpt_tos),
            data,
            self._number(server, session),
            time.monotonic(),
        )
        with self.lock:
            self.messages.append(received)
        return "250 2.0.0 queued"


class _LoopbackController(Controller):
    """Binds port 0 and learns the port the system chose, so parallel tests never collide."""

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        async def create() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


class SmtpServer:
    """A started aiosmtpd server: ``host``, ``port``, ``handler`` (messages, connections, reject)."""

    def __init__(self, controller: Controller, handler: Handler) -> None:
        self.controller = controller
        self.handler = handler
        self.host: str = controller.hostname
        self.port: int = controller.port

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def hang_up_all(self) -> None:
        """Close every open client connection now, as a server does with idle ones."""

        async def close_all() -> None:
            for server in self.handler.live:
                if isinstance(server.transport, asyncio.Transport):
                    server.transport.abort()
            self.handler.live.clear()

        asyncio.run_coroutine_threadsafe(close_all(), self.controller.loop).result(timeout=5)


@contextmanager
def smtp_server(
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    **smtp_kwargs: Any,
) -> Iterator[SmtpServer]:
    """Run a server for the ``with`` block; ``tls_context`` offers STARTTLS, ``implicit_tls`` wraps the socket."""
    handler = Handler()
    controller = _LoopbackController(
        handler,
        hostname="127.0.0.1",
        ssl_context=implicit_tls,
        tls_context=tls_context,
        data_size_limit=None,
        **smtp_kwargs,
    )
    controller.start()
    try:
        yield SmtpServer(controller, handler)
    finally:
        controller.stop()


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for ``host``, and a client context trusting it."""
    cert_path, key_path = certificate_files(directory, host)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def certificate_files(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A fresh self-signed certificate for the IP address ``host`` and its key, as PEM files in ``directory``.

    Uses ``cryptography`` (a dependency of the sendgrid client), so no binary is needed.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 100))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
