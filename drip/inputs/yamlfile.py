"""YAML documents that remember where each key came from.

PyYAML's composer gives every node its line and column; we keep a map from key
path to position so validation errors can point at ``file:line:column``.
Validation itself is pydantic's (every error at once); :func:`validate` turns its
errors into :class:`~drip.errors.Problem` records with a closest-key hint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from drip.errors import Problem, did_you_mean

KeyPath = tuple[str | int, ...]
# PyYAML expands aliases on access: a few hundred bytes of anchors can stand for billions of values
# ("billion laughs"). Nothing drip reads needs more than this many values once aliases are expanded.
MAX_VALUES = 100_000
MAX_DEPTH = 64  # levels of nesting; deeper is a mistake or an attack, and recursion has limits
# libyaml's composer is ~16x faster and still reports line and column.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
M = TypeVar("M", bound=BaseModel)


@dataclass
class Positions:
    """Line/column (1-based) of every node and key in one YAML document."""

    file: Path | None
    nodes: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    offset: int = 0  # lines before the document (front matter starts after '---')
    # PyYAML keeps the last of two equal keys without a word: each repeat is a problem here.
    repeated: list[Problem] = field(default_factory=list)
    values: int = 0  # nodes walked so far, aliases expanded: bounded by MAX_VALUES

    def find(self, path: KeyPath, *, key: bool = False) -> tuple[int, int] | None:
        """Position of ``path``, or of its closest ancestor that exists."""
        table = self.keys if key else self.nodes
        probe = tuple(path)
        while probe:
            if probe in table:
                line, col = table[probe]
                return line + self.offset, col
            if probe in self.nodes:
                line, col = self.nodes[probe]
                return line + self.offset, col
            probe = probe[:-1]
        if () in self.nodes:
            line, col = self.nodes[()]
            return line + self.offset, col
        return None

    def problem(self, path: KeyPath, message: str, *, hint: str | None = None, key: bool = False) -> Problem:
        pos = self.find(path, key=key)
        return Problem(
            message,
            file=self.file,
            line=pos[0] if pos else None,
            column=pos[1] if pos else None,
            key=dotted(path) or None,
            hint=hint,
        )


def dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


class RefusedYaml(yaml.YAMLError):
    """Valid YAML that drip will not expand: self-referring or huge aliases, deep nesting, complex keys."""

    def __init__(self, problem: str, node: yaml.Node) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = node.start_mark
        self.context = None


def _walk(node: yaml.Node, path: KeyPath, pos: Positions, open_nodes: frozenset[int] = frozenset()) -> Any:
    pos.values += 1
    if pos.values > MAX_VALUES:
        raise RefusedYaml(
            f"more than {MAX_VALUES:,} values once aliases (*name) are expanded; "
            "write the values out or use fewer aliases",
            node,
        )
    if id(node) in open_nodes:
        raise RefusedYaml("an alias refers to the value that contains it, so it never ends", node)
    if len(path) > MAX_DEPTH:
        raise RefusedYaml(f"nested more than {MAX_DEPTH} levels deep", node)
    pos.nodes[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        open_nodes = open_nodes | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise RefusedYaml("a key must be a plain value, not a list or a mapping", key_node)
            key = _scalar(key_node)
            child = (*path, str(key))
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if child in pos.keys:
                pos.repeated.append(
                    Problem(
                        f"appears twice (first on line {pos.keys[child][0] + pos.offset}); merge both into one",
                        file=pos.file,
                        line=where[0] + pos.offset,
                        column=where[1],
                        key=dotted(child),
                    )
                )
            else:
                pos.keys[child] = where
            out[key] = _walk(value_node, child, pos, open_nodes)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), pos, open_nodes) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    constructor = yaml.SafeLoader("")
    try:
        return constructor.construct_object(node, deep=True)
    finally:
        constructor.dispose()


def parse_yaml(text: str, file: Path | None = None, *, line_offset: int = 0) -> tuple[Any, Positions]:
    """Parse one YAML document; raise :class:`InputError`-ready problems on syntax errors."""
    pos = Positions(file=file, offset=line_offset)
    try:
        node = _compose(text)
    except yaml.reader.ReaderError as exc:
        raise _located_reader_error(text, exc) from None
    if node is None:
        return None, pos
    return _walk(node, (), pos), pos


def _located_reader_error(text: str, exc: yaml.reader.ReaderError) -> yaml.MarkedYAMLError:
    """A character YAML does not allow (a control character, say) at its line and column;
    PyYAML's own error gives only an offset into the text."""
    at = min(max(exc.position, 0), len(text))
    line = text.count("\n", 0, at)
    column = at - (text.rfind("\n", 0, at) + 1)
    mark = yaml.Mark("<text>", at, line, column, None, None)  # type: ignore[arg-type]  # no buffer to quote
    problem = f"character #x{exc.character:04x}: {exc.reason}"
    return yaml.MarkedYAMLError(problem=problem, problem_mark=mark)


