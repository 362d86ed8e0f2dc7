"""One content file split into front matter and Markdown body, with positions kept.

python-frontmatter's YAML handler decides where the front matter is; we parse it
ourselves with :mod:`drip.inputs.yamlfile` because the library raises PyYAML's errors
unwrapped, silently drops front matter that is not a mapping, and strips the text,
which would lose the line numbers every error message needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from frontmatter.default_handlers import YAMLHandler
from pydantic import BaseModel, ConfigDict, field_validator

from drip.errors import InputError, Problem
from drip.inputs.textfile import read_text
from drip.inputs.yamlfile import Positions, parse_yaml, validate, yaml_syntax_problem

M = TypeVar("M", bound=BaseModel)

_HANDLER = YAMLHandler()


class Meta(BaseModel):
    """Front matter keys drip reads from every content file; other keys are the site's own."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str | None = None  # "pillar" or "post" decide; any other value (a theme layout) is ignored
    url: str | None = None
    title: str | None = None
    description: str | None = None

    @field_validator("url")
    @classmethod
    def _site_path(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"url must be a site path starting with '/', got {v!r}")
        return v


@dataclass(frozen=True)
class Source:
    """A content file read once: its front matter (with positions) and its body."""

    path: Path
    meta: dict[str, Any]
    positions: Positions
    body: str
    body_line: int  # lines of the file before the body's first line
    problems: tuple[Problem, ...]

    def model(self, model: type[M]) -> tuple[M | None, list[Problem]]:
        """Validate the front matter; problems point into the file."""
        return validate(model, self.meta, self.positions)

    def first_line(self) -> int:
        """1-based file line of the body's first non-blank line."""
        for index, text in enumerate(self.body.splitlines()):
            if text.strip():
                return self.body_line + index + 1
        return self.body_line + 1

    def column(self, line: int) -> int:
        """1-based column of the first non-blank character of a 1-based file line."""
        lines = self.body.splitlines()
        index = line - self.body_line - 1
        if 0 <= index < len(lines):
            text = lines[index]
            return len(text) - len(text.lstrip()) + 1
        return 1


def read_source(path: Path) -> Source:
    """Read ``path``; broken or non-mapping front matter becomes a Problem, never an exception."""
    empty = Positions(file=path)
    try:
        text = read_text(path)
    except InputError as exc:
        return Source(path, {}, empty, "", 0, tuple(exc.problems))
    if not _HANDLER.detect(text):
        return Source(path, {}, empty, text, 0, ())
    try:
        fm, body = _HANDLER.split(text)
    except ValueError:
        problem = Problem("front matter opened with '---' is never closed", file=path, line=1, column=1)
        return Source(path, {}, empty, text, 0, (problem,))
    opener = _HANDLER.FM_BOUNDARY.match(text) if _HANDLER.FM_BOUNDARY else None
    fm_line = text.count("\n", 0, opener.end()) if opener else 0
    body_line = text.count("\n", 0, len(text) - len(body))
    try:
        data, positions = parse_yaml(fm, path, line_offset=fm_line)
    except yaml.YAMLError as exc:
        return Source(path, {}, empty, body, body_line, (_syntax_problem(exc, path, fm_line),))
    if data is None:
        return Source(path, {}, positions, body, body_line, ())
    if not isinstance(data, dict):
        where = positions.find(()) or (fm_line + 1, 1)
        problem = Problem(
            f"front matter must be a mapping of keys (title: …), got a {_yaml_kind(data)}",
            file=path,
            line=where[0],
            column=where[1],
        )
        return Source(path, {}, positions, body, body_line, (problem,))
    return Source(
        path, {str(k): v for k, v in data.items()}, positions, body, body_line, tuple(positions.repeated)
    )


def _syntax_problem(exc: yaml.YAMLError, path: Path, fm_line: int) -> Problem:
    """PyYAML's error, located in the file, pointing also at where the broken value starts."""
    problem = yaml_syntax_problem(exc, path, line_offset=fm_line)
    start = getattr(exc, "context_mark", None)
    if start is None or start.line + 1 + fm_line == problem.line:
        return problem
    return replace(problem, hint=f"it starts at line {start.line + 1 + fm_line}, column {start.column + 1}")


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
