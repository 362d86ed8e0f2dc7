"""`drip plan`: exit status 0 / 2 / 1, --json, and its output pinned by golden text (tests/golden/plan/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from delivery_fixtures import real_site

from drip.cli import _register, cli

GOLDEN = Path(__file__).parent / "golden" / "plan"
COURSE = "le-role-du-cto"
NOW = "2026-12-04T08:00"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRIP_SECRET_KEY", "s" * 32)
    _register()
    site = real_site(
        tmp_path / "site", database="sqlite:///drip.db", transport="transport:\n  backend: outbox\n"
    )
    for i in (1, 2):
        invoke(
            site.root, "subscribe", f"lecteur{i}@example.org", "--course", COURSE, "--now", "2026-12-01T08:00"
        )
    invoke(site.root, "run", "--now", "2026-12-01T08:00", "--until", NOW, "--step", "1h")
    return site.root


def invoke(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--site", str(root), *args], env={"COLUMNS": "250"})


def edit(root: Path) -> None:
    """The third article leaves the reading path; the second article's post is deleted."""
    pillar = root / "content" / f"{COURSE}.md"
    text = pillar.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("3. **[Vision technique"))
    pillar.write_text(text.replace(line + "\n", ""), encoding="utf-8")
    (root / "content" / "posts" / "premiers-jours-cto-reussir-prise-de-poste.md").unlink()


def golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_text(text, encoding="utf-8", newline="")
        return
    if not path.is_file():
        pytest.fail(f"no golden file {path}; create it with: pytest {__file__} --update-golden")
    assert text == path.read_text(encoding="utf-8")


def test_nothing_to_change_exits_0(root: Path, update_golden: bool) -> None:
    result = invoke(root, "plan", COURSE, "--now", NOW)
    assert result.exit_code == 0, result.output
    golden("up-to-date.txt", result.output, update_golden)


def test_changes_exit_2_and_a_deleted_post_is_flagged(root: Path, update_golden: bool) -> None:
    edit(root)
    result = invoke(root, "plan", COURSE, "--now", NOW)
    assert result.exit_code == 2, result.output
    assert "premiers-jours-cto-reussir-prise-de-poste/, which no content file provides" in result.output
    golden("changes.txt", result.output, update_golden)


def test_json_says_the_same(root: Path, update_golden: bool) -> None:
    edit(root)
    result = invoke(root, "plan", COURSE, "--json", "--now", NOW)
    assert result.exit_code == 2, result.output
    data = json.loads(result.output)
    assert data["state"] == "pending"
    assert [(c["kind"], c["cancelled"]) for c in data["changes"]] == [("moved", 0), ("removed", 2)]
    assert [d["step"] for d in data["dead_links"]] == [
        "article:/posts/premiers-jours-cto-reussir-prise-de-poste/"
    ]
    golden("changes.json", result.output, update_golden)


def test_apply_exits_2_then_plan_exits_0(root: Path) -> None:
    edit(root)
    assert invoke(root, "plan", COURSE, "--apply", "--now", NOW).exit_code == 2
    again = invoke(root, "plan", COURSE, "--json", "--now", NOW)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["state"] == "up to date"


def test_errors_exit_1(root: Path) -> None:
    result = invoke(root, "plan", "no-such-course", "--now", NOW)
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_check_flags_a_deleted_post_a_step_sends(root: Path) -> None:
    edit(root)
    result = invoke(root, "check", "--now", NOW)
    assert "renamed or deleted" in result.output, result.output
