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

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from drip.config import Site
from drip.course.compile import load_courses
from drip.course.models import Course
from drip.dispatch.batch import DispatchReport, Renderer, dispatch_once
from drip.store.course_edits import apply
from drip.store.db import open_store
from drip.transports import get_transport
from drip.transports.base import Transport

log = logging.getLogger(__name__)

NowFn = Callable[[], dt.datetime]


def default_worker_name() -> str:
    """host:pid, so a lease in the database names the process holding it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def frozen_clock(moment: dt.datetime) -> NowFn:
    """A clock stopped at ``moment``: for ``--now`` and simulated runs."""
    return lambda: moment


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


def drain(
    site: Site,
    engine: sa.Engine,
    transport: Transport,
    *,
    now_fn: NowFn,
    worker: str,
    courses: Mapping[str, Course],
    renderer: Renderer | None = None,
    stop_event: threading.Event | None = None,
) -> DispatchReport:
    """Dispatch passes while batches come back full; stop early (between batches) when asked."""
    total = DispatchReport()
    while True:
        report = dispatch_once(
            site, engine, transport, now=now_fn(), worker=worker, courses=courses, renderer=renderer
        )
        total += report
        if not report.full or (stop_event is not None and stop_event.is_set()):
            return total


def run_forever(
    site: Site,
    *,
    now_fn: NowFn,
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
    cfg = site.config.dispatch
    worker = worker or default_worker_name()
    engine = engine or open_store(site.database_url)
    transport = transport or get_transport(site)
    compiled = dict(courses) if courses is not None else load_courses(site)
    apply_course_changes(site, engine, compiled, now=now_fn())
    totals: list[DispatchReport] = [DispatchReport()]
    lock = threading.Lock()

    def tick() -> None:
        if stop_event.is_set():
            return
        report = drain(
            site,
            engine,
            transport,
            now_fn=now_fn,
            worker=worker,
            courses=compiled,
            renderer=renderer,
            stop_event=stop_event,
        )
        with lock:
            totals[0] += report

    scheduler = BackgroundScheduler(timezone=dt.UTC)  # the default memory job store, never a shared one
    scheduler.add_job(
        tick,
        "interval",
        seconds=cfg.tick_seconds,
        id="dispatch",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(60, int(cfg.tick_seconds * 10)),
        next_run_time=dt.datetime.now(dt.UTC),
    )
    transport.open()
    scheduler.start()
    log.info("worker %s started: tick every %ss", worker, cfg.tick_seconds)
    try:
        stop_event.wait()
    finally:
        scheduler.shutdown(wait=True)  # the batch in flight finishes and is recorded
        transport.close()
        log.info("worker %s stopped", worker)
    return totals[0]
