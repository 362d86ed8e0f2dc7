"""`drip stats COURSE`: the funnel per step as a table, JSON and CSV, with a time range."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner, Result
from delivery_fixtures import seed
from web_support import COURSE, copy_site

import drip.cli.stats  # noqa: F401  (registers the command on the group)
from drip.cli import cli
from drip.course.compile import load_courses
from drip.store.db import open_store
from drip.store.events import Event, record_click, record_events
from drip.store.schema import deliveries

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def run(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--site", str(root), *args], env={"DRIP_SECRET_KEY": None})


def fixture(root: Path) -> list[str]:
    """4 readers: the first two steps sent to all, the third to 2; reader 1 clicked step 1 twice,
    reader 2 once, a scanner once; one bounce on step 2."""
    site = copy_site(root)
    keys = [s.key for s in load_courses(site)[COURSE].steps]
    engine = open_store(site.database_url)
    seed(engine, subscribers_count=4, steps=[(k, T0) for k in keys[:3]], course=COURSE)
    with engine.begin() as conn:
        ids = {
            (int(r[1]), str(r[2])): int(r[0])
            for r in conn.execute(
                sa.select(deliveries.c.id, deliveries.c.subscriber_id, deliveries.c.step_key)
            )
        }
        for (reader, key), delivery_id in ids.items():
            if key != keys[2] or reader <= 2:
                at = T0 + dt.timedelta(days=keys.index(key))
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id == delivery_id)
                    .values(status="sent", sent_at=at)
                )
        record_events(conn, [Event(ids[(3, keys[1])], "bounced", "sendgrid", T0 + dt.timedelta(days=2))])
    later = T0 + dt.timedelta(days=4)
    for reader in (1, 1, 2):
        record_click(engine, ids[(reader, keys[0])], 0, now=later, links=4)
    record_click(engine, ids[(3, keys[0])], 0, now=later, links=4, machine="scanner: proofpoint")
    engine.dispose()
    return keys


def test_json_gives_every_step_in_course_order_with_counts_and_rates(tmp_path: Path) -> None:
    keys = fixture(tmp_path)
    result = run(tmp_path, "stats", COURSE, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    steps = data["steps"]
    assert [s["step"] for s in steps] == keys
    assert [s["sent"] for s in steps[:4]] == [4, 4, 2, 0]
    assert steps[0]["clicked"] == 2 and steps[0]["machine_clicked"] == 1 and steps[0]["click_rate"] == 0.5
    assert steps[1]["bounced"] == 1 and steps[1]["drop_off"] == 0.0 and steps[2]["drop_off"] == 0.5


def test_csv_and_the_table_show_the_same_figures(tmp_path: Path) -> None:
    keys = fixture(tmp_path)
    rows = list(csv.DictReader(io.StringIO(run(tmp_path, "stats", COURSE, "--csv").output)))
    assert rows[0]["step"] == keys[0] and rows[0]["clicked"] == "2" and rows[0]["drop_off"] == ""
    table = run(tmp_path, "stats", COURSE).output
    assert "funnel" in table and "50.0%" in table


def test_a_time_range_counts_the_emails_sent_within_it(tmp_path: Path) -> None:
    fixture(tmp_path)
    result = run(
        tmp_path, "stats", COURSE, "--json", "--since", "2026-12-02T08:00", "--until", "2026-12-03T08:00"
    )
    assert [s["sent"] for s in json.loads(result.output)["steps"][:3]] == [0, 4, 0]


def test_an_unknown_name_is_an_input_error_with_the_closest(tmp_path: Path) -> None:
    fixture(tmp_path)
    result = run(tmp_path, "stats", "le-role-du-ct")
    assert result.exit_code == 1 and "le-role-du-cto" in result.output


def test_the_preview_page_draws_the_funnel_as_inline_svg_without_script(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from drip.config import load_site
    from drip.preview.server import create_app

    fixture(tmp_path)
    page = TestClient(create_app(load_site(tmp_path))).get(f"/courses/{COURSE}/stats")
    assert page.status_code == 200 and "<svg" in page.text and "<script" not in page.text
    assert "<title>clicked: 2</title>" in page.text and "<title>sent: 4</title>" in page.text
