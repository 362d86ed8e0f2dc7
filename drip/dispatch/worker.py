"""The clock: one APScheduler interval job that drains what is due, in one worker process.

The database is the state; the scheduler only says "now is a good time to look".
So there is exactly one job, in a memory job store (a job store shared between
processes runs jobs twice or not at all), with ``max_instances=1`` so passes
never overlap and ``coalesce`` so a late tick runs once. Several workers on
several machines share the work through claims, not through the scheduler.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from drip.config import Site
from drip.course.compile import load_courses
from drip.course.models import Course
from drip.dispatch.batch import DispatchReport, dispatch_once
from drip.dispatch.decide import Renderer
from drip.dispatch.newsletters import Progress, plan_newsletters
from drip.runtime import Clock, Runtime
from drip.store.course_edits import apply
from drip.store.db import open_store
from drip.transports import get_transport
from drip.transports.base import Transport

log = logging.getLogger(__name__)

NEWSLETTER_SECONDS = 30  # how often the worker looks for newsletter issues whose time has come


def default_worker_name() -> str:
    """host:pid, so a lease in the database names the process holding it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def apply_course_changes(
    site: Site, engine: sa.Engine, courses: Mapping[str, Course], *, now: dt.datetime
) -> list[str]:
    """Bring the store in line with the compiled courses before sending; one log line per change."""
    lines: list[str] = []
    for course in courses.values():
        done = apply(site, engine, course, now=now)
        for change in done.changes:
            line = (
                f"{course.slug}: {change.kind} {change.key} ({change.detail}): "
                f"{change.scheduled} scheduled, {change.skipped} skipped, {change.cancelled} cancelled"
            )
            lines.append(line)
            log.info("applied course change %s", line)
        if done.shifted:
            lines.append(f"{course.slug}: {done.shifted} later emails moved to keep the spacing")
            log.info("applied course change %s", lines[-1])
    return lines


def plan_safely(
    site: Site,
    engine: sa.Engine,
    *,
    runtime: Runtime,
    now: dt.datetime,
    progress: Progress | None = None,
) -> list[str]:
    """Plan the newsletters that are due; a broken newsletter file must not stop the course emails.

    A new issue's render is kept on ``runtime`` for the sends that follow.
    """
    try:
        return plan_newsletters(site, engine, now=now, progress=progress, runtime=runtime)
    except Exception:
        log.exception("planning newsletters failed; tried again at the next tick")
        return []


def drain(
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    *,
    runtime: Runtime,
    worker: str,
    courses: Mapping[str, Course],
    clock: Clock | None = None,
    renderer: Renderer | None = None,
    stop_event: threading.Event | None = None,
    plan: bool = True,
    progress: Progress | None = None,
) -> DispatchReport:
    """Plan the newsletters that are due, then dispatch passes while batches come back full.

    Stops early (between batches) when asked. Each pass reads ``clock`` (a simulation
    steps its own), else the runtime's. ``plan=False`` where the worker's own
    newsletter job plans them (``drip run``'s loop); ``--once`` and ``--until`` plan here,
    with a bar per issue whose emails are written when ``progress`` is given.
    """
    now = clock or runtime.now
    if plan:
        plan_safely(site, engine, runtime=runtime, now=now(), progress=progress)
    total = DispatchReport()
    while True:
        report = dispatch_once(
            site,
            engine,
            transport,
            runtime=runtime,
            now=now(),
            worker=worker,
            courses=courses,
            renderer=renderer,
        )
        total += report
        if not report.full or (stop_event is not None and stop_event.is_set()):
            return total


@dataclass
class _Totals:
    """What the ticks of one worker did, added up under a lock (the scheduler runs ticks in a thread)."""

    report: DispatchReport = field(default_factory=DispatchReport)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, report: DispatchReport) -> None:
        with self.lock:
            self.report += report


def _scheduler(site: Site, tick: Callable[[], None], plan: Callable[[], None]) -> BackgroundScheduler:
    """Two interval jobs (dispatch, newsletters), each never overlapping itself, a late tick run once."""
    tick_seconds = site.config.dispatch.tick_seconds
    scheduler = BackgroundScheduler(timezone=dt.UTC)  # the default memory job store, never a shared one
    scheduler.add_job(
        tick,
        "interval",
        seconds=tick_seconds,
        id="dispatch",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(60, int(tick_seconds * 10)),
        next_run_time=dt.datetime.now(dt.UTC),
    )
    scheduler.add_job(
        plan,
        "interval",
        seconds=max(tick_seconds, NEWSLETTER_SECONDS),
        id="newsletters",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(60, int(tick_seconds * 10)),
        next_run_time=dt.datetime.now(dt.UTC),
    )
    return scheduler


def run_forever(
    site: Site,
    *,
    runtime: Runtime,
    stop_event: threading.Event,
    worker: str | None = None,
    engine: sa.Engine | None = None,
    transport: Transport | None = None,
    courses: Mapping[str, Course] | None = None,
    renderer: Renderer | None = None,
) -> DispatchReport:
    """Tick every ``dispatch.tick_seconds`` until ``stop_event`` is set; return what was done.

    Setting the event (SIGTERM, SIGINT) lets the batch in flight finish and be
    recorded: the job checks the event between batches and the scheduler is shut
    down waiting for it.
    """
    name = worker or default_worker_name()
    store = engine or open_store(site.database_url)
    sender = transport or get_transport(site)
    compiled = dict(courses) if courses is not None else load_courses(site)
    apply_course_changes(site, store, compiled, now=runtime.now())
    totals = _Totals()

    def tick() -> None:
        if not stop_event.is_set():
            totals.add(
                drain(
                    site,
                    store,
                    sender,
                    runtime=runtime,
                    worker=name,
                    courses=compiled,
                    renderer=renderer,
                    stop_event=stop_event,
                    plan=False,
                )
            )

    def plan() -> None:
        if not stop_event.is_set():
            plan_safely(site, store, runtime=runtime, now=runtime.now())

    scheduler = _scheduler(site, tick, plan)
    sender.open()
    scheduler.start()
    log.info("worker %s started: tick every %ss", name, site.config.dispatch.tick_seconds)
    try:
        stop_event.wait()
    finally:
        scheduler.shutdown(wait=True)  # the batch in flight finishes and is recorded
        sender.close()
        log.info("worker %s stopped", name)
    return totals.report
