"""The subscriber commands end to end: located errors without tracebacks, one transaction per command."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from dbfixtures import COURSE, course_site

import drip.cli.subscribers  # noqa: F401  (registers the commands on the group)
from drip.cli import cli
from drip.store.db import connect
from drip.store.schema import deliveries, metadata, subscribers
from drip.store.suppressions import SuppressionReason, suppress
from drip.tokens import DEMO_SECRET

CSV = Path(__file__).parent / "fixtures" / "csv"
NOW = "2026-12-01T08:00+01:00"


class Site:
    """A copy of the example site whose store is the parametrised database."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli,
            ["--site", str(self.root), *args],
            env={"DRIP_DATABASE_URL": self.db_url, "DRIP_SECRET_KEY": None},  # the demo key, as in dev
            catch_exceptions=False,
        )

    def rows(self, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
        engine = connect(self.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.select(table).order_by(*table.primary_key.columns)))
        finally:
            engine.dispose()

    def snapshot(self) -> dict[str, list[sa.Row[tuple[object, ...]]]]:
        return {name: self.rows(table) for name, table in metadata.tables.items()}


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Site:
    s = Site(course_site(tmp_path), db_url)
    assert s.run("db", "upgrade").exit_code == 0
    return s


def test_subscribe_normalises_enrolls_and_warns_about_the_zone(site: Site) -> None:
    result = site.run(
        "subscribe", " Jean.Dupont@Example.FR", "--course", COURSE, "--name", "Jean", "--now", NOW
    )
    assert result.exit_code == 0, result.output
    assert (
        result.stdout
        == "Subscribed jean.dupont@example.fr to cto: 5 emails, first due 2026-12-01T07:00:00+00:00.\n"
    )
    assert result.stderr == "warning: timezone: no time zone given: the course's zone applies\n"
    (row,) = site.rows(subscribers)
    assert (row.email, row.name, row.timezone, row.status) == (
        "jean.dupont@example.fr",
        "Jean",
        None,
        "active",
    )
    assert len(site.rows(deliveries)) == 5
    again = site.run("subscribe", "jean.dupont@example.fr", "--course", COURSE, "--timezone", "Europe/Paris")
    assert again.stdout == "jean.dupont@example.fr was already enrolled in cto (details updated).\n"
    assert again.stderr == ""
    assert len(site.rows(deliveries)) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["subscribe", "jean@example", "--course", COURSE],
            "1 error:\n  email: invalid address 'jean@example': "
            "The part after the @-sign is not valid. It should have a period.\n",
        ),
        (
            ["subscribe", "jean@example.org", "--course", "ctoo"],
            "1 error:\n  no course 'ctoo' in schedules/ (courses: cto) (did you mean 'cto'?)\n",
        ),
        (
            ["subscribe", "jean@example.org", "--course", COURSE, "--name", "Jean\nBcc: x@evil.example"],
            "1 error:\n  name: a name cannot contain control characters such as line breaks\n",
        ),
        (
            ["unsubscribe", "personne@example.org"],
            "1 error:\n  email: no subscriber with address 'personne@example.org'\n",
        ),
    ],
)
def test_input_mistakes_are_one_located_message_and_change_nothing(
    site: Site, args: list[str], message: str
) -> None:
    before = site.snapshot()
    result = site.run(*args)
    assert result.exit_code == 1
    assert result.stderr == message
    assert "Traceback" not in result.output
    assert site.snapshot() == before


def test_import_reports_every_bad_row_and_writes_nothing(site: Site) -> None:
    result = site.run("import", str(CSV / "bad_rows.csv"), "--course", COURSE, "--now", NOW)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "6 errors:"
    assert [line.strip().removeprefix(str(CSV) + "/").split(":")[1] for line in lines[1:]] == [
        "3",
        "4",
        "5",
        "7",
        "8",
        "9",
    ]
    assert site.rows(subscribers) == []


def test_import_skip_invalid_then_again_changes_nothing(site: Site) -> None:
    first = site.run("import", str(CSV / "bad_rows.csv"), "--course", COURSE, "--skip-invalid", "--now", NOW)
    assert first.exit_code == 0, first.output
    assert first.stdout == (
        "bad_rows.csv: 2 new, 0 updated, 0 unchanged; 2 enrolled in cto, 0 already there; 6 rows skipped.\n"
    )
    assert first.stderr.count("skipped: ") == 6
    assert "warning: 1 subscriber without a time zone: the course's (Europe/Paris) applies" in first.stderr
    before = site.snapshot()
    second = site.run("import", str(CSV / "bad_rows.csv"), "--course", COURSE, "--skip-invalid")
    assert second.stdout == (
        "bad_rows.csv: 0 new, 0 updated, 2 unchanged; 0 enrolled in cto, 2 already there; 6 rows skipped.\n"
    )
    assert site.snapshot() == before


