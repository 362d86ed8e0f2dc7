"""A user's mistakes on the command line: a located message, a non-zero exit, no traceback.

Each test reproduces one mistake that once ended in a traceback or a misleading
answer, on a copy of the example site.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from drip.cli import authoring, cli, delivery, demo, subscribers, web  # noqa: F401  (modules register their commands)
from drip.store.claims import claim
from drip.store.db import connect

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the example site, its database inside it."""
    root = tmp_path / "site"
    root.mkdir()
    shutil.copy(REPO / "drip.yaml", root / "drip.yaml")
    for folder in ("content", "schedules", "email_templates"):
        shutil.copytree(REPO / folder, root / folder)
    # Run from outside the site (commands get --site): problems then show absolute paths.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name in ("DRIP_DATABASE_URL", "DRIP_SECRET_KEY", "SENDGRID_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return root


def run_drip(site: Path, *args: str) -> Result:
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
def test_a_file_that_is_not_utf8_is_located(
    site: Path, relative: str, good_prefix: bytes, column: int
) -> None:
    """Before: a Latin-1 file anywhere in the site ended `drip check` with a UnicodeDecodeError traceback."""
    path = site / relative
    path.write_bytes(good_prefix + "Café".encode("latin-1") + b"\n")
    result = run_drip(site, "check")
    assert result.exit_code == 1
    line = good_prefix.count(b"\n") + 1
    assert f"{path}:{line}:{column + 3}: not UTF-8 text (byte 0xe9): save the file as UTF-8" in errors(result)


def test_preview_shows_the_dates_emails_really_leave(site: Path) -> None:
    """Before: the timeline put days 4 and 6 both on Monday 7 December, while the store sends day 6 on Tuesday."""
    result = run_drip(site, "preview", "le-role-du-cto", "--now", "2026-12-01T07:00")
    assert result.exit_code == 0
    dates = [line.split("│")[4].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert dates == [
        "Tue 2026-12-01 08:00 CET",
        "Thu 2026-12-03 08:30 CET",
        "Mon 2026-12-07 08:30 CET",
        "Tue 2026-12-08 08:30 CET",
        "Wed 2026-12-09 08:30 CET",
    ]


def test_a_course_pillar_without_reading_path_is_one_error(site: Path) -> None:
    """Before: also a warning claiming "no course uses this pillar yet", though le-role-du-cto uses it."""
    pillar = site / "content" / "le-role-du-cto.md"
    pillar.write_text(
        pillar.read_text(encoding="utf-8").replace("Par où commencer", "Lectures"), encoding="utf-8"
    )
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert "no course uses this pillar" not in result.output
    assert errors(result) == [
        f"{pillar}:6:1: no reading path: no heading 'Par où commencer' or 'Commencer ici' or 'Start here' or "
        "'Where to start', and no reading_path in front matter; headings in this file: 'Le rôle du CTO', "
        "'À qui s'adresse cette page', 'Lectures', 'Articles', 'Comprendre les rôles', 'Les premiers pas', "
        "'Recruter et construire son équipe', 'Pour approfondir', 'Explorer les autres piliers'"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("preview", "le-role-du-cto", "--now", "yesterday"),
            "Error: Invalid value for '--now': 'yesterday' is not an ISO 8601 date-time, "
            "e.g. 2026-12-01T08:00 or 2026-12-01T08:00+01:00",
        ),
        (
            ("run", "--now", "2026-12-01T07:00", "--until", "2026-12-32"),
            "Error: Invalid value for '--until': '2026-12-32' is not an ISO 8601 date-time, "
            "e.g. 2026-12-01T08:00 or 2026-12-01T08:00+01:00",
        ),
        (
            ("run", "--now", "2026-12-01T07:00", "--until", "2026-12-15", "--step", "1x"),
            "Error: Invalid value for '--step': '1x' is not a duration; use e.g. 30m, 1h or 1d",
        ),
        (
            ("run", "--now", "2026-12-15T07:00", "--until", "2026-12-01"),
            "Error: Invalid value for '--until': '2026-12-01' is before --now",
        ),
    ],
)
def test_a_bad_time_option_is_named_and_nothing_is_stored(
    site: Path, args: tuple[str, ...], message: str
) -> None:
    """Before: "Invalid value: ..." without the option's name, and drip run checked --until and --step
    only after opening the store and applying course edits."""
    result = run_drip(site, *args)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == message
    assert not (site / "drip.db").exists()


