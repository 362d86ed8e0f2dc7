"""Load check from a second process against a real `drip serve` (uvicorn) on loopback.

Smaller counts than bench/web_load.py (400 subscribes with 10% repeats, 120
one-click unsubscribes) so it stays well under a minute; the bench runs the
full 2,000 / 500. Timing figures are printed by the bench, never asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from web_support import SECRET, copy_site

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parent.parent / "bench" / "web_load.py"


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("web_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["web_load"] = module
    spec.loader.exec_module(module)
    return module


def test_subscribes_and_unsubscribes_racing_dispatch_lose_nothing_and_leak_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIP_SECRET_KEY", SECRET)
    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    bench = _bench()
    site = copy_site(tmp_path / "site")
    result = bench.run_load(site.root, subscribes=400, unsubscribes=120, concurrency=12)  # type: ignore[attr-defined]
    assert result.subscribe.statuses == {200: 400}
    assert result.confirm.statuses == {200: 360}
    assert result.unsubscribe.statuses == {200: 120} and len(result.unsubscribed_at_ns) == 120
    assert result.dispatch_passes >= 2
    assert bench.check(site.root, result) == []  # type: ignore[attr-defined]
    # One confirmation per address despite the repeats (cool-down), one welcome per address at most.
    outbox = site.outbox_dir
    assert len(list(outbox.glob("-*.eml"))) == 360
    welcomes = [p for p in outbox.glob("[0-9]*.eml") if b"X-Drip-Step: welcome" in p.read_bytes()]
    assert 360 - 120 <= len(welcomes) <= 360
