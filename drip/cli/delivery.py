"""Commands that send and report: ``drip run``, ``drip status``, ``drip plan``.

``drip run`` applies course edits before it sends (logging each change), so a
deployed edit takes effect at the next start of the workers; ``drip plan``
says beforehand what that will do to subscribers already in the course.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from drip.cli import Context, cli, now_option, plural

if TYPE_CHECKING:
    import sqlalchemy as sa
    from rich.console import Console
    from rich.table import Table

    from drip.config import Site
    from drip.course.edits import DeadLink
    from drip.course.models import Course
    from drip.dispatch.batch import DispatchReport
    from drip.runtime import Runtime
    from drip.store.course_edits import Plan
    from drip.store.lists import ListFigures
    from drip.store.status import CourseFigures
    from drip.transports.base import Transport

_STEP = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_step(value: str) -> dt.timedelta:
    """``--step`` as a duration: 90s, 30m, 1h, 1d."""
    match = _STEP.fullmatch(value.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise click.BadParameter(
            f"{value!r} is not a duration; use e.g. 30m, 1h or 1d", param_hint="'--step'"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def next_tick(moment: dt.datetime, step: dt.timedelta) -> dt.datetime:
    """The next multiple of ``step`` after ``moment`` (counted from the UTC epoch).

    A simulation started at 12:57 then ticks at 13:00, 13:15…, so an email due
    at 08:30 local is sent, and dated, 08:30 rather than 08:42.
    """
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((moment - epoch) // step + 1) * step


def _summary(report: DispatchReport) -> str:
    parts = [f"sent {report.sent}"]
    for label, value in (
        ("retrying", report.retried),
        ("failed", report.failed),
        ("cancelled", report.cancelled),
        ("possible duplicates", report.possible_duplicates),
        ("lease lost", report.lost_lease),
        ("courses completed", report.completed),
    ):
        if value:
            parts.append(f"{label} {value}")
    reasons = " (drip status gives the reasons)" if report.retried or report.failed else ""
    return ", ".join(parts) + reasons


def _configure_logging(*, worker: bool) -> None:
    """A worker logs what it does; a one-off or simulated run prints its own summary."""
    level = logging.INFO if worker else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _run_window(
    obj: Context, once: bool, now: str | None, until: str | None, step: str
) -> tuple[dt.datetime, dt.datetime | None, dt.timedelta]:
    """Start, end and step of the run, every option checked before the store is opened: a typo changes nothing."""
    if now is not None and not (once or until):
        raise click.UsageError("--now needs --once or --until: a long-running worker follows the real clock")
    source = click.get_current_context().get_parameter_source("step")
    if until is None and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--step needs --until: it is the step of a simulated clock")
    start = obj.at(now)
    end = obj.at(until, "--until") if until is not None else None
    delta = parse_step(step)
    if end is not None and end < start:
        raise click.BadParameter(f"{until!r} is before --now", param_hint="'--until'")
    return start, end, delta


@cli.command()
@click.option("--once", is_flag=True, help="Send everything due now, then exit (for cron).")
@now_option
@click.option(
    "--until",
    metavar="DATETIME",
    help="Simulate: step time from --now (or now) to this moment, sending what falls due.",
)
@click.option(
    "--step",
    "step",
    metavar="DURATION",
    default="1h",
    show_default=True,
    help="Simulated time step for --until: 90s, 30m, 1h, 1d.",
)
@click.option("--worker", default=None, help="Name of this worker in leases. Default: host:pid.")
@click.pass_obj
def run(obj: Context, once: bool, now: str | None, until: str | None, step: str, worker: str | None) -> None:
    """Send due emails: forever (Ctrl-C or SIGTERM stops after the batch in flight), --once, or --until."""
    from drip.course.compile import load_courses
    from drip.dispatch.worker import apply_course_changes, default_worker_name
    from drip.runtime import keep_startup_objects
    from drip.transports import get_transport

    _configure_logging(worker=not (once or until))
    start, end, delta = _run_window(obj, once, now, until, step)
    site = obj.site
    name = worker or default_worker_name()
    courses = load_courses(site)
    out = obj.runtime.console
    with obj.store() as engine:
        transport = get_transport(site)
        keep_startup_objects()  # a worker's loaded site lives as long as it does
        if not (once or until):
            out.print(_summary(_run_forever(obj.runtime, site, engine, transport, courses, name)))
            return
        for line in apply_course_changes(site, engine, courses, now=start):
            out.print(f"applied: {line}", markup=False)
        transport.open()
        try:
            if end is None:
                report = _run_once(
                    obj.runtime, site, engine, transport, courses, name, start, now is not None
                )
                out.print(_summary(report))
            else:
                _run_until(obj.runtime, site, engine, transport, courses, name, start, end, delta)
        finally:
            transport.close()


def _run_forever(
    runtime: Runtime,
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    courses: Mapping[str, Course],
    name: str,
) -> DispatchReport:
    """The worker loop until SIGTERM or Ctrl-C, which finish the batch in flight."""
    import signal
    import threading
    from types import FrameType

    from drip.dispatch.worker import run_forever

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %s: finishing the batch in flight", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return run_forever(
        site,
        runtime=runtime,
        stop_event=stop,
        worker=name,
        engine=engine,
        transport=transport,
        courses=courses,
    )


def _run_once(
    runtime: Runtime,
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    courses: Mapping[str, Course],
    name: str,
    start: dt.datetime,
    fixed: bool,
) -> DispatchReport:
    """Everything due at ``start`` (when ``--now`` fixed it) or at the real time."""
    from drip.cli.progress import progress_bars
    from drip.dispatch.worker import drain
    from drip.runtime import frozen_clock, wall_clock

    with progress_bars(runtime) as bars:
        return drain(
            site,
            engine,
            transport,
            runtime=runtime,
            clock=frozen_clock(start) if fixed else wall_clock,
            worker=name,
            courses=courses,
            progress=bars,
        )


def _run_until(
    runtime: Runtime,
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    courses: Mapping[str, Course],
    name: str,
    start: dt.datetime,
    end: dt.datetime,
    delta: dt.timedelta,
) -> None:
    """A simulated clock from ``start`` to ``end``, one line a tick that sent something."""
    from drip.cli.progress import progress_bars
    from drip.dispatch.batch import DispatchReport
    from drip.dispatch.worker import drain
    from drip.runtime import frozen_clock

    out = runtime.console
    total = DispatchReport()
    moment = start
    ticks = int((end - start) / delta) + 1
    with progress_bars(runtime) as bars:
        advance = bars("simulating")
        while moment <= end:
            at = moment
            report = drain(
                site,
                engine,
                transport,
                runtime=runtime,
                clock=frozen_clock(at),
                worker=name,
                courses=courses,
                progress=bars,
            )
            if report.claimed:
                out.print(f"{at.isoformat(timespec='minutes')}  {_summary(report)}", markup=False)
            total += report
            moment = next_tick(moment, delta)
            advance(1, ticks)
    out.print(f"until {end.isoformat(timespec='minutes')}: {_summary(total)}", markup=False)


def _print_plan(out: Console, p: Plan, *, applied: bool) -> None:
    from rich.table import Table

    state = "applied" if applied else ("changes not applied yet" if p.pending_version else "up to date")
    out.print(f"[bold]{p.course}[/]: {state} — {plural(p.enrollments, 'active subscriber')}")
    if p.changes:
        table = Table("change", "scheduled", "skipped", "cancelled")
        # Step keys are URLs: fold them rather than cut them in a narrow terminal.
        table.add_column("step", overflow="fold")
        table.add_column("what", overflow="fold")
        for c in p.changes:
            table.add_row(c.kind, str(c.scheduled), str(c.skipped), str(c.cancelled), c.key, c.detail)
        out.print(table)
    if p.shifted:
        out.print(f"{p.shifted} later emails move back to keep the course's spacing")
    out.print(
        f"emails due in the next 24 h: {p.due_next_24h_before} now, {p.due_next_24h_after} "
        + ("after this change" if not applied else "from now on")
    )


def _print_dead_links(out: Console, dead: tuple[DeadLink, ...]) -> None:
    """A post renamed or deleted under a step still to be sent: its emails would link nowhere."""
    for d in dead:
        out.print(
            f"[yellow]warning:[/] {d.step_key} links to {d.url}, which no content file provides"
            f" (renamed or deleted?): {plural(d.pending, 'email')} still to send; see drip check",
            soft_wrap=True,
        )


def plan_json(p: Plan, dead: tuple[DeadLink, ...], *, applied: bool) -> dict[str, object]:
    """What ``drip plan --json`` prints: the plan's figures, every change and every dead link."""
    state = "applied" if applied else ("pending" if p.pending_version else "up to date")
    return {
        "course": p.course,
        "state": state,
        "fingerprint": p.fingerprint,
        "applied_fingerprint": p.applied_fingerprint,
        "active_subscribers": p.enrollments,
        "changes": [
            {
                "kind": c.kind,
                "step": c.key,
                "detail": c.detail,
                "scheduled": c.scheduled,
                "skipped": c.skipped,
                "cancelled": c.cancelled,
                "when_added": c.policy,
            }
            for c in p.changes
        ],
        "shifted": p.shifted,
        "due_next_24h": {"before": p.due_next_24h_before, "after": p.due_next_24h_after},
        "dead_links": [{"step": d.step_key, "url": d.url, "pending": d.pending} for d in dead],
    }


