"""The example course's emails, compared with reviewed copies in tests/golden/.

Any change to templates, catalogue or renderer shows up here as a diff to review.
Regenerate ONLY on purpose, then review the diff in git:

    .venv/bin/python -m pytest tests/test_golden.py --update-golden
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from drip.config import Site
from drip.course.models import Course
from drip.render.steps import render_course, sample_values

GOLDEN = Path(__file__).resolve().parent / "golden"


def key_slug(key: str) -> str:
    """A step key as a file name part: "article:/posts/x/" → "article-posts-x"."""
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def _expected_files(course: Course) -> dict[str, int]:
    names: dict[str, int] = {}
    for step in course.steps:
        stem = f"{step.number}-{key_slug(step.key)}"
        names[f"{stem}.html"] = step.number
        names[f"{stem}.txt"] = step.number
    return names


def _outputs(site: Site, course: Course) -> dict[str, str]:
    values = sample_values(site, course)
    rendered = render_course(site, course)
    out: dict[str, str] = {}
    for step in course.steps:
        _, html, text = rendered[step.key].personalise(values)
        stem = f"{step.number}-{key_slug(step.key)}"
        out[f"{stem}.html"] = html
        out[f"{stem}.txt"] = text
    return out


def test_key_slug() -> None:
    assert key_slug("article:/posts/premiers-jours-cto/") == "article-posts-premiers-jours-cto"
    assert key_slug("section:comprendre-les-roles") == "section-comprendre-les-roles"
    assert key_slug("welcome") == "welcome"


def test_render_is_deterministic(example_site: Site, example_course: Course) -> None:
    assert _outputs(example_site, example_course) == _outputs(example_site, example_course)


def test_example_course_matches_golden_files(
    example_site: Site, example_course: Course, update_golden: bool
) -> None:
    folder = GOLDEN / example_course.slug
    outputs = _outputs(example_site, example_course)
    assert set(outputs) == set(_expected_files(example_course))
    if update_golden:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            if stale.name not in outputs:
                stale.unlink()
        for name, content in outputs.items():
            (folder / name).write_text(content, encoding="utf-8", newline="")
        return
    if not folder.is_dir():
        pytest.fail(
            f"no golden files in {folder}; create them with: pytest tests/test_golden.py --update-golden"
        )
    present = {p.name for p in folder.iterdir()}
    assert present == set(outputs), "golden files and course steps differ; review, then --update-golden"
    mismatches: list[str] = []
    for name, content in outputs.items():
        expected = (folder / name).read_text(encoding="utf-8")
        if content != expected:
            # HTML is mostly one long line: compare tag by tag so the diff is readable.
            split = re.compile(r"(?<=>)") if name.endswith(".html") else re.compile(r"(?<=\n)")
            diff = difflib.unified_diff(
                split.split(expected), split.split(content), f"golden/{name}", f"rendered/{name}", n=1
            )
            mismatches.append("".join(list(diff)[:40]))
    assert not mismatches, "rendered emails differ from the golden files:\n" + "\n".join(mismatches)
