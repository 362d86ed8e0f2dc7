"""Long work shows a progress bar on a terminal, and nothing of it when output is piped."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_fixtures import T0, real_site
from hugo_support import HUGO_SITE
from rich.console import Console
from test_lists import readers

from drip.cli.progress import progress, progress_bars
from drip.config import load_site
from drip.preview.checks import check_site
from drip.runtime import Runtime
from drip.store.issues import create_issue, create_issue_deliveries
from drip.store.lists import join_lists


def test_a_terminal_gets_a_transient_bar() -> None:
    runtime = Runtime.for_tests("s" * 32)
    screen = io.StringIO()
    runtime.__dict__["console"] = Console(file=screen, force_terminal=True, width=80)
    with progress(runtime, "importing") as advance:
        advance(5, 10)
        advance(5, 10)
    assert "importing" in screen.getvalue() and "\x1b[" in screen.getvalue()


def test_a_pipe_gets_no_bar() -> None:
    runtime = Runtime.for_tests("s" * 32)
    screen = io.StringIO()
    runtime.__dict__["console"] = Console(file=screen, width=80)
    with progress(runtime, "importing") as advance:
        advance(10, 10)
    assert screen.getvalue() == ""


def test_several_pieces_share_one_display_and_a_finished_one_goes() -> None:
    runtime = Runtime.for_tests("s" * 32)
    screen = io.StringIO()
    runtime.__dict__["console"] = Console(file=screen, force_terminal=True, width=80)
    with progress_bars(runtime) as start:
        ticks = start("simulating")
        ticks(1, 3)
        first = start("lettre: issue 1")
        first(2, 4)
        first(2, 4)  # full: removed, the simulation's bar stays
        second = start("lettre: issue 2")
        second(1, 2)
        ticks(2, 3)
    assert "simulating" in screen.getvalue() and "issue 2" in screen.getvalue()


def test_a_check_reports_each_content_file_read(tmp_path: Path) -> None:
    root = tmp_path / "site"
    shutil.copytree(HUGO_SITE, root)  # a check writes its cache next to the site
    calls: list[tuple[int, int]] = []
    report = check_site(load_site(root), progress=lambda done, total: calls.append((done, total)))
    files = len(list((root / "content" / "en").rglob("*.md")))
    assert report.courses == 1
    assert sum(done for done, _ in calls) == files and {total for _, total in calls} == {files}


def test_writing_an_issue_reports_each_batch_against_the_list_size(engine: sa.Engine) -> None:
    readers(engine, 7)
    with engine.begin() as conn:
        join_lists(conn, range(1, 8), ["lettre"], now=T0)
    issue = create_issue(engine, list="lettre", key="k", kind="digest", send_at=T0, post_urls=[], now=T0)
    assert issue is not None
    calls: list[tuple[int, int]] = []
    counts = create_issue_deliveries(
        engine, issue, batch_size=3, now=T0, progress=lambda done, total: calls.append((done, total))
    )
    assert counts.created == 7
    assert calls == [(3, 7), (3, 7), (1, 7)]


@pytest.mark.parametrize("command", ["import", "run", "check"])
def test_piped_import_and_run_until_print_no_escape_codes(tmp_path: Path, command: str) -> None:
    root = real_site(
        tmp_path / "site", database="sqlite:///drip.db", transport="transport:\n  backend: outbox\n"
    ).root
    rows = "email,name\n" + "".join(f"r{i}@example.org,R {i}\n" for i in range(300))
    (root / "readers.csv").write_text(rows, encoding="utf-8")

    def drip(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "drip", "--site", str(root), *args],
            capture_output=True,
            text=True,
            env={"DRIP_SECRET_KEY": "s" * 32, "PATH": "/usr/bin:/bin", "TERM": "xterm-256color"},
            check=False,
        )

    if command == "check":
        done = drip("check")
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout + done.stderr
        return
    done = drip(
        "import", str(root / "readers.csv"), "--course", "le-role-du-cto", "--now", "2026-12-01T08:00"
    )
    assert done.returncode == 0, done.stderr
    if command == "run":
        done = drip("run", "--now", "2026-12-01T08:00", "--until", "2026-12-03T08:00", "--step", "1h")
        assert done.returncode == 0, done.stderr
        assert "sent 300" in done.stdout
    assert "\x1b" not in done.stdout + done.stderr