def test_unsubscribe_cancels_what_has_not_left(site: Site) -> None:
    site.run("import", str(CSV / "valid.csv"), "--course", COURSE, "--now", NOW)
    result = site.run("unsubscribe", "Claire@exemple.fr", "--now", NOW)
    assert result.stdout == "Unsubscribed Claire@exemple.fr from all mail; 5 pending emails cancelled.\n"
    statuses = {(row.subscriber_id, row.status, row.note) for row in site.rows(deliveries)}
    claire = next(row.id for row in site.rows(subscribers) if row.email == "claire@exemple.fr")
    assert {(s, n) for sid, s, n in statuses if sid == claire} == {("cancelled", "unsubscribed")}
    assert {s for sid, s, _ in statuses if sid != claire} == {"pending"}
    again = site.run("unsubscribe", "claire@exemple.fr")
    assert again.stdout == "claire@exemple.fr was already unsubscribed from all mail: nothing changed.\n"


def test_list_shows_names_as_typed_and_filters_by_status(site: Site) -> None:
    site.run(
        "subscribe", "a@example.org", "--course", COURSE, "--name", "[bold red]Alice[/]", "--timezone", "UTC"
    )
    site.run("subscribe", "b@example.org", "--course", COURSE, "--name", "Bob", "--timezone", "UTC")
    site.run("unsubscribe", "b@example.org")
    everyone = site.run("subscribers", "list")
    assert everyone.exit_code == 0
    assert "[bold red]Alice[/]" in everyone.stdout and "Bob" in everyone.stdout
    assert everyone.stdout.startswith("2 subscribers")
    active = site.run("subscribers", "list", "--status", "active")
    assert "Alice" in active.stdout and "Bob" not in active.stdout


def test_export_csv_and_json(site: Site, tmp_path: Path) -> None:
    site.run("import", str(CSV / "formulas.csv"), "--course", COURSE, "--now", NOW)
    as_csv = site.run("subscribers", "export")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["email"] for r in rows] == ["'=1+1@example.org", "lea@example.org"]
    assert rows[0]["lien"] == "'@SUM(A1:A2)"
    as_json = site.run("subscribers", "export", "--format", "json", "--output", str(tmp_path / "out.json"))
    assert as_json.stderr == f"2 subscribers written to {tmp_path / 'out.json'}\n"
    records = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert records[0]["email"] == "=1+1@example.org" and records[0]["attributes"]["lien"] == "@SUM(A1:A2)"


def test_postgresql_needs_db_upgrade_first(tmp_path: Path, db_url: str) -> None:
    site = Site(course_site(tmp_path), db_url)
    before = site.run("subscribe", "a@example.org", "--course", COURSE)
    if db_url.startswith("sqlite"):
        assert before.exit_code == 0  # an embedded store migrates itself
        assert site.run("db", "upgrade").stdout.startswith("The database is up to date (revision ")
        return
    assert before.exit_code == 1
    assert before.stderr.startswith("error: the database has no drip schema yet, this version of drip needs ")
    assert before.stderr.rstrip().endswith("run `drip db upgrade`")
    upgraded = site.run("db", "upgrade")
    assert upgraded.stdout.startswith("Database upgraded from nothing to ")
    assert site.run("subscribe", "a@example.org", "--course", COURSE).exit_code == 0


def test_a_suppressed_address_is_refused_and_not_stored_again(site: Site) -> None:
    # No DRIP_SECRET_KEY and the outbox transport: the demo key, as dispatch uses it.
    engine = connect(site.db_url)
    with engine.begin() as conn:
        suppress(
            conn,
            DEMO_SECRET,
            "claire@exemple.fr",
            SuppressionReason.ERASED,
            now=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        )
    engine.dispose()
    result = site.run("subscribe", "Claire@Exemple.fr", "--course", COURSE)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: claire@exemple.fr is on the suppression list (erased): "
        "only a subscription its owner confirms from the web form brings it back\n"
    )
    assert site.rows(subscribers) == []
    imported = site.run("import", str(CSV / "valid.csv"), "--course", COURSE, "--now", NOW)
    assert (
        imported.stdout
        == "valid.csv: 2 new, 0 updated, 0 unchanged; 2 enrolled in cto, 0 already there; 1 suppressed.\n"
    )
    assert [row.email for row in site.rows(subscribers)] == ["jean.dupont@example.fr", "sam@example.org"]
