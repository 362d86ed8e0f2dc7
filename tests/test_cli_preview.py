"""`drip preview`: the timeline at a fixed moment and zone, one email in each format, --out files."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from html import escape as html_escape
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import drip.cli.authoring  # noqa: F401  (registers the commands on the group)
from drip.cli import cli
from drip.config import load_site
from drip.course.compile import compile_course
from drip.course.models import Course

REPO = Path(__file__).resolve().parents[1]
COURSE = "le-role-du-cto"
NOW = "2026-12-01T10:00:00+00:00"  # a Tuesday
STEP_FILES = [
    "01-welcome",
    "02-article-posts-cto-vs-lead-dev-vp-engineering-differences-role",
    "03-article-posts-premiers-jours-cto-reussir-prise-de-poste",
    "04-article-posts-vision-technique-roadmap-cto-strategy",
    "05-deeper",
]


@pytest.fixture(scope="module")
def course() -> Course:
    return compile_course(load_site(REPO), COURSE)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--site", str(REPO), "preview", *args])


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def timeline_rows(output: str) -> list[list[str]]:
    """The table's body rows, cells split on Rich's vertical rules."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 6 and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_timeline_in_the_course_zone(course: Course) -> None:
    result = run(COURSE, "--now", NOW)
    assert result.exit_code == 0, result.output
    assert f"{course.title} — subscribing Tue 2026-12-01 11:00 (Europe/Paris)" in result.stdout
    rows = timeline_rows(result.stdout)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [r[1] for r in rows] == [
        "welcome",
        "article:/posts/cto-vs-lead-dev-vp-engineering-differences-role/",
        "article:/posts/premiers-jours-cto-reussir-prise-de-poste/",
        "article:/posts/vision-technique-roadmap-cto-strategy/",
        "deeper",
    ]
    assert [r[2] for r in rows] == [str(step.day) for step in course.steps]
    assert rows[0][3] == "Tue 2026-12-01 11:00 CET"  # the welcome leaves at once
    window = course.window.time.strftime("%H:%M")
    for row in rows[1:]:
        assert row[3].endswith(f" {window} CET")  # later emails wait for the send window
        assert row[3][:3] in {"Mon", "Tue", "Wed", "Thu", "Fri"}
    # Subjects are rendered (no Jinja left) and articles named by their post's title.
    assert all(r[4] and "{{" not in r[4] for r in rows)
    assert [r[5] for r in rows[1:4]] == [step.article.title for step in course.steps[1:4] if step.article]
    assert rows[0][5] == rows[4][5] == "—"


def test_timeline_in_another_zone_keeps_local_send_times(course: Course) -> None:
    result = run(COURSE, "--now", NOW, "--timezone", "America/Montreal")
    assert result.exit_code == 0, result.output
    assert "subscribing Tue 2026-12-01 05:00 (America/Montreal)" in result.stdout
    rows = timeline_rows(result.stdout)
    assert rows[0][3] == "Tue 2026-12-01 05:00 EST"
    window = course.window.time.strftime("%H:%M")
    assert all(r[3].endswith(f" {window} EST") for r in rows[1:])


def test_bad_timezone_is_a_usage_error_with_a_hint() -> None:
    result = run(COURSE, "--timezone", "Europe/Pariss")
    assert result.exit_code == 2
    assert "unknown time zone 'Europe/Pariss'" in result.output
    assert "did you mean 'Europe/Paris'?" in result.output


def test_unknown_course_names_the_closest() -> None:
    result = run("le-role-du-ct")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "no course 'le-role-du-ct'" in result.stderr
    assert "did you mean 'le-role-du-cto'?" in result.stderr


def test_unknown_step_names_the_closest_key() -> None:
    result = run(COURSE, "--step", "welcom")
    assert result.exit_code == 1
    assert "has no step 'welcom'" in result.stderr
    assert "did you mean 'welcome'?" in result.stderr
    result = run(COURSE, "--step", "9")
    assert result.exit_code == 1
    assert "has steps 1 to 5, not 9" in result.stderr


