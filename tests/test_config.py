"""drip.yaml: every error at once, located, with the closest valid key."""

from __future__ import annotations

from pathlib import Path

import pytest

from drip.config import check_base_url, is_base_url, load_site
from drip.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

VALID = """\
site:
  name: Example
  base_url: https://example.org/
  locale: en
  timezone: America/New_York
sender:
  name: Example
  email: hello@example.org
postal_address: 1 Main St, Springfield
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "drip.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_repository_is_a_valid_site() -> None:
    site = load_site(REPO)
    assert site.config.site.locale == "fr"
    assert site.config.transport.backend == "outbox"
    assert site.content_dir == REPO / "content"


def test_defaults_and_normalised_base_url(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, VALID))
    assert site.config.site.base_url == "https://example.org"
    assert site.config.paths.schedules == "schedules"
    assert site.database_url == "sqlite:///" + str((tmp_path / "drip.db").resolve())


def test_database_url_from_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIP_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert load_site(write(tmp_path, VALID)).database_url == "postgresql+psycopg://u@h/db"


def test_every_error_at_once_with_location_and_hint(tmp_path: Path) -> None:
    text = VALID.replace("  locale: en\n", "  locale: de\n").replace(
        "  timezone: America/New_York\n", "  timezone: Europe/Pariss\n"
    )
    text += "transport:\n  backend: smtp\n  smpt:\n    host: mail\n"
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, text))
    messages = [str(p) for p in info.value.problems]
    path = tmp_path.resolve() / "drip.yaml"
    assert messages == [
        f"{path}:4:11: site.locale: unsupported locale 'de', expected one of fr, en",
        f"{path}:5:13: site.timezone: unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)",
        f"{path}:12:3: transport.smpt: unknown key (did you mean 'smtp'?)",
    ]


def test_missing_required_keys_point_at_their_parent(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, "site:\n  name: x\n  base_url: ftp://x\n"))
    messages = [str(p).split(": ", 1)[1] for p in info.value.problems]
    assert "site.base_url: base_url must start with https:// or http://" in messages
    assert "sender: required key is missing" in messages
    assert "postal_address: required key is missing" in messages


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, "site:\n  name: [unclosed\n"))
    (problem,) = info.value.problems
    assert problem.line == 3
    assert problem.message.startswith("invalid YAML")


def test_no_config_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--site DIR"):
        load_site(tmp_path)


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("https://exemple.fr/", "https://exemple.fr"),
        ("HTTPS://Exemple.FR/Blog/", "https://exemple.fr/Blog"),
        ("https://café.fr/été 2026/", "https://xn--caf-dma.fr/%C3%A9t%C3%A9%202026"),
        ("https://exemple.fr/l'équipe&co", "https://exemple.fr/l%27%C3%A9quipe%26co"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:8080/drip", "http://[::1]:8080/drip"),
    ],
)
def test_base_url_is_kept_in_the_form_every_link_starts_with(written: str, kept: str) -> None:
    """A domain in IDNA, a percent-encoded path: the same in JSON, HTML and a header."""
    assert check_base_url(written) == kept
    assert is_base_url(kept)


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("ftp://exemple.fr", "must start with https:// or http://"),
        ("https://exemple.fr/?lang=fr", "has a query or fragment"),
        ("https://exemple.fr/#top", "has a query or fragment"),
        ("https://moi:secret@exemple.fr", "holds a user name or password"),
        ("https://", "has no valid domain"),
        ("https://exe mple.fr", "has no valid domain"),
        ('https://exemple.fr"onmouseover=x', "has no valid domain"),
    ],
)
def test_a_base_url_links_cannot_follow_is_refused(tmp_path: Path, written: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_site(write(tmp_path, VALID.replace("https://example.org/", written)))
    (problem,) = [p for p in info.value.problems if "base_url" in str(p)]
    assert says in str(problem) and ":3:" in str(problem)  # the file and line of the key
