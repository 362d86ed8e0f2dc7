"""Long work shows a progress bar on a terminal, and nothing of it when output is piped."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from delivery_fixtures import real_site
from rich.console import Console

from drip.cli.progress import progress
from drip.runtime import Runtime


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


@pytest.mark.parametrize("command", ["import", "run"])
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

    done = drip(
        "import", str(root / "readers.csv"), "--course", "le-role-du-cto", "--now", "2026-12-01T08:00"
    )
    assert done.returncode == 0, done.stderr
    if command == "run":
        done = drip("run", "--now", "2026-12-01T08:00", "--until", "2026-12-03T08:00", "--step", "1h")
        assert done.returncode == 0, done.stderr
        assert "sent 300" in done.stdout
    assert "\x1b" not in done.stdout + done.stderr
