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


def test_a_large_batch_keeps_its_order_and_each_failure_stays_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One result per message, in order, every file in place when the batch returns, and a message
    that cannot be built (a bad address: permanent) or written (a full disk: transient) fails alone."""
    real_replace = os.replace

    def replace(src: str, dst: Path) -> None:
        if dst.name == "000000042.eml":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    messages = [outgoing(i) for i in range(1, 301)]
    messages[99] = outgoing(100, to_email="bad\r\nBcc: x@example.org")
    results = OutboxTransport(tmp_path).send_batch(messages, now=NOW)
    assert [r.delivery_id for r in results] == list(range(1, 301))
    failed = {r.delivery_id: r.error for r in results if not r.ok}
    assert sorted(failed) == [42, 100]
    assert isinstance(failed[42], TransientTransportError)
    assert not isinstance(failed[100], TransientTransportError)  # an address never gets better
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {f"{i:09d}.eml" for i in range(1, 301)} - {"000000042.eml", "000000100.eml"}
    for r in results:
        if r.ok:
            msg = parse((tmp_path / f"{r.delivery_id:09d}.eml").read_bytes())
            assert msg["Message-ID"] == r.provider_id
            assert msg["X-Drip-Delivery"] == str(r.delivery_id)
