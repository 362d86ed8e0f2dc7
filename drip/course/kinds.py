"""What a schedule file defines: a course (the default), a mailing list or a digest.

A file in schedules/ says so with ``kind:``; files without it are courses, as they
always were. Only the top-level ``kind`` is read here, so a broken file is still
reported in full by the loader of its kind.
"""

from __future__ import annotations

from pathlib import Path

from drip.course.schedule import schedule_files
from drip.errors import InputError
from drip.inputs.yamlfile import load_yaml_file

COURSE, LIST, DIGEST = "course", "list", "digest"
KINDS = (COURSE, LIST, DIGEST)


def schedule_kind(path: Path) -> str:
    """The ``kind`` a schedule file declares; unreadable files and unknown kinds count as courses.

    Counting them as courses keeps every mistake in the course loader, which reports it
    (an unknown ``kind`` value is an error with the closest kind suggested there).
    """
    try:
        data, _ = load_yaml_file(path)
    except InputError:
        return COURSE
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in (LIST, DIGEST) else COURSE


def files_of_kind(schedules_dir: Path, kind: str) -> dict[str, Path]:
    """The schedule files of one kind, by file stem, sorted."""
    return {slug: path for slug, path in schedule_files(schedules_dir).items() if schedule_kind(path) == kind}


def course_files(schedules_dir: Path) -> dict[str, Path]:
    """Every course schedule: what the course compiler reads, lists and digests left out."""
    return files_of_kind(schedules_dir, COURSE)
