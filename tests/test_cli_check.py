"""`drip check`: the example site passes, a broken site reports every error at once, located."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import drip.cli.authoring  # noqa: F401  (registers the commands on the group)
from drip.cli import cli
from drip.preview.checks import classify_link, extract_links, locate, strip_tracking

REPO = Path(__file__).resolve().parents[1]
BASE = "https://cto.example.org"
KNOWN = {"/posts/premiers-jours/", "/le-role-du-cto/"}


def run(site: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--site", str(site), "check", *args])


@pytest.mark.parametrize(
    ("href", "level", "message"),
    [
        ("https://cto.example.org/posts/premiers-jours/?utm_source=drip#intro", "ok", ""),
        ("https://CTO.example.org/posts/premiers-jours", "ok", ""),
        ("https://www.python.org/", "ok", ""),
        ("mailto:bonjour@cto.example.org", "ok", ""),
        ("", "error", "is empty"),
        ("   ", "error", "is empty"),
        ("javascript:alert(1)", "error", "uses the unsupported scheme 'javascript'"),
        ("ftp://files.example.org/x", "error", "uses the unsupported scheme 'ftp'"),
        ("mailto:", "error", "has no address after mailto:"),
        ("posts/premiers-jours/", "error", "is relative and cannot resolve in an email"),
        ("https://exa mple.org/", "error", "is malformed: it contains spaces"),
        ("https://[::1/", "error", "is malformed: Invalid IPv6 URL"),
        ("https:///nohost", "error", "is malformed: no valid host name"),
        (
            "https://cto.example.org/posts/premiers-jour/",
            "warning",
            "no content file provides /posts/premiers-jour/",
        ),
    ],
)
def test_classify_link(href: str, level: str, message: str) -> None:
    verdict = classify_link(href, base_url=BASE, known=KNOWN)
    assert verdict.level == level
    assert verdict.message.startswith(message)


def test_unknown_site_path_suggests_the_closest_known_one() -> None:
    verdict = classify_link(f"{BASE}/posts/premiers-jour/?utm_source=drip", base_url=BASE, known=KNOWN)
    assert verdict.hint == "did you mean '/posts/premiers-jours/'?"
    assert verdict.site_path == "/posts/premiers-jour/"


def test_a_site_under_a_folder_only_owns_that_folder() -> None:
    base = "https://example.org/blog"
    assert classify_link("https://example.org/shop/", base_url=base, known={"/x/"}).level == "ok"
    assert classify_link("https://example.org/blog/x", base_url=base, known={"/x/"}).level == "ok"
    assert classify_link("https://example.org/blog/y/", base_url=base, known={"/x/"}).level == "warning"


def test_relative_site_path_gets_its_absolute_form_as_hint() -> None:
    verdict = classify_link("/posts/premiers-jours/", base_url=BASE, known=KNOWN)
    assert verdict.level == "error"
    assert verdict.hint == f"write it as {BASE}/posts/premiers-jours/"


def test_links_are_read_with_entities_decoded() -> None:
    html = '<p><a href="https://a.example/?x=1&amp;y=2">a</a> <a name="top">no</a> <a href="">e</a></p>'
    assert extract_links(html) == ["https://a.example/?x=1&y=2", ""]


def test_tracking_parameters_are_stripped_for_matching() -> None:
    url = f"{BASE}/posts/x/?utm_source=drip&utm_medium=email&ref=a#top"
    assert strip_tracking(url) == f"{BASE}/posts/x/?ref=a#top"


def test_locate_prefers_the_markdown_link_target() -> None:
    text = "intro /x/ mention\n\nsee [here](/x/) now\n"
    assert locate(text, "/x/") == (3, 12)
    assert locate(text, "/missing/") is None


def test_the_example_site_passes_with_warnings_for_pages_outside_content() -> None:
    result = run(REPO)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("1 course, 5 emails, ")
    assert summary.endswith(" warnings")
    # The go-deeper book is written on line 48 of the seed pillar; no file under content/ provides it.
    assert "content/le-role-du-cto.md:48:38: " in result.stdout
    assert "no content file provides /guides-livres/etre-ou-ne-pas-etre-cto/" in result.stdout
    # The three reading-path articles have posts: never reported.
    assert "/posts/premiers-jours-cto-reussir-prise-de-poste/" not in result.stdout


def test_strict_turns_warnings_into_errors() -> None:
    result = run(REPO, "--strict")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "errors:" in result.stderr
    assert "no content file provides /guides-livres/etre-ou-ne-pas-etre-cto/" in result.stderr
    assert "(strict)" in result.stderr


BROKEN_PILLAR = """\
---
title: "Pilier cassé"
description: "Un pilier aux liens douteux."
---

## Par où commencer

1. **[Premiers jours](/posts/premiers-jours-cto-reussir-prise-de-poste/)** — Posture (15 min)
2. **[Un article](/posts/vision-technique-roadmap-cto-strategy/)** — Terrain (20 min)

## Pour approfondir

