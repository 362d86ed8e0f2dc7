"""What a schedule file defines: a course (the default), a mailing list or a digest.

A file in schedules/ says so with ``kind:``; files without it are courses, as they
always were. Only the top-level ``kind`` is read here, so a broken file is still
reported in full by the loader of its kind.
"""

from __future__ import annotations

import re
from pathlib import Path

from drip.course.schedule import schedule_files
from drip.errors import InputError
from drip.inputs.textfile import read_text

COURSE, LIST, DIGEST = "course", "list", "digest"
KINDS = (COURSE, LIST, DIGEST)
_KIND_LINE = re.compile(r"""^kind:[ \t]*(["']?)(list|digest)\1[ \t]*(?:#.*)?$""", re.MULTILINE)


def schedule_kind(path: Path) -> str:
    """The ``kind`` a schedule file declares on a top-level line; anything else counts as a course.

    A line scan, not a YAML parse: every course command lists the schedules, and a file
    is parsed once, by the loader of its kind. Unreadable files and unknown kinds go to
    the course loader, which reports them (an unknown ``kind`` gets the closest one).
    """
    try:
        text = read_text(path)
    except InputError:
        return COURSE
    found = _KIND_LINE.search(text)
    return found.group(2) if found else COURSE


def files_of_kind(schedules_dir: Path, kind: str) -> dict[str, Path]:
    """The schedule files of one kind, by file stem, sorted."""
    return {slug: path for slug, path in schedule_files(schedules_dir).items() if schedule_kind(path) == kind}


def course_files(schedules_dir: Path) -> dict[str, Path]:
    """Every course schedule: what the course compiler reads, lists and digests left out."""
    return files_of_kind(schedules_dir, COURSE)
