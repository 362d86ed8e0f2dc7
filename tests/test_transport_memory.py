"""The memory transport's own side: what a site's tests read from it and how they make it fail.

What every transport promises is in test_transport_contract.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from outgoing import NOW, outgoing

from drip import config, transports
from drip.config import load_site
from drip.errors import ConfigError, PermanentTransportError, TransientTransportError
from drip.transports.memory import MemoryTransport

REPO = Path(__file__).resolve().parents[1]


def test_keeps_the_delivery_and_its_message() -> None:
    transport = MemoryTransport()
    (result,) = transport.send_batch([outgoing(4)], now=NOW)
    (sent,) = transport.sent_to("LECTEUR4@example.org")
    assert sent.message.delivery_id == 4
    assert sent.built.message_id == result.provider_id
    assert sent.email["Message-ID"] == result.provider_id
    assert sent.email["Date"].datetime == NOW
    transport.clear()
    assert transport.sent == []


def test_fails_chosen_addresses_until_told_otherwise() -> None:
    transport = MemoryTransport()
    transport.fail("lecteur1@example.org")
    transport.fail("Lecteur2@example.org", transient=True)
    first = transport.send_batch([outgoing(1), outgoing(2), outgoing(3)], now=NOW)
    assert isinstance(first[0].error, PermanentTransportError)
    assert isinstance(first[1].error, TransientTransportError)
    assert first[2].ok
    transport.succeed("lecteur2@example.org")
    assert [r.ok for r in transport.send_batch([outgoing(1), outgoing(2)], now=NOW)] == [False, True]
    transport.succeed()
    assert transport.send_batch([outgoing(1)], now=NOW)[0].ok
    assert [s.message.delivery_id for s in transport.sent] == [3, 2, 1]


def test_a_mistyped_backend_suggests_the_closest(tmp_path: Path) -> None:
    text = (REPO / "drip.yaml").read_text(encoding="utf-8").replace("backend: outbox", "backend: memroy")
    (tmp_path / "drip.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_site(tmp_path)
    (problem,) = info.value.problems
    assert problem.key == "transport.backend"
    assert "unknown transport backend 'memroy'" in problem.message
    assert "(did you mean 'memory'?)" in problem.message


def test_every_backend_drip_yaml_accepts_has_a_module() -> None:
    assert set(config.BACKENDS) == set(transports.BACKENDS)
