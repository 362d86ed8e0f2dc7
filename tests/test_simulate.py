"""`drip simulate` agrees with `drip run --until` stepped in 15-minute ticks, across DST changes."""

from __future__ import annotations

import datetime as dt
import email
import email.header
import email.utils
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from delivery_fixtures import real_site

from drip.cli import _register, cli

COURSE = "le-role-du-cto"
START = "2026-09-28T06:00"  # a Monday; Sydney springs forward on 4 October, Paris falls back on
END = "2026-11-07T06:00"  # 25 October and New York on 1 November, all within the course
READERS = {
    "paris@example.org": "Europe/Paris",
    "newyork@example.org": "America/New_York",
    "sydney@example.org": "Australia/Sydney",
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example course at a nine-day cadence, three readers, and forty days of 15-minute ticks."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DRIP_SECRET_KEY", "s" * 32)
    _register()
    root = real_site(
        tmp_path_factory.mktemp("sim") / "site",
        database="sqlite:///drip.db",
        transport="transport:\n  backend: outbox\n",
        batch_size=50,
    ).root
    schedule = root / "schedules" / f"{COURSE}.yaml"
    schedule.write_text(schedule.read_text(encoding="utf-8").replace("cadence: 2", "cadence: 9"), "utf-8")
    for address, zone in READERS.items():
        ok(root, "subscribe", address, "--course", COURSE, "--timezone", zone, "--now", START)
    ok(root, "run", "--now", START, "--until", END, "--step", "15m")
    yield root
    mp.undo()


def invoke(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--site", str(root), *args], env={"COLUMNS": "250"})


def ok(root: Path, *args: str) -> str:
    result = invoke(root, *args)
    assert result.exit_code == 0, result.output
    return result.output


def timeline(output: str) -> list[tuple[str, str, str]]:
    """(step key, UTC time, subject) of each row of simulate's table."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 8 and cells[1].isdigit():
            rows.append((cells[2], cells[4], cells[6]))
    return rows


def outbox(root: Path, address: str) -> list[tuple[str, str]]:
    """(UTC time, subject) of each email the run left in the outbox for ``address``, in time order."""
    found = []
    for path in (root / "outbox").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes())
        if address in str(msg["To"]):
            when = email.utils.parsedate_to_datetime(str(msg["Date"]))
            subject = str(email.header.make_header(email.header.decode_header(str(msg["Subject"]))))
            found.append((when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M"), subject))
    return sorted(found)


@pytest.mark.parametrize("address", list(READERS))
def test_simulate_a_fresh_reader_matches_what_the_run_sent(ran: Path, address: str) -> None:
    zone = READERS[address]
    out = ok(ran, "simulate", COURSE, "--timezone", zone, "--start", START, "--days", "40")
    sim = timeline(out)
    assert len(sim) == 5
    assert [(at, subject) for _, at, subject in sim] == outbox(ran, address)


@pytest.mark.parametrize("address", list(READERS))
def test_simulate_a_subscriber_reads_their_deliveries(ran: Path, address: str) -> None:
    out = ok(ran, "simulate", COURSE, "--subscriber", address, "--days", "40")
    assert "sent" in out
    fresh = ok(ran, "simulate", COURSE, "--timezone", READERS[address], "--start", START, "--days", "40")
    assert timeline(out) == timeline(fresh)


def test_the_local_times_stay_at_the_send_window_across_dst(ran: Path) -> None:
    out = ok(ran, "simulate", COURSE, "--timezone", "Europe/Paris", "--start", START, "--days", "40")
    lines = [line for line in out.splitlines() if "article:" in line or "deeper" in line]
    assert all("08:30 CEST" in x or "08:30 CET" in x for x in lines), out
    assert any("CEST" in x for x in lines) and any("CET " in x for x in lines)


def test_simulate_sends_nothing_and_writes_the_emails_with_out(ran: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in (ran / "outbox").glob("*.eml"))
    db = (ran / "drip.db").read_bytes()
    ok(
        ran,
        "simulate",
        COURSE,
        "--timezone",
        "Asia/Tokyo",
        "--start",
        END,
        "--days",
        "40",
        "--out",
        str(tmp_path),
    )
    assert sorted(p.name for p in (ran / "outbox").glob("*.eml")) == before
    assert (ran / "drip.db").read_bytes() == db
    written = sorted(p.suffix for p in (tmp_path / COURSE).iterdir())
    assert written == [".eml"] * 5 + [".html"] * 5 + [".txt"] * 5


def test_simulate_errors_are_located(ran: Path) -> None:
    result = invoke(ran, "simulate", COURSE, "--subscriber", "nobody@example.org", "--days", "3")
    assert result.exit_code == 1 and "no subscriber" in result.output
    both = invoke(
        ran, "simulate", COURSE, "--subscriber", "paris@example.org", "--start", START, "--days", "3"
    )
    assert both.exit_code == 2