def test_format_needs_a_step() -> None:
    result = run(COURSE, "--format", "text")
    assert result.exit_code == 2
    assert "--format needs --step" in result.output


def test_one_email_as_html_text_and_mjml(course: Course) -> None:
    first = course.steps[1].article
    assert first is not None
    html = run(COURSE, "--step", "2", "--format", "html")
    assert html.exit_code == 0, html.output
    assert html.stdout.lstrip().lower().startswith("<!doctype html")
    assert html_escape(first.title) in html.stdout
    assert "utm_content=" in html.stdout

    text = run(
        COURSE,
        "--step",
        "article:/posts/cto-vs-lead-dev-vp-engineering-differences-role/",
        "--format",
        "text",
    )
    assert text.exit_code == 0, text.output
    assert "<" not in text.stdout.split("http")[0]  # plain text, no markup before the first link
    assert first.title in text.stdout

    mjml = run(COURSE, "--step", "welcome", "--format", "mjml")
    assert mjml.exit_code == 0, mjml.output
    assert mjml.stdout.lstrip().startswith("<mjml")
    assert "</mjml>" in mjml.stdout


def test_one_email_as_eml_reparses() -> None:
    result = run(COURSE, "--step", "1", "--format", "eml", "--now", NOW)
    assert result.exit_code == 0, result.output
    message = parse(result.stdout_bytes)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"].addresses[0].addr_spec == "lettre@cto.example.org"
    assert message["Date"].datetime.isoformat() == "2026-12-01T10:00:00+00:00"
    assert message["List-Unsubscribe"].startswith("<https://cto.example.org/")
    assert message["Subject"]
    assert b"\r\n" in result.stdout_bytes


def test_out_writes_every_email_in_three_formats(tmp_path: Path) -> None:
    result = run(COURSE, "--out", str(tmp_path / "preview"), "--now", NOW)
    out = tmp_path / "preview" / COURSE
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"15 files written to {out}"
    expected = sorted(f"{stem}.{ext}" for stem in STEP_FILES for ext in ("html", "txt", "eml"))
    assert sorted(p.name for p in out.iterdir()) == expected
    welcome = parse((out / "01-welcome.eml").read_bytes())
    html_part = welcome.get_body(preferencelist=("html",))
    assert html_part is not None
    written = (out / "01-welcome.html").read_text(encoding="utf-8")
    assert html_part.get_content().splitlines() == written.splitlines()
    deeper = (out / "05-deeper.txt").read_text(encoding="utf-8")
    assert "guides-livres/etre-ou-ne-pas-etre-cto" in deeper


def test_help_documents_every_option() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for option in ("--now", "--timezone", "--step", "--format", "--out", "--serve", "--port"):
        assert option in result.stdout
    assert "[html|text|mjml|eml]" in result.stdout


def test_out_keeps_one_folder_per_course(tmp_path: Path) -> None:
    import shutil

    site = tmp_path / "site"
    for name in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / name, site / name)
    shutil.copy(REPO / "drip.yaml", site / "drip.yaml")
    shutil.copy(site / "schedules" / f"{COURSE}.yaml", site / "schedules" / "second.yaml")
    with (site / "schedules" / "second.yaml").open("a", encoding="utf-8") as f:
        f.write("closing: false\n")
    out = tmp_path / "out"
    for slug in (COURSE, "second"):
        result = CliRunner().invoke(
            cli, ["--site", str(site), "preview", slug, "--out", str(out), "--now", NOW]
        )
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [COURSE, "second"]
    assert len(list((out / COURSE).iterdir())) == 15
    assert not (out / "second" / "05-deeper.html").exists() and len(list((out / "second").iterdir())) == 12
    # A step removed since the last preview leaves no stale file behind; other files stay.
    (out / "second" / "notes.md").write_text("mine", encoding="utf-8")
    (out / "second" / "09-old-step.html").write_text("old", encoding="utf-8")
    CliRunner().invoke(cli, ["--site", str(site), "preview", "second", "--out", str(out), "--now", NOW])
    assert (out / "second" / "notes.md").exists() and not (out / "second" / "09-old-step.html").exists()
