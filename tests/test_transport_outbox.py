"""The outbox transport: one .eml per delivery, written atomically, a retry overwrites."""

from __future__ import annotations

import email
import email.policy
import os
import shutil
from pathlib import Path

import pytest
from outgoing import NOW, outgoing

import drip.transports.outbox as outbox_module
from drip.config import load_site
from drip.errors import PermanentTransportError, TransientTransportError
from drip.transports import get_transport
from drip.transports.outbox import OutboxTransport

REPO = Path(__file__).resolve().parents[1]


def test_one_parseable_eml_per_delivery(tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    with OutboxTransport(box) as transport:
        results = transport.send_batch([outgoing(7), outgoing(123)], now=NOW)
    assert all(r.ok for r in results)
    assert sorted(p.name for p in box.iterdir()) == ["000000007.eml", "000000123.eml"]
    data = (box / "000000123.eml").read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Message-ID"] == results[1].provider_id
    assert msg["To"].addresses[0].addr_spec == "lecteur123@example.org"
    assert msg["Date"].datetime == NOW
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]


def test_a_retry_overwrites_and_never_duplicates(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path)
    first = transport.send_batch([outgoing(5, to_name="Zoé")], now=NOW)[0]
    second = transport.send_batch([outgoing(5, to_name="Zoé Martin")], now=NOW)[0]
    assert first.provider_id != second.provider_id
    assert [p.name for p in tmp_path.iterdir()] == ["000000005.eml"]
    msg = email.message_from_bytes((tmp_path / "000000005.eml").read_bytes(), policy=email.policy.default)
    assert msg["Message-ID"] == second.provider_id
    assert msg["To"].addresses[0].display_name == "Zoé Martin"


def test_a_failed_write_leaves_the_previous_file_whole_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = OutboxTransport(tmp_path)
    assert transport.send_batch([outgoing(9)], now=NOW)[0].ok
    before = (tmp_path / "000000009.eml").read_bytes()

    def replace_fails(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outbox_module.os, "replace", replace_fails)
    result = transport.send_batch([outgoing(9, to_name="Autre")], now=NOW)[0]
    assert isinstance(result.error, TransientTransportError)
    assert "No space left" in str(result.error)
    assert [p.name for p in tmp_path.iterdir()] == ["000000009.eml"]
    assert (tmp_path / "000000009.eml").read_bytes() == before


def test_bad_message_fails_alone(tmp_path: Path) -> None:
    results = OutboxTransport(tmp_path).send_batch(
        [outgoing(1, to_email="bad\r\nBcc: x@evil.org"), outgoing(2)], now=NOW
    )
    assert isinstance(results[0].error, PermanentTransportError)
    assert results[1].ok
    assert [p.name for p in tmp_path.iterdir()] == ["000000002.eml"]


def test_unwritable_outbox_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the folder should be")
    results = OutboxTransport(blocker / "sub").send_batch([outgoing(1)], now=NOW)
    assert isinstance(results[0].error, TransientTransportError)


def test_get_transport_defaults_to_the_sites_outbox(tmp_path: Path) -> None:
    shutil.copy(REPO / "drip.yaml", tmp_path / "drip.yaml")
    site = load_site(tmp_path)
    transport = get_transport(site)
    assert isinstance(transport, OutboxTransport)
    assert transport.directory == tmp_path / "outbox"
    assert transport.send_batch([outgoing(3)], now=NOW)[0].ok
    assert os.listdir(tmp_path / "outbox") == ["000000003.eml"]
