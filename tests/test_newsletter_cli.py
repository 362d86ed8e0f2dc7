"""`drip newsletter`: preview the next issue, who would get it, a test copy, past issues; nothing written."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from newsletter_cli_support import NOW, NewsSite

from drip.store.schema import deliveries, list_members, newsletter_issues, subscribers


@pytest.fixture
def news(tmp_path: Path) -> NewsSite:
    return NewsSite(tmp_path)


def _snapshot(news: NewsSite) -> list[object]:
    return [news.table(t) for t in (subscribers, list_members, newsletter_issues, deliveries)]


def test_preview_shows_the_next_issue_with_its_posts_in_each_format(news: NewsSite) -> None:
    html = news.run("newsletter", "preview", "hebdo", "--now", NOW)
    assert html.exit_code == 0, html.output
    assert "Premiers jours" in html.output and "Recruter" in html.output and "Plus tard" not in html.output
    text = news.run("newsletter", "preview", "hebdo", "--now", NOW, "--format", "text")
    assert text.exit_code == 0 and "<html" not in text.output and "Vision" in text.output
    eml = news.run("newsletter", "preview", "hebdo", "--now", NOW, "--format", "eml")
    msg = message_from_bytes(eml.stdout_bytes, policy=default)
    assert msg["From"].addresses[0].addr_spec == "lettre@cto.example.org"
    assert msg["List-Unsubscribe"]


def test_preview_of_an_unknown_name_is_a_located_error_with_the_closest_name(news: NewsSite) -> None:
    result = news.run("newsletter", "preview", "hebod", "--now", NOW)
    assert result.exit_code == 1
    assert "no digest or broadcast 'hebod'" in result.output and "did you mean 'hebdo'" in result.output
    assert "Traceback" not in result.output


def test_preview_for_a_subscriber_has_their_links_and_an_unknown_one_is_an_error(news: NewsSite) -> None:
    news.reader("camille@example.org", name="Camille")
    mine = news.run(
        "newsletter",
        "preview",
        "hebdo",
        "--now",
        NOW,
        "--subscriber",
        "camille@example.org",
        "--format",
        "text",
    )
    assert mine.exit_code == 0, mine.output
    assert "preview-token" not in mine.output and "https://cto.example.org/unsubscribe/" in mine.output
    nobody = news.run("newsletter", "preview", "hebdo", "--now", NOW, "--subscriber", "nobody@example.org")
    assert nobody.exit_code == 1 and "Traceback" not in nobody.output


def test_preview_starts_after_the_last_issue(news: NewsSite) -> None:
    news.issue("hebdo:2026-12-02T09:00+01:00", dt.datetime(2026, 12, 2, 8, tzinfo=dt.UTC), ["/posts/vision/"])
    result = news.run("newsletter", "preview", "hebdo", "--now", NOW, "--format", "text")
    assert result.exit_code == 0, result.output
    assert "Recruter" in result.output and "Premiers jours" not in result.output


def test_dry_run_counts_recipients_per_zone_and_writes_nothing(news: NewsSite) -> None:
    news.reader("a@example.org", timezone="Europe/Paris")
    news.reader("b@example.org", timezone="America/Montreal")
    news.reader("c@example.org")
    before = _snapshot(news)
    result = news.run("newsletter", "send", "hebdo", "--dry-run", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "3 recipients" in result.output
    assert "America/Montreal" in result.output and "Europe/Paris" in result.output
    assert "subject:" in result.output
    assert _snapshot(news) == before


def test_send_needs_dry_run_or_test(news: NewsSite) -> None:
    result = news.run("newsletter", "send", "hebdo", "--now", NOW)
    assert result.exit_code == 2 and "drip run" in result.output


def test_test_copy_goes_through_the_transport_marked_and_records_nothing(news: NewsSite) -> None:
    before = _snapshot(news)
    result = news.run("newsletter", "send", "hebdo", "--test", "Moi@Example.org", "--now", NOW)
    assert result.exit_code == 0, result.output
    sent = list((news.root / "outbox").rglob("*.eml"))
    assert len(sent) == 1
    msg = message_from_bytes(sent[0].read_bytes(), policy=default)
    assert str(msg["Subject"]).startswith("[TEST] ")
    assert msg["To"].addresses[0].addr_spec.lower() == "moi@example.org"
    assert _snapshot(news) == before


def test_issues_lists_past_issues_with_their_counts(news: NewsSite) -> None:
    empty = news.run("newsletter", "issues", "hebdo")
    assert empty.exit_code == 0 and "no issues of hebdo yet" in empty.output
    news.issue(
        "hebdo:2026-11-30T09:00+01:00",
        dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC),
        ["/posts/premiers-jours/"],
        subject="Numéro un",
    )
    listed = news.run("newsletter", "issues", "hebdo")
    assert listed.exit_code == 0, listed.output
    assert "hebdo:2026-11-30T09:00+01:00" in listed.output and "Numéro un" in listed.output
    by_list = news.run("newsletter", "issues", "lettre")
    assert "Numéro un" in by_list.output


def test_status_shows_lists_with_members_and_issues(news: NewsSite) -> None:
    news.reader("a@example.org")
    news.issue(
        "hebdo:2026-11-30T09:00+01:00", dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC), ["/posts/vision/"]
    )
    result = news.run("status", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "Newsletter lists" in result.output
    (row,) = [line for line in result.output.splitlines() if "lettre" in line and "2026-11-30" in line]
    assert "1" in row


def _members(news: NewsSite) -> list[tuple[object, ...]]:
    return [(row.subscriber_id, row.list, row.state) for row in news.table(list_members)]


def test_subscribe_with_a_list_adds_the_reader_to_it(news: NewsSite) -> None:
    result = news.run("subscribe", "lea@example.org", "--list", "lettre", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "lea@example.org joined the list lettre." in result.output
    again = news.run("subscribe", "lea@example.org", "--list", "lettre", "--now", NOW)
    assert "already on the list lettre" in again.output
    assert _members(news) == [(1, "lettre", "active")]


def test_subscribe_to_an_unknown_list_is_a_located_error(news: NewsSite) -> None:
    result = news.run("subscribe", "lea@example.org", "--list", "letre", "--now", NOW)
    assert result.exit_code == 1 and "did you mean 'lettre'" in result.output
    assert news.table(subscribers) == []
    assert news.run("subscribe", "lea@example.org").exit_code == 2


def test_import_with_a_list_joins_every_row(news: NewsSite, tmp_path: Path) -> None:
    csv = tmp_path / "people.csv"
    csv.write_text("email,name\na@example.org,A\nb@example.org,B\n", encoding="utf-8")
    result = news.run("import", str(csv), "--list", "lettre", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "2 new, 0 updated, 0 unchanged; 2 joined lettre." in result.output
    assert len(_members(news)) == 2
    unknown = news.run("import", str(csv), "--list", "letre", "--now", NOW)
    assert unknown.exit_code == 1 and "did you mean 'lettre'" in unknown.output


def test_embed_prints_a_form_for_a_list(news: NewsSite) -> None:
    result = news.run("embed", "--list", "lettre")
    assert result.exit_code == 0, result.output
    assert '<input type="hidden" name="list" value="lettre">' in result.output
    assert 'action="https://cto.example.org/subscribe"' in result.output
    assert news.run("embed").exit_code == 2
    assert news.run("embed", "--list", "letre").exit_code == 1


def test_the_preview_page_lists_newsletters_beside_courses(news: NewsSite) -> None:
    from starlette.testclient import TestClient

    from drip.preview.server import create_app

    moment = dt.datetime(2026, 12, 4, 9, tzinfo=dt.UTC)
    client = TestClient(create_app(news.site, now=moment))
    index = client.get("/")
    assert index.status_code == 200
    assert "Newsletters" in index.text and "La lettre du CTO" in index.text
    assert 'href="/newsletters/hebdo.html"' in index.text
    issue = client.get("/newsletters/hebdo.html")
    assert issue.status_code == 200 and "Premiers jours" in issue.text
    assert issue.headers["x-content-type-options"] == "nosniff"
    assert client.get("/newsletters/nope.html").status_code == 404


def _in_course(news: NewsSite, sid: int, article: str) -> None:
    """An active enrollment whose email offering ``article`` is still to go."""
    from drip.store.schema import enrollments

    when = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    with news.engine.begin() as conn:
        eid = conn.execute(
            enrollments.insert()
            .values(subscriber_id=sid, course="cours", started_at=when, updated_at=when)
            .returning(enrollments.c.id)
        ).scalar_one()
        conn.execute(
            deliveries.insert().values(
                enrollment_id=eid,
                subscriber_id=sid,
                course="cours",
                step_key=f"article:{article}",
                due_at=when + dt.timedelta(days=10),
                created_at=when,
                updated_at=when,
            )
        )


def test_dry_run_counts_members_left_out_per_reason(news: NewsSite) -> None:
    news.reader("free@example.org", timezone="Europe/Paris")
    _in_course(news, news.reader("busy@example.org"), "/posts/vision/")
    result = news.run("newsletter", "send", "hebdo", "--dry-run", "--now", NOW)
    assert result.exit_code == 0, result.output
    assert "1 recipient," in result.output
    (row,) = [line for line in result.output.splitlines() if "in the middle of a course" in line]
    assert "1" in row


def test_a_subscribers_preview_leaves_out_what_their_course_will_send(news: NewsSite) -> None:
    _in_course(news, news.reader("busy@example.org"), "/posts/vision/")
    args = ("newsletter", "preview", "hebdo", "--now", NOW, "--format", "text")
    theirs = news.run(*args, "--subscriber", "busy@example.org")
    assert theirs.exit_code == 0, theirs.output
    assert "Vision" not in theirs.output and "Recruter" in theirs.output
    assert "Vision" in news.run(*args).output