def test_a_csv_with_only_a_header_is_refused(site: Path) -> None:
    """Before: "0 new, 0 updated, 0 unchanged" and exit status 0, as if the import had worked."""
    readers = site / "readers.csv"
    readers.write_text("email,name,timezone\n", encoding="utf-8")
    result = run_drip(site, "import", str(readers), "--course", "le-role-du-cto")
    assert result.exit_code == 1
    assert errors(result) == [f"{readers}:2: no subscribers: the file has a header line but no rows"]
    assert not (site / "drip.db").exists() or "0 subscribers" in run_drip(site, "subscribers", "list").output


def test_a_misspelt_template_override_is_reported(site: Path) -> None:
    """Before: email_templates/welcom.mjml was silently ignored and the default welcome email went out."""
    typo = site / "email_templates" / "welcom.mjml"
    shutil.copy(REPO / "drip" / "defaults" / "email_templates" / "welcome.mjml", typo)
    result = run_drip(site, "check", "--strict")
    assert result.exit_code == 1
    assert (
        f"{typo}: replaces no default template and no template includes it, so it is never used (strict) "
        "(did you mean 'welcome.mjml'?)"
    ) in errors(result)
    # A site's own partial, included by one of its templates, is not reported.
    typo.rename(site / "email_templates" / "signature.mjml")
    layout = (REPO / "drip" / "defaults" / "email_templates" / "layout.mjml").read_text(encoding="utf-8")
    (site / "email_templates" / "layout.mjml").write_text(
        layout + '{% if false %}{% include "signature.mjml" %}{% endif %}\n', encoding="utf-8"
    )
    assert "never used" not in run_drip(site, "check").output


def test_listing_a_misspelt_course_names_the_closest(site: Path) -> None:
    """Before: "0 subscribers" and exit status 0, as if nobody were enrolled in the course."""
    assert run_drip(site, "subscribe", "camille@example.org", "--course", "le-role-du-cto").exit_code == 0
    result = run_drip(site, "subscribers", "list", "--course", "le-role-du-ct")
    assert result.exit_code == 1
    assert errors(result) == [
        "course: no course 'le-role-du-ct' (courses: le-role-du-cto) (did you mean 'le-role-du-cto'?)"
    ]
    assert "camille@example.org" in run_drip(site, "subscribers", "list", "--course", "le-role-du-cto").output


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_smtp_server_that_is_down_is_explained(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: "sent 0, retrying 1" and nowhere, not even in drip status, a word about why."""
    port = _closed_port()
    config = site / "drip.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "backend: outbox", f"backend: smtp\n  smtp: {{host: 127.0.0.1, port: {port}, security: none}}"
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("DRIP_SECRET_KEY", "k" * 32)
    now = "2026-12-01T07:00"
    assert (
        run_drip(
            site, "subscribe", "camille@example.org", "--course", "le-role-du-cto", "--now", now
        ).exit_code
        == 0
    )
    sent = run_drip(site, "run", "--once", "--now", now)
    assert sent.exit_code == 0
    assert sent.output.strip() == "sent 0, retrying 1 (drip status gives the reasons)"
    status = run_drip(site, "status", "--now", now)
    reason = (
        f"TransientTransportError: cannot reach SMTP server 127.0.0.1:{port}: [Errno 111] Connection refused"
    )
    table = status.output[status.output.index("Retrying (last error)") :].splitlines()
    cells = [[c.strip() for c in line.split("│")[1:4]] for line in table if line.startswith("│")]
    # Rich wraps long cells over several lines: put each column back together.
    columns = [" ".join(piece for piece in column if piece) for column in zip(*cells, strict=True)]
    assert columns == ["le-role-du-cto", reason, "1"]


def test_a_tab_in_a_schedule_says_yaml_wants_spaces(site: Path) -> None:
    """Before: only PyYAML's "found character '\\t' that cannot start any token"."""
    schedule = site / "schedules" / "le-role-du-cto.yaml"
    schedule.write_text("pillar: le-role-du-cto\nsend_window:\n\ttime: '08:30'\n", encoding="utf-8")
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [
        f"{schedule}:3:1: invalid YAML: found character '\\t' that cannot start any token "
        "(while scanning for the next token) (indent with spaces: YAML does not allow tabs)"
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "no-such-host.invalid"])
def test_serve_on_a_port_in_use_or_an_unknown_host_is_one_line(
    site: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    """Before: "Serving … on http://…" then uvicorn's own log of the failure, and exit status 3."""
    monkeypatch.setenv("DRIP_SECRET_KEY", "k" * 32)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_drip(site, "serve", "--host", host, "--port", str(port))
    assert result.exit_code == 1
    assert "Serving" not in result.output
    reason = "Address already in use" if host == "127.0.0.1" else "Name or service not known"
    assert result.output.splitlines()[-1] == f"Error: cannot listen on {host}:{port}: {reason}"


def test_a_broken_subject_is_located_in_the_schedule(site: Path) -> None:
    """Before: "schedules/…yaml:1: welcome.subject: template syntax error…", line 1 being the subject's own
    line, not the file's, and a second broken subject only after fixing the first."""
    schedule = site / "schedules" / "le-role-du-cto.yaml"
    schedule.write_text(
        'pillar: le-role-du-cto\nwelcome: {subject: "Bonjour {{ name "}\narticles:\n'
        '  /posts/premiers-jours-cto-reussir-prise-de-poste/:\n    preheader: "{% if name %}x"\n',
        encoding="utf-8",
    )
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [
        f"{schedule}:2:20: welcome.subject: template syntax error: unexpected end of template, "
        "expected 'end of print statement'.",
        f"{schedule}:5:16: articles./posts/premiers-jours-cto-reussir-prise-de-poste/.preheader: template "
        "syntax error: Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' "
        "or 'endif'. The innermost block that needs to be closed is 'if'.",
    ]


def test_a_site_without_schedules_is_not_all_good(site: Path) -> None:
    """Before: "0 courses, 0 emails, 0 links: all good" and exit status 0 with no schedules folder at all."""
    shutil.rmtree(site / "schedules")
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [f"{site / 'schedules'}: schedules folder not found"]
    (site / "schedules").mkdir()
    result = run_drip(site, "check")
    assert result.exit_code == 0
    assert f"warning: {site / 'schedules'}: no course yet: a course is a schedule file, <course>.yaml" in (
        result.output.splitlines()
    )


def test_demo_with_a_misspelt_course_fails_before_running_anything(site: Path) -> None:
    """Before: the whole site check ran and printed its warnings, then the typo was reported."""
    result = run_drip(site, "demo", "--course", "le-role-du-ct")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "1 error:",
        "  no course 'le-role-du-ct' in schedules/ (courses: le-role-du-cto) (did you mean 'le-role-du-cto'?)",
    ]


