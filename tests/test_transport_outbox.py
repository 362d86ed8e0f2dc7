"""The outbox's own quirks: files named by delivery id, written atomically, a retry overwrites.

What every transport promises is in test_transport_contract.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from outgoing import NOW, outgoing, parse

from drip.errors import TransientTransportError
from drip.transports.outbox import OutboxTransport


def test_one_eml_per_delivery_named_by_its_id_and_dated(tmp_path: Path) -> None:
    box = tmp_path / "outbox"
    with OutboxTransport(box) as transport:
        results = transport.send_batch([outgoing(7), outgoing(123)], now=NOW)
    assert sorted(p.name for p in box.iterdir()) == ["000000007.eml", "000000123.eml"]
    msg = parse((box / "000000123.eml").read_bytes())
    assert msg["Message-ID"] == results[1].provider_id
    assert msg["Date"].datetime == NOW


def test_a_retry_overwrites_and_never_duplicates(tmp_path: Path) -> None:
    transport = OutboxTransport(tmp_path)
    first = transport.send_batch([outgoing(5, to_name="Zoé")], now=NOW)[0]
    second = transport.send_batch([outgoing(5, to_name="Zoé Martin")], now=NOW)[0]
    assert first.provider_id != second.provider_id
    assert [p.name for p in tmp_path.iterdir()] == ["000000005.eml"]
    msg = parse((tmp_path / "000000005.eml").read_bytes())
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

    monkeypatch.setattr(os, "replace", replace_fails)  # the os module drip.transports.outbox uses
    result = transport.send_batch([outgoing(9, to_name="Autre")], now=NOW)[0]
    assert isinstance(result.error, TransientTransportError)
    assert "No space left" in str(result.error)
    assert [p.name for p in tmp_path.iterdir()] == ["000000009.eml"]
    assert (tmp_path / "000000009.eml").read_bytes() == before
