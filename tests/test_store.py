"""The store on SQLite and PostgreSQL: migrations, UTC times, subscribers, enrollment, unsubscribe."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from dbfixtures import COURSE, course_site, pg_schema

from drip.config import load_site
from drip.course.compile import compile_course
from drip.course.models import Course
from drip.errors import DripError, InputError, NotFoundError
from drip.store import schema
from drip.store.claims import claim
from drip.store.db import (
    SchemaBehindError,
    connect,
    current_revisions,
    head_revisions,
    normalise_url,
    open_store,
)
from drip.store.enrollments import NotEnrollableError, enroll
from drip.store.schema import deliveries, enrollments, subscribers
from drip.store.subscribers import (
    export_subscribers,
    get_subscriber,
    list_subscribers,
    unsubscribe,
    upsert_subscriber,
)

# Tuesday 1 December 2026, 08:00 in Paris.
NOW = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    return compile_course(load_site(course_site(tmp_path_factory.mktemp("site"))), COURSE)


# --- engine and migrations ---------------------------------------------------------------------


def test_the_migrations_create_exactly_the_tables_of_schema_py(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata
        )
    # schema.py is the one source of truth: a table or column only one side has shows up here.
    assert diff == []
    assert {"web_confirmations", "webhook_events"} <= set(schema.metadata.tables)
    assert current_revisions(engine) == head_revisions()


def test_times_come_back_as_aware_utc_whatever_zone_went_in(engine: sa.Engine) -> None:
    paris = dt.datetime(2026, 3, 29, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with engine.begin() as conn:
        conn.execute(
            subscribers.insert().values(
                email="a@example.org", attributes={}, created_at=paris, updated_at=NOW
            )
        )
        created, updated = conn.execute(sa.select(subscribers.c.created_at, subscribers.c.updated_at)).one()
    assert created == paris and created.tzinfo is dt.UTC and created.hour == 1
    assert updated == NOW and updated.tzinfo is dt.UTC
    with engine.connect() as conn:
        # Comparisons happen in UTC too: 01:30 UTC is after 01:29 UTC and before 01:31 UTC.
        before = conn.execute(
            sa.select(sa.func.count()).where(
                subscribers.c.created_at > dt.datetime(2026, 3, 29, 1, 29, tzinfo=dt.UTC)
            )
        ).scalar_one()
        after = conn.execute(
            sa.select(sa.func.count()).where(
                subscribers.c.created_at > dt.datetime(2026, 3, 29, 1, 31, tzinfo=dt.UTC)
            )
        ).scalar_one()
    assert (before, after) == (1, 0)


def test_postgresql_sessions_run_in_utc_whatever_the_server_says(db_url: str) -> None:
    """A server (or role) whose TimeZone is Tokyo: drip's sessions still read and write in UTC."""
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL sessions only")
    url = sa.make_url(db_url)
    options = f"{url.query.get('options', '')} -ctimezone=Asia/Tokyo".strip()
    engine = connect(url.update_query_dict({"options": options}).render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TIME ZONE").scalar_one() == "UTC"
            now = conn.exec_driver_sql("SELECT now()").scalar_one()
        assert now.tzinfo is dt.UTC
    finally:
        engine.dispose()


def test_a_naive_datetime_is_refused_not_guessed(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(
            subscribers.insert().values(
                email="a@example.org", attributes={}, created_at=dt.datetime(2026, 1, 1), updated_at=NOW
            )
        )


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                enrollments.insert().values(subscriber_id=42, course="x", started_at=NOW, updated_at=NOW)
            )
    finally:
        engine.dispose()


def test_a_new_sqlite_file_is_migrated_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    assert not path.exists()
    engine = open_store(f"sqlite:///{path}")
    try:
        assert current_revisions(engine) == head_revisions()
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(subscribers)).scalar_one() == 0
    finally:
        engine.dispose()


def test_postgresql_behind_the_code_is_refused_with_the_command_to_run() -> None:
    for pg in pg_schema():
        with pytest.raises(SchemaBehindError, match=r"no drip schema yet.*run `drip db upgrade`"):
            open_store(pg.url)
        engine = connect(pg.url)
        with engine.connect() as conn:  # refused means untouched: still no table at all
            assert sa.inspect(conn).get_table_names() == []
        engine.dispose()


