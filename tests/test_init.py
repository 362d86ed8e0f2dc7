"""`drip init` in a Hugo-style site: drip.yaml from Hugo's config, one schedule per pillar, never overwriting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hugo_support import HUGO_SITE

from drip.cli import _register, cli

REPO = Path(__file__).resolve().parent.parent
FLAGS = ("--postal-address", "12 rue des Lilas, 69003 Lyon", "--timezone", "Europe/Paris")


@pytest.fixture
def hugo(tmp_path: Path) -> Path:
    _register()
    shutil.copytree(REPO / "content", tmp_path / "content")
    return tmp_path


def drip(root: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--site", str(root), *args], input=stdin)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "hugo.toml",
            'baseURL = "https://cto.example.org/"\ntitle = "Le métier de CTO"\nlanguageCode = "fr-fr"\n',
        ),
        ("hugo.yaml", "baseURL: https://cto.example.org/\ntitle: Le métier de CTO\nlanguageCode: fr\n"),
        (
            "config.toml",
            'baseurl = "https://cto.example.org"\ntitle = "Le métier de CTO"\ndefaultContentLanguage = "fr"\n',
        ),
    ],
)
def test_init_reads_hugo_and_check_then_passes(hugo: Path, name: str, text: str) -> None:
    (hugo / name).write_text(text, encoding="utf-8")
    result = drip(hugo, "init", "--yes", *FLAGS)
    assert result.exit_code == 0, result.output
    config = (hugo / "drip.yaml").read_text(encoding="utf-8")
    assert 'name: "Le métier de CTO"' in config
    assert 'base_url: "https://cto.example.org"' in config
    assert 'locale: "fr"' in config
    schedule = (hugo / "schedules" / "le-role-du-cto.yaml").read_text(encoding="utf-8")
    assert schedule.startswith("# Course compiled from the pillar page le-role-du-cto")
    # A list named as the site's broadcast names it (content/newsletters/), and its weekly digest.
    assert (hugo / "schedules" / "lettre.yaml").read_text(encoding="utf-8").count("kind: list") == 1
    digest = (hugo / "schedules" / "lettre-weekly.yaml").read_text(encoding="utf-8")
    assert "kind: digest" in digest and "list: lettre" in digest and 'cron: "0 9 * * mon"' in digest
    checked = drip(hugo, "check")
    assert checked.exit_code == 0, checked.output
    assert "1 course, 5 emails" in checked.output


def test_rerunning_never_overwrites_a_file(hugo: Path) -> None:
    (hugo / "hugo.toml").write_text('baseURL = "https://cto.example.org/"\ntitle = "T"\n', encoding="utf-8")
    assert drip(hugo, "init", "--yes", *FLAGS).exit_code == 0
    (hugo / "drip.yaml").write_text((hugo / "drip.yaml").read_text() + "# mine\n")
    (hugo / "schedules" / "le-role-du-cto.yaml").write_text("pillar: le-role-du-cto\n")
    again = drip(hugo, "init", "--yes", *FLAGS)
    assert again.exit_code == 0, again.output
    assert "kept drip.yaml" in again.output and "kept schedules/le-role-du-cto.yaml" in again.output
    assert (hugo / "drip.yaml").read_text().endswith("# mine\n")
    assert (hugo / "schedules" / "le-role-du-cto.yaml").read_text() == "pillar: le-role-du-cto\n"


def test_questions_without_yes(hugo: Path) -> None:
    answers = "https://cto.example.org\nMon site\nen\nEurope/Paris\n\n\n1 rue X, Paris\n"
    result = drip(hugo, "init", stdin=answers)
    assert result.exit_code == 0, result.output
    config = (hugo / "drip.yaml").read_text(encoding="utf-8")
    assert 'name: "Mon site"' in config and 'email: "newsletter@cto.example.org"' in config
    assert drip(hugo, "check").exit_code == 0


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("hugo.toml", 'baseURL = "https://x.org\n', "hugo.toml: not valid TOML"),
        ("hugo.yaml", "title: [unclosed\n", "hugo.yaml:2: not valid YAML"),
        ("hugo.yaml", "- a list\n", "hugo.yaml: Hugo's config must be a mapping"),
    ],
)
def test_a_broken_hugo_config_is_a_located_error(hugo: Path, name: str, text: str, where: str) -> None:
    (hugo / name).write_text(text, encoding="utf-8")
    result = drip(hugo, "init", "--yes", *FLAGS)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert where in result.output.replace(str(hugo) + "/", "")
    assert not (hugo / "drip.yaml").exists()


def test_no_hugo_config_and_yes_needs_the_base_url(hugo: Path) -> None:
    result = drip(hugo, "init", "--yes", *FLAGS)
    assert result.exit_code == 2 and "base url" in result.output.lower()
    done = drip(hugo, "init", "--yes", "--base-url", "https://example.org", *FLAGS)
    assert done.exit_code == 0, done.output


def test_init_writes_no_digest_when_the_site_has_lists(hugo: Path) -> None:
    (hugo / "schedules").mkdir()
    (hugo / "schedules" / "mine.yaml").write_text("kind: list\ntitle: Mine\n", encoding="utf-8")
    (hugo / "hugo.toml").write_text('baseURL = "https://cto.example.org/"\ntitle = "T"\n', encoding="utf-8")
    result = drip(hugo, "init", "--yes", "--postal-address", "1 rue X, 75001 Paris")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (hugo / "schedules").glob("*.yaml")) == ["le-role-du-cto.yaml", "mine.yaml"]


def test_init_reads_the_language_folder_as_check_does(tmp_path: Path) -> None:
    """content/en/, content/fr/ and page.fr.md: every pillar of the site's language gets a schedule that
    `drip check` compiles right away."""
    _register()
    shutil.copytree(HUGO_SITE / "content", tmp_path / "content")
    (tmp_path / "hugo.toml").write_text(
        'baseURL = "https://docs.example.org/"\ntitle = "Docs"\ndefaultContentLanguage = "en"\n',
        encoding="utf-8",
    )
    result = drip(tmp_path, "init", "--yes", *FLAGS)
    assert result.exit_code == 0, result.output
    assert "paths:" not in (tmp_path / "drip.yaml").read_text(encoding="utf-8")  # content/en/ is found
    written = sorted(p.name for p in (tmp_path / "schedules").glob("*.yaml"))
    assert written == [
        "content-management.yaml",
        "getting-started.yaml",
        "hugo-modules.yaml",
        "newsletter-weekly.yaml",
        "newsletter.yaml",
    ]
    pillar = (tmp_path / "schedules" / "hugo-modules.yaml").read_text(encoding="utf-8")
    assert 'pillar: "hugo-modules/_index.md"' in pillar  # relative to content/en/, as check reads it
    checked = drip(tmp_path, "check")
    assert checked.exit_code == 0, checked.output
    assert "3 courses, 11 emails" in checked.output


def test_init_follows_content_dir_and_default_content_language(tmp_path: Path) -> None:
    _register()
    docs = tmp_path / "docs"
    shutil.copytree(HUGO_SITE / "content", docs)
    guide = docs / "fr" / "guide"
    guide.mkdir()
    (guide / "_index.md").write_text(
        "---\ntitle: Guide\n---\n\n## Par où commencer\n\n- [Installer](/guide/installer/)\n",
        encoding="utf-8",
    )
    (guide / "installer.md").write_text("---\ntitle: Installer\n---\nTexte.\n", encoding="utf-8")
    (guide / "installer.en.md").write_text("---\ntitle: Install\n---\nText.\n", encoding="utf-8")
    (tmp_path / "hugo.toml").write_text(
        'baseURL = "https://docs.example.org/"\ntitle = "Docs"\nlanguageCode = "en-us"\n'
        'defaultContentLanguage = "fr"\ncontentDir = "docs"\n',
        encoding="utf-8",
    )
    result = drip(tmp_path, "init", "--yes", *FLAGS)
    assert result.exit_code == 0, result.output
    config = (tmp_path / "drip.yaml").read_text(encoding="utf-8")
    assert 'locale: "fr"' in config and 'content: "docs/fr"' in config
    assert (tmp_path / "schedules" / "guide.yaml").is_file()
    assert not (tmp_path / "schedules" / "hugo-modules.yaml").exists()  # English, not the site's language
    checked = drip(tmp_path, "check")
    assert checked.exit_code == 0, checked.output
    assert "1 course, 2 emails" in checked.output
