"""How fast the example course renders, and what "render once, personalise many" buys.

Prints, in one run:
- compiling + rendering the whole example course (Jinja → MJML → HTML + text, every step): median ms,
  wall-clock and CPU time (the machine is shared: CPU time shows the cost when others are busy);
- personalisation throughput from the compiled steps (subject + HTML + text per email): emails/s;
- the same emails produced by re-running Jinja + MJML + CSS inlining for each subscriber: emails/s;
- the ratio between the two.

The process pins itself to one CPU so the figures are per core. Run from the repository root:

    .venv/bin/python bench/render.py
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from drip.config import load_site
from drip.course import compile_course
from drip.render.course import render_course, render_step, sample_values

ROOT = Path(__file__).resolve().parent.parent
COURSE = "le-role-du-cto"
COURSE_RUNS = 60
SUBSCRIBERS = 30_000
SLOW_SUBSCRIBERS = 300


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


def _values(i: int, base: str) -> dict[str, str]:
    return {
        "name": f"Lectrice n°{i} <{i}>",
        "email": f"reader{i}@example.org",
        "unsubscribe_url": f"{base}/unsubscribe/tok{i:08d}",
        "preferences_url": f"{base}/preferences/tok{i:08d}",
        "view_url": f"{base}/view/tok{i:08d}",
    }


def main() -> None:
    pinned = _pin_one_core()
    site = load_site(ROOT)
    course = compile_course(site, COURSE)
    base = site.config.site.base_url

    render_course(site, course)  # warm-up: templates compiled and checked once per process
    runs: list[float] = []
    cpu: list[float] = []
    for _ in range(COURSE_RUNS):
        start, start_cpu = time.perf_counter(), time.process_time()
        render_course(site, course)
        cpu.append((time.process_time() - start_cpu) * 1000)
        runs.append((time.perf_counter() - start) * 1000)
    course_ms = statistics.median(runs)
    course_cpu = statistics.median(cpu)

    with_compile: list[float] = []
    for _ in range(COURSE_RUNS // 3):
        start = time.perf_counter()
        render_course(site, compile_course(site, COURSE))
        with_compile.append((time.perf_counter() - start) * 1000)

    step = next(s for s in course.steps if s.kind == "article")
    rendered = render_step(site, course, step)
    people = [_values(i, base) for i in range(SUBSCRIBERS)]
    start = time.perf_counter()
    size = 0
    for values in people:
        subject, html, text = rendered.personalise(values)
        size += len(subject) + len(html) + len(text)
    fast = SUBSCRIBERS / (time.perf_counter() - start)

    start = time.perf_counter()
    for values in people[:SLOW_SUBSCRIBERS]:
        # The path drip avoids: the whole pipeline again for each reader.
        render_step(site, course, step).personalise(values)
    slow = SLOW_SUBSCRIBERS / (time.perf_counter() - start)

    sample = rendered.personalise(sample_values(site, course))
    print(f"drip render benchmark — {pinned}, example course {COURSE!r}: {len(course.steps)} emails")
    print(
        f"  one email: HTML {len(sample[1]):,} chars, text {len(sample[2]):,} chars, slots {len(rendered.html.slots)}"
    )
    print(
        f"  render whole course (Jinja+MJML+inline+text, {len(course.steps)} steps): "
        f"median {course_ms:.2f} ms wall, {course_cpu:.2f} ms CPU over {COURSE_RUNS} runs "
        f"(wall min {min(runs):.2f}, max {max(runs):.2f})"
        f"   target < 10 ms: wall {'OK' if course_ms < 10 else 'MISSED'}, CPU {'OK' if course_cpu < 10 else 'MISSED'}"
    )
    if course_ms > 1.5 * course_cpu:
        print(
            "  (wall time well above CPU time: other processes share this core; CPU time is the fairer figure)"
        )
    print(f"  compile course from content + render: median {statistics.median(with_compile):.2f} ms")
    print(
        f"  personalise from compiled step (subject+HTML+text): {fast:,.0f} emails/s"
        f"   target >= 30,000: {'OK' if fast >= 30_000 else 'MISSED'}"
    )
    print(f"  Jinja+MJML re-run per subscriber:                   {slow:,.0f} emails/s")
    print(f"  personalised output: {size / 1e6:,.0f} MB of subject+HTML+text")
    print(f"  ratio: {fast / slow:,.0f}x   target >= 5x: {'OK' if fast / slow >= 5 else 'MISSED'}")


if __name__ == "__main__":
    main()
