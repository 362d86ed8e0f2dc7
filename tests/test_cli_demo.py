"""The quick start's main job: three readers in three zones get the whole course once, at 08:30 local."""

from __future__ import annotations

import email
import email.policy
import shutil
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from drip.cli import _register, cli

REPO = Path(__file__).resolve().parents[1]


def copy_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for name in ("drip.yaml", "content", "schedules", "email_templates"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, site / name)
        else:
            shutil.copy(src, site / name)
    return site


def test_demo_delivers_the_course_at_local_send_times_and_again_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIP_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIP_SECRET_KEY", raising=False)
    _register()
    site = copy_site(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["--site", str(site), "demo", "--now", "2026-12-01T07:07:00Z"])
    assert result.exit_code == 0, result.output
    assert "sent 15" in result.output

    files = sorted((site / "outbox").glob("*.eml"))
    assert len(files) == 15
    zones = {
        "camille@example.org": "Europe/Paris",
        "ana@example.org": "America/New_York",
        "kenji@example.org": "Asia/Tokyo",
    }
    received: dict[str, list[str]] = defaultdict(list)
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        address = msg["To"].addresses[0].addr_spec
        local = msg["Date"].datetime.astimezone(ZoneInfo(zones[address]))
        received[address].append(local.strftime("%a %d %H:%M"))
        assert msg.get_content_type() == "multipart/alternative"
    # Welcome at subscription (07:07 UTC); the simulated clock then ticks on the quarter hour, so
    # the rest leave at 08:30 local, weekdays only, never two on one day.
    assert received["camille@example.org"] == [
        "Tue 01 08:07",
        "Thu 03 08:30",
        "Mon 07 08:30",
        "Tue 08 08:30",
        "Wed 09 08:30",
    ]
    assert received["ana@example.org"] == [
        "Tue 01 02:07",
        "Thu 03 08:30",
        "Mon 07 08:30",
        "Tue 08 08:30",
        "Wed 09 08:30",
    ]
    assert received["kenji@example.org"] == [
        "Tue 01 16:07",
        "Thu 03 08:30",
        "Mon 07 08:30",
        "Tue 08 08:30",
        "Wed 09 08:30",
    ]

    again = runner.invoke(cli, ["--site", str(site), "demo", "--now", "2026-12-01T07:07:00Z"])
    assert again.exit_code == 0, again.output
    assert "was already enrolled" in again.output
    assert len(list((site / "outbox").glob("*.eml"))) == 15
