"""How fast the example course renders, and what "render once, personalise many" buys.

Prints, in one run:
- the machine's load average before and after (the machine is shared: wall-clock time moves with it);
- compiling + rendering the whole example course (Jinja → MJML → HTML + text, every step), after a
  warm-up: median wall-clock and CPU time over many runs, the spread of the wall time, and how often
  the process was preempted (involuntary context switches), which is what wall time above CPU time is;
- where a course render's CPU time goes: Jinja, MJML, CSS inlining, the template check;
- personalisation throughput from the compiled steps (subject + HTML + text per email): emails/s;
- the same emails produced by re-running Jinja + MJML + CSS inlining for each subscriber: emails/s;
- the ratio between the two.

The process pins itself to one CPU so the figures are per core. Run from the repository root:

    .venv/bin/python bench/render.py
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import css_inline
from mjml import mjml2html

from drip.config import load_site
from drip.course.compile import compile_course
from drip.render.mjml import split_inline_css, to_html
from drip.render.steps import _Draft, render_course, render_step, sample_values
from drip.render.templates import check_templates, environment

ROOT = Path(__file__).resolve().parent.parent
COURSE = "le-role-du-cto"
COURSE_RUNS = 300
WARM_UP = 20
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


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_ms(fn: Callable[[], object], runs: int) -> float:
    """Median CPU milliseconds of ``fn`` over ``runs`` calls."""
    times: list[float] = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=COURSE_RUNS, help="timed renders of the whole course")
    args = parser.parse_args()
    load_before = _load()
    pinned = _pin_one_core()
    site = load_site(ROOT)
    course = compile_course(site, COURSE)
    base = site.config.site.base_url

    for _ in range(WARM_UP):  # templates compiled and checked, caches and branch predictors warm
        render_course(site, course)
    runs: list[float] = []
    cpu: list[float] = []
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    for _ in range(args.runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        render_course(site, course)
        cpu.append((time.process_time() - start_cpu) * 1000)
        runs.append((time.perf_counter() - start) * 1000)
    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
    course_ms = statistics.median(runs)
    course_cpu = statistics.median(cpu)
    wall_deciles = statistics.quantiles(runs, n=10)

    # Where the CPU goes, each stage timed alone on the same steps.
    env = environment(site.templates_dir)
    drafts = [_Draft(site, course, s, None) for s in course.steps]
    mjml_parts = [split_inline_css(d.mjml) for d in drafts]
    compiled = [mjml2html(m, disable_comments=True, fonts={}) for m, _ in mjml_parts]
    stage_runs = max(20, args.runs // 5)
    jinja_ms = _cpu_ms(lambda: [_Draft(site, course, s, None) for s in course.steps], stage_runs)
    html_ms = _cpu_ms(lambda: [to_html(d.mjml) for d in drafts], stage_runs)
    inline_ms = _cpu_ms(
        lambda: [
            css_inline.CSSInliner(
                inline_style_tags=False,
                keep_style_tags=True,
                keep_link_tags=True,
                load_remote_stylesheets=False,
                extra_css=css,
            ).inline(html)
            for (_, css), html in zip(mjml_parts, compiled, strict=True)
        ],
        stage_runs,
    )
    check_ms = _cpu_ms(lambda: check_templates(env), stage_runs)

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
    print(f"  load average before: {load_before}, after: {_load()} ({os.cpu_count()} CPUs)")
    print(
        f"  one email: HTML {len(sample[1]):,} chars, text {len(sample[2]):,} chars, slots {len(rendered.html.slots)}"
    )
    print(
        f"  render whole course (Jinja+MJML+inline+text, {len(course.steps)} steps), after {WARM_UP} warm-up renders: "
        f"median {course_ms:.2f} ms wall, {course_cpu:.2f} ms CPU over {args.runs} runs"
        f"   target < 10 ms: wall {'OK' if course_ms < 10 else 'MISSED'}, CPU {'OK' if course_cpu < 10 else 'MISSED'}"
    )
    print(
        f"    wall min {min(runs):.2f}, 10th percentile {wall_deciles[0]:.2f}, 90th {wall_deciles[-1]:.2f}, "
        f"max {max(runs):.2f} ms; preempted {switches / args.runs:.1f} times per render"
    )
    if course_ms > 1.5 * course_cpu:
        print(
            "    (wall time well above CPU time: other processes share this core; CPU time is the fairer figure)"
        )
    print(
        f"    CPU per course render: Jinja {jinja_ms:.2f} ms, MJML→HTML {html_ms:.2f} ms "
        f"(of which CSS inlining {inline_ms:.2f}), template check {check_ms:.2f}, "
        f"other {course_cpu - jinja_ms - html_ms - check_ms:.2f} (slot splitting, stages sharing the caches)"
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