def _compose(text: str) -> yaml.Node | None:
    """The document's node tree: libyaml's, and the pure-Python parser's stable messages on errors."""
    try:
        return yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):
            raise  # libyaml's own bound, located; the pure-Python parser would recurse a long while first
        # Same fault, reported by the pure-Python parser: its messages are the stable ones.
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except RecursionError:
            raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep") from None
    except RecursionError:
        raise yaml.YAMLError(f"nested more than {MAX_DEPTH} levels deep") from None


def yaml_syntax_problem(exc: yaml.YAMLError, file: Path | None, *, line_offset: int = 0) -> Problem:
    """Turn PyYAML's own error into a located :class:`Problem`."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    kind = "YAML refused" if isinstance(exc, RefusedYaml) else "invalid YAML"
    message = f"{kind}: {what}" + (f" ({context})" if context else "")
    hint = "indent with spaces: YAML does not allow tabs" if "'\\t'" in what else None
    if mark is not None:
        return Problem(
            message, file=file, line=mark.line + 1 + line_offset, column=mark.column + 1, hint=hint
        )
    return Problem(message, file=file, hint=hint)


def load_yaml_file(path: Path) -> tuple[Any, Positions]:
    """Read and parse a YAML file; syntax errors become an InputError naming the file."""
    from drip.errors import InputError
    from drip.inputs.textfile import read_text

    text = read_text(path)
    try:
        return parse_yaml(text, path)
    except yaml.YAMLError as exc:
        raise InputError(yaml_syntax_problem(exc, path)) from None


_MESSAGES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


def _model_fields(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Valid key names at ``loc`` inside ``model``, used to suggest the nearest one."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _inner_model(fields[part].annotation)
    fields = getattr(current, "model_fields", None)
    if not fields:
        return []
    return [info.alias or name for name, info in fields.items()]


def _inner_model(annotation: Any) -> Any:
    """The BaseModel subclass inside ``list[X]``, ``X | None``, ``dict[str, X]``…"""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def validate(model: type[M], data: Any, pos: Positions) -> tuple[M | None, list[Problem]]:
    """Validate ``data`` against ``model``; every error located in the source file."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        problems: list[Problem] = []
        for err in exc.errors():
            loc: KeyPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            kind = err["type"]
            if kind == "extra_forbidden":
                hint = did_you_mean(str(loc[-1]), _model_fields(model, loc)) if loc else None
                problems.append(pos.problem(loc, "unknown key", hint=hint, key=True))
            elif kind == "missing":
                problems.append(pos.problem(loc, "required key is missing"))
            else:
                msg = err["msg"]
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, ") :]
                got = err.get("input")
                if kind not in ("value_error",) and not isinstance(got, dict | list) and got is not None:
                    msg = f"{msg}, got {got!r}"
                problems.append(pos.problem(loc, msg))
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        return None, problems
