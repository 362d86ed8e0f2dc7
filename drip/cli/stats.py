"""``drip stats NAME``: the funnel of a course step by step, or of a list issue by issue, from the ledger.

Per step: sent, delivered, bounced, readers who clicked (unique humans), unsubscribed after
it, their rates over sent, and the drop-off from the step before. ``--json`` and ``--csv``
print the same rows for other tools. A newsletter list answers to the same command, per issue
in the order the issues went out: its issues are delivery rows too, keyed ``issue:<key>``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

import click

from drip.cli import Context, cli

if TYPE_CHECKING:
    import datetime as dt

    from rich.table import Table

COLUMNS = ("sent", "delivered", "bounced", "clicked", "unsubscribed")


def _rows(
    obj: Context, name: str, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[str, list[dict[str, object]]]:
    """The report's first column ("step" or "issue") and its rows, from one query."""
    from drip.course.compile import load_courses
    from drip.course.newsletter import load_newsletters
    from drip.errors import NotFoundError, Problem, did_you_mean
    from drip.store.events import funnel, issue_rows, report_rows
    from drip.store.issues import ISSUE_PREFIX

    courses = load_courses(obj.site)
    course = courses.get(name)
    lists = set() if course is not None else set(load_newsletters(obj.site).lists)
    if course is None and name not in lists:
        known = ", ".join(sorted(courses)) or "none"
        named = ", ".join(sorted(lists)) or "none"
        raise NotFoundError(
            Problem(
                f"no course or list {name!r} (courses: {known}; lists: {named})",
                hint=did_you_mean(name, [*courses, *lists]),
            )
        )
    with obj.store() as engine:
        figures = funnel(engine, name, since=since, until=until)
    if course is not None:
        return "step", report_rows(figures, [step.key for step in course.steps])
    return "issue", issue_rows(figures, ISSUE_PREFIX)


def _percent(value: object) -> str:
    return "" if value is None else f"{float(str(value)) * 100:.1f}%"


def _table(name: str, label: str, rows: list[dict[str, object]]) -> Table:
    from rich.table import Table

    table = Table(title=f"{name}: the funnel", title_justify="left")
    table.add_column(label)
    for column in COLUMNS:
        table.add_column(column, justify="right")
    table.add_column("clicked %", justify="right")
    table.add_column("drop-off", justify="right")
    for row in rows:
        table.add_row(
            str(row[label]),
            *(str(row[c]) for c in COLUMNS),
            _percent(row["click_rate"]),
            _percent(row["drop_off"]),
        )
    return table


def _csv(label: str, rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [label], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return out.getvalue()


@cli.command()
@click.argument("name", metavar="COURSE|LIST")
@click.option("--since", default=None, help="Only emails sent from this moment (ISO 8601, UTC if naive).")
@click.option("--until", default=None, help="Only emails sent before this moment.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rows as CSV.")
@click.pass_obj
def stats(obj: Context, name: str, since: str | None, until: str | None, as_json: bool, as_csv: bool) -> None:
    """The funnel of COURSE per step, or of LIST per issue: sent, delivered, bounced, readers who
    clicked, unsubscribed after it."""
    start = obj.at(since, "--since") if since is not None else None
    end = obj.at(until, "--until") if until is not None else None
    label, rows = _rows(obj, name, start, end)
    if as_json:
        click.echo(json.dumps({"name": name, f"{label}s": rows}, indent=2))
    elif as_csv:
        click.echo(_csv(label, rows), nl=False)
    else:
        obj.runtime.console.print(_table(name, label, rows))