def test_an_unknown_revision_is_refused(engine: sa.Engine, db_url: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'from_the_future'")
    with pytest.raises(SchemaBehindError, match="from_the_future, which this version of drip does not know"):
        open_store(db_url)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u@db.example.org/drip", "postgresql+psycopg"),
        ("postgres://u@db.example.org/drip", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example.org/drip", "postgresql+psycopg"),
        ("sqlite:///drip.db", "sqlite"),
    ],
)
def test_database_urls(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_database_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(DripError, match=r"unsupported database 'mysql'|is not a database URL"):
        normalise_url(url)


# --- subscribers --------------------------------------------------------------------------------


def test_addresses_are_normalised_and_upserted_by_their_normal_form(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        first = upsert_subscriber(
            conn, "  Jean.Dupont@Example.FR ", name="Jean", timezone="Europe/Paris", now=NOW
        )
        again = upsert_subscriber(conn, "jean.dupont@example.fr", now=NOW + dt.timedelta(hours=1))
    assert first.created and first.subscriber.email == "jean.dupont@example.fr"
    assert again.id == first.id and not again.created and not again.changed
    assert again.subscriber.updated_at == NOW  # nothing changed, so not touched
    with engine.connect() as conn:
        assert [s.email for s in list_subscribers(conn)] == ["jean.dupont@example.fr"]
        found = get_subscriber(conn, "JEAN.DUPONT@example.fr")
    assert found is not None and found.name == "Jean" and found.timezone == "Europe/Paris"


@pytest.mark.parametrize(
    ("email", "reason"),
    [
        ("jean.example.org", "An email address must have an @-sign."),
        ("jean@", "There must be something after the @-sign."),
        ("jean@example", "The part after the @-sign is not valid. It should have a period."),
        (
            "jean dupont@example.org",
            "The email address contains invalid characters before the @-sign: SPACE.",
        ),
        (
            "jean@example.org\r\nBcc: x@evil.example",
            "an address cannot contain control or invalid characters",
        ),
    ],
)
def test_invalid_addresses_are_input_errors_and_write_nothing(
    engine: sa.Engine, email: str, reason: str
) -> None:
    with pytest.raises(InputError) as caught, engine.begin() as conn:
        upsert_subscriber(conn, email, now=NOW)
    (problem,) = caught.value.problems
    assert problem.key == "email"
    assert problem.message.startswith(f"invalid address {email.strip()!r}: {reason}")
    with engine.connect() as conn:
        assert list_subscribers(conn) == []


def test_a_name_cannot_carry_a_line_break(engine: sa.Engine) -> None:
    with (
        pytest.raises(InputError, match="name: a name cannot contain control characters"),
        engine.begin() as conn,
    ):
        upsert_subscriber(conn, "a@example.org", name="Jean\r\nBcc: x@evil.example", now=NOW)


def test_an_invalid_zone_is_stored_as_null_with_a_warning_naming_the_closest(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        bad = upsert_subscriber(conn, "a@example.org", timezone="Europe/Pariss", now=NOW)
        missing = upsert_subscriber(conn, "b@example.org", now=NOW)
        good = upsert_subscriber(conn, "c@example.org", timezone="America/New_York", now=NOW)
    assert bad.subscriber.timezone is None
    assert [(w.key, str(w)) for w in bad.warnings] == [
        (
            "timezone",
            "timezone: unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?): the course's zone applies",
        )
    ]
    assert missing.subscriber.timezone is None
    assert [w.message for w in missing.warnings] == ["no time zone given: the course's zone applies"]
    assert good.subscriber.timezone == "America/New_York" and good.warnings == ()


@pytest.mark.parametrize(
    ("given", "stored", "warned"), [("fr-FR", "fr", False), ("EN_gb", "en", False), ("de", None, True)]
)
def test_locales_are_fr_or_en_else_the_course_default(
    engine: sa.Engine, given: str, stored: str | None, warned: bool
) -> None:
    with engine.begin() as conn:
        result = upsert_subscriber(conn, "a@example.org", locale=given, timezone="UTC", now=NOW)
    assert result.subscriber.locale == stored
    assert bool(result.warnings) is warned
    if warned:
        assert "unsupported locale 'de', expected fr or en" in str(result.warnings[0])


def test_an_upsert_changes_only_what_is_given_and_merges_attributes(engine: sa.Engine) -> None:
    later = NOW + dt.timedelta(days=1)
    with engine.begin() as conn:
        upsert_subscriber(
            conn, "a@example.org", name="Alice", attributes={"ville": "Lyon", "plan": "free"}, now=NOW
        )
        result = upsert_subscriber(
            conn, "a@example.org", attributes={"plan": "pro"}, timezone="UTC", now=later
        )
    assert result.changed and not result.created
    sub = result.subscriber
    assert (sub.name, sub.timezone, dict(sub.attributes)) == (
        "Alice",
        "UTC",
        {"ville": "Lyon", "plan": "pro"},
    )
    assert (sub.created_at, sub.updated_at) == (NOW, later)


# --- enrollment ----------------------------------------------------------------------------------


def _deliveries(engine: sa.Engine) -> list[sa.Row[tuple[str, dt.datetime, str, str | None]]]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(
                    deliveries.c.step_key, deliveries.c.due_at, deliveries.c.status, deliveries.c.note
                ).order_by(deliveries.c.subscriber_id, deliveries.c.due_at)
            )
        )


def test_enrollment_schedules_one_delivery_per_step_in_the_subscribers_zone(
    engine: sa.Engine, course: Course
) -> None:
    with engine.begin() as conn:
        paris = upsert_subscriber(conn, "paris@example.org", now=NOW).id  # no zone: the course's
        new_york = upsert_subscriber(conn, "ny@example.org", timezone="America/New_York", now=NOW).id
        enroll(conn, paris, course, now=NOW)
        enroll(conn, new_york, course, now=NOW)
    rows = _deliveries(engine)
    assert [r.step_key for r in rows[:5]] == [s.key for s in course.steps]
    assert all(r.status == "pending" and r.note is None for r in rows)
    # Welcome leaves at once; day 2 is Thursday 3 December at 08:30 local time.
    assert rows[0].due_at == NOW
    assert rows[1].due_at == dt.datetime(2026, 12, 3, 7, 30, tzinfo=dt.UTC)  # 08:30 in Paris
    assert rows[5].due_at == NOW
    assert rows[6].due_at == dt.datetime(2026, 12, 3, 13, 30, tzinfo=dt.UTC)  # 08:30 in New York
    # Day 4 from Tuesday is Saturday: the weekday window moves it to Monday 7 December.
    assert rows[2].due_at == dt.datetime(2026, 12, 7, 7, 30, tzinfo=dt.UTC)


def test_enrolling_twice_is_a_no_op(engine: sa.Engine, course: Course) -> None:
    with engine.begin() as conn:
        sid = upsert_subscriber(conn, "a@example.org", now=NOW).id
        first = enroll(conn, sid, course, now=NOW)
    before = _deliveries(engine)
    with engine.begin() as conn:
        assert enroll(conn, sid, course, now=NOW + dt.timedelta(days=3)) == first
    assert _deliveries(engine) == before and len(before) == len(course.steps)


def test_an_unsubscribed_address_is_not_enrolled_again(engine: sa.Engine, course: Course) -> None:
    with engine.begin() as conn:
        sid = upsert_subscriber(conn, "a@example.org", now=NOW).id
        unsubscribe(conn, "a@example.org", now=NOW)
    with (
        pytest.raises(NotEnrollableError, match=r"a@example\.org is unsubscribed: not enrolled in 'cto'"),
        engine.begin() as conn,
    ):
        enroll(conn, sid, course, now=NOW)
    assert _deliveries(engine) == []


# --- unsubscribe ---------------------------------------------------------------------------------


def _enrolled(engine: sa.Engine, course: Course, *emails: str) -> None:
    with engine.begin() as conn:
        for email in emails:
            enroll(conn, upsert_subscriber(conn, email, timezone="Europe/Paris", now=NOW).id, course, now=NOW)


def test_unsubscribe_cancels_pending_and_leased_deliveries_so_nothing_leaves(
    engine: sa.Engine, course: Course
) -> None:
    _enrolled(engine, course, "leaves@example.org", "stays@example.org")
    # A worker holds the welcome emails when the unsubscribe arrives.
    claimed = claim(engine, now=NOW, limit=10, lease_seconds=300, worker="w1")
    assert len(claimed) == 2
    with engine.begin() as conn:
        result = unsubscribe(conn, "Leaves@Example.org", now=NOW + dt.timedelta(minutes=1))
    assert (result.cancelled, result.already) == (len(course.steps), False)
    with engine.connect() as conn:
        leaves = get_subscriber(conn, "leaves@example.org")
        stays = get_subscriber(conn, "stays@example.org")
        by_subscriber: dict[int, int] = dict(
            conn.execute(
                sa.select(deliveries.c.subscriber_id, sa.func.count())
                .where(deliveries.c.status == "cancelled", deliveries.c.note == "unsubscribed")
                .group_by(deliveries.c.subscriber_id)
            ).all()
        )
        states = set(conn.execute(sa.select(enrollments.c.subscriber_id, enrollments.c.state)).all())
    assert leaves is not None and stays is not None
    assert (leaves.status, leaves.unsubscribed_at) == ("unsubscribed", NOW + dt.timedelta(minutes=1))
    assert stays.status == "active"
    assert by_subscriber == {leaves.id: len(course.steps)}
    assert states == {(leaves.id, "left"), (stays.id, "active")}
    # Months later, everything due belongs to the one who stayed.
    due = claim(engine, now=NOW + dt.timedelta(days=90), limit=100, lease_seconds=300, worker="w2")
    assert {c.subscriber_id for c in due} == {stays.id}
    with engine.begin() as conn:
        assert unsubscribe(conn, "leaves@example.org", now=NOW).already


def test_leaving_one_course_keeps_the_subscriber_and_other_courses(engine: sa.Engine, course: Course) -> None:
    other = Course(**{**course.__dict__, "slug": "autre"})
    _enrolled(engine, course, "a@example.org")
    with engine.begin() as conn:
        sub = get_subscriber(conn, "a@example.org")
        assert sub is not None
        enroll(conn, sub.id, other, now=NOW)
        result = unsubscribe(conn, "a@example.org", course="cto", now=NOW)
    assert result.cancelled == len(course.steps)
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(deliveries.c.course, deliveries.c.status).distinct()).all())
        again = get_subscriber(conn, "a@example.org")
    assert statuses == {("cto", "cancelled"), ("autre", "pending")}
    assert again is not None and again.status == "active"


