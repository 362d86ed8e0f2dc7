"""An in-memory transport for a site's own tests: every message kept, chosen addresses failing on demand.

Like Django's locmem mail backend, nothing leaves the process. Each accepted delivery
is kept in :attr:`MemoryTransport.sent` with the RFC 5322 message the outbox or an SMTP
server would have received, built by the same code, so a test reads what a subscriber
would. :meth:`MemoryTransport.fail` makes given addresses fail permanently (a refused
mailbox) or transiently (worth another try), to exercise bounces and retries.

The messages live on the transport object, not in the module: a test builds one, or
takes the one ``get_transport`` returns for ``transport: {backend: memory}``, and hands
it to the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

from drip.config import Site
from drip.errors import PermanentTransportError, TransientTransportError, TransportError
from drip.transports.base import OutgoingMessage, SendResult, TransportBase
from drip.transports.message import Built, send_each


@dataclass(frozen=True)
class Sent:
    """One accepted delivery: what dispatch handed over and the message built from it."""

    message: OutgoingMessage
    built: Built

    @property
    def email(self) -> EmailMessage:
        """The message parsed back with the stdlib, for reading its headers and parts."""
        return BytesParser(policy=default_policy).parsebytes(self.built.data)


class MemoryTransport(TransportBase):
    """Keep every message in :attr:`sent`; fail the addresses named by :meth:`fail`."""

    name = "memory"
    handoff_size = 100  # no network: a hundred messages are a millisecond or two

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._failures: dict[str, TransportError] = {}

    def fail(self, *addresses: str, transient: bool = False) -> None:
        """From now on, refuse these recipients: permanently, or ``transient`` (retried by dispatch)."""
        for address in addresses:
            if transient:
                error: TransportError = TransientTransportError(f"recipient {address} deferred")
            else:
                error = PermanentTransportError(f"recipient {address} refused")
            self._failures[address.lower()] = error

    def succeed(self, *addresses: str) -> None:
        """Accept these recipients again; every recipient when none is named."""
        if not addresses:
            self._failures.clear()
        for address in addresses:
            self._failures.pop(address.lower(), None)

    def sent_to(self, address: str) -> list[Sent]:
        """The messages accepted for one recipient, oldest first."""
        return [s for s in self.sent if s.message.to_email.lower() == address.lower()]

    def clear(self) -> None:
        """Forget the messages kept so far (failures stay as set)."""
        self.sent.clear()

    def send_batch(
        self, messages: Sequence[OutgoingMessage], *, now: datetime | None = None
    ) -> list[SendResult]:
        return send_each(messages, now, self._keep)

    def _keep(self, msg: OutgoingMessage, built: Built) -> SendResult:
        error = self._failures.get(msg.to_email.lower())
        if error is not None:
            return SendResult(msg.delivery_id, error=error)
        self.sent.append(Sent(msg, built))
        return SendResult(msg.delivery_id, provider_id=built.message_id)


def from_site(site: Site) -> MemoryTransport:
    return MemoryTransport()