@cli.command("plan")
@click.argument("course_slug", metavar="COURSE")
@click.option("--apply", "do_apply", is_flag=True, help="Do it now (drip run also does it when it starts).")
@click.option(
    "--backfill",
    is_flag=True,
    help="Send steps added behind a subscriber after their last email (when_added: append, for this run).",
)
@click.option("as_json", "--json", is_flag=True, help="Print the plan as JSON.")
@now_option
@click.pass_obj
def plan_command(
    obj: Context, course_slug: str, do_apply: bool, backfill: bool, as_json: bool, now: str | None
) -> None:
    """Say what the current course will do to subscribers already in it (added, removed, moved steps).

    Exit status: 0 when nothing would change, 2 when something would (or, with
    --apply, did), 1 on errors. A step still to be sent whose post no content file
    provides (renamed or deleted) is flagged.
    """
    import json

    from drip.course.compile import compile_course
    from drip.course.edits import dead_links
    from drip.store.course_edits import apply, plan

    site = obj.site
    course = compile_course(site, course_slug)
    moment = obj.at(now)
    out = obj.runtime.console
    with obj.store() as engine:
        act = apply if do_apply else plan
        p = act(site, engine, course, now=moment, backfill=backfill)
    dead = dead_links(course, p.pending)
    if as_json:
        click.echo(json.dumps(plan_json(p, dead, applied=do_apply), indent=2, ensure_ascii=False))
    else:
        _print_plan(out, p, applied=do_apply)
        _print_dead_links(out, dead)
    if p.has_changes:
        click.get_current_context().exit(2)