def test_unknown_address_or_course_suggests_the_closest(engine: sa.Engine, course: Course) -> None:
    _enrolled(engine, course, "jean.dupont@example.fr")
    with pytest.raises(NotFoundError) as caught, engine.begin() as conn:
        unsubscribe(conn, "jean.dupont@exmple.fr", now=NOW)
    assert str(caught.value) == (
        "email: no subscriber with address 'jean.dupont@exmple.fr' (did you mean 'jean.dupont@example.fr'?)"
    )
    with pytest.raises(NotFoundError) as caught, engine.begin() as conn:
        unsubscribe(conn, "jean.dupont@example.fr", course="ctoo", now=NOW)
    assert (
        str(caught.value)
        == "course: jean.dupont@example.fr is not enrolled in course 'ctoo' (did you mean 'cto'?)"
    )
    assert {r.status for r in _deliveries(engine)} == {"pending"}


# --- export --------------------------------------------------------------------------------------


def test_export_neutralises_formulas_in_csv_and_keeps_json_raw(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        upsert_subscriber(
            conn,
            "=1+1@example.org",
            name='=HYPERLINK("http://evil.example")',
            timezone="UTC",
            attributes={"tel": "+33 6 12", "ville": "Lyon", "x": "@SUM(A1)"},
            now=NOW,
        )
    csv_out, json_out = io.StringIO(), io.StringIO()
    with engine.connect() as conn:
        assert export_subscribers(conn, csv_out, fmt="csv") == 1
        export_subscribers(conn, json_out, fmt="json")
    assert csv_out.getvalue().splitlines() == [
        "email,name,locale,timezone,status,created_at,unsubscribed_at,tel,ville,x",
        '\'=1+1@example.org,"\'=HYPERLINK(""http://evil.example"")",,UTC,active,2026-12-01T07:00:00+00:00,,'
        "'+33 6 12,Lyon,'@SUM(A1)",
    ]
    (record,) = json.loads(json_out.getvalue())
    assert record["email"] == "=1+1@example.org"
    assert record["attributes"] == {"tel": "+33 6 12", "ville": "Lyon", "x": "@SUM(A1)"}
