"""The one small interface every transport implements.

A transport receives a batch of :class:`OutgoingMessage` and answers one
:class:`SendResult` per message: one bad recipient never fails its neighbours.
Provider quirks stay in each provider's module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from drip.errors import TransportError
from drip.render.rendered import RenderedStep


# Records made per email (this, SendResult, and the store's Claimed, Recipient and Outcome) are
# slotted and not frozen: a send makes thousands a second, and a frozen dataclass's __init__, which
# sets each field through object.__setattr__, costs three times as much. Nothing changes them.
@dataclass(slots=True)
class OutgoingMessage:
    """Everything a transport needs to send one delivery."""

    delivery_id: int
    to_email: str
    to_name: str
    from_email: str
    from_name: str
    reply_to: str | None
    rendered: RenderedStep
    values: Mapping[str, str]  # the subscriber's slot values (name, unsubscribe_url, …)
    unsubscribe_url: str  # https one-click endpoint (RFC 8058)
    unsubscribe_mailto: str  # mailto: address for List-Unsubscribe
    postal_address: str
    message_id_domain: str
    headers: Mapping[str, str] = field(default_factory=dict)  # extra X- headers, already safe
    list_title: str = ""  # the course's or newsletter list's title: List-ID's display name
    list_name: str = ""  # the newsletter list an issue's email came from (List-ID); a course's is its own
    # Names of the values that are URL-safe ASCII by construction (the signed links on a checked
    # base_url): the same in a JSON string, an HTML attribute and a header, written as they are.
    plain: frozenset[str] = frozenset()

    @property
    def course(self) -> str:
        return self.rendered.course

    @property
    def step_key(self) -> str:
        return self.rendered.step_key


def unsubscribe_mailto(address: str, token: str) -> str:
    """The ``mailto:`` URI of List-Unsubscribe: a message to ``address`` whose subject carries ``token``."""
    return f"mailto:{address}?subject=unsubscribe%20{token}"


@dataclass(slots=True)
class SendResult:
    delivery_id: int
    provider_id: str | None = None  # Message-ID or the provider's id
    error: TransportError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Transport(Protocol):
    """Hand messages to a provider. Used as a context manager around one batch or a whole run."""

    name: str
    # How many messages go to the provider per hand-off: dispatch marks them handed off,
    # sends them with no database transaction open, then records them. An unsubscribe
    # may wait for one hand-off to finish, so it stays short (about 100 ms of work).
    handoff_size: int
    # How many deliveries one dispatch pass leases when ``dispatch.batch_size`` is not set:
    # a pass's fixed costs (claim, reading the issues and content) are shared by this many.
    batch_size: int

    def open(self) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def send_batch(
        self, messages: Sequence[OutgoingMessage], *, now: datetime | None = None
    ) -> list[SendResult]:
        """One result per message, in order; ``now`` (aware UTC) dates the messages, wall clock when None."""
        ...


class TransportBase:
    """What every provider module shares: the context-manager protocol around open/close."""

    name: str = "transport"
    handoff_size: int = 10
    batch_size: int = 200

    def open(self) -> None:
        """Acquire what a batch needs (a connection); a no-op by default."""

    def close(self) -> None:
        """Release it; a no-op by default."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def send_time(now: datetime | None) -> datetime:
    """The Date of a batch: the caller's ``now`` (simulated runs), else the wall clock."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() != timedelta(0):
        raise ValueError("now must be an aware UTC datetime")
    return now