def _when(due: dt.datetime | None, moment: dt.datetime) -> str:
    if due is None:
        return "—"
    return "now" if due <= moment else due.isoformat(timespec="minutes")


def _edits(figures: CourseFigures, courses: Mapping[str, Course | None]) -> str:
    from drip.store.course_edits import fingerprint

    slug = figures.course
    if slug not in courses:
        return "course removed"
    course = courses[slug]
    if course is None:
        return "schedule has errors: see drip check"
    if figures.applied_fingerprint == fingerprint(course):
        return "applied"
    return f"not applied: see drip plan {slug}"


def _courses_or_none(site: Site) -> dict[str, Course | None]:
    """Every course by slug, None for one that does not compile.

    A report on what is in the store must not be held hostage by a typo in one schedule.
    """
    from drip.course.compile import compile_course, course_slugs
    from drip.errors import InputError

    courses: dict[str, Course | None] = {}
    for slug in course_slugs(site):
        try:
            courses[slug] = compile_course(site, slug)
        except InputError:
            courses[slug] = None
    return courses


def _figures_table(
    figures: list[CourseFigures], courses: Mapping[str, Course | None], moment: dt.datetime
) -> Table:
    """One column per course, one row per figure: readable in a narrow terminal."""
    from rich.table import Table

    table = Table(
        "", *(f.course for f in figures), title=f"Courses at {moment.isoformat(timespec='minutes')}"
    )
    rows: list[tuple[str, list[str]]] = [
        ("enrolled (active)", [str(f.active) for f in figures]),
        ("completed", [str(f.completed) for f in figures]),
        ("left", [str(f.left) for f in figures]),
        ("pending", [str(f.pending) for f in figures]),
        ("in flight (claimed)", [str(f.in_flight) for f in figures]),
        ("sent", [str(f.sent) for f in figures]),
        ("failed", [str(f.failed) for f in figures]),
        ("skipped", [str(f.skipped) for f in figures]),
        ("cancelled", [str(f.cancelled) for f in figures]),
        ("next due", [_when(f.next_due, moment) for f in figures]),
        ("possible duplicates", [str(f.possible_duplicates) for f in figures]),
        ("course edits", [_edits(f, courses) for f in figures]),
    ]
    for label, values in rows:
        table.add_row(label, *values)
    return table