def test_an_unknown_step_lists_the_steps(site: Path) -> None:
    """Before: "has no step 'article:/posts/x/'" and no way to learn the keys but reading the timeline."""
    result = run_drip(site, "preview", "le-role-du-cto", "--step", "article:/posts/x/")
    assert result.exit_code == 1
    assert errors(result) == [
        "course 'le-role-du-cto' has no step 'article:/posts/x/' (steps: welcome, "
        "article:/posts/cto-vs-lead-dev-vp-engineering-differences-role/, "
        "article:/posts/premiers-jours-cto-reussir-prise-de-poste/, "
        "article:/posts/vision-technique-roadmap-cto-strategy/, deeper, or 1 to 5)"
    ]


def test_subscribers_help_says_what_the_group_does(site: Path) -> None:
    """Before: "Look at the subscriber list." for a group that also exports and erases, and no help on --format."""
    assert "List, export and erase subscribers." in run_drip(site, "subscribers", "--help").output
    export_help = " ".join(run_drip(site, "subscribers", "export", "--help").output.split())
    assert "Without EMAIL: every subscriber as CSV" in export_help
    assert "--format [csv|json] Format of the list; one person's data (EMAIL) is always JSON." in export_help


def test_a_misspelt_front_matter_key_is_reported(site: Path) -> None:
    """Before: "titel:" in a pillar was kept as a key of the site's own and the title silently fell back."""
    pillar = site / "content" / "le-role-du-cto.md"
    pillar.write_text(pillar.read_text(encoding="utf-8").replace("title:", "titel:", 1), encoding="utf-8")
    post = site / "content" / "posts" / "autre.md"
    post.write_text(
        "---\ntitle: Autre\ndraft: false\ntags: [cto]\ndescripton: Un autre article\n---\nTexte.\n",
        encoding="utf-8",
    )
    result = run_drip(site, "check", "--strict")
    assert result.exit_code == 1
    found = [line for line in errors(result) if "front matter" in line]
    assert found == [
        f"{pillar}:2:1: titel: not a front matter key drip reads (strict) (did you mean 'title'?)",
        f"{post}:5:1: descripton: not a front matter key drip reads (strict) (did you mean 'description'?)",
    ]


