"""SMTP through smtplib: one connection reused across a batch and across batches while it stays open.

Each message is one ``MAIL FROM``/``RCPT TO``/``DATA`` exchange on that
connection, so a refused recipient fails only its own message. The server's
reply code decides what a failure means: 4xx is worth retrying, 5xx is not.
A connection the server dropped (idle timeout, restart) is reopened once.
Credentials come only from the environment variables drip.yaml names. With a
``dkim:`` section every message is DKIM-signed; with ``bounces.return_path`` the
envelope sender is that address (per recipient with VERP), where bounces arrive.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime
from os import environ as os_environ

from drip.config import Site, SmtpSection
from drip.errors import (
    ConfigError,
    PermanentTransportError,
    Problem,
    TransientTransportError,
    TransportError,
)
from drip.inputs.address import sending_form
from drip.inputs.verp import verp_address
from drip.transports.base import OutgoingMessage, SendResult, TransportBase
from drip.transports.dkim import DkimSigner, signer_for
from drip.transports.message import Built, send_each


def reply_error(code: int, text: bytes | str, what: str) -> TransportError:
    """An SMTP reply as a transport error: 5xx permanent, anything else (4xx, odd codes) transient."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    message = f"{what}: {code} {text}".strip()
    if 500 <= code < 600:
        return PermanentTransportError(message)
    return TransientTransportError(message)


def connection_error(exc: Exception, where: str) -> TransportError:
    """A failure to reach or set up the server, mapped by its reply code when it has one."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return reply_error(exc.smtp_code, exc.smtp_error, f"SMTP server {where} refused the session")
    return TransientTransportError(f"cannot reach SMTP server {where}: {exc}")


class SmtpTransport(TransportBase):
    """Send through one SMTP server with STARTTLS, implicit TLS or no encryption."""

    name = "smtp"
    handoff_size = 4  # one SMTP transaction per message: a few, so an unsubscribe waits little

    def __init__(
        self,
        settings: SmtpSection,
        *,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        signer: DkimSigner | None = None,
        return_path: str | None = None,
        verp: bool = False,
    ) -> None:
        env = os_environ if environ is None else environ
        username = env.get(settings.username_env) or None
        password = env.get(settings.password_env) or None
        if (username is None) != (password is None):
            missing = settings.password_env if password is None else settings.username_env
            raise ConfigError(
                Problem(
                    f"environment variable {missing} is not set, but SMTP credentials need both "
                    f"{settings.username_env} and {settings.password_env}",
                    key="transport.smtp",
                )
            )
        self.settings = settings
        self._credentials = (username, password) if username and password else None
        self._ssl_context = ssl_context
        self._conn: smtplib.SMTP | None = None
        self.signer = signer
        self.return_path = return_path
        self.verp = verp
        self.connections_opened = 0  # for tests and benchmarks: reuse is observable

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP
        if s.security == "tls":
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            conn.ehlo()
            if s.security == "starttls":
                # Never fall back to plain text: smtplib raises when STARTTLS is not offered.
                conn.starttls(context=self._context())
                conn.ehlo()
            if self._credentials is not None:
                conn.login(*self._credentials)
        except BaseException:
            conn.close()
            raise
        self.connections_opened += 1
        return conn

    def open(self) -> None:
        """Nothing to do yet: ``send_batch`` connects on first need.

        An unreachable server is then a transient failure of the batch (retried with
        backoff), never an exception escaping from a worker's start-up.
        """

    def _ensure(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Say QUIT when the connection is still up; a dead one is just forgotten."""
        if self._conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._conn.quit()
            self._drop()

    def send_batch(
        self, messages: Sequence[OutgoingMessage], *, now: datetime | None = None
    ) -> list[SendResult]:
        unreachable: list[TransportError] = []  # once connecting fails, the rest of the batch waits

        def send(msg: OutgoingMessage, built: Built) -> SendResult:
            if not unreachable:
                try:
                    return self._send_one(msg, built)
                except (smtplib.SMTPException, OSError) as exc:
                    unreachable.append(connection_error(exc, self.where))
            return SendResult(msg.delivery_id, error=unreachable[0])

        return send_each(messages, now, send, self.signer.sign if self.signer else None)

    def envelope_sender(self, msg: OutgoingMessage) -> str:
        """MAIL FROM: the return path (its VERP form when asked), else the From address."""
        if self.return_path is None:
            return sending_form(msg.from_email)
        if self.verp:
            return verp_address(sending_form(self.return_path), sending_form(msg.to_email))
        return sending_form(self.return_path)

    def _send_one(self, msg: OutgoingMessage, built: Built) -> SendResult:
        """Send one message; connection failures propagate, message failures become its result."""
        to_email = sending_form(msg.to_email)  # the domain in IDNA, as in the message's To header
        for attempt in (1, 2):
            conn = self._ensure()
            try:
                conn.sendmail(self.envelope_sender(msg), [to_email], built.data)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 1:
                    continue  # the server closed an idle connection: reconnect once
                error: TransportError = TransientTransportError(f"SMTP server {self.where} hung up: {exc}")
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(to_email, (450, b"recipient refused"))
                error = reply_error(code, text, f"recipient {to_email} refused")
            except smtplib.SMTPResponseException as exc:  # sender refused, data refused
                if exc.smtp_code == 421:  # smtplib already closed the connection
                    self._drop()
                error = reply_error(exc.smtp_code, exc.smtp_error, "message refused")
            except smtplib.SMTPNotSupportedError as exc:
                error = PermanentTransportError(f"SMTP server {self.where} cannot take this message: {exc}")
            except (smtplib.SMTPException, OSError) as exc:  # timeout, reset: the session state is unknown
                self._drop()
                error = TransientTransportError(f"SMTP send to {self.where} failed: {exc}")
            else:
                return SendResult(msg.delivery_id, provider_id=built.message_id)
            return SendResult(msg.delivery_id, error=error)
        raise AssertionError("unreachable")


def from_site(site: Site) -> SmtpTransport:
    bounces = site.config.bounces
    return SmtpTransport(
        site.config.transport.smtp,
        signer=signer_for(site),
        return_path=bounces.return_path,
        verp=bounces.verp,
    )