def _print_reasons(out: Console, figures: list[CourseFigures]) -> None:
    """Why deliveries were skipped, cancelled, failed or are retrying, most frequent first."""
    from rich.table import Table

    skipped = [(f.course, r) for f in figures for r in f.skipped_or_cancelled]
    if skipped:
        why = Table("course", "status", "reason", "count", title="Skipped and cancelled")
        for course, reason in skipped:
            why.add_row(course, reason.status, reason.note or "—", str(reason.count))
        out.print(why)
    for title, rows in (
        ("Failures", [(f.course, r) for f in figures for r in f.failures]),
        ("Retrying (last error)", [(f.course, r) for f in figures for r in f.retrying]),
    ):
        if rows:
            why_failed = Table("course", "reason", "count", title=title)
            for course, reason in rows:
                why_failed.add_row(course, reason.note or "—", str(reason.count))
            out.print(why_failed)


def _lists_table(lists: list[ListFigures]) -> Table:
    """Newsletter lists: members now, members who left, issues and the last one's send time."""
    from rich.table import Table

    table = Table("list", "members", "left", "issues", "last issue", title="Newsletter lists")
    for figures in lists:
        last = figures.last_send_at.isoformat(timespec="minutes") if figures.last_send_at else "—"
        table.add_row(figures.name, str(figures.active), str(figures.left), str(figures.issues), last)
    return table


@cli.command()
@now_option
@click.pass_obj
def status(obj: Context, now: str | None) -> None:
    """Per course: enrolled, pending, sent, failed, next due, skipped/cancelled reasons, duplicates."""
    from drip.store.lists import list_figures
    from drip.store.status import course_figures

    moment = obj.at(now)
    courses = _courses_or_none(obj.site)
    with obj.store() as engine, engine.connect() as conn:
        figures = list(course_figures(conn, now=moment, also=courses).values())
        lists = list(list_figures(conn).values())
    out = obj.runtime.console
    out.print(_figures_table(figures, courses, moment))
    _print_reasons(out, figures)
    if lists:
        out.print(_lists_table(lists))