def test_an_empty_drip_yaml_names_the_keys_it_needs(site: Path) -> None:
    """Before: "expected a mapping of settings at the top level", which an empty file does not explain."""
    config = site / "drip.yaml"
    config.write_text("# à remplir\n", encoding="utf-8")
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [
        f"{config}: site: required key is missing",
        f"{config}: sender: required key is missing",
        f"{config}: postal_address: required key is missing",
    ]


def test_an_impossible_smtp_port_or_timeout_is_a_config_error(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: drip.yaml passed, then drip run died with a traceback (OverflowError or "Timeout value out of
    range") inside the SMTP transport, leaving the claimed email stuck until its lease expired."""
    config = site / "drip.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "backend: outbox",
            "backend: smtp\n  smtp: {host: 127.0.0.1, port: 70000, security: none, timeout: -1}",
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("DRIP_SECRET_KEY", "k" * 32)
    result = run_drip(site, "run", "--once", "--now", "2026-12-01T07:00")
    assert result.exit_code == 1
    assert errors(result) == [
        f"{config}:16:33: transport.smtp.port: Input should be less than or equal to 65535, got 70000",
        f"{config}:16:65: transport.smtp.timeout: Input should be greater than 0, got -1",
    ]


def test_serve_without_a_signing_key_mentions_demo(site: Path) -> None:
    """Before: only "export DRIP_SECRET_KEY=…", though --demo is the way to try the server on a laptop."""
    result = run_drip(site, "serve")
    assert result.exit_code == 1
    assert result.output.strip() == (
        'error: DRIP_SECRET_KEY is not set: export a long random value, e.g. `export DRIP_SECRET_KEY="$(python -c '
        "'import secrets; print(secrets.token_urlsafe(32))')\"`; to try drip serve on this machine only, add --demo"
    )
    assert not (site / "drip.db").exists()


def test_status_still_reports_when_a_schedule_is_broken(site: Path) -> None:
    """Before: drip status printed only the schedule's error, hiding every figure of the store."""
    now = "2026-12-01T07:00"
    assert (
        run_drip(
            site, "subscribe", "camille@example.org", "--course", "le-role-du-cto", "--now", now
        ).exit_code
        == 0
    )
    schedule = site / "schedules" / "le-role-du-cto.yaml"
    schedule.write_text(schedule.read_text(encoding="utf-8") + "cadense: 3\n", encoding="utf-8")
    result = run_drip(site, "status", "--now", now)
    assert result.exit_code == 0
    rows = {
        cells[1].strip(): cells[2].strip()
        for cells in (line.split("│") for line in result.output.splitlines() if line.startswith("│"))
    }
    assert rows["enrolled (active)"] == "1"
    assert rows["pending"] == "5"
    assert rows["course edits"] == "schedule has errors: see drip check"


def test_step_without_until_is_refused(site: Path) -> None:
    """Before: `drip run --once --step 30m` ignored --step without a word."""
    result = run_drip(site, "run", "--once", "--now", "2026-12-01T07:00", "--step", "30m")
    assert result.exit_code == 2
    assert (
        result.output.splitlines()[-1] == "Error: --step needs --until: it is the step of a simulated clock"
    )
    assert not (site / "drip.db").exists()


@pytest.mark.parametrize("command", [("subscribers", "erase", "--yes"), ("subscribers", "export")])
def test_erase_and_export_of_a_misspelt_address_suggest_the_stored_one(
    site: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """Before: "no subscriber with address …" with no hint, where drip unsubscribe suggests the closest."""
    monkeypatch.setenv("DRIP_SECRET_KEY", "k" * 32)
    assert run_drip(site, "subscribe", "camille@example.org", "--course", "le-role-du-cto").exit_code == 0
    result = run_drip(site, *command, "camile@example.org")
    assert result.exit_code == 1
    assert errors(result) == [
        "email: no subscriber with address 'camile@example.org' (did you mean 'camille@example.org'?)"
    ]
    assert "camille@example.org" in run_drip(site, "subscribers", "list").output


def test_a_drip_yaml_folder_is_not_called_missing(site: Path) -> None:
    """Before: "no drip.yaml here; run drip from a site's root", though drip.yaml was right there."""
    config = site / "drip.yaml"
    config.unlink()
    config.mkdir()
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [f"{config}: drip.yaml is a folder; it must be a YAML file"]


def test_sendgrid_without_its_key_points_into_drip_yaml(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the missing SENDGRID_API_KEY was reported with a key path but no file or line."""
    config = site / "drip.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("backend: outbox", "backend: sendgrid"), encoding="utf-8"
    )
    monkeypatch.setenv("DRIP_SECRET_KEY", "k" * 32)
    result = run_drip(site, "run", "--once", "--now", "2026-12-01T07:00")
    assert result.exit_code == 1
    assert errors(result) == [
        f"{config}:15:3: transport.sendgrid.api_key_env: environment variable SENDGRID_API_KEY is not set: "
        "the SendGrid transport needs an API key, and keys never live in drip.yaml"
    ]


def test_preview_out_where_a_file_is_in_the_way(site: Path) -> None:
    """Before: a NotADirectoryError traceback from mkdir."""
    (site / "previews").write_text("", encoding="utf-8")
    result = run_drip(site, "preview", "le-role-du-cto", "--out", str(site / "previews" / "cto"))
    assert result.exit_code == 1
    assert errors(result) == [
        f"{site / 'previews' / 'cto' / 'le-role-du-cto'}: cannot write: Not a directory"
    ]


def test_export_to_a_path_that_cannot_be_written(site: Path) -> None:
    """Before: a NotADirectoryError traceback from open()."""
    (site / "exports").write_text("", encoding="utf-8")
    target = site / "exports" / "readers.csv"
    result = run_drip(site, "subscribers", "export", "--output", str(target))
    assert result.exit_code == 1
    assert errors(result) == [f"{target}: --output: cannot write: Not a directory"]


def test_a_file_where_the_outbox_folder_goes_stops_run_before_claiming(site: Path) -> None:
    """Before: a FileExistsError traceback from mkdir when drip run opened the outbox."""
    now = "2026-12-01T07:00"
    assert (
        run_drip(
            site, "subscribe", "camille@example.org", "--course", "le-role-du-cto", "--now", now
        ).exit_code
        == 0
    )
    (site / "outbox").write_text("", encoding="utf-8")
    result = run_drip(site, "run", "--once", "--now", now)
    assert result.exit_code == 1
    assert errors(result) == [
        f"{site / 'outbox'}: paths.outbox: cannot create the outbox folder: File exists"
    ]
    status = run_drip(site, "status", "--now", now).output
    assert "│ in flight (claimed) │ 0" in status
    assert "│ pending             │ 5" in status
    # A worker leases the welcome email: in flight while the lease lasts, pending again after.
    engine = connect(f"sqlite:///{site / 'drip.db'}")
    moment = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
    assert len(claim(engine, now=moment, limit=10, lease_seconds=300, worker="w")) == 1
    engine.dispose()
    status = run_drip(site, "status", "--now", now).output
    assert "│ in flight (claimed) │ 1" in status
    assert "│ pending             │ 4" in status
    status = run_drip(site, "status", "--now", "2026-12-01T07:06").output
    assert "│ in flight (claimed) │ 0" in status
    assert "│ pending             │ 5" in status


def test_a_key_written_twice_in_drip_yaml_is_reported(site: Path) -> None:
    """Before: the second `database:` silently replaced the first, as PyYAML keeps the last."""
    config = site / "drip.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + 'database: "sqlite:///autre.db"\n', encoding="utf-8"
    )
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [
        f"{config}:16:1: database: appears twice (first on line 13); merge both into one"
    ]


def test_from_inside_the_site_problems_show_paths_as_typed(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule = site / "schedules" / "le-role-du-cto.yaml"
    schedule.write_text(
        schedule.read_text(encoding="utf-8").replace("cadence:", "cadense:"), encoding="utf-8"
    )
    monkeypatch.chdir(site)
    result = run_drip(site, "check")
    assert result.exit_code == 1
    assert errors(result) == [
        "schedules/le-role-du-cto.yaml:9:1: cadense: unknown key (did you mean 'cadence'?)"
    ]
