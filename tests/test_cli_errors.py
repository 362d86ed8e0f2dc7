"""A user's mistakes on the command line: a located message, a non-zero exit, no traceback.

Each test reproduces one mistake that once ended in a traceback or a misleading
answer, on a copy of the example site.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import drip.cli.authoring  # each module registers its commands
import drip.cli.delivery
import drip.cli.subscribers
from drip.cli import cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the example site, its database inside it."""
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(REPO / "drip.yaml", root / "drip.yaml")
    for folder in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / folder, root / folder)
    monkeypatch.chdir(root)
    for name in ("DRIP_DATABASE_URL", "DRIP_SECRET_KEY", "SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return root


def drip(site: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--site", str(site), *args])
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )
    return result


def errors(result: Result) -> list[str]:
    """The reported problems, one a line, without the "N errors:" heading."""
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(("error:", "errors:")))
    return [line.strip() for line in lines[start + 1 :]]


@pytest.mark.parametrize(
    ("relative", "good_prefix", "column"),
    [
        ("drip.yaml", b"site: ", 7),
        ("schedules/le-role-du-cto.yaml", b"pillar: ", 9),
        ("content/le-role-du-cto.md", b"---\ntitle: ", 8),
        ("email_templates/welcome.txt", b"Bonjour ", 9),
    ],
)
def test_a_file_that_is_not_utf8_is_located(site: Path, relative: str, good_prefix: str, column: int) -> None:
    """Before: a Latin-1 file anywhere in the site ended `drip check` with a UnicodeDecodeError traceback."""
    path = site / relative
    path.write_bytes(good_prefix + "Café".encode("latin-1") + b"\n")
    result = drip(site, "check")
    assert result.exit_code == 1
    line = good_prefix.count(b"\n") + 1
    assert f"{path}:{line}:{column + 3}: not UTF-8 text (byte 0xe9): save the file as UTF-8" in errors(result)
