"""The default transport: one RFC 5322 ``.eml`` file per delivery, so drip works with no account.

Files are named by delivery id and written atomically (temporary file in the
same folder, then ``os.replace``): a reader never sees half a message, and a
retry of the same delivery overwrites its file instead of adding a second one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from drip.config import Site
from drip.errors import ConfigError, Problem, TransientTransportError
from drip.transports.base import OutgoingMessage, SendResult, TransportBase, send_time
from drip.transports.dkim import DkimSigner, signer_for
from drip.transports.message import Built, send_each


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step; no partial file is ever visible under its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class OutboxTransport(TransportBase):
    """Write each delivery to ``directory/<delivery id>.eml``."""

    name = "outbox"
    handoff_size = 100  # a hundred .eml writes: well under 100 ms
    batch_size = 500

    def __init__(self, directory: Path, *, signer: DkimSigner | None = None) -> None:
        self.directory = Path(directory)
        self.signer = signer  # with drip.yaml's dkim: section, so a site can check its signatures locally

    def path_for(self, delivery_id: int) -> Path:
        """Zero-padded so that a directory listing sorts in delivery order."""
        return self.directory / f"{delivery_id:09d}.eml"

    def open(self) -> None:
        """Create the folder before anything is claimed: a file in its place is the site's to fix."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                Problem(
                    f"cannot create the outbox folder: {exc.strerror}",
                    file=self.directory,
                    key="paths.outbox",
                )
            ) from None

    def send_batch(
        self, messages: Sequence[OutgoingMessage], *, now: datetime | None = None
    ) -> list[SendResult]:
        date = send_time(now)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            error = TransientTransportError(f"cannot create the outbox {self.directory}: {exc}")
            return [SendResult(msg.delivery_id, error=error) for msg in messages]
        return send_each(messages, date, self._write, self.signer.sign if self.signer else None)

    def _write(self, msg: OutgoingMessage, built: Built) -> SendResult:
        try:
            write_atomic(self.path_for(msg.delivery_id), built.data)
        except OSError as exc:  # disk full, permissions: worth another try later
            error = TransientTransportError(f"cannot write to the outbox {self.directory}: {exc}")
            return SendResult(msg.delivery_id, error=error)
        return SendResult(msg.delivery_id, provider_id=built.message_id)


def from_site(site: Site) -> OutboxTransport:
    return OutboxTransport(site.outbox_dir, signer=signer_for(site))
