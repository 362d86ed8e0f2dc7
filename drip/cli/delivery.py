"""Commands that send and report: ``drip run``, ``drip status``, ``drip plan``.

``drip run`` applies course edits before it sends (logging each change), so a
deployed edit takes effect at the next start of the workers; ``drip plan``
says beforehand what that will do to subscribers already in the course.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import signal
import threading
from collections import defaultdict
from collections.abc import Mapping
from types import FrameType

import click
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from drip.cli import Context, cli, now_option, parse_now, plural
from drip.config import Site
from drip.course.compile import compile_course, course_slugs, load_courses
from drip.course.models import Course
from drip.dispatch.batch import DispatchReport, demo_key_allowed
from drip.dispatch.worker import apply_course_changes, default_worker_name, drain, run_forever
from drip.errors import InputError
from drip.runtime import Runtime, frozen_clock, wall_clock
from drip.store.claims import in_flight, waiting
from drip.store.course_edits import Plan, apply, fingerprint, plan
from drip.store.schema import (
    CANCELLED,
    DUE,
    FAILED,
    SENT,
    SKIPPED,
    course_versions,
    deliveries,
    enrollments,
)
from drip.transports import get_transport

out = Console(highlight=False, soft_wrap=True)

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
    # A worker logs what it does; a one-off or simulated run prints its own summary.
    level = logging.WARNING if (once or until) else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if now is not None and not (once or until):
        raise click.UsageError("--now needs --once or --until: a long-running worker follows the real clock")
    source = click.get_current_context().get_parameter_source("step")
    if until is None and source is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--step needs --until: it is the step of a simulated clock")
    # Every option is checked before the store is opened: a typo changes nothing.
    start = parse_now(now)
    end = parse_now(until, "--until") if until is not None else None
    delta = parse_step(step)
    if end is not None and end < start:
        raise click.BadParameter(f"{until!r} is before --now", param_hint="'--until'")
    site = obj.site
    name = worker or default_worker_name()
    courses = load_courses(site)
    with obj.store() as engine:
        transport = get_transport(site)
        runtime = Runtime(demo_key=demo_key_allowed(transport))
        if not (once or until):
            stop = threading.Event()

            def request_stop(signum: int, _frame: FrameType | None) -> None:
                logging.getLogger(__name__).info("signal %s: finishing the batch in flight", signum)
                stop.set()

            signal.signal(signal.SIGTERM, request_stop)
            signal.signal(signal.SIGINT, request_stop)
            total = run_forever(
                site,
                runtime=runtime,
                stop_event=stop,
                worker=name,
                engine=engine,
                transport=transport,
                courses=courses,
            )
            out.print(_summary(total))
            return
        for line in apply_course_changes(site, engine, courses, now=start):
            out.print(f"applied: {line}", markup=False)
        transport.open()
        try:
            if once:
                fixed = now is not None
                report = drain(
                    site,
                    engine,
                    transport,
                    runtime=runtime,
                    clock=frozen_clock(start) if fixed else wall_clock,
                    worker=name,
                    courses=courses,
                )
                out.print(_summary(report))
                return
            assert end is not None  # neither forever nor --once: --until was given
            total = DispatchReport()
            moment = start
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
                )
                if report.claimed:
                    out.print(f"{at.isoformat(timespec='minutes')}  {_summary(report)}", markup=False)
                total += report
                moment = next_tick(moment, delta)
            out.print(f"until {end.isoformat(timespec='minutes')}: {_summary(total)}", markup=False)
        finally:
            transport.close()


def _print_plan(p: Plan, *, applied: bool) -> None:
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


@cli.command("plan")
@click.argument("course_slug", metavar="COURSE")
@click.option("--apply", "do_apply", is_flag=True, help="Do it now (drip run also does it when it starts).")
@click.option(
    "--backfill", is_flag=True, help="Send steps added behind a subscriber instead of skipping them."
)
@now_option
@click.pass_obj
def plan_command(obj: Context, course_slug: str, do_apply: bool, backfill: bool, now: str | None) -> None:
    """Say what the current course will do to subscribers already in it (added, removed, moved steps)."""
    site = obj.site
    course = compile_course(site, course_slug)
    moment = parse_now(now)
    with obj.store() as engine:
        if do_apply:
            _print_plan(apply(site, engine, course, now=moment, backfill=backfill), applied=True)
        else:
            _print_plan(plan(site, engine, course, now=moment, backfill=backfill), applied=False)


def _when(due: dt.datetime | None, moment: dt.datetime) -> str:
    if due is None:
        return "—"
    return "now" if due <= moment else due.isoformat(timespec="minutes")


def _edits(slug: str, courses: Mapping[str, Course | None], applied: Mapping[str, str]) -> str:
    if slug not in courses:
        return "course removed"
    course = courses[slug]
    if course is None:
        return "schedule has errors: see drip check"
    if applied.get(slug) == fingerprint(course):
        return "applied"
    return f"not applied: see drip plan {slug}"


def _courses_or_none(site: Site) -> dict[str, Course | None]:
    """Every course by slug, None for one that does not compile.

    A report on what is in the store must not be held hostage by a typo in one schedule.
    """
    courses: dict[str, Course | None] = {}
    for slug in course_slugs(site):
        try:
            courses[slug] = compile_course(site, slug)
        except InputError:
            courses[slug] = None
    return courses


@cli.command()
@now_option
@click.pass_obj
def status(obj: Context, now: str | None) -> None:
    """Per course: enrolled, pending, sent, failed, next due, skipped/cancelled reasons, duplicates."""
    site = obj.site
    moment = parse_now(now)
    courses = _courses_or_none(site)
    d = deliveries
    with obj.store() as engine, engine.connect() as conn:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for course, st, n in conn.execute(
            sa.select(d.c.course, d.c.status, sa.func.count()).group_by(d.c.course, d.c.status)
        ):
            counts[course][st] = n
        enrolled: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for course, state, n in conn.execute(
            sa.select(enrollments.c.course, enrollments.c.state, sa.func.count()).group_by(
                enrollments.c.course, enrollments.c.state
            )
        ):
            enrolled[course][state] = n
        next_due: dict[str, dt.datetime] = {
            course: due
            for course, due in conn.execute(
                sa.select(d.c.course, sa.func.min(d.c.due_at)).where(waiting(moment)).group_by(d.c.course)
            )
        }
        flying: dict[str, int] = {
            course: n
            for course, n in conn.execute(
                sa.select(d.c.course, sa.func.count()).where(in_flight(moment)).group_by(d.c.course)
            )
        }
        duplicates: dict[str, int] = {
            course: n
            for course, n in conn.execute(
                sa.select(d.c.course, sa.func.count())
                .where(d.c.possible_duplicate.is_(True))
                .group_by(d.c.course)
            )
        }
        reasons = conn.execute(
            sa.select(d.c.course, d.c.status, d.c.note, sa.func.count())
            .where(d.c.status.in_((SKIPPED, CANCELLED)))
            .group_by(d.c.course, d.c.status, d.c.note)
            .order_by(d.c.course, sa.func.count().desc())
        ).all()
        failures = conn.execute(
            sa.select(d.c.course, d.c.last_error, sa.func.count())
            .where(d.c.status == FAILED)
            .group_by(d.c.course, d.c.last_error)
            .order_by(d.c.course, sa.func.count().desc())
        ).all()
        retrying = conn.execute(
            sa.select(d.c.course, d.c.last_error, sa.func.count())
            .where(d.c.status == DUE, d.c.last_error.is_not(None))
            .group_by(d.c.course, d.c.last_error)
            .order_by(d.c.course, sa.func.count().desc())
        ).all()
        applied: dict[str, str] = {
            course: fp
            for course, fp in conn.execute(sa.select(course_versions.c.course, course_versions.c.fingerprint))
        }

    slugs = sorted(set(counts) | set(enrolled) | set(courses))
    # One column per course, one row per figure: readable in a narrow terminal.
    table = Table("", *slugs, title=f"Courses at {moment.isoformat(timespec='minutes')}")
    figures: list[tuple[str, list[str]]] = []

    def figure(label: str, values: list[str]) -> None:
        figures.append((label, values))

    figure("enrolled (active)", [str(enrolled[s].get("active", 0)) for s in slugs])
    figure("completed", [str(enrolled[s].get("completed", 0)) for s in slugs])
    figure("left", [str(enrolled[s].get("left", 0)) for s in slugs])
    figure("pending", [str(counts[s].get(DUE, 0) - flying.get(s, 0)) for s in slugs])
    figure("in flight (claimed)", [str(flying.get(s, 0)) for s in slugs])
    figure("sent", [str(counts[s].get(SENT, 0)) for s in slugs])
    figure("failed", [str(counts[s].get(FAILED, 0)) for s in slugs])
    figure("skipped", [str(counts[s].get(SKIPPED, 0)) for s in slugs])
    figure("cancelled", [str(counts[s].get(CANCELLED, 0)) for s in slugs])
    figure("next due", [_when(next_due.get(s), moment) for s in slugs])
    figure("possible duplicates", [str(duplicates.get(s, 0)) for s in slugs])
    figure("course edits", [_edits(s, courses, applied) for s in slugs])
    for label, values in figures:
        table.add_row(label, *values)
    out.print(table)
    if reasons:
        why = Table("course", "status", "reason", "count", title="Skipped and cancelled")
        for course, st, note, n in reasons:
            why.add_row(course, st, note or "—", str(n))
        out.print(why)
    for title, rows in (("Failures", failures), ("Retrying (last error)", retrying)):
        if rows:
            why_failed = Table("course", "reason", "count", title=title)
            for course, error, n in rows:
                why_failed.add_row(course, error or "—", str(n))
            out.print(why_failed)
