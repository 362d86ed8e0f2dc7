"""CSV import: every row checked first, then all written in one transaction.

Columns are found by header: ``email`` is required; ``name``, ``locale`` and
``timezone`` are known; every other column becomes a free attribute. Cells are
stored as the text they are (a cell starting with ``=`` is data, not a formula).
Importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from drip.course.models import Course
from drip.errors import InputError, Problem, closest
from drip.inputs.textfile import read_text
from drip.store.enrollments import Enrolled, enroll_many
from drip.store.lists import join_lists
from drip.store.subscribers import (
    FieldError,
    Profile,
    Upserted,
    make_profile,
    store_profiles,
    suppressed_addresses,
)

KNOWN_COLUMNS = ("email", "name", "locale", "timezone")
DELIMITERS = ",;\t"


@dataclass(frozen=True)
class CsvRow:
    """One valid row: its first line in the file and its validated fields."""

    line: int
    profile: Profile


@dataclass(frozen=True)
class ParsedCsv:
    rows: tuple[CsvRow, ...]
    problems: tuple[Problem, ...]  # rows (or a header) that cannot be imported
    warnings: tuple[Problem, ...]  # rows imported with a field dropped


@dataclass(frozen=True)
class ImportReport:
    """What an import did (or, with problems and no --skip-invalid, nothing)."""

    created: int
    updated: int
    unchanged: int
    enrolled: int
    already_enrolled: int
    no_zone: int  # subscribers left on the course's zone
    suppressed: int  # rows left out: addresses that must never be mailed again
    skipped: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    joined: int = 0  # memberships of the newsletter list added (``list_name``)


def _delimiter(text: str) -> str:
    """Comma, semicolon (French spreadsheets) or tab: the one the header line uses most."""
    header = text.split("\n", 1)[0]
    return max(DELIMITERS, key=header.count)


def _columns(path: Path, header: list[str]) -> tuple[dict[str, int], list[Problem]]:
    """Map each header name to its index; known names match whatever their case."""
    index: dict[str, int] = {}
    problems: list[Problem] = []
    for position, raw in enumerate(header, start=1):
        name = raw.strip()
        if name.lower() in KNOWN_COLUMNS:
            name = name.lower()
        if not name:
            problems.append(Problem(f"column {position} has no name", file=path, line=1, column=position))
        elif name in index:
            problems.append(Problem(f"column {name!r} appears twice", file=path, line=1, column=position))
        else:
            index[name] = position - 1
    if "email" not in index:
        near = closest("email", [n.lower() for n in index])
        hint = f"is {near!r} the email column? rename it 'email'" if near else None
        problems.append(
            Problem(
                "no 'email' column: the first line must name the columns, one of them 'email'",
                file=path,
                line=1,
                hint=hint,
            )
        )
    return index, problems


def read_csv(path: Path) -> ParsedCsv:
    """Parse and validate every row, collecting every problem instead of stopping at the first."""
    text = read_text(path, advice="save the file as CSV UTF-8")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    problems: list[Problem] = []
    warnings: list[Problem] = []
    rows: list[CsvRow] = []
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(
                Problem("the file is empty: expected a header line naming an 'email' column", file=path)
            )
        columns, header_problems = _columns(path, header)
        if header_problems:
            raise InputError(header_problems)
        seen: dict[str, int] = {}
        line = reader.line_num + 1
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            row, problem = _row(path, start, columns, cells, len(header))
            if problem is not None:
                problems.append(problem)
                continue
            assert row is not None
            first = seen.setdefault(row.profile.email, start)
            if first != start:
                problems.append(
                    Problem(
                        f"duplicate address {row.profile.email}, already on line {first}",
                        file=path,
                        line=start,
                        key="email",
                    )
                )
                continue
            rows.append(row)
            warnings.extend(dataclasses.replace(w, file=path, line=start) for w in row.profile.warnings)
    except csv.Error as exc:
        problems.append(Problem(f"unreadable CSV: {exc}", file=path, line=reader.line_num))
    if not rows and not problems:
        # Most likely the wrong file or an export that lost its rows: say so rather than import nothing.
        raise InputError(Problem("no subscribers: the file has a header line but no rows", file=path, line=2))
    return ParsedCsv(tuple(rows), tuple(problems), tuple(warnings))


def _row(
    path: Path, line: int, columns: dict[str, int], cells: list[str], width: int
) -> tuple[CsvRow | None, Problem | None]:
    if len(cells) > width:
        return None, Problem(
            f"{len(cells)} cells but the header names {width} columns (a separator inside an unquoted value?)",
            file=path,
            line=line,
        )

    def cell(name: str) -> str | None:
        position = columns.get(name)
        if position is None or position >= len(cells):
            return None
        return cells[position]

    email = cell("email")
    if email is None or not email.strip():
        return None, Problem("no email address", file=path, line=line, key="email")
    attributes = {
        name: cells[position]
        for name, position in columns.items()
        if name not in KNOWN_COLUMNS and position < len(cells) and cells[position] != ""
    }
    try:
        profile = make_profile(
            email,
            name=cell("name") or None,
            locale=cell("locale"),
            timezone=cell("timezone"),
            attributes=attributes,
        )
    except FieldError as exc:
        return None, Problem(str(exc), file=path, line=line, key=exc.key)
    return CsvRow(line, profile), None


IMPORT_CHUNK = 5000  # rows stored and enrolled at a time, so a progress bar can move


def _store_and_enroll(
    conn: sa.Connection,
    rows: list[CsvRow],
    course: Course | None,
    *,
    now: dt.datetime,
    progress: Callable[[int, int], None] | None,
) -> tuple[list[Upserted], Enrolled]:
    """Upsert and enroll ``rows`` chunk by chunk, in the caller's transaction (no course: upsert only)."""
    stored: list[Upserted] = []
    ids: dict[int, int] = {}
    new: set[int] = set()
    refused: dict[int, str] = {}
    for start in range(0, len(rows), IMPORT_CHUNK):
        chunk = store_profiles(conn, [row.profile for row in rows[start : start + IMPORT_CHUNK]], now=now)
        ids_of_chunk = [result.id for result in chunk]
        done = (
            enroll_many(conn, ids_of_chunk, course, now=now)
            if course is not None
            else Enrolled({}, frozenset(), {})
        )
        stored.extend(chunk)
        ids.update(done.ids)
        new.update(done.new)
        refused.update(done.refused)
        if progress is not None:
            progress(len(chunk), len(rows))
    return stored, Enrolled(ids=ids, new=frozenset(new), refused=refused)


