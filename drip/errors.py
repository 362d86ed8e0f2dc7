"""One exception hierarchy, with messages a user can act on.

Input mistakes (a bad schedule, broken front matter, a CSV row) are collected as
:class:`Problem` records and raised together in one :class:`InputError`, so the
user sees every error at once with the file, line, column and key at fault.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input, located as precisely as we can."""

    message: str
    file: Path | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    key: str | None = None  # dotted key path, e.g. "steps.2.subject"
    hint: str | None = None  # e.g. "did you mean 'cadence'?"

    def location(self) -> str:
        parts: list[str] = []
        if self.file is not None:
            parts.append(str(self.file))
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        text = self.message
        if self.key:
            text = f"{self.key}: {text}"
        loc = self.location()
        if loc:
            text = f"{loc}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class DripError(Exception):
    """Base of every error drip raises on purpose."""


class InputError(DripError):
    """Bad input from a user: every problem found, nothing changed."""

    def __init__(self, problems: Sequence[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(InputError):
    """drip.yaml is missing or invalid."""


class ScheduleError(InputError):
    """A schedule file is invalid, or names content that does not exist."""


class ContentError(InputError):
    """A content file (pillar or post) cannot be read."""


class TemplateError(InputError):
    """An email template fails to render or to compile."""


class NotFoundError(InputError):
    """A named thing (course, step, subscriber) does not exist."""


class TransportError(DripError):
    """A transport could not hand a message to its provider."""

    permanent: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientTransportError(TransportError):
    """Worth retrying later: timeout, connection reset, 429, 5xx, SMTP 4xx."""

    permanent = False


class PermanentTransportError(TransportError):
    """Never worth retrying: invalid address, HTTP 400/401/403/413, SMTP 5xx."""

    permanent = True


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The nearest valid name to a mistyped one, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """A hint string for :class:`Problem` suggesting the closest valid name."""
    match = closest(name, choices)
    return f"did you mean '{match}'?" if match else None
