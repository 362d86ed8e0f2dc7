"""Broadcasts: one Markdown file in content/newsletters/ becomes one email to a list.

Front matter names the email and when it leaves; the body is the email::

    ---
    subject: "La rentrée du CTO"
    preheader: "Trois lectures pour septembre"
    list: lettre
    send_at: 2026-09-07 09:00
    grace: 6h        # optional: not sent if first seen later than this after send_at
    ---

A ``send_at`` without an offset is read in the list's zone, which the course layer knows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from drip.content.duration import DEFAULT_GRACE, check_grace, grace_delta
from drip.content.posts import BROADCASTS_DIR
from drip.content.source import Source, read_source
from drip.errors import ContentError, Problem


def _one_line(value: str | None) -> str | None:
    if value is not None and ("\n" in value or "\r" in value or not value.strip()):
        raise ValueError("must be one line of text")
    return value


def _moment(value: Any) -> Any:
    """``2026-09-07 09:00`` is a string to YAML: pydantic reads it as a datetime; a bare date is 00:00."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime.combine(value, dt.time())
    return value


class BroadcastMeta(BaseModel):
    """A broadcast's front matter: all of it is drip's, so an unknown key is a mistake."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str
    preheader: str = ""
    list: str
    send_at: dt.datetime
    title: str | None = None  # the heading on the archive page; the subject when absent
    grace: str = DEFAULT_GRACE  # missed by longer than this (no worker up), it is not sent late

    _text = field_validator("subject", "preheader", "title")(
        classmethod(lambda cls, v: _one_line(v or None) or v)
    )
    _when = field_validator("send_at", mode="before")(classmethod(lambda cls, v: _moment(v)))
    _grace = field_validator("grace")(classmethod(lambda cls, v: check_grace(v)))


@dataclass(frozen=True)
class Broadcast:
    """One broadcast file, front matter checked, body kept as Markdown with its line offset."""

    slug: str  # file stem
    path: Path
    subject: str
    preheader: str
    list: str
    send_at: dt.datetime  # naive when the file gives no offset
    title: str
    body: str
    body_line: int  # lines of the file before the body
    source: Source
    grace: dt.timedelta  # not sent if first seen later than this after send_at

    def problem(self, key: str, message: str, *, hint: str | None = None) -> Problem:
        """A problem located at a front matter key of this file."""
        return self.source.positions.problem((key,), message, hint=hint)


def broadcast_files(content_dir: Path) -> list[Path]:
    """The Markdown files of content/newsletters/, sorted (``_`` and ``.`` names are not broadcasts)."""
    folder = content_dir / BROADCASTS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.md") if p.is_file() and not p.name.startswith(("_", ".")))


def read_broadcast(path: Path) -> Broadcast:
    """One broadcast; ContentError carries every front matter problem, located."""
    src = read_source(path)
    meta, problems = src.model(BroadcastMeta)
    problems = [*src.problems, *problems]
    if meta is None or problems:
        raise ContentError(problems or [Problem("front matter is missing", file=path, line=1, column=1)])
    if not src.body.strip():
        raise ContentError(
            Problem(
                "the email has no body: write it below the front matter", file=path, line=src.body_line + 1
            )
        )
    return Broadcast(
        slug=path.stem,
        path=path,
        subject=meta.subject,
        preheader=meta.preheader,
        list=meta.list,
        send_at=meta.send_at,
        title=meta.title or meta.subject,
        body=src.body,
        body_line=src.body_line,
        source=src,
        grace=grace_delta(meta.grace),
    )


def read_broadcasts(content_dir: Path) -> tuple[list[Broadcast], list[Problem]]:
    """Every broadcast that reads, and the problems of those that do not."""
    found: list[Broadcast] = []
    problems: list[Problem] = []
    for path in broadcast_files(content_dir):
        try:
            found.append(read_broadcast(path))
        except ContentError as exc:
            problems.extend(exc.problems)
    return found, problems