def import_csv(
    conn: sa.Connection,
    path: Path,
    course: Course | None,
    *,
    skip_invalid: bool = False,
    now: dt.datetime,
    secret: Callable[[], str],
    progress: Callable[[int, int], None] | None = None,
    list_name: str | None = None,
) -> ImportReport:
    """Upsert every row and enroll it in ``course``, in the caller's transaction.

    With ``list_name``, every row also joins that newsletter list (a course may be None then).

    With a bad row and no ``skip_invalid``: an :class:`InputError` listing every
    bad row, before anything is written. Addresses on the suppression list (erased,
    bounced, complained) are left out with a warning; ``secret`` gives the key
    their hashes need, asked for only when the list is not empty. ``progress`` is told
    how many rows each chunk stored and enrolled, and out of how many.
    """
    parsed = read_csv(path)
    if parsed.problems and not skip_invalid:
        raise InputError(parsed.problems)
    warnings = list(parsed.warnings)
    suppressed = suppressed_addresses(conn, [row.profile.email for row in parsed.rows], secret)
    rows = [row for row in parsed.rows if row.profile.email not in suppressed]
    warnings.extend(
        Problem(
            f"{row.profile.email} is on the suppression list ({suppressed[row.profile.email]}): not imported; "
            "only a subscription confirmed by its owner brings it back",
            file=path,
            line=row.line,
            key="email",
        )
        for row in parsed.rows
        if row.profile.email in suppressed
    )
    stored, enrolled = _store_and_enroll(conn, rows, course, now=now, progress=progress)
    warnings.extend(
        Problem(enrolled.refused[result.id], file=path, line=row.line, key="email")
        for row, result in zip(rows, stored, strict=True)
        if result.id in enrolled.refused
    )
    joined = join_lists(conn, [r.id for r in stored], [list_name], now=now) if list_name else 0
    return ImportReport(
        created=sum(r.created for r in stored),
        updated=sum(r.changed and not r.created for r in stored),
        unchanged=sum(not r.changed for r in stored),
        enrolled=len(enrolled.new),
        already_enrolled=len(enrolled.ids) - len(enrolled.new),
        no_zone=sum(r.subscriber.timezone is None for r in stored),
        suppressed=len(parsed.rows) - len(rows),
        skipped=parsed.problems,
        warnings=tuple(warnings),
        joined=joined,
    )
