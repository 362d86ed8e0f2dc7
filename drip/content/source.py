"""One content file split into front matter and Markdown body, with positions kept.

Front matter is YAML (``---``), TOML (``+++``) or JSON (``{`` … ``}``), as Hugo, Zola
and Jekyll write it. python-frontmatter's handlers decide where the front matter is;
we parse it ourselves (YAML with :mod:`drip.inputs.yamlfile`, TOML with :mod:`tomllib`,
JSON with :mod:`json`) because the library raises the parsers' errors unwrapped,
silently drops front matter that is not a mapping, needs the unmaintained ``toml``
package for TOML, and strips the text, which would lose the line numbers every
error message needs.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml
from frontmatter.default_handlers import BaseHandler, JSONHandler, YAMLHandler
from pydantic import BaseModel, ConfigDict, field_validator

from drip.content.cache import ContentCache, Split, digest_of, positions_of
from drip.errors import InputError, Problem
from drip.inputs.textfile import read_text
from drip.inputs.yamlfile import Positions, parse_yaml, validate, yaml_syntax_problem

M = TypeVar("M", bound=BaseModel)

_HANDLER = YAMLHandler()


class _TomlBoundary(BaseHandler):
    """Where ``+++`` front matter ends; python-frontmatter's own TOML handler needs the ``toml`` package."""

    FM_BOUNDARY = re.compile(r"^\+{3,}\s*$", re.MULTILINE)


_TOML = _TomlBoundary()
_JSON = JSONHandler()


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
    digest: str = ""  # SHA-256 of the file's text: what the content cache keys it by

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


def read_source(path: Path, cache: ContentCache | None = None) -> Source:
    """Read ``path``; broken or non-mapping front matter becomes a Problem, never an exception.

    With ``cache``, front matter parsed by an earlier run from the same text is taken from it.
    """
    try:
        text = read_text(path)
    except InputError as exc:
        return Source(path, {}, Positions(file=path), "", 0, tuple(exc.problems))
    digest = digest_of(text)
    if cache is not None:
        split = cache.split(digest)
        if split is not None:
            return _cached(path, text, digest, split)
    src = replace(_parse(path, text), digest=digest)
    if cache is not None and not src.problems and text.endswith(src.body):
        body_start = len(text) - len(src.body)
        nodes, keys = positions_of(src.positions.nodes), positions_of(src.positions.keys)
        cache.put_split(digest, (src.meta, nodes, keys, src.positions.offset, body_start, src.body_line))
    return src


def _cached(path: Path, text: str, digest: str, split: Split) -> Source:
    meta, nodes, keys, offset, body_start, body_line = split
    positions = Positions(
        file=path,
        nodes={tuple(p): (line, column) for p, line, column in nodes},
        keys={tuple(p): (line, column) for p, line, column in keys},
        offset=offset,
    )
    return Source(path, meta, positions, text[body_start:], body_line, (), digest)


def _parse(path: Path, text: str) -> Source:
    empty = Positions(file=path)
    if _TOML.detect(text) or _JSON.detect(text):
        return _other_format(path, text)
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


def _other_format(path: Path, text: str) -> Source:
    """TOML or JSON front matter; positions are those of the top-level keys, found by their line."""
    toml = _TOML.detect(text)
    name, closer = ("TOML", "'+++'") if toml else ("JSON", "'}'")
    handler: BaseHandler = _TOML if toml else _JSON
    try:
        fm, body = handler.split(text)
    except ValueError:
        problem = Problem(f"front matter opened with {closer} is never closed", file=path, line=1, column=1)
        return Source(path, {}, Positions(file=path), text, 0, (problem,))
    body_line = text.count("\n", 0, len(text) - len(body))
    positions = _key_positions(text[: len(text) - len(body)], path, toml)
    try:
        data = tomllib.loads(fm) if toml else json.loads(fm)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        line, column = _error_position(exc, text.count("\n", 0, max(text.find(fm), 0)))
        problem = Problem(f"{name} front matter: {_reason(exc)}", file=path, line=line, column=column)
        return Source(path, {}, positions, body, body_line, (problem,))
    if not isinstance(data, dict):
        problem = Problem(f"{name} front matter must be an object of keys", file=path, line=1, column=1)
        return Source(path, {}, positions, body, body_line, (problem,))
    return Source(path, {str(k): v for k, v in data.items()}, positions, body, body_line, ())


_TOML_KEY = re.compile(r'^[ \t]*(?:"([^"]+)"|([A-Za-z0-9_-]+))[ \t]*=|^[ \t]*\[+[ \t]*([A-Za-z0-9_-]+)', re.M)
_JSON_KEY = re.compile(r'^[ \t]*"([^"]+)"[ \t]*:', re.M)


def _key_positions(head: str, path: Path, toml: bool) -> Positions:
    """Line and column of each top-level key, so a bad value is reported where it is written."""
    positions = Positions(file=path)
    for match in (_TOML_KEY if toml else _JSON_KEY).finditer(head):
        key = next(group for group in match.groups() if group)
        table = toml and match[3] is not None
        line = head.count("\n", 0, match.start()) + 1
        indent = len(match[0]) - len(match[0].lstrip())
        column = match.start() - (head.rfind("\n", 0, match.start()) + 1) + indent + 1
        positions.nodes.setdefault((key,), (line, column))
        positions.keys.setdefault((key,), (line, column))
        if table:
            break  # keys below a [table] header belong to that table
    return positions


def _error_position(exc: ValueError, before: int) -> tuple[int, int]:
    """The file position of a parser error; ``before`` is the number of file lines above the front matter."""
    if isinstance(exc, json.JSONDecodeError):
        return exc.lineno + before, exc.colno
    found = re.search(r"at line (\d+), column (\d+)", str(exc))
    return (int(found[1]) + before, int(found[2])) if found else (before + 1, 1)


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    return re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"


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