Le fichier **[Archive](ftp://files.example.org/archive.zip)** et **[Écrire](mailto:)**.

## Explorer les autres piliers

- **[Le rôle du CTO](/le-role-du-cto/)** — Le pilier principal
- **[Premiers jours](/posts/premiers-jours-cto-reussir-prise-de-post/)** — À relire
- **[Vision](posts/vision-technique-roadmap-cto-strategy/)** — Relatif à cette page
- **[Rien]()** — Un lien vide
"""

BROKEN_SCHEDULE = """\
pillar: pilier-casse
cadense: 3
send_window:
  time: "8h30"
"""


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(REPO / "content", site / "content")
    shutil.copy(REPO / "drip.yaml", site / "drip.yaml")
    (site / "schedules").mkdir()
    shutil.copy(REPO / "schedules" / "le-role-du-cto.yaml", site / "schedules" / "le-role-du-cto.yaml")
    (site / "content" / "pilier-casse.md").write_text(BROKEN_PILLAR, encoding="utf-8")
    (site / "schedules" / "pilier-casse.yaml").write_text("pillar: pilier-casse\n", encoding="utf-8")
    (site / "schedules" / "en-panne.yaml").write_text(BROKEN_SCHEDULE, encoding="utf-8")
    return site


def test_a_broken_site_reports_every_error_at_once(broken_site: Path) -> None:
    result = run(broken_site)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    err = result.stderr
    schedule = broken_site / "schedules" / "en-panne.yaml"
    pillar = broken_site / "content" / "pilier-casse.md"
    assert f"{schedule}:2:1: cadense: unknown key (did you mean 'cadence'?)" in err
    assert f"{schedule}:4:9: send_window.time: " in err
    assert (
        f"{pillar}:13:24: pilier-casse.deeper: link 'ftp://files.example.org/archive.zip' uses the unsupported"
        " scheme 'ftp': use https:// or mailto:" in err
    )
    assert f"{pillar}:13:77: pilier-casse.deeper: link 'mailto:' has no address after mailto:" in err
    assert (
        f"{pillar}:19:14: link 'posts/vision-technique-roadmap-cto-strategy/' is relative to the page it is"
        " written on and cannot resolve in an email: start it with / or https://"
        " (did you mean '/posts/vision-technique-roadmap-cto-strategy/'?)" in err
    )
    assert f"{pillar}:20:12: link '' is empty" in err
    assert err.startswith("6 errors:")
    # Unknown same-site paths stay warnings, with the closest known path when one is close.
    assert (
        f"warning: {pillar}:18:22: pilier-casse.deeper: no content file provides"
        " /posts/premiers-jours-cto-reussir-prise-de-post/"
        " (did you mean '/posts/premiers-jours-cto-reussir-prise-de-poste/'?)" in result.stdout
    )
    # Nothing was written into the site.
    assert not (broken_site / "outbox").exists()
    assert not (broken_site / "drip.db").exists()


def test_a_broken_template_is_located(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / name, site / name)
    shutil.copy(REPO / "drip.yaml", site / "drip.yaml")
    template = site / "email_templates" / "welcome.mjml"
    template.write_text(
        '{% extends "layout.mjml" %}\n{% block body %}\n{% if %}\n{% endblock %}\n', encoding="utf-8"
    )
    result = run(site)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith("1 error:")
    assert f"{template}:3: template syntax error" in result.stderr


def test_a_broken_config_is_located(tmp_path: Path) -> None:
    text = (
        (REPO / "drip.yaml")
        .read_text(encoding="utf-8")
        .replace("  timezone: Europe/Paris", "  timezone: Europe/Pari")
    )
    (tmp_path / "drip.yaml").write_text(text, encoding="utf-8")
    result = run(tmp_path)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    line = text.splitlines().index("  timezone: Europe/Pari") + 1
    assert (
        f"{tmp_path.resolve() / 'drip.yaml'}:{line}:13: site.timezone: unknown time zone 'Europe/Pari'"
        in result.stderr
    )
    assert "did you mean 'Europe/Paris'?" in result.stderr


def test_schedule_and_template_problems_come_in_one_report(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / name, site / name)
    shutil.copy(REPO / "drip.yaml", site / "drip.yaml")
    schedule = site / "schedules" / "le-role-du-cto.yaml"
    text = schedule.read_text(encoding="utf-8").replace("cadence: 2\n", "cadence: 2\ncadense: 3\n")
    text = text.replace("welcome:\n", 'welcome:\n  subject: "Bonjour {{ nmae }}"\n')
    schedule.write_text(text, encoding="utf-8")
    template = site / "email_templates" / "welcome.txt"
    template.write_text('{% extends "layout.txt" %}\n{% block body %}\n{{ pilar.title }}\n{% endblock %}\n')
    lines = text.splitlines()
    cadense = lines.index("cadense: 3") + 1
    subject = lines.index('  subject: "Bonjour {{ nmae }}"') + 1
    expected = [
        f"{schedule}:{cadense}:1: cadense: unknown key (did you mean 'cadence'?)",
        f"{schedule}:{subject}:12: welcome.subject: unknown variable 'nmae' (did you mean 'name'?)",
        f"{template}:3: unknown variable 'pilar' in template welcome.txt (did you mean 'pillar'?)",
    ]
    for args in (["check"], ["preview", "le-role-du-cto"]):
        result = CliRunner().invoke(cli, ["--site", str(site), *args])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert result.stderr.startswith("3 errors:"), result.stderr
        for line in expected:
            assert line in result.stderr, (args, result.stderr)
